"""v6sentry's tests; ``tests.golden`` and ``tests.bench`` also run as modules."""
