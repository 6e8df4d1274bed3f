"""``ipv6.tga_scan`` (issue 15): target-generation scans per source /64 and destination /48.

Owns the family's unit checks beyond its regression captures: the nibble entropy profile
and the pattern names, the gate (dense over many /64s, unanswered), a site override of a
threshold, eviction counting, and that its sid is pinned to a real-tool lab scenario.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

from detectors.detections.tga_scan import name_pattern, nibble_entropy, profile_string
from detectors.policy import load_policy
from pcaps.generate import R1_MAC, UPSTREAM_MAC, a6, at, echo6, eth
from tests.test_detections import PCAPS, family_sids, replay

SCANNER = a6("2001:db8:bad::99")
SITE = a6("2001:db8:1::")


def target(subnet: int, iid: bytes) -> bytes:
    return SITE[:6] + struct.pack("!H", subnet) + iid


def pings(targets: list[bytes], src: bytes = SCANNER) -> list[tuple[int, bytes]]:
    return [
        (at(1 + i * 0.01), eth(echo6(src, t, 1, i), UPSTREAM_MAC, R1_MAC))
        for i, t in enumerate(targets)
    ]


def test_entropy_profile_and_pattern_names() -> None:
    rng = random.Random(7)
    clustered = [target(n, bytes([0x1A, 0x2B, 0, 0, x, 0, 0, y])) for n in range(16)
                 for x in range(4) for y in range(2)]  # fmt: skip
    entropy = nibble_entropy(clustered)
    assert entropy[:12] == [0.0] * 12 and entropy[15] == 4.0 and entropy[25] == 2.0
    assert profile_string(entropy) == "0000:0000:0000:0008:0000:0000:0400:0002"
    assert name_pattern(clustered, entropy, 0.5, 8)[::2] == ("clustered_nibbles", [15, 25, 31])
    random_ids = [target(n % 16, rng.randbytes(8)) for n in range(128)]
    e = nibble_entropy(random_ids)
    assert name_pattern(random_ids, e, 0.5, 8)[0] == "random"
    eui = [
        target(n, bytes([2, 0x50, 0x56, 0xFF, 0xFE, 0, n, m])) for n in range(16) for m in range(8)
    ]
    assert name_pattern(eui, nibble_entropy(eui), 0.5, 8)[0] == "eui64"
    v4 = [target(n, bytes([0, 0, 0, 0, 192, 0, 2, m])) for n in range(16) for m in range(8)]
    assert name_pattern(v4, nibble_entropy(v4), 0.5, 8)[0] == "embedded_ipv4"
    low = [target(n, bytes(7) + bytes([m])) for n in range(16) for m in range(1, 9)]
    assert name_pattern(low, nibble_entropy(low), 0.5, 8)[0] == "dense_low_byte"
    assert nibble_entropy([]) == [0.0] * 32


def test_gate_density_prefixes_and_override(tmp_path: Path) -> None:
    dense = [target(n, struct.pack("!Q", h)) for n in range(20) for h in range(1, 9)]
    alerts, _ = replay(pings(dense))
    assert [a.signature_id for a in alerts] == [1001501]
    # One target per /64 (a hitlist scan) or all in four /64s: not this family's.
    sparse = [target(n, struct.pack("!Q", 1)) for n in range(300)]
    few = [target(n % 4, struct.pack("!Q", n + 1)) for n in range(300)]
    for frames in (sparse, few):
        got, _ = replay(pings(frames))
        assert [a for a in got if a.category == "ipv6.tga_scan"] == []
    site = tmp_path / "site.yaml"
    site.write_text(
        (PCAPS / "policy.yaml")
        .read_text()
        .replace("thresholds: {}", "thresholds:\n  ipv6.tga_scan: {min_targets: 1000}")
    )
    raised, _ = replay(pings(dense), load_policy(str(site)))
    assert raised == []


def test_table_is_capped_and_evictions_counted(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        (PCAPS / "policy.yaml")
        .read_text()
        .replace("thresholds: {}", "thresholds:\n  ipv6.tga_scan: {max_tracked: 16}")
    )
    one = target(0, bytes(7) + b"\x01")
    frames = [(at(1 + i * 0.001), echo6(a6(f"2001:db8:{i:x}::1"), one, 1, i)) for i in range(100)]
    _, engine = replay(
        [(t, eth(p, UPSTREAM_MAC, R1_MAC)) for t, p in frames], load_policy(str(site))
    )
    stats = {t.name: t for d in engine.detectors for t in d.tables()}
    table = stats["tga_scan.windows"]
    assert (table.cap, table.evictions) == (16, 84)


def test_every_tga_signature_is_pinned_to_real_tool_traffic() -> None:
    from tests import netlab

    sids = family_sids("tga_scan")
    pinned = set().union(*(sc.sids for sc in netlab.SCENARIOS.values()))
    assert sids - pinned == set(), f"no lab scenario expects {sorted(sids - pinned)}"
