"""Shipping alerts to Elasticsearch: connection, index template, bulk delivery, spool.

``connect`` builds the client from the URL, credentials (environment or a
private file, never the command line) and CA; ``template`` installs the
composable index template; ``convert`` turns EVE or ECS lines back into ECS
documents; ``shipper`` delivers them in bulk with per-item retries, counting
duplicates; ``spool`` keeps what could not be delivered on disk until it can
be; ``progress`` draws the bar; ``cli`` is ``v6sentry ship`` and ``replay
--es``. Nothing here detects anything or queries alerts back (see ``hunt``).
"""

# Kept here, not in ``shipper``/``template``, so that the command line (``cli``), which
# ``replay`` and ``live`` load, does not import the Elasticsearch client until it ships.
DEFAULT_INDEX = "logs-v6sentry.alert-default"


class ShipError(Exception):
    """Shipping cannot go on (refused credentials, spool full); the message says why."""
