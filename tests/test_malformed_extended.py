"""``ipv6.malformed``, extended by issue 14: the parts the regression captures do not pin.

Owns: the policy's ``max_ext_headers`` reaches the decoder and alerts; the fragment
flood is counted per link, stays silent below its threshold and raises one alert per
window; both readings of overlapping fragments reach the RA detections, the first
copy as well as the last; the legal senders from ``::`` stay silent; every new sid is
pinned to a real-tool lab scenario. Exact counts per capture are in
``pcaps/manifest.yaml`` (``tests/test_pcaps.py``).
"""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

from detectors.alerts import Alert
from detectors.detections import discover
from detectors.engine import Engine, known_thresholds
from detectors.policy import Policy, load_policy
from pcaps.generate import (
    ALL_NODES,
    BAD_LL,
    BAD_MAC,
    R1_MAC,
    a6,
    at,
    ext,
    fragment_packets,
    host,
    icmp6,
    ip6,
    lan,
    pio,
    rdnss,
    router_ra,
    slla,
)

PCAPS = Path(__file__).resolve().parents[1] / "pcaps"
NEW_SIDS = {1000906, 1000907, 1000908, 1000909}


def replay(frames: list[tuple[int, bytes]], policy: Policy | None = None) -> list[Alert]:
    alerts: list[Alert] = []
    engine = Engine(policy or load_policy(str(PCAPS / "policy.yaml")), alerts.append)
    engine.run((ts, 0, 1, f, len(f)) for ts, f in sorted(frames))
    engine.finish()
    return alerts


def sids(alerts: list[Alert]) -> Counter[int]:
    return Counter(a.signature_id for a in alerts)


def _policy(tmp_path: Path, extra: str) -> Policy:
    path = tmp_path / "policy.yaml"
    base = (PCAPS / "policy.yaml").read_text().replace("thresholds: {}\n", "")
    path.write_text(base + extra, encoding="utf-8")
    specs, _ = discover()
    return load_policy(str(path), known_thresholds(specs))


def test_max_ext_headers_from_the_policy_alerts(tmp_path: Path) -> None:
    src, dst = a6("2001:db8:1::e7"), a6("2001:db8:1::20")
    echo = icmp6(src, dst, 128, struct.pack("!HH", 1, 1))
    # Six headers: Hop-by-Hop, Destination Options, Routing (type 2), then three
    # Mobility-free experimental 253s (which may repeat), then ICMPv6.
    chain = ext(60) + ext(43) + bytes([253, 0, 2, 0, 0, 0, 0, 0]) + ext(253) + ext(253) + ext(58)
    frames = [(at(1), lan(ip6(src, dst, 0, chain + echo, 64), host(10)[0]))]
    assert sids(replay(frames)) == Counter()
    strict = _policy(tmp_path, "thresholds:\n  decoder:\n    max_ext_headers: 4\n")
    alerts = replay(frames, strict)
    assert sids(alerts) == Counter({1000902: 1})
    assert alerts[0].evidence["reasons"] == {"ext.chain_too_long": 1}


def _first_fragments(
    src: bytes, n: int, start: float, step: float, m: bytes
) -> list[tuple[int, bytes, bytes]]:
    dst = a6("2001:db8:1::20")
    out = []
    for i in range(n):
        fh = struct.pack("!BBHI", 58, 0, 1, 0x20000 + i)
        out.append((at(start + i * step), m, ip6(src, dst, 44, fh + bytes(48), 64)))
    return out


def test_fragment_flood_is_per_link_and_silent_below_its_threshold(tmp_path: Path) -> None:
    m = host(12)[0]
    policy = _policy(
        tmp_path,
        "thresholds:\n  ipv6.malformed:\n    max_incomplete_per_window: 100\n"
        "  decoder:\n    frag_max_datagrams: 50\n",
    )
    # The table (50 datagrams) is shared by the links. 80 on VLAN 5 then 80 on VLAN 6:
    # 80 of VLAN 5's evicted and 30 of VLAN 6's, 110 in all but under 100 per link:
    # silent. Then 200 more on VLAN 5 from another source: one alert there.
    frames = []
    for vlan, src_last, start in ((5, 1, 1), (6, 2, 1.5)):
        src = a6(f"2001:db8:1::f{src_last}")
        for ts, mm, pkt in _first_fragments(src, 80, start, 0.001, m):
            frames.append((ts, _tagged(pkt, mm, vlan)))
    assert sids(replay(frames, policy)) == Counter()
    src = a6("2001:db8:1::f3")
    for ts, mm, pkt in _first_fragments(src, 200, 2, 0.001, m):
        frames.append((ts, _tagged(pkt, mm, 5)))
    alerts = replay(frames, policy)
    assert sids(alerts) == Counter({1000908: 1})
    ev = alerts[0].evidence
    assert ev["incomplete"]["evicted"] > 100 and ev["sources"] == 2
    assert alerts[0].identifier == "0|5|fragment_flood"


def _tagged(packet: bytes, m: bytes, vlan: int) -> bytes:
    frame = lan(packet, m)
    return frame[:12] + b"\x81\x00" + struct.pack("!H", vlan) + frame[12:]


def _rogue_ra() -> bytes:
    body = struct.pack("!BBHII", 64, 0x08, 1800, 0, 0)
    body += slla(BAD_MAC) + pio(a6("2001:db8:bad::")) + rdnss(a6("2001:db8:bad::53"))
    return icmp6(BAD_LL, ALL_NODES, 134, body)


def test_a_rogue_ra_kept_by_first_copy_hosts_is_judged() -> None:
    """The RA's fragment 0 first, then an echo's over it: the first-copy reading is the RA."""
    rogue = _rogue_ra()
    decoy = icmp6(BAD_LL, ALL_NODES, 128, struct.pack("!HH", 7, 1) + bytes(len(rogue) - 8))
    real = fragment_packets(BAD_LL, ALL_NODES, 58, rogue, 48, 0x5723)
    fake = fragment_packets(BAD_LL, ALL_NODES, 58, decoy, 48, 0x5723)
    frames = [(at(0), lan(router_ra(1), R1_MAC))]
    frames += [(at(1), lan(real[0], BAD_MAC)), (at(1.001), lan(fake[0], BAD_MAC))]
    frames += [(at(1.002), lan(real[1], BAD_MAC))]
    alerts = replay(frames)
    by_cat = Counter(a.category for a in alerts)
    assert by_cat == Counter({"ipv6.malformed": 1, "ipv6.rogue_ra": 1, "ipv6.ra_guard_evasion": 1})
    rogue_alert = next(a for a in alerts if a.category == "ipv6.rogue_ra")
    assert rogue_alert.evidence["overlap_reading"] == "first"


def test_overlapping_fragments_without_nd_emit_no_packet_twice() -> None:
    """An overlapped echo is the malformed alert only: neither reading is counted."""
    src, dst = a6("2001:db8:1::bad"), a6("2001:db8:1::20")
    echo = icmp6(src, dst, 128, bytes(60))
    first, second = fragment_packets(src, dst, 58, echo, 32, 0xC2, 64)
    again = ip6(src, dst, 44, struct.pack("!BBHI", 58, 0, 24 | 1, 0xC2) + b"X" * 16, 64)
    m = host(10)[0]
    frames = [(at(1), lan(first, m)), (at(1.001), lan(again, m)), (at(1.002), lan(second, m))]
    assert sids(replay(frames)) == Counter({1000903: 1})


def test_every_new_sid_is_pinned_to_real_tool_traffic() -> None:
    from tests import netlab

    pinned = set().union(*(sc.sids for sc in netlab.SCENARIOS.values()))
    assert NEW_SIDS - pinned == set()
    specs, _ = discover()
    family = specs["malformed"]
    declared = {s.sid for d in family.detections.values() for s in d.signatures.values()}
    assert declared >= NEW_SIDS
