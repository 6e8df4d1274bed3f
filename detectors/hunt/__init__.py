"""Hunting in Elasticsearch with the generated rules, across sensors.

Owns ``v6sentry rules push`` (the Sigma rules' Elasticsearch queries stored in a rules
index, and a Kibana detection-rules NDJSON: ``rules``), the observation index
template (``events``), running the stored rules and the cross-sensor sweep
correlation (``search``), and the ``hunt`` command line (``cli``). It does not render or
convert rules (``detectors.rules``), build alerts or observations (``detectors.alerts``,
``detectors.observations``), or ship alerts (``detectors.ship``).
"""

RULES_INDEX = "v6sentry-rules"  # where `v6sentry rules push` stores the rules
