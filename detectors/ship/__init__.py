"""Shipping alerts to Elasticsearch: connection, index template, bulk delivery, spool.

``connect`` builds the client from the URL, credentials (environment or a
private file, never the command line) and CA; ``template`` installs the
composable index template; ``convert`` turns EVE or ECS lines back into ECS
documents; ``shipper`` delivers them in bulk with per-item retries, counting
duplicates; ``spool`` keeps what could not be delivered on disk until it can
be; ``progress`` draws the bar; ``cli`` is ``v6sentry ship`` and ``replay
--es``. Nothing here detects anything or queries alerts back (see ``hunt``).
"""
