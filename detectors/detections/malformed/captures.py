"""The malformed family's regression captures for issue 14 (``ipv6.malformed``, extended).

Owns the deterministic captures of the signatures added by issue 14 and the silence of
the legitimate uses of ``::``: Routing Header type 0, repeated extension and Fragment
headers, unassigned next headers, packets from ``::`` outside DAD, an RFC 7112 first
fragment, a rogue RA hidden in overlapping fragments, and a flood of first fragments
that never complete. Their manifest entries are in ``pcaps/manifest.yaml`` (issue 14 block).
"""

from __future__ import annotations

import struct
from pathlib import Path

from pcaps.generate import (
    ALL_NODES,
    ALL_ROUTERS,
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
    solicited_node,
    udp6,
    write_pcap,
)

UNSPEC = bytes(16)
MLDV2_ROUTERS = a6("ff02::16")


def _echo(src: bytes, dst: bytes, seq: int) -> bytes:
    return icmp6(src, dst, 128, struct.pack("!HH", 14, seq) + bytes(8))


def cap_malformed_extended(out: Path) -> None:
    """One packet per new chain and source rule, each from its own source; and from
    ``::`` a DAD NS, an MLDv2 report and an RS, which are legal and stay silent."""
    dst = a6("2001:db8:1::20")
    m = host(10)[0]
    src = {n: a6(f"2001:db8:1::e{n}") for n in range(1, 7)}
    packets = [
        # RFC 5095: a type 0 Routing header with one segment left.
        ip6(src[1], dst, 43, ext(58, bytes([0, 1, 0, 0, 0, 0]) + a6("2001:db8:1::99"))
            + _echo(src[1], dst, 1), 64),
        # Two Fragment headers, both atomic (RFC 8200 4.1: each header at most once).
        ip6(src[2], dst, 44, struct.pack("!BBHI", 44, 0, 0, 0xF2)
            + struct.pack("!BBHI", 58, 0, 0, 0xF3) + _echo(src[2], dst, 2), 64),
        # Destination Options three times (at most twice).
        ip6(src[3], dst, 60, ext(60) + ext(60) + ext(58) + _echo(src[3], dst, 3), 64),
        # An unassigned next header (IANA: 146-252 unassigned) after Destination Options.
        ip6(src[4], dst, 60, ext(200) + bytes(16), 64),
        # An echo request from :: (no reply can come back).
        ip6(UNSPEC, dst, 58, _echo(UNSPEC, dst, 5), 64),
    ]  # fmt: skip
    frames = [(at(1 + i), lan(p, m)) for i, p in enumerate(packets)]
    # RFC 7112: 64 bytes of Destination Options push the UDP header into fragment 2.
    chained = ext(17, bytes(62)) + udp6(src[6], dst, 40000, 53, bytes(24))
    for i, f in enumerate(fragment_packets(src[6], dst, 60, chained, 56, 0xF6, 64)):
        frames.append((at(7 + i * 0.001), lan(f, m)))
    # Legal uses of :: (RFC 4862 5.4, RFC 3810 5.2.13, RFC 4861 4.1): silent.
    hm, hll, _ = host(11)
    snm = solicited_node(hll)
    dad = icmp6(UNSPEC, snm, 135, bytes(4) + hll)
    frames.append((at(8), lan(ip6(UNSPEC, snm, 58, dad), hm)))
    record = struct.pack("!BBH", 4, 0, 0) + snm  # CHANGE_TO_EXCLUDE, no sources
    report = icmp6(UNSPEC, MLDV2_ROUTERS, 143, struct.pack("!HH", 0, 1) + record)
    router_alert = bytes([5, 2, 0, 0, 1, 0])
    frames.append(
        (at(8.5), lan(ip6(UNSPEC, MLDV2_ROUTERS, 0, ext(58, router_alert) + report, 1), hm))
    )
    rs = icmp6(UNSPEC, ALL_ROUTERS, 133, bytes(4))
    frames.append((at(9), lan(ip6(UNSPEC, ALL_ROUTERS, 58, rs), hm)))
    frames.append((at(0), lan(router_ra(1), R1_MAC)))
    write_pcap(out / "malformed_extended.pcap", sorted(frames))


def cap_overlap_rogue_ra(out: Path) -> None:
    """A rogue RA hidden in overlapping fragments (RFC 5722): fragment 0 of an echo
    request, then fragment 0 of the RA over it, then the RA's second fragment. A host
    keeping the first copy reads an echo with a broken tail; one keeping the last copy
    reads the rogue RA, which the RA detections must judge."""
    body = struct.pack("!BBHII", 64, 0x08, 1800, 0, 0)
    body += slla(BAD_MAC) + pio(a6("2001:db8:bad::")) + rdnss(a6("2001:db8:bad::53"))
    rogue = icmp6(BAD_LL, ALL_NODES, 134, body)
    decoy = icmp6(BAD_LL, ALL_NODES, 128, struct.pack("!HH", 7, 1) + bytes(len(rogue) - 8))
    real = fragment_packets(BAD_LL, ALL_NODES, 58, rogue, 48, 0x5722)
    fake = fragment_packets(BAD_LL, ALL_NODES, 58, decoy, 48, 0x5722)
    frames = [(at(0), lan(router_ra(1), R1_MAC))]
    frames.append((at(1), lan(fake[0], BAD_MAC)))
    for i, f in enumerate(real):
        frames.append((at(1.001 + i * 0.001), lan(f, BAD_MAC)))
    write_pcap(out / "overlap_rogue_ra.pcap", sorted(frames))


def cap_fragment_flood(out: Path) -> None:
    """1000 first fragments from one source with distinct ids that never complete, one
    every 0.1 s for 100 s: from 60 s on, each new one finds the oldest timed out (RFC
    8200 4.5), 400 in the window that opens then. The flood's own fragments drive the
    timeouts, so a ``--workers`` split (one flow, one worker) sees the same."""
    src, dst = a6("2001:db8:1::f1"), a6("2001:db8:1::20")
    m = host(12)[0]
    frames = []
    for i in range(1000):
        fh = struct.pack("!BBHI", 58, 0, 1, 0x10000 + i)  # offset 0, M=1
        frames.append((at(1 + i * 0.1), lan(ip6(src, dst, 44, fh + bytes(48), 64), m)))
    write_pcap(out / "fragment_flood.pcap", sorted(frames))
