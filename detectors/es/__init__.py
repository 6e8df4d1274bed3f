"""Everything v6sentry knows about Elasticsearch itself: names, templates, connection.

Owns the index names and patterns (below), the connection settings and client
(``connect``), the alert index template and installing either template (``template``),
the observation index template (``events``) and the observation document those
indices hold (``observations``). ``detectors.ship`` delivers documents,
``detectors.hunt`` queries them back and ``detectors.rules.push`` stores rules; each
imports from here and none imports another, so the three stay independent.

Nothing in this package imports the Elasticsearch client at module level except
``template``: ``replay`` and ``live`` load ``connect`` and ``observations`` and must run
without the ``[es]`` extra.
"""

from __future__ import annotations

# Plain indices, not data streams (see ``template``); the names follow Elastic's
# logs-<dataset>-<namespace> so the committed Sigma rules' patterns match them.
ALERT_INDEX = "logs-v6sentry.alert-default"
ALERT_PATTERN = "logs-v6sentry.alert-*"
EVENT_INDEX = "logs-v6sentry.event-default"
EVENT_PATTERN = "logs-v6sentry.event-*"
RULES_INDEX = "v6sentry-rules"  # where `v6sentry rules push` stores the rules
