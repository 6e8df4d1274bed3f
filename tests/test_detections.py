"""Behaviour of the RA and ND detection families beyond the regression captures.

Owns the rules the captures cannot show alone: specs own their sid ranges and
every threshold is read by its family's code; the README tables match the
specs; state stays within its caps under floods that randomise MAC and
address, with evictions counted; the silent cases (looped-back DAD probes,
NUD, answered solicitations, tunnelled RAs, a router's goodbye RA) stay
silent; suppression and per-link caps hold. Frames come from the capture
generator's builders, so every packet is a real, checksummed frame.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

from detectors.alerts import Alert
from detectors.capture import open_capture
from detectors.detections import BASE_EVIDENCE, discover
from detectors.engine import Engine
from detectors.policy import Policy, empty_policy, load_policy
from detectors.specdoc import main as specdoc_main
from pcaps.generate import (
    ALL_NODES,
    PREFIX,
    R1_LL,
    R1_MAC,
    a6,
    at,
    attacker,
    eth,
    host,
    ip6,
    lan,
    mtu_opt,
    na,
    nonce,
    ns,
    pio,
    ra,
    rdnss,
    router_ra,
    slla,
    solicited_node,
    tcp6,
    tlla,
)

PCAPS = Path(__file__).resolve().parents[1] / "pcaps"
DETECTIONS = Path(__file__).resolve().parents[1] / "detectors" / "detections"


def replay(
    frames: list[tuple[int, bytes]], policy: Policy | None = None
) -> tuple[list[Alert], Engine]:
    alerts: list[Alert] = []
    engine = Engine(policy or load_policy(str(PCAPS / "policy.yaml")), alerts.append)
    engine.run((ts, 0, 1, f, len(f)) for ts, f in sorted(frames))
    engine.finish()
    return alerts, engine


def family_sids(*families: str) -> set[int]:
    """Every signature id of the named families."""
    specs, _ = discover()
    return {
        sig.sid
        for family in families
        for det in specs[family].detections.values()
        for sig in det.signatures.values()
    }


def sids(alerts: list[Alert]) -> Counter[int]:
    return Counter(a.signature_id for a in alerts)


# -- specs, code and README agree ---------------------------------------------

# Keys of the v6sentry object that are the alert's own, not evidence (convert._OWN_KEYS).
OWN_KEYS = ("alert_id", "identifier", "detection_id", "severity")


def _fits(kind: str, value: Any) -> bool:
    """Whether one evidence value is of its declared type."""
    if kind == "address":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True
    if kind == "time" or kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "keyword":
        return isinstance(value, str)
    return kind in ("mixed", "flattened")


def evidence_problems(doc: dict[str, Any], declared: dict[str, str], where: str) -> list[str]:
    """Evidence leaves of one alert's v6sentry object that are undeclared or mistyped."""
    problems: list[str] = []

    def walk(path: str, value: Any) -> None:
        kind = declared.get(path)
        if kind == "flattened" or value is None:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                if path or key not in OWN_KEYS:
                    walk(f"{path}.{key}" if path else key, item)
        elif isinstance(value, list):
            for item in value:
                walk(path, item)
        elif kind is None:
            problems.append(f"{where}: evidence {path} is not declared in the spec")
        elif not _fits(kind, value):
            problems.append(f"{where}: evidence {path}: {value!r} is not of type {kind}")

    walk("", doc)
    return problems


def test_every_golden_evidence_field_is_declared_with_its_type() -> None:
    """Forgetting to declare an evidence field fails here, not in Elasticsearch (where an
    address would have been mapped as a keyword)."""
    specs, _ = discover()
    family = {cat: spec for spec in specs.values() for cat in spec.detections}
    problems: set[str] = set()
    seen = 0
    for golden in sorted((PCAPS / "golden").glob("*.jsonl")):
        for line in golden.read_text(encoding="utf-8").splitlines():
            alert = json.loads(line)
            spec = family[alert["alert"]["category"]]
            declared = {**BASE_EVIDENCE, **spec.evidence}
            where = f"{spec.path} ({golden.name}, {alert['alert']['category']})"
            problems.update(evidence_problems(alert["v6sentry"], declared, where))
            seen += 1
    assert seen > 100
    assert not problems, "\n".join(sorted(problems))


def test_an_undeclared_or_mistyped_evidence_field_is_caught() -> None:
    declared = {"router.address": "address", "count": "number"}
    doc = {"alert_id": "x", "router": {"address": "fe80::1", "mac": "02:00:00:00:00:01"}}
    assert evidence_problems(doc, declared, "s") == [
        "s: evidence router.mac is not declared in the spec"
    ]
    assert evidence_problems({"count": "3"}, declared, "s") == [
        "s: evidence count: '3' is not of type number"
    ]
    assert evidence_problems({"router": {"address": "fe80::/64"}}, declared, "s") == [
        "s: evidence router.address: 'fe80::/64' is not of type address"
    ]


def test_every_threshold_is_read_by_its_family() -> None:
    specs, _ = discover()
    problems = []
    for name, spec in specs.items():
        code = "".join(p.read_text() for p in (DETECTIONS / name).glob("*.py"))
        code += (DETECTIONS / "__init__.py").read_text()  # suppress_s is read by the base class
        if "LinkBudget(" in code:  # the budget reads window_s and max_alerts_per_window
            code += (DETECTIONS / "budget.py").read_text()
        for det in spec.detections.values():
            for th in det.thresholds:
                if not re.search(rf"[\"']{th}[\"']", code):
                    problems.append(f"{det.category}.{th} is in the spec but no code reads it")
    assert not problems, "\n".join(problems)


def test_readme_tables_match_the_specs() -> None:
    assert specdoc_main(["--check"]) == 0, "README.md is stale: run `make docs`"


# -- bounded state under randomising floods ------------------------------------


def test_state_stays_within_caps_under_randomised_floods() -> None:
    rng = random.Random(1)
    frames = []
    for i in range(3000):
        m = b"\x02\x00" + rng.randbytes(4)
        src = a6("fe80::")[:8] + rng.randbytes(8)
        target = PREFIX[:8] + rng.randbytes(8)
        kind = i % 3
        if kind == 0:
            pkt = ra(src, slla(m) + pio(a6("2001:db8:bad::")))
        elif kind == 1:
            pkt = ns(src, solicited_node(target), target, slla(m))
        else:
            pkt = na(src, ALL_NODES, target, 0x20, tlla(m))
        frames.append((at(i * 0.001), lan(pkt, m)))
    text = """routers: []
thresholds:
  ipv6.rogue_ra: {max_routers_tracked: 16}
  ipv6.ndp_flood: {max_sources_tracked: 16}
  ipv6.ndp_spoof: {max_bindings_tracked: 16}
  ipv6.ndp_exhaustion: {max_pending_tracked: 16, max_drivers_tracked: 16}
"""
    path = Path(PCAPS.parent / ".pytest-small-caps.yaml")
    try:
        path.write_text(text)
        alerts, engine = replay(frames, load_policy(str(path)))
    finally:
        path.unlink()
    tables = engine.table_stats()
    over = {n: t for n, t in tables.items() if t["size"] > t["cap"]}
    assert not over, over
    for name in (
        "router_advert.routers",
        "neighbor_discovery.known_sources",
        "neighbor_discovery.bindings",
        "neighbor_discovery.pending_targets",
    ):
        assert tables[name]["cap"] == 16 and tables[name]["evictions"] > 0, (name, tables[name])
    got = Counter(a.category for a in alerts)
    # Alerts still come, capped per link: 10 individual rogue RAs plus one burst.
    assert got["ipv6.rogue_ra"] == 11 and got["ipv6.ndp_flood"] >= 1 and got["ipv6.ra_flood"] >= 1


# -- silent on purpose ---------------------------------------------------------


def test_dad_loopback_nud_and_answered_solicitations_are_silent() -> None:
    m, ll, _ = host(1)
    r1_gl = PREFIX[:8] + bytes(7) + b"\x01"
    frames = []
    for k in range(200):
        target = PREFIX[:8] + bytes([0xC0, k]) + bytes(6)
        probe = ns(bytes(16), solicited_node(target), target, nonce(bytes([k]) * 6))
        frames.append((at(k), lan(probe, m)))
        frames.append((at(k + 0.001), lan(probe, m)))  # RFC 7527: own probe looped back
        frames.append((at(k + 1.1), lan(na(ll, ALL_NODES, target, 0x20, tlla(m)), m)))
        # the router resolves it and is answered; then NUD by unicast goes unanswered
        frames.append((at(k + 2), lan(ns(r1_gl, solicited_node(target), target, b""), R1_MAC)))
        frames.append((at(k + 2.001), lan(na(target, r1_gl, target, 0x60, tlla(m)), m, R1_MAC)))
        frames.append((at(k + 3), lan(ns(r1_gl, target, target, b""), R1_MAC, m)))
    alerts, _ = replay(frames)
    assert alerts == []


def test_router_goodbye_and_tunnelled_ra_are_silent() -> None:
    goodbye = ra(
        R1_LL, slla(R1_MAC) + mtu_opt(1500) + pio(PREFIX) + rdnss(a6("2001:db8:1::53")), lifetime=0
    )
    frames = [(at(0), lan(router_ra(1), R1_MAC)), (at(5), lan(goodbye, R1_MAC))]
    frames += [(at(6 + i), lan(router_ra(1), R1_MAC)) for i in range(3)]
    alerts, _ = replay(frames)
    assert alerts == []
    alerts, _ = replay(frames, empty_policy())
    assert alerts == []


# -- suppression and caps -------------------------------------------------------


def test_one_alert_per_router_and_signature_while_suppressed() -> None:
    m, _ = attacker(1)
    kill = ra(R1_LL, slla(m), lifetime=0)
    frames = [(at(i * 3), lan(kill, m)) for i in range(100)]
    alerts, engine = replay(frames)
    assert sids(alerts) == Counter({1000104: 1})
    evidence: dict[str, Any] = alerts[0].evidence
    assert evidence["router"] == {"address": "fe80::1", "mac": m.hex(":")}
    assert engine.summary()["suppressed"] >= 99


def test_flapping_is_one_alert_per_address_whichever_mac_holds_it() -> None:
    am, all_ = attacker(1)
    h1m, _, h1 = host(1)
    h2m, _, h2 = host(2)
    frames = []
    for k in range(10):
        who = (am, all_) if k % 2 == 0 else (h2m, h2)
        frames.append((at(k), lan(na(who[1], h1, h2, 0x40, tlla(who[0])), who[0], h1m)))
    alerts, _ = replay(frames)
    assert sids(alerts) == Counter({1000223: 1})
    ev = alerts[0].evidence
    assert set(ev["macs_seen"]) == {am.hex(":"), h2m.hex(":")}
    assert ev["old_mac"] != ev["new_mac"]


def test_exhaustion_counts_only_unanswered_targets_and_names_the_driver() -> None:
    r1_gl = PREFIX[:8] + bytes(7) + b"\x01"
    scanner, upstream = a6("2001:db8:ff::a"), b"\x02\0\0\0\xff\x01"
    frames = []
    for i in range(200):
        t = i * 0.01
        target = PREFIX[:8] + bytes([0xEE, i]) + bytes(6)
        syn = ip6(scanner, target, 6, tcp6(scanner, target, 40000, 22, 0x02), 60)
        frames.append((at(t), eth(syn, upstream, R1_MAC)))
        solicit = lan(ns(r1_gl, solicited_node(target), target, slla(R1_MAC)), R1_MAC)
        if i % 2:  # exists: answers the first solicitation
            hm = bytes([2, 0, 0, 0, 0xEE, i])
            frames.append((at(t + 0.001), solicit))
            frames.append((at(t + 0.002), lan(na(target, r1_gl, target, 0x60, tlla(hm)), hm)))
        else:  # does not exist: solicited three times, 1 s apart
            frames += [(at(t + 0.001 + k), solicit) for k in range(3)]
    alerts, _ = replay(frames)
    by_cat = {a.category: a for a in alerts}
    assert sorted(a.category for a in alerts) == ["ipv6.ndp_exhaustion", "ipv6.sweep"]
    ev = by_cat["ipv6.ndp_exhaustion"].evidence
    assert ev["unresolved_targets"] == 100 and ev["prefix"] == "2001:db8:1::/64"
    # Drivers are recorded once R1 has 8 solicitations outstanding, so the first 8
    # unanswered targets have no driver on record; the other 92 do.
    assert ev["off_link_sources"] == [{"address": "2001:db8:ff::a", "targets": 92}]
    assert ev["solicitor"] == {"address": "2001:db8:1::1", "mac": "02:00:00:00:01:01"}
    # The cause and the effect name each other: same prefix, same sweep identifier.
    sweep = by_cat["ipv6.sweep"]
    assert (
        ev["correlation"]
        == sweep.evidence["correlation"]
        == {
            "prefix": "2001:db8:1::/64",
            "sweeps": [sweep.identifier],
        }
    )
    assert sweep.identifier == "2001:db8:ff::/64|2001:db8:1::/64"


def test_malformed_flood_from_random_sources_is_capped_per_link() -> None:
    """Found with atk6-flood_router26 -F: every forged source sent one malformed RA."""
    rng = random.Random(2)
    frames = []
    for i in range(500):
        m = b"\x02\x00" + rng.randbytes(4)
        src = a6("fe80::")[:8] + rng.randbytes(8)
        bad = ra(src, slla(m) + bytes([25, 0]) + bytes(6))  # a zero-length option
        frames.append((at(i * 0.01), lan(bad, m)))
    alerts, _ = replay(frames)
    malformed = Counter(a.signature_id for a in alerts if a.category == "ipv6.malformed")
    assert malformed == Counter({1000901: 10, 1000905: 1})
    burst = next(a for a in alerts if a.signature_id == 1000905)
    assert burst.evidence["count"] == 490 and burst.evidence["distinct_sources"] == 490


def test_dad_answered_from_a_new_random_mac_each_time() -> None:
    """atk6-dos-new-ip6 answers every probe from a fresh random MAC."""
    rng = random.Random(3)
    m, _, _ = host(40)
    frames = []
    for k in range(3):
        tentative = PREFIX[:8] + bytes([0xDA, k]) + bytes(5) + b"\x01"
        probe = ns(bytes(16), solicited_node(tentative), tentative, nonce(bytes([k]) * 6))
        frames.append((at(k * 5), lan(probe, m)))
        fake = b"\x02\x00" + rng.randbytes(4)
        defend = na(tentative, ALL_NODES, tentative, 0x20, tlla(fake))
        frames.append((at(k * 5 + 0.001), lan(defend, fake)))
    alerts, _ = replay(frames)
    assert sids(alerts) == Counter({1000231: 1})
    ev = alerts[0].evidence
    assert ev["denied_probers"] == [{"mac": m.hex(":"), "addresses": 2}]
    assert ev["answering_macs"] == 2  # the alert comes at the second denied address


def test_one_real_duplicate_is_not_a_dad_dos() -> None:
    m, _, _ = host(41)
    owner, _, owned = host(42)
    probe = ns(bytes(16), solicited_node(owned), owned, nonce(b"\x07" * 6))
    frames = [
        (at(0), lan(probe, m)),
        (at(0.01), lan(na(owned, ALL_NODES, owned, 0x20, tlla(owner)), owner)),
    ]
    alerts, _ = replay(frames)
    assert alerts == []


def test_every_first_hop_signature_is_pinned_to_real_tool_traffic() -> None:
    """Each sid of the first-hop families (RA, ND, Redirect/smurf/PTB, DHCPv6, MLD) and of
    the covert channels is expected from some attack-tool lab scenario."""
    from tests import netlab

    sids = family_sids(
        "router_advert", "neighbor_discovery", "first_hop", "dhcpv6", "mld", "covert"
    )
    pinned = set().union(*(sc.sids for sc in netlab.SCENARIOS.values()))
    assert sids - pinned == set(), f"no lab scenario expects {sorted(sids - pinned)}"


def test_thresholds_are_overridden_per_site(tmp_path: Path) -> None:
    """A policy override changes the verdict: the same flood is no flood at 5000 RAs."""
    with open_capture(str(PCAPS / "ra_flood_random.pcap")) as reader:
        frames = [(ts, data) for ts, _i, _lt, data, _w in reader.records()]
    site = tmp_path / "site.yaml"
    override = (
        "thresholds:\n  ipv6.ra_flood: {max_ras_per_window: 5000, max_routers_per_window: 5000}"
    )
    site.write_text((PCAPS / "policy.yaml").read_text().replace("thresholds: {}", override))
    default, _ = replay(frames)
    raised, _ = replay(frames, load_policy(str(site)))
    assert Counter(a.category for a in default)["ipv6.ra_flood"] == 2
    assert Counter(a.category for a in raised)["ipv6.ra_flood"] == 0


def test_learning_never_whitelists_a_spoofed_or_kill_router_ra() -> None:
    """Without a policy: a learned router's address from another MAC, or a lifetime-0 RA
    from a new source, is judged even inside the learning window."""
    m, _ = attacker(1)
    m2, src2 = attacker(2)
    frames = [
        (at(0), lan(router_ra(1), R1_MAC)),
        (at(10), lan(ra(R1_LL, slla(m) + pio(PREFIX)), m)),  # R1's address, another MAC
        (at(20), lan(ra(src2, slla(m2) + pio(PREFIX), lifetime=0), m2)),  # kill, new source
        (at(30), lan(router_ra(1), R1_MAC)),
    ]
    alerts, _ = replay(frames, empty_policy())
    assert sids(alerts) == Counter({1000102: 1, 1000104: 1})


# -- MLD (issue 14) ---------------------------------------------------------------


def test_every_mld_signature_is_pinned_to_real_tool_traffic() -> None:
    """Each sid of the MLD family is expected from some attack-tool lab scenario."""
    from tests import netlab

    sids = family_sids("mld")
    pinned = set().union(*(sc.sids for sc in netlab.SCENARIOS.values()))
    assert sids - pinned == set(), f"no lab scenario expects {sorted(sids - pinned)}"


def test_mld_queriers_are_learned_in_the_router_learning_window() -> None:
    """Without a policy the first querier is learned; a querier first heard after the
    window is not, and the one below the learned querier takes the election over."""
    from detectors.detections.mld import captures as mld
    from pcaps.generate import mac

    q1, q1_mac = a6("fe80::ff:3"), mac("02:00:00:00:01:03")
    late, late_mac = a6("fe80::ff:9"), mac("02:00:00:00:66:01")
    low, low_mac = a6("fe80::5"), mac("02:00:00:00:66:02")
    frames = [(at(t), lan(mld.query(q1), q1_mac)) for t in (1, 126, 700)]
    frames += [(at(650), lan(mld.query(late), late_mac))]
    frames += [(at(660), lan(mld.query(low), low_mac))]
    alerts, _ = replay(frames, empty_policy())
    got = [(a.signature_id, a.src_ip) for a in alerts]
    assert got == [(1001201, "fe80::ff:9"), (1001202, "fe80::5")], got
    learned = alerts[0].evidence["policy"]
    assert learned["learned_queriers"] == ["fe80::ff:3 02:00:00:00:01:03"]
    assert alerts[1].evidence["elected_querier"] == "fe80::ff:3"
