"""The DNS family's Python half: the backscatter classes (Fukuda and Heidemann's name
heuristics) and the ip6.arpa zone parsing the policy and the walk reducer share."""

from __future__ import annotations

import pytest

from detectors.detections.dns import (
    CONTENT_PROVIDER,
    POTENTIAL_ABUSE,
    ROUTER_INTERFACE,
    WELL_KNOWN_SERVICE,
    classify,
)
from detectors.policy import ip6_arpa_zone


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        (None, POTENTIAL_ABUSE),
        ("", POTENTIAL_ABUSE),
        ("pc-17.office.example.com", POTENTIAL_ABUSE),
        ("scanner.research.example.org", POTENTIAL_ABUSE),
        ("mail.example.com", WELL_KNOWN_SERVICE),
        ("mx2.example.net", WELL_KNOWN_SERVICE),
        ("ns1.example.com", WELL_KNOWN_SERVICE),
        ("ntp.example.org", WELL_KNOWN_SERVICE),
        ("smtp-out3.example.com", WELL_KNOWN_SERVICE),
        ("ae-1.core1.fra.example.net", ROUTER_INTERFACE),
        ("xe-0-0-1.gw.example.net", ROUTER_INTERFACE),
        ("ge-2-1.edge2.example.net", ROUTER_INTERFACE),
        ("a23-1-2-3.deploy.static.akamaitechnologies.com", CONTENT_PROVIDER),
        ("server-1-2-3-4.fra2.r.cloudfront.net", CONTENT_PROVIDER),
        ("edge-star-mini6-shv-01-fra3.facebook.com", CONTENT_PROVIDER),
    ],
)
def test_backscatter_classes_from_the_ptr_name(name: str | None, cls: str) -> None:
    assert classify(name) == cls


def test_ip6_arpa_zones() -> None:
    assert ip6_arpa_zone("8.b.d.0.1.0.0.2.ip6.arpa") == (
        bytes.fromhex("20010db8" + "0" * 24),
        8,
    )
    assert ip6_arpa_zone("1.0.0.0.8.B.D.0.1.0.0.2.IP6.ARPA.") == (
        bytes.fromhex("20010db80001" + "0" * 20),
        12,
    )
    assert ip6_arpa_zone("ip6.arpa") == (bytes(16), 0)
    for bad in ("example.com", "10.0.ip6.arpa", "g.ip6.arpa", "in-addr.arpa"):
        assert ip6_arpa_zone(bad) is None
