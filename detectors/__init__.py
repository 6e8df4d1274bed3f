"""v6sentry: an IPv6 threat sensor and SIEM rule pack.

The package holds the decoder (``decoder``), the engine (``engine``), the
detection families (``detections``), the alert and policy contracts
(``alerts``, ``policy``) and the command line (``cli``).
"""

__version__ = "0.1.0"
