"""Hunting in Elasticsearch with the generated rules, across sensors.

Owns running the rules ``v6sentry rules push`` stored and the cross-sensor sweep
correlation (``search``), and the ``hunt`` command line (``cli``). Index names and the
connection come from ``detectors.es``; this package imports neither ``detectors.ship``
nor ``detectors.rules``. It does not render, convert or store rules
(``detectors.rules``), build alerts or observations (``detectors.alerts``,
``detectors.es.observations``), or ship them (``detectors.ship``).
"""
