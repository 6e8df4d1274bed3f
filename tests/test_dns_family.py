"""The DNS family's Python half: the backscatter classes (Fukuda and Heidemann's name
heuristics) and the ip6.arpa zone parsing the policy and the walk reducer share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from detectors.capture import open_capture
from detectors.detections.dns import (
    CONTENT_PROVIDER,
    POTENTIAL_ABUSE,
    ROUTER_INTERFACE,
    WELL_KNOWN_SERVICE,
    classify,
)
from detectors.detections.dns import captures as dc
from detectors.engine import Engine
from detectors.es.observations import Observation
from detectors.policy import ip6_arpa_zone, load_policy
from pcaps.generate import a6, at, eth, udp6, write_pcap
from tests.golden import PCAPS


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


def test_backscatter_observations_over_the_cap_are_counted(tmp_path: Path) -> None:
    """The regression capture's two benign originators (the mail server and a router
    interface) with room for one observation per window: one written, the other counted
    in an overflow observation, never dropped silently."""
    doc = yaml.safe_load((PCAPS / "policy_dns.yaml").read_text())
    doc["thresholds"] = {"ipv6.dns_backscatter": {"max_observations_per_window": 1}}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    seen: list[Observation] = []
    engine = Engine(load_policy(str(path)), lambda _a: None, observe=seen.append)
    with open_capture(str(PCAPS / "dns_backscatter.pcap")) as reader:
        engine.run(reader.records())
    engine.finish()
    assert [o.kind for o in seen] == ["dns_backscatter", "overflow"]
    assert seen[1].details["dropped"] == 1 and seen[1].details["cap"] == 1


def test_a_flood_of_zone_transfer_requests_is_bounded_before_python(tmp_path: Path) -> None:
    """70 AXFR requests over UDP in one window, each from its own (spoofed) source: the
    reducer hands Python 64 of them and counts the rest, so Python's work does not grow
    with the packets of a flood. Each of the 64 is an alert (a querier of its own)."""
    frames = []
    for n in range(70):
        client = a6(f"2001:db8:bad:2::{n + 1:x}")
        q = dc.message(n + 1, dc.ZONE, dc.AXFR)
        pkt = dc._ip6(client, dc.AUTH6, 17, udp6(client, dc.AUTH6, 20000 + n, 53, q))
        frames.append((at(1 + n * 0.01), eth(pkt, dc.PEER_MAC, dc.AUTH_MAC)))
    pcap = tmp_path / "xfr.pcap"
    write_pcap(pcap, frames)
    alerts: list[Any] = []
    engine = Engine(load_policy(str(PCAPS / "policy_dns.yaml")), alerts.append)
    with open_capture(str(pcap)) as reader:
        engine.run(reader.records())
    engine.finish()
    assert len(alerts) == 64
    budget = engine.summary()["tables"]["dns.xfr_budget"]
    assert (budget["size"], budget["cap"], budget["evictions"]) == (64, 64, 6)
