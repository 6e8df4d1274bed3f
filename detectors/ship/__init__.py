"""Shipping alerts and observations to Elasticsearch: bulk delivery, spool.

The connection, index names and index templates are ``detectors.es``'s; this package
uses them and nothing else from the Elasticsearch side of v6sentry (it does not import
``detectors.hunt``). ``convert`` turns EVE or ECS lines back into ECS
documents; ``shipper`` delivers them in bulk with per-item retries, counting
duplicates; ``spool`` keeps what could not be delivered on disk until it can
be; ``progress`` draws the bar; ``cli`` is ``v6sentry ship`` and ``replay
--es``. Nothing here detects anything or queries alerts back (see ``hunt``).
"""


class ShipError(Exception):
    """Shipping cannot go on (refused credentials, spool full); the message says why."""
