"""``ipv6.tga_scan`` (issue 15): target-generation scans per source /64 and destination /48.

Owns the family's unit checks beyond its regression captures: the nibble entropy profile
and the pattern names, the gate (dense over many /64s, unanswered), a site override of a
threshold, the table's cap and doorkeeper, a scan hidden in a random-source flood (still
raised, the thrashing observed once), UDP scans and busy UDP services, and that its sid is
pinned to a real-tool lab scenario.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

from detectors.alerts import Alert
from detectors.detections.tga_scan import name_pattern, nibble_entropy, profile_string
from detectors.engine import Engine
from detectors.es.observations import Observation
from detectors.policy import load_policy
from pcaps.generate import R1_MAC, UPSTREAM_MAC, a6, at, echo6, eth, ip6, udp6
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
    # Full at 16: the other 84 single probes are refused a slot, evicting nothing.
    assert (table.cap, table.evictions) == (16, 0)
    door = stats["tga_scan.doorkeeper"]
    # 8 fingerprint slots per table slot; two refused keys may share one (keyed hash).
    assert (door.cap, door.evictions) == (128, 84) and 0 < len(door) <= 84


def clustered(first_subnet: int = 0, seed: int = 15) -> list[bytes]:
    """320 targets over 40 /64s, 8 each, from one nibble cluster (as tga_clustered.pcap)."""
    rng = random.Random(seed)
    return [
        target(n, bytes([0x1A, 0x2B, 0x3C, 0x4D, x, 0, 0, y << 4]))
        for n in range(first_subnet, first_subnet + 40)
        for x, y in sorted(rng.sample([(x, y) for x in range(8) for y in range(16)], 8))
    ]


def run(
    frames: list[tuple[int, bytes]], site: Path
) -> tuple[list[Alert], list[Observation], Engine]:
    """Replay with the policy ``site`` and the observations collected."""
    alerts: list[Alert] = []
    observations: list[Observation] = []
    engine = Engine(load_policy(str(site)), alerts.append, None, None, observations.append)
    engine.run((ts, 0, 1, f, len(f)) for ts, f in sorted(frames))
    engine.finish()
    return alerts, observations, engine


FLOOD = 200_000


CAP = 512  # more flood probes than this between two of the scanner's evicted it


def test_a_scan_in_a_random_source_flood_still_fires_and_the_thrashing_is_observed(
    tmp_path: Path,
) -> None:
    """Review of issue 15: every probe of a flood from a new random source /64 used to
    take a slot, and with more of them between two of the scanner's probes than the
    table holds (625 here, for a table of 512), the scanner's window was evicted before
    it reached the gate, silently. Now single probes are refused once the table is full,
    the scan of 320 targets among 200,000 of them is raised, and the thrashing is one
    observation with its counts."""
    site = tmp_path / "site.yaml"
    site.write_text(
        (PCAPS / "policy.yaml")
        .read_text()
        .replace("thresholds: {}", f"thresholds:\n  ipv6.tga_scan: {{max_tracked: {CAP}}}")
    )
    rng = random.Random(1515)
    scan = pings(clustered())  # 10 ms apart, 3.2 s
    flood = []
    for i in range(FLOOD):
        src = a6("2001:db8::")[:4] + rng.randbytes(12)
        dst = target(rng.randrange(0x10000), rng.randbytes(8))
        flood.append(
            (at(1 + i * 0.000016), eth(echo6(src, dst, 7, i & 0xFFFF), UPSTREAM_MAC, R1_MAC))
        )
    alerts, observations, engine = run(scan + flood, site)
    tga = [a for a in alerts if a.category == "ipv6.tga_scan"]
    assert len(tga) == 1
    ev = tga[0].evidence
    assert ev["source"]["prefix"] == "2001:db8:bad::/64"
    assert (ev["estimated_targets"], ev["pattern"]) == (128, "clustered_nibbles")
    thrash = [o for o in observations if o.kind == "state_thrashing"]
    assert len(thrash) == 1, thrash
    details = thrash[0].details
    assert thrash[0].key == "tga_scan.windows|thrash"
    # Reported when the refusals reached the cap, 512 probes after the table filled.
    assert (details["cap"], details["refused"], details["evictions"]) == (CAP, CAP, 0)
    stats = {t.name: t for d in engine.detectors for t in d.tables()}
    # Every flood probe past the first 511 (the scan holds one slot) was refused, but
    # for the few source /64s the flood drew twice (32 random bits): those took a slot.
    evicted, refused = stats["tga_scan.windows"].evictions, stats["tga_scan.doorkeeper"].evictions
    assert evicted < 20 and FLOOD - (CAP - 1) - 20 < refused <= FLOOD - (CAP - 1)


def test_a_scan_among_sources_of_two_probes_each_still_fires(tmp_path: Path) -> None:
    """Review of issue 15: the doorkeeper admitted a key on its second probe, evicting
    the least recently used window, so sources sending two probes each, more of them
    between two of the scanner's probes than the table holds (100 for a table of 64
    here), washed the scanner's window out every time, with only a thrashing
    observation. Now a newcomer replaces only a window worth less than the probes it
    has shown: the flood's own windows hold two, the scanner's more."""
    site = tmp_path / "site.yaml"
    site.write_text(
        (PCAPS / "policy.yaml")
        .read_text()
        .replace("thresholds: {}", "thresholds:\n  ipv6.tga_scan: {max_tracked: 64}")
    )
    rng = random.Random(2424)
    scan = pings(clustered())  # 10 ms apart
    flood = []
    for i in range(320 * 100):
        src = a6("2001:db8::")[:4] + rng.randbytes(12)
        for k in range(2):
            dst = target(rng.randrange(0x10000), rng.randbytes(8))
            frame = eth(echo6(src, dst, 7, (2 * i + k) & 0xFFFF), UPSTREAM_MAC, R1_MAC)
            flood.append((at(0.9 + i * 0.0001 + k * 0.00001), frame))
    alerts, observations, engine = run(scan + flood, site)
    tga = [a for a in alerts if a.category == "ipv6.tga_scan"]
    assert len(tga) == 1, tga
    ev = tga[0].evidence
    assert ev["source"]["prefix"] == "2001:db8:bad::/64"
    assert ev["estimated_targets"] == 128
    thrash = [o for o in observations if o.kind == "state_thrashing"]
    assert len(thrash) == 1, thrash
    stats = {t.name: t for d in engine.detectors for t in d.tables()}
    # The flood's windows are worth two: its keys (two probes) replace none of them.
    assert stats["tga_scan.windows"].evictions < 10
    assert stats["tga_scan.doorkeeper"].evictions > 2 * 320 * 100 - 200


def udp_probe(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes = b"q") -> bytes:
    return ip6(src, dst, 17, udp6(src, dst, sport, dport, payload), 57)


def test_a_udp_scan_fires_and_busy_udp_services_stay_silent() -> None:
    # A scanner sending DNS queries to 320 generated targets, three answering.
    targets = clustered(seed=53)
    frames = []
    for i, t in enumerate(targets):
        frames.append(
            (at(1 + i * 0.01), eth(udp_probe(SCANNER, t, 40000 + i, 53), UPSTREAM_MAC, R1_MAC))
        )
        if i % 100 == 5:
            reply = udp_probe(t, SCANNER, 53, 40000 + i, b"a")
            frames.append((at(1 + i * 0.01 + 0.002), eth(reply, R1_MAC, UPSTREAM_MAC)))
    alerts, _ = replay(frames)
    tga = [a for a in alerts if a.category == "ipv6.tga_scan"]
    assert [a.signature_id for a in tga] == [1001501]
    assert tga[0].evidence["probes"] == {"udp": 128}
    assert tga[0].dest_port == 53
    # A /48 of DNS and QUIC servers (40 /64s, 10 each) answering clients from one client
    # /64 (a resolver farm) and clients spread over 40 /64s of one /48: queries answered,
    # answers from the service port (replies, never probes of the clients' /48).
    rng = random.Random(4853)
    servers = [
        a6("2001:db8:5e::")[:6] + struct.pack("!H", n) + rng.randbytes(8)
        for n in range(40)
        for _ in range(10)
    ]
    farm = a6("2001:db8:1:ff::")[:8]
    benign = []
    when = 1.0
    for i in range(2000):
        server = servers[i % len(servers)]
        port = 53 if i % 2 else 443
        client = (farm if i % 3 == 0 else SITE[:6] + struct.pack("!H", i % 40)) + rng.randbytes(8)
        sport = 1024 + rng.randrange(60000)
        query = udp_probe(client, server, sport, port)
        answer = udp_probe(server, client, port, sport, b"a")
        benign.append((at(when), eth(query, R1_MAC, UPSTREAM_MAC)))
        benign.append((at(when + 0.003), eth(answer, UPSTREAM_MAC, R1_MAC)))
        when += 0.005
    got, _ = replay(benign)
    assert [a for a in got if a.category == "ipv6.tga_scan"] == [], got


def test_symmetric_udp_peers_stay_silent() -> None:
    """Review of issue 15: UDP between equal ports (NTP 123, IKE 500 and 4500) is both
    ways the same datagram, neither a probe nor a reply. An external NTP server
    answering 320 hosts over 40 /64s of our /48 (ntpd, w32time, BMCs query from port
    123), and an IKE peer talking to as many gateways, used to be a scan of the /48."""
    server = a6("2001:db8:bad::123")
    frames = []
    for i, client in enumerate(clustered(seed=123)):
        when = 1 + i * 0.01
        port = (123, 500, 4500)[i % 3]
        query = udp_probe(client, server, port, port)
        answer = udp_probe(server, client, port, port, b"a")
        frames.append((at(when), eth(query, R1_MAC, UPSTREAM_MAC)))
        frames.append((at(when + 0.002), eth(answer, UPSTREAM_MAC, R1_MAC)))
    alerts, _ = replay(frames)
    assert [a for a in alerts if a.category == "ipv6.tga_scan"] == [], alerts
    # The answers alone (the queries left the site another way): still silent.
    alerts, _ = replay(frames[1::2])
    assert [a for a in alerts if a.category == "ipv6.tga_scan"] == [], alerts


def test_a_udp_scan_from_a_privileged_source_port_fires() -> None:
    """Review of issue 15: a scanner sending from port 53 (or 1) to ports above it (123,
    161, 443, 500) was a service answering by the lower-port rule, never counted. A
    privileged destination port is a probe whatever the source port."""
    frames = []
    for i, t in enumerate(clustered(seed=161)):
        sport = 1 if i % 5 == 0 else 53
        dport = (123, 161, 443, 500)[i % 4]
        frames.append(
            (at(1 + i * 0.01), eth(udp_probe(SCANNER, t, sport, dport), UPSTREAM_MAC, R1_MAC))
        )
    alerts, _ = replay(frames)
    tga = [a for a in alerts if a.category == "ipv6.tga_scan"]
    assert [a.signature_id for a in tga] == [1001501]
    assert tga[0].evidence["probes"] == {"udp": 128}


def test_every_tga_signature_is_pinned_to_real_tool_traffic() -> None:
    from tests import netlab

    sids = family_sids("tga_scan")
    pinned = set().union(*(sc.sids for sc in netlab.SCENARIOS.values()))
    assert sids - pinned == set(), f"no lab scenario expects {sorted(sids - pinned)}"
