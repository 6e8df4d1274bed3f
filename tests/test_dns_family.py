"""The DNS family's Python half: the backscatter classes (Fukuda and Heidemann's name
heuristics) and the ip6.arpa zone parsing the policy and the walk reducer share."""

from __future__ import annotations

import ipaddress
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
from pcaps.generate import a4, a6, at, eth, udp6, write_pcap
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


def _run(tmp_path: Path, frames: list[Any], name: str = "t.pcap") -> list[Any]:
    """The alerts of ``frames`` (sorted by time) with the DNS regression policy."""
    pcap = tmp_path / name
    write_pcap(pcap, sorted(frames))
    alerts: list[Any] = []
    engine = Engine(load_policy(str(PCAPS / "policy_dns.yaml")), alerts.append)
    with open_capture(str(pcap)) as reader:
        engine.run(reader.records())
    engine.finish()
    return alerts


FORGER = a6("2001:db8:bad:9::1")  # not one of the policy's dns.authoritative servers


def _forged_answer(t: float, to: bytes, qid: int, qname: str, rcode: int, ptr: str = "") -> Any:
    r = dc.message(qid, qname, dc.PTR, response=True, rcode=rcode, ptr=ptr)
    pkt = dc._ip6(FORGER, to, 17, udp6(FORGER, to, 53, 10000 + qid % 50000, r))
    return (at(t), eth(pkt, dc.PEER_MAC, dc.AUTH_MAC))


def test_a_forged_ptr_answer_does_not_make_a_scanner_look_benign(tmp_path: Path) -> None:
    """12 resolvers look up the scanner (our authoritative answers NXDOMAIN); an attacker
    sends each a PTR answer naming it ``mail.example.com`` from an address that is not
    our authoritative. Only answers from dns.authoritative classify: still potential
    abuse, one alert. (Before, the forged name made it a well-known service: silent.)"""
    frames = dc.looked_up(10, dc.SCANNER, 12, dc.NXDOMAIN, "", 0x100)
    name = dc.arpa(dc.SCANNER)
    for i in range(12):
        client = a4(f"198.51.100.{i + 1}") if i % 4 == 3 else dc.resolver6(i)
        if len(client) == 16:
            frames.append(
                _forged_answer(10 + 2 * i + 0.0005, client, 0x100 + i, name, 0, "mail.example.com")
            )
    alerts = _run(tmp_path, frames)
    assert [a.signature_id for a in alerts] == [1001601], alerts
    assert alerts[0].evidence["originator"]["name"] is None


def test_forged_answers_do_not_feed_a_walk(tmp_path: Path) -> None:
    """The walk of the regression capture with forged "addresses discovered" (full names
    answered with data, from an address that is not our authoritative) and forged
    NXDOMAINs: the evidence has only what our authoritative said."""
    frames = dc.walk(20, dc.WALKER)
    for k in range(5):
        name = dc.arpa(f"2001:db8:1::dead:{k}")
        frames.append(_forged_answer(21 + k * 0.1, dc.WALKER, 0x6000 + k, name, 0, "x.example"))
    for k in range(30):
        name = ".".join(reversed(f"20010db80001{k:02x}")) + ".ip6.arpa"
        frames.append(_forged_answer(21.5 + k * 0.01, dc.WALKER, 0x6100 + k, name, dc.NXDOMAIN))
    (alert,) = _run(tmp_path, frames)
    walk = alert.evidence["walk"]
    assert walk["discovered"] == ["2001:db8:1::25", "2001:db8:1::53", "2001:db8:1::1:10"]
    assert (walk["nxdomain"], walk["noerror"]) == (328, 24)


def _partial(addr: str, depth: int) -> str:
    """The ip6.arpa name of the first ``depth`` nibbles of ``addr``."""
    digits = ipaddress.IPv6Address(addr).exploded.replace(":", "")[:depth]
    return ".".join(reversed(digits)) + ".ip6.arpa"


def test_a_querier_repeating_names_counts_each_once(tmp_path: Path) -> None:
    """One querier asks 10 partial names of our zone 10 times each (retries, a resolver
    re-asking): 10 distinct names, far below min_names (64). (Before, 100 queries were
    100 names: a walk.)"""
    client = dc.resolver6(900)
    frames = []
    for r in range(10):
        for k in range(10):
            name = _partial(f"2001:db8:1:{k:x}00::", 16)
            frames += dc.udp_exchange(10 + r + k * 0.05, client, 0x100 * r + k, name, 1, 0)
    assert _run(tmp_path, frames) == []


# RFC 9156 section 2.3: one more label per query for the first MINIMISE_ONE_LAB (4), then
# the rest in up to MAX_MINIMISE_COUNT (10) queries in all; unbound's steps for a name
# 12 nibbles below ip6.arpa's zone cut of our /48 zone (depth 12).
MINIMISE_DEPTHS = (13, 14, 15, 16, 19, 22, 25, 28, 30, 32)


def test_a_qname_minimising_resolver_resolving_many_names_is_silent(tmp_path: Path) -> None:
    """A QNAME-minimising resolver (RFC 9156) resolves the PTRs of 50 different full
    names of our zone, five at a time (their chains interleaved): it asks each name's
    successively longer prefixes (A queries, NOERROR: empty non-terminals) and then the
    full name (PTR). About 400 distinct partial names, each an ancestor of a later query
    of its chain: minimisation, not a walk. (Before, it was a walk alert.)"""
    client = dc.resolver6(901)
    frames = []
    t, qid = 10.0, 0x3000
    hosts = [f"2001:db8:1:{i % 7:x}::{0x100 + 37 * i:x}" for i in range(50)]
    for group in range(0, 50, 5):
        for depth in MINIMISE_DEPTHS:
            for addr in hosts[group : group + 5]:
                full = depth == 32
                name = dc.arpa(addr) if full else _partial(addr, depth)
                ptr = f"h{qid}.example.com" if full else ""
                frames += dc.udp_exchange(t, client, qid, name, dc.PTR if full else 1, 0, ptr)
                t += 0.003
                qid += 1
    assert _run(tmp_path, frames) == []


def test_a_walker_cannot_pose_as_qname_minimisation(tmp_path: Path) -> None:
    """The regression capture's walk, every name followed at once (before its answer) by
    a query for a made-up full name under it. A name is a minimisation step only once
    our authoritative answered it NOERROR before the longer query; the NXDOMAIN names
    always count: the same walk alert. (Before, every name was credited as a step as
    soon as it was extended, and the NXDOMAIN that came after was ignored: silent.)"""
    plain = _run(tmp_path, dc.walk(20, dc.WALKER), "plain.pcap")
    (alert,) = _run(tmp_path, dc.walk(20, dc.WALKER, extend=True), "extend.pcap")
    assert alert.signature_id == 1001611
    assert alert.evidence["walk"]["names"] == plain[0].evidence["walk"]["names"] >= 300


def test_a_walker_rotating_addresses_in_its_64_is_one_walker(tmp_path: Path) -> None:
    """The walk from a new source address in the walker's /64 every 63 queries (each
    address under min_names, 64): counted per querier /64, one alert whose evidence
    samples the addresses. (Before, counted per address: silent.)"""
    (alert,) = _run(tmp_path, dc.walk(20, dc.WALKER, rotate=63))
    querier = alert.evidence["querier"]
    assert querier["prefix"] == "2001:db8:bad:2::/64"
    assert len(querier["sample"]) == 6 and querier["sample_complete"] is True
    assert all(
        a.startswith("2001:db8:bad:2:0:0:0:") or a.startswith("2001:db8:bad:2::")
        for a in querier["sample"]
    )
    assert alert.evidence["walk"]["names"] >= 300


@pytest.mark.parametrize(("qtype", "name"), [(252, "AXFR"), (251, "IXFR")])
def test_zone_transfer_requests_of_our_zone_alert_and_of_others_do_not(
    tmp_path: Path, qtype: int, name: str
) -> None:
    """An AXFR or IXFR request for our ip6.arpa zone is 1001612 (the issue names both);
    the same request for a zone we do not serve is none of our business."""
    client = a6("2001:db8:bad:3::1")
    frames = []
    for n, zone in enumerate((dc.ZONE, "example.org")):
        q = dc.message(n + 1, zone, qtype)
        pkt = dc._ip6(client, dc.AUTH6, 17, udp6(client, dc.AUTH6, 30000 + n, 53, q))
        frames.append((at(1 + n), eth(pkt, dc.PEER_MAC, dc.AUTH_MAC)))
    alerts = _run(tmp_path, frames)
    assert [a.signature_id for a in alerts] == [1001612], name
    assert alerts[0].src_ip == "2001:db8:bad:3::1"


def test_a_zone_transfer_over_many_tcp_segments_is_not_malformed() -> None:
    """The walk capture's allowed AXFR: two 10 KB messages in 1220-byte segments. The
    segments that start inside a message are continuations (counted), never read as a
    length prefix: the capture's only dns malformed are its two deliberate ones. (Before,
    the continuations were parsed as messages: compression loops, truncated questions.)"""
    engine = Engine(load_policy(str(PCAPS / "policy_dns.yaml")), lambda _a: None)
    with open_capture(str(PCAPS / "dns_walk.pcap")) as reader:
        engine.run(reader.records())
    engine.finish()
    summary = engine.summary()
    dns = {k: v for k, v in summary["malformed_reasons"].items() if k.startswith("dns.")}
    assert dns == {"dns.compression_loop": 1, "dns.short_header": 1}
    assert summary["dns_tcp"] == {"partial": 2, "continuation": 17, "evicted": 0}


def test_the_zone_transfer_rules_list_only_their_own_false_positives() -> None:
    """The walk's QNAME-minimisation false positives are the walk signature's: the zone
    transfer's Sigma rules do not list them, and list the secondary server the walk's do
    not. The Suricata alert rule of the walk says what the Suricata rule counts (every
    ip6.arpa query of a source), not the distinct names it cannot count."""
    root = PCAPS.parent / "sigma" / "rules"
    for source in ("v6sentry", "suricata"):
        xfr = yaml.safe_load((root / source / f"{source}_rdns_walk_zone_transfer.yml").read_text())
        walk = yaml.safe_load((root / source / f"{source}_rdns_walk_walk.yml").read_text())
        assert not any("minimis" in fp for fp in xfr["falsepositives"])
        assert any("secondary" in fp for fp in xfr["falsepositives"])
        assert any("minimis" in fp for fp in walk["falsepositives"])
        assert not any("secondary" in fp for fp in walk["falsepositives"])
    walk = yaml.safe_load((root / "suricata" / "suricata_rdns_walk_walk.yml").read_text())
    assert "distinct" not in walk["description"] and "queries" in walk["description"]
