"""The MLD family's regression captures (``pcaps/generate.py`` runs the ``cap_*`` here).

Owns three deterministic captures on the regression network (``pcaps/policy.yaml``: R1
fe80::1 and R2 fe80::2 are the routers): ``mld_benign.pcap``, R1 querying every 125 s
with hosts joining, answering and leaving groups (no alert, with the policy and
learned); ``mld_attack.pcap``, the same with every other signature once; and
``mld_query_flood.pcap``, rogue queries from 30 sources in one link window (the alert
cap, then one burst). Every MLD packet has a Router Alert Hop-by-Hop option and hop
limit 1, as RFC 3810 5 requires.
"""

from __future__ import annotations

import struct
from pathlib import Path

from pcaps.generate import (
    ALL_NODES,
    BAD_LL,
    BAD_MAC,
    R1_LL,
    R1_MAC,
    Frame,
    a6,
    at,
    host,
    icmp6,
    ip6,
    lan,
    mac,
    solicited_node,
    write_pcap,
)

ALL_MLDV2_ROUTERS = a6("ff02::16")
ALL_MRD_ROUTERS = a6("ff02::6a")
APP_GROUP = a6("ff05::db8:1")
TO_EX, TO_IN = 4, 3  # MLDv2 record types: join, and (with no sources) leave


def mld(src: bytes, dst: bytes, itype: int, body: bytes, code: int = 0) -> bytes:
    """An MLD/MRD packet behind a Hop-by-Hop Router Alert option (RFC 2711), hop limit 1."""
    hbh = bytes([58, 0, 5, 2, 0, 0, 1, 0])
    return ip6(src, dst, 0, hbh + icmp6(src, dst, itype, body, code), hlim=1)


def query(src: bytes, group: bytes = bytes(16)) -> bytes:
    """An MLDv2 general (or group-specific) query: 10 s response, QRV 2, QQIC 125."""
    body = struct.pack("!HH", 10000, 0) + group + bytes([2, 125]) + struct.pack("!H", 0)
    return mld(src, ALL_NODES, 130, body)


def record(rtype: int, group: bytes) -> bytes:
    return struct.pack("!BBH", rtype, 0, 0) + group


def report(src: bytes, records: list[bytes], declared: int | None = None) -> bytes:
    count = len(records) if declared is None else declared
    body = struct.pack("!HH", 0, count) + b"".join(records)
    return mld(src, ALL_MLDV2_ROUTERS, 143, body)


def v1(src: bytes, itype: int, group: bytes) -> bytes:
    """An MLDv1 Report (131, to the group) or Done (132, to all routers)."""
    dst = group if itype == 131 else a6("ff02::2")
    return mld(src, dst, itype, struct.pack("!HH", 0, 0) + group)


def benign_mld(duration: float = 600.0) -> list[Frame]:
    """R1 queries every 125 s; three hosts join at start-up (DAD reports from ::), answer
    each query, host 2 speaks MLDv1, host 3 leaves the application group."""
    frames: list[Frame] = []
    t = 1.0
    while t < duration:
        frames.append((at(t), lan(query(R1_LL), R1_MAC)))
        for n in (1, 2, 3):
            m, ll, gl = host(n)
            groups = [solicited_node(ll), solicited_node(gl), APP_GROUP]
            if n == 3 and t > 300:
                groups = groups[:2]
            answer = report(ll, [record(2, g) for g in groups])  # MODE_IS_EXCLUDE
            frames.append((at(t + 1 + n), lan(answer, m)))
        t += 125
    for n in (1, 2, 3):
        m, ll, gl = host(n)
        dad = report(bytes(16), [record(TO_EX, solicited_node(ll))])
        frames.append((at(0.2 + n / 10), lan(dad, m)))
        frames.append((at(20 + n), lan(report(ll, [record(TO_EX, APP_GROUP)]), m)))
    m2, ll2, _ = host(2)
    frames.append((at(30), lan(v1(ll2, 131, a6("ff05::db8:2")), m2)))
    frames.append((at(200), lan(v1(ll2, 132, a6("ff05::db8:2")), m2)))
    m3, ll3, _ = host(3)
    for k in range(2):  # a leave is sent Robustness Variable times
        frames.append((at(301 + k), lan(report(ll3, [record(TO_IN, APP_GROUP)]), m3)))
    return frames


def cap_mld_benign(out: Path) -> None:
    write_pcap(out / "mld_benign.pcap", sorted(benign_mld()))


def cap_mld_attack(out: Path) -> None:
    frames = benign_mld()
    # unknown_querier: fe80::bad (above R1's fe80::1) queries three times: one alert.
    for k in range(3):
        frames.append((at(40 + k), lan(query(BAD_LL), BAD_MAC)))
    # querier_takeover: fe80:: is lower than R1, so it wins the election.
    low_mac = mac("02:00:00:00:66:67")
    frames.append((at(50), lan(query(a6("fe80::")), low_mac)))
    # rogue_multicast_router: an MRD Advertisement (RFC 4286) from fe80::bad.
    adv = mld(BAD_LL, ALL_MRD_ROUTERS, 151, struct.pack("!HH", 125, 2), code=20)
    frames.append((at(60), lan(adv, BAD_MAC)))
    # record_count: a report declaring 200 records and holding 2.
    m1, ll1, _ = host(1)
    crafted = report(ll1, [record(TO_EX, APP_GROUP), record(TO_EX, a6("ff05::db8:3"))], 200)
    frames.append((at(70), lan(crafted, m1)))
    # report_flood: 600 reporters joining 600 groups within 6 s.
    for i in range(600):
        src = a6(f"fe80::a:{i:x}")
        who = mac(f"02:00:00:aa:{i >> 8:02x}:{i & 255:02x}")
        group = a6(f"ff05::db8:1:{i:x}")
        frames.append((at(220 + i / 100), lan(report(src, [record(TO_EX, group)]), who)))
    # done_flood: host 1 joins 60 groups, then 60 Dones empty them within 6 s.
    groups = [a6(f"ff05::db8:2:{i:x}") for i in range(60)]
    frames.append((at(390), lan(report(ll1, [record(TO_EX, g) for g in groups]), m1)))
    for i, g in enumerate(groups):
        frames.append((at(400 + i / 10), lan(v1(ll1, 132, g), m1)))
    write_pcap(out / "mld_attack.pcap", sorted(frames))


def cap_mld_query_flood(out: Path) -> None:
    frames = benign_mld(200)
    for i in range(30):
        src = a6(f"fe80::b:{i:x}")
        frames.append((at(40 + i / 10), lan(query(src), mac(f"02:00:00:bb:00:{i:02x}"))))
    write_pcap(out / "mld_query_flood.pcap", sorted(frames))
