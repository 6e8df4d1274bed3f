"""Regression captures and their deterministic generator (``generate``)."""
