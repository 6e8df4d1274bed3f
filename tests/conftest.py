"""Shared pytest fixtures: the real Elasticsearch node.

Owns starting one node per test session (``es_node``) and always stopping it.
There is no fallback and no skip: the tests that use it need a real node, and
``make setup`` fetches the distribution. Fixtures for other components live
beside their tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.es_node import EsNode, EsNodeError


@pytest.fixture(scope="session")
def es_node() -> Iterator[EsNode]:
    try:
        node = EsNode()
        node.start()
    except EsNodeError as exc:
        pytest.fail(f"cannot start the test Elasticsearch node: {exc}", pytrace=False)
    try:
        yield node
    finally:
        node.remove()
