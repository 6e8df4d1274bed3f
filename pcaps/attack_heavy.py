#!/usr/bin/env python3
"""Deterministic generator of the attack-heavy benchmark capture (``make bench-compare``).

Usage: ``python -m pcaps.attack_heavy [--packets N] [--out FILE]``.

Owns: the traffic scenario of the attack-heavy capture (what kinds of traffic,
in what shares, how they interleave in packet time), its fast pcap writer, and
its cache under ``build/bench/`` keyed by a hash of this generator's source.
The capture is a benchmark input, not a regression capture: nothing in
``pcaps/manifest.yaml`` or ``pcaps/golden/`` refers to it and it is never
committed (hundreds of MiB).

Does not own: the frame builders (``pcaps/generate.py``; templates are built
with them once, then patched per packet) or what v6sentry or Suricata raise on
it (``tests/bench_compare.py`` reports that, ``tests/test_bench_compare.py``
checks the categories).

Mix (shares of all packets, see ``SHARES``): thc-ipv6 style NS and NA floods
(random sources, targets and MACs), a random-source RA flood (each RA from a
new link-local address and MAC, with a prefix option), a random-source sweep
of one /64, a scan6-style low-byte sweep from one source, fragment floods
(complete, incomplete and overlapping datagrams), 6in4 and Teredo tunnels, and
20 % ordinary IPv4/IPv6 TCP and UDP flows between a few hosts. Every fifth
packet is ordinary; the attacks come in blocks that a smooth weighted
round-robin interleaves, so each attack recurs all through the capture, as in a
span port during an incident, and even a small ``--packets`` keeps the shares.

Speed: one ``bytes`` concatenation of prebuilt pieces per packet and checksums
folded with ``int.from_bytes(...) % 0xFFFF`` (a sum of 16-bit words is the
number itself modulo 2**16 - 1), so 2 million packets take seconds, where one
builder call per packet would take minutes.

Determinism: one seeded ``random.Random`` per kind, packet times from the
packet index only (100 us apart: 2 million packets span 200 s of packet time),
no wall clock; two runs write byte-identical files. Addresses are documentation
ranges only (2001:db8::/32, 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24),
link-local and multicast; MACs are locally administered (02:...).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pcaps.generate import (
    ALL_NODES,
    PREFIX,
    R1_MAC,
    T0,
    UPSTREAM_MAC,
    a4,
    a6,
    eth,
    icmp6,
    ip6,
    ipv4,
    mac,
    mtu_opt,
    multicast_mac,
    pio,
    router_ra,
    slla,
    solicited_node,
    teredo_addr,
    teredo_auth,
    teredo_origin,
    tlla,
    udp4,
)

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / "build" / "bench"
DEFAULT_PACKETS = 2_000_000
SEED = 6_2000  # one number; each kind's RNG is seeded with SEED + its index
TICK_US = 100  # packet spacing: 10,000 packets per second of packet time

# Shares in percent of all packets. Ordinary traffic takes every fifth slot; the
# attack shares add up to the other 80.
SHARES: dict[str, int] = {
    "ns_flood": 15,
    "na_flood": 15,
    "ra_flood": 10,
    "sweep_random_source": 10,
    "sweep_low_byte": 10,
    "fragments": 10,
    "tunnel_6in4": 5,
    "tunnel_teredo": 5,
    "ordinary": 20,
}
ATTACKS = [k for k in SHARES if k != "ordinary"]

_REC = struct.Struct("<IIII")  # pcap record header: seconds, microseconds, caplen, len
_H = struct.Struct("!H")
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


# -- fast checksums ------------------------------------------------------------------------


def _fold(data: bytes) -> int:
    """The one's-complement sum of ``data``'s 16-bit words, modulo 0xFFFF (even length)."""
    return int.from_bytes(data, "big") % 0xFFFF


def _csum(total: int) -> bytes:
    # Never 0: a zero UDP checksum means "none"; 0xFFFF is the same one's-complement value.
    return _H.pack(~(total % 0xFFFF) & 0xFFFF)


def _zeroed(message: bytes) -> bytes:
    """A builder's ICMPv6 message with its checksum zeroed, for folding as a template."""
    return message[:2] + b"\0\0" + message[4:]


def _l4_sum(l4_len: int, nh: int) -> int:
    """The pseudo-header's length and next-header words (addresses are summed per packet)."""
    return _fold(struct.pack("!IxxxB", l4_len, nh))


def _v6_l4(frame_head: bytes, src: bytes, dst: bytes, seg: bytes, at: int, nh: int) -> bytes:
    """``frame_head`` (Ethernet + IPv6 header) + ``seg`` with its checksum at ``at`` filled."""
    total = _l4_sum(len(seg), nh) + _fold(src + dst + seg + b"\0" * (len(seg) & 1))
    return frame_head + seg[:at] + _csum(total) + seg[at + 2 :]


def _v6_head(
    dst_mac: bytes, src_mac: bytes, plen: int, nh: int, hlim: int, src: bytes, dst: bytes
) -> bytes:
    return (
        dst_mac
        + src_mac
        + b"\x86\xdd"
        + struct.pack("!IHBB", 0x60000000, plen, nh, hlim)
        + (src + dst)
    )


def _v4_head(
    dst_mac: bytes, src_mac: bytes, total_len: int, ident: int, proto: int, src: bytes, dst: bytes
) -> bytes:
    """Ethernet + a 20-byte IPv4 header with its checksum."""
    head = struct.pack("!BBHHHBBH", 0x45, 0, total_len, ident & 0xFFFF, 0, 64, proto, 0) + src + dst
    return dst_mac + src_mac + b"\x08\x00" + head[:10] + _csum(_fold(head)) + head[12:]


# -- attack kinds ---------------------------------------------------------------------------
# Each kind is an endless generator of Ethernet frames; the scheduler takes as many as
# its blocks need. Templates come from pcaps.generate's builders with the variable
# fields zeroed; per packet only the variable pieces are concatenated in.


def _ns_flood(rng: random.Random) -> Iterator[bytes]:
    """flood_solicitate6: NS for random targets of 2001:db8:1::/64 from random sources/MACs."""
    tpl = _zeroed(icmp6(bytes(16), bytes(16), 135, bytes(4) + bytes(16) + slla(bytes(6))))
    base = _l4_sum(len(tpl), 58) + _fold(tpl)  # addresses, target and MAC are added per packet
    head = struct.pack("!IHBB", 0x60000000, len(tpl), 58, 255)
    p64, sn13 = PREFIX[:8], solicited_node(bytes(16))[:13]
    opt_head = tpl[24:26]
    while True:
        r = rng.randbytes(20)
        m = b"\x02\x00" + r[16:]
        src, target = p64 + r[:8], p64 + r[8:16]
        dst = sn13 + target[13:]
        total = base + _fold(src + dst + target + m)
        yield (
            b"\x33\x33" + dst[12:] + m + b"\x86\xdd" + head + src + dst
            + b"\x87\x00" + _csum(total) + bytes(4) + target + opt_head + m
        )  # fmt: skip


def _na_flood(rng: random.Random) -> Iterator[bytes]:
    """flood_advertise6: unsolicited override NAs for random addresses, random MACs."""
    tpl = _zeroed(
        icmp6(bytes(16), ALL_NODES, 136, bytes([0x20, 0, 0, 0]) + bytes(16) + tlla(bytes(6)))
    )
    base = _l4_sum(len(tpl), 58) + _fold(ALL_NODES + tpl)  # the destination is fixed
    head = struct.pack("!IHBB", 0x60000000, len(tpl), 58, 255)
    p64, dmac = PREFIX[:8], multicast_mac(ALL_NODES)
    opt_head = tpl[24:26]
    while True:
        r = rng.randbytes(12)
        m = b"\x02\x00" + r[8:]
        src = p64 + r[:8]
        total = base + _fold(src + src + m)  # the source is also the target
        yield (
            dmac + m + b"\x86\xdd" + head + src + ALL_NODES
            + b"\x88\x00" + _csum(total) + b"\x20\x00\x00\x00" + src + opt_head + m
        )  # fmt: skip


def _ra_flood(rng: random.Random) -> Iterator[bytes]:
    """flood_router6: RAs, each from a new link-local address and MAC, random /64 prefixes."""
    options = slla(bytes(6)) + mtu_opt(1500) + pio(bytes(16))
    tpl = _zeroed(
        icmp6(bytes(16), ALL_NODES, 134, struct.pack("!BBHII", 64, 0, 1800, 0, 0) + options)
    )
    base = _l4_sum(len(tpl), 58) + _fold(ALL_NODES + tpl)  # the destination is fixed
    head = struct.pack("!IHBB", 0x60000000, len(tpl), 58, 255)
    ll8, doc4, dmac = a6("fe80::")[:8], a6("2001:db8::")[:4], multicast_mac(ALL_NODES)
    # Offsets in the ICMPv6 message: SLLA MAC at 18..24, the PIO prefix at 48..64.
    mid, tail = tpl[4:18], tpl[24:48]
    while True:
        r = rng.randbytes(18)
        m = b"\x02" + r[8:13]
        src = ll8 + r[:8]
        prefix = doc4 + r[13:17] + bytes(8)  # 2001:db8:xxxx:xxxx::/64
        total = base + _fold(src + m + prefix)
        yield (
            dmac + m + b"\x86\xdd" + head + src + ALL_NODES
            + b"\x86\x00" + _csum(total) + mid + m + tail + prefix
        )  # fmt: skip


def _echo_body(ident: int, seq: int) -> bytes:
    return struct.pack("!HH", ident, seq) + b"v6sentry"


def _sweep_random_source(rng: random.Random) -> Iterator[bytes]:
    """Echo requests into 2001:db8:1::/64, every one from a new 2001:db8:bad::/64 source."""
    src64, dst64 = a6("2001:db8:bad::")[:8], PREFIX[:8]
    seq = 0
    while True:
        r = rng.randbytes(16)
        src, dst = src64 + r[:8], dst64 + r[8:]
        seg = b"\x80\x00\x00\x00" + _echo_body(0x6E, seq & 0xFFFF)
        head = _v6_head(R1_MAC, UPSTREAM_MAC, len(seg), 58, 57, src, dst)
        yield _v6_l4(head, src, dst, seg, 2, 58)
        seq += 1


def _sweep_low_byte(rng: random.Random) -> Iterator[bytes]:
    """scan6 low-byte: echo requests from one source to ::1, ::2, ... of 2001:db8:1::/64,
    then 2001:db8:1:1::/64 and on (65535 targets per /64)."""
    del rng  # fully ordered
    scanner = a6("2001:db8:bad:1::1")
    n = 0
    while True:
        subnet, low = divmod(n, 0xFFFF)
        dst = PREFIX[:6] + _H.pack(subnet) + bytes(6) + _H.pack(low + 1)
        seg = b"\x80\x00\x00\x00" + _echo_body(0x5CA6, (low + 1) & 0xFFFF)
        head = _v6_head(R1_MAC, UPSTREAM_MAC, len(seg), 58, 57, scanner, dst)
        yield _v6_l4(head, scanner, dst, seg, 2, 58)
        n += 1


def _fragments(rng: random.Random) -> Iterator[bytes]:
    """Fragmented 128-byte echo requests from eight attackers to sixteen hosts, in a cycle
    of ten datagrams: five complete (two fragments), three incomplete (the first only) and
    two whose second fragment overlaps the first by 8 bytes."""
    sources = [a6(f"2001:db8:bad:f::{n + 1}") for n in range(8)]
    targets = [PREFIX[:8] + bytes(7) + bytes([0x10 + n]) for n in range(16)]
    data = bytes(range(120))  # with the 8-byte echo header: 128 bytes, two 64-byte fragments
    ident = rng.getrandbits(32)
    k = 0
    while True:
        src, dst = sources[k % 8], targets[k % 16]
        seg = b"\x80\x00\x00\x00" + struct.pack("!HH", 0xF4A6, k & 0xFFFF) + data
        total = _l4_sum(len(seg), 58) + _fold(src + dst + seg)
        seg = seg[:2] + _csum(total) + seg[4:]
        ident = (ident + 1) & 0xFFFFFFFF
        shape = k % 10
        first = struct.pack("!BBHI", 58, 0, 1, ident) + seg[:64]
        yield _v6_head(R1_MAC, UPSTREAM_MAC, len(first), 44, 57, src, dst) + first
        if shape < 5:
            last = struct.pack("!BBHI", 58, 0, 64, ident) + seg[64:]
            yield _v6_head(R1_MAC, UPSTREAM_MAC, len(last), 44, 57, src, dst) + last
        elif shape >= 8:
            overlap = struct.pack("!BBHI", 58, 0, 56, ident) + b"X" * 64
            yield _v6_head(R1_MAC, UPSTREAM_MAC, len(overlap), 44, 57, src, dst) + overlap
        k += 1


def _tunnel_6in4(rng: random.Random) -> Iterator[bytes]:
    """Four 6in4 tunnel users (192.0.2.80-83, broker 198.51.100.80) in long TCP exchanges
    with a native IPv6 server: 200-byte requests and 512-byte answers, in turn."""
    del rng
    broker, server6 = a4("198.51.100.80"), a6("2001:db8:3::1")
    gw = mac("02:00:00:00:05:01")
    ends = [(a4(f"192.0.2.{80 + n}"), a6(f"2001:db8:80:{n}::2")) for n in range(4)]
    answer = bytes(range(256)) * 2
    request = answer[:200]
    k = 0
    while True:
        v4, v6 = ends[k % 4]
        step = k // 4
        # Sequence numbers follow the bytes sent, so the flows read as one clean exchange.
        cseq = 1 + ((step + 1) // 2) * len(request)
        sseq = 1 + (step // 2) * len(answer)
        if step % 2 == 0:  # user -> server
            src, dst, sport, dport, data, seq, ack = (
                v6,
                server6,
                40000 + k % 4,
                443,
                request,
                cseq,
                sseq,
            )
            outer = (v4, broker, gw, R1_MAC)
        else:  # server -> user
            src, dst, sport, dport, data, seq, ack = (
                server6,
                v6,
                443,
                40000 + k % 4,
                answer,
                sseq,
                cseq,
            )
            outer = (broker, v4, R1_MAC, gw)
        seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, 0x18, 65535, 0, 0) + data
        inner_head = struct.pack("!IHBB", 0x60000000, len(seg), 6, 64) + src + dst
        inner = _v6_l4(inner_head, src, dst, seg, 16, 6)
        v4src, v4dst, smac, dmac = outer
        yield _v4_head(dmac, smac, 20 + len(inner), k, 41, v4src, v4dst) + inner
        k += 1


def _tunnel_teredo(rng: random.Random) -> Iterator[bytes]:
    """Eight Teredo clients (192.0.2.40-47) with server 203.0.113.1 and relay 203.0.113.2, both
    on UDP 3544: one qualification RS/RA pair and one bubble per 50 packets, the rest echo
    requests and replies between the Teredo address and a native host."""
    del rng
    server, relay = a4("203.0.113.1"), a4("203.0.113.2")
    native = a6("2001:db8:3::1")
    gw = mac("02:00:00:00:05:01")
    clients = [(a4(f"192.0.2.{40 + n}"), 40000 + n) for n in range(8)]
    qual_src = a6("fe80::ffff:ffff:fffd")
    qual_rs = ip6(qual_src, a6("ff02::2"), 58, icmp6(qual_src, a6("ff02::2"), 133, bytes(4)))
    teredo_ra_src = a6("fe80::8000:f227:bec8:61af")
    k = 0
    while True:
        client, port = clients[k % 8]
        taddr = teredo_addr(server, client, port)
        phase = (k // 8) % 50
        if phase == 0:
            auth = teredo_auth(nonce8=struct.pack("!Q", k))
            udp = udp4(port, 3544, auth + qual_rs)
            yield eth(ipv4(client, server, 17, udp, k & 0xFFFF), gw, R1_MAC, 0x0800)
        elif phase == 1:
            auth = teredo_auth(nonce8=struct.pack("!Q", k - 8))
            ra_body = struct.pack("!BBHII", 64, 0, 1800, 0, 0) + pio(taddr[:8] + bytes(8))
            qual_ra = ip6(teredo_ra_src, qual_src, 58, icmp6(teredo_ra_src, qual_src, 134, ra_body))
            udp = udp4(3544, port, auth + teredo_origin(client, port) + qual_ra)
            yield eth(ipv4(server, client, 17, udp, k & 0xFFFF), R1_MAC, gw, 0x0800)
        elif phase == 2:  # a bubble: an IPv6 header with no payload
            udp = udp4(port, 3544, ip6(taddr, native, 59, b"", 21))
            yield eth(ipv4(client, relay, 17, udp, k & 0xFFFF), gw, R1_MAC, 0x0800)
        else:
            out = phase % 2 == 1
            src, dst = (taddr, native) if out else (native, taddr)
            seg = (b"\x80" if out else b"\x81") + b"\x00\x00\x00" + _echo_body(0x7E, k & 0xFFFF)
            inner_head = struct.pack("!IHBB", 0x60000000, len(seg), 58, 64) + src + dst
            inner = _v6_l4(inner_head, src, dst, seg, 2, 58)
            ulen = 8 + len(inner)
            if out:
                ends, sport, dport, macs = (client, relay), port, 3544, (R1_MAC, gw)
            else:
                ends, sport, dport, macs = (relay, client), 3544, port, (gw, R1_MAC)
            udp = struct.pack("!HHHH", sport, dport, ulen, 0) + inner
            pseudo = ends[0] + ends[1] + struct.pack("!xBH", 17, ulen)
            udp = udp[:6] + _csum(_fold(pseudo + udp + b"\0" * (ulen & 1))) + udp[8:]
            yield _v4_head(macs[0], macs[1], 20 + ulen, k, 17, ends[0], ends[1]) + udp
        k += 1


# -- ordinary traffic ---------------------------------------------------------------------

FLOW_STEPS = 24  # a TCP flow: handshake, ten request/answer rounds, FIN both ways
_REQUEST, _ANSWER = 160, 700  # payload bytes of a request and an answer


def _ordinary(rng: random.Random) -> Iterator[bytes]:
    """Sixteen concurrent flows between a few hosts: seven IPv4 TCP, five IPv6 TCP, two IPv4
    and two IPv6 DNS exchanges; each TCP flow is a full connection, then the next one on a
    new port. R1's legitimate RA opens the traffic and recurs every 20,000 packets."""
    del rng
    hmac = mac("02:00:00:00:02:10")
    v4c = [a4(f"192.0.2.{10 + n}") for n in range(4)]
    v4s = [a4("198.51.100.80"), a4("203.0.113.80")]
    v6c = [PREFIX[:8] + bytes(7) + bytes([0x20 + n]) for n in range(4)]
    v6s = [a6("2001:db8:ffff::80"), a6("2001:db8:ffff::443")]
    dns4, dns6 = a4("198.51.100.53"), a6("2001:db8:1::53")
    body = bytes((i * 7 + 3) & 0xFF for i in range(_ANSWER))
    query = (
        bytes.fromhex("123401000001000000000000") + b"\x03www\x07example\x03com\x00\x00\x1c\x00\x01"
    )
    answer = (
        query[:2]
        + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
        + query[12:]
        + (struct.pack("!HHHIH", 0xC00C, 28, 1, 300, 16) + a6("2001:db8:ffff::80"))
    )
    ra_frame = eth(router_ra(1), R1_MAC, multicast_mac(ALL_NODES))
    k = 0
    while True:
        if k % 20_000 == 0:
            yield ra_frame
            k += 1
            continue
        f, rest = k % 16, k // 16
        step, gen = rest % FLOW_STEPS, rest // FLOW_STEPS
        sport = 32768 + (gen * 16 + f) % 28000
        if f < 12:
            v6 = f >= 7
            c = v6c[f % 4] if v6 else v4c[f % 4]
            s = v6s[f % 2] if v6 else v4s[f % 2]
            client_out = step in (0, 2, FLOW_STEPS - 2) or (3 <= step < FLOW_STEPS - 2 and step % 2)
            rounds_c = max(0, (step - 2) // 2)  # requests sent before this step
            rounds_s = max(0, (min(step, FLOW_STEPS - 2) - 3) // 2)  # answers before it
            cseq, sseq = 1000 + gen + 1 + rounds_c * _REQUEST, 9000 + gen + 1 + rounds_s * _ANSWER
            if step == 0:
                flags, data, seq, ack = 0x02, b"", cseq - 1, 0
            elif step == 1:
                flags, data, seq, ack = 0x12, b"", sseq - 1, cseq
            elif step == 2:
                flags, data, seq, ack = 0x10, b"", cseq, sseq
            elif step >= FLOW_STEPS - 2:
                flags, data = 0x11, b""
                seq, ack = (cseq, sseq) if client_out else (sseq, cseq + 1)
            elif client_out:
                flags, data, seq, ack = 0x18, body[:_REQUEST], cseq, sseq
            else:
                flags, data, seq, ack = 0x18, body, sseq, cseq
            a, b = (c, s) if client_out else (s, c)
            pa, pb = (sport, 443) if client_out else (443, sport)
            macs = (R1_MAC, hmac) if client_out else (hmac, R1_MAC)
            seg = struct.pack("!HHIIBBHHH", pa, pb, seq, ack, 0x50, flags, 65535, 0, 0) + data
            if v6:
                head = _v6_head(macs[0], macs[1], len(seg), 6, 64, a, b)
                yield _v6_l4(head, a, b, seg, 16, 6)
            else:
                pseudo = a + b + struct.pack("!xBH", 6, len(seg))
                seg = seg[:16] + _csum(_fold(pseudo + seg + b"\0" * (len(seg) & 1))) + seg[18:]
                yield _v4_head(macs[0], macs[1], 20 + len(seg), k, 6, a, b) + seg
        else:
            v6 = f >= 14
            c = v6c[f % 4] if v6 else v4c[f % 4]
            s = dns6 if v6 else dns4
            out = step % 2 == 0
            msg = query if out else answer
            msg = _H.pack((k >> 1) & 0xFFFF) + msg[2:]
            a, b = (c, s) if out else (s, c)
            pa, pb = (sport, 53) if out else (53, sport)
            macs = (R1_MAC, hmac) if out else (hmac, R1_MAC)
            udp = struct.pack("!HHHH", pa, pb, 8 + len(msg), 0) + msg
            if v6:
                head = _v6_head(macs[0], macs[1], len(udp), 17, 64, a, b)
                yield _v6_l4(head, a, b, udp, 6, 17)
            else:
                pseudo = a + b + struct.pack("!xBH", 17, len(udp))
                udp = udp[:6] + _csum(_fold(pseudo + udp + b"\0" * (len(udp) & 1))) + udp[8:]
                yield _v4_head(macs[0], macs[1], 20 + len(udp), k, 17, a, b) + udp
        k += 1


KIND_SOURCES: dict[str, Callable[[random.Random], Iterator[bytes]]] = {
    "ns_flood": _ns_flood,
    "na_flood": _na_flood,
    "ra_flood": _ra_flood,
    "sweep_random_source": _sweep_random_source,
    "sweep_low_byte": _sweep_low_byte,
    "fragments": _fragments,
    "tunnel_6in4": _tunnel_6in4,
    "tunnel_teredo": _tunnel_teredo,
    "ordinary": _ordinary,
}


# -- schedule and writer --------------------------------------------------------------------


def block_size(packets: int) -> int:
    """Attack packets per block: about 16 full rounds of the schedule in any capture,
    between 8 and 2,000 packets (0.1 to 0.25 s of packet time) per block."""
    return max(8, min(2000, packets * 4 // 5 // (sum(SHARES[k] for k in ATTACKS) * 16)))


def schedule() -> Iterator[str]:
    """Smooth weighted round-robin over the attack kinds (nginx's): every round of 80
    blocks holds each kind exactly its share, spread out rather than bunched."""
    current = dict.fromkeys(ATTACKS, 0)
    total = sum(SHARES[k] for k in ATTACKS)
    while True:
        for k in ATTACKS:
            current[k] += SHARES[k]
        best = max(ATTACKS, key=lambda k: current[k])
        current[best] -= total
        yield best


def generate(path: Path, packets: int) -> dict[str, int]:
    """Write the capture of ``packets`` frames to ``path``; returns packets per kind."""
    sources = {
        kind: make(random.Random(SEED + i)) for i, (kind, make) in enumerate(KIND_SOURCES.items())
    }
    counts = dict.fromkeys(KIND_SOURCES, 0)
    ordinary = sources["ordinary"]
    blocks = schedule()
    size = block_size(packets)
    kind, left = next(blocks), size
    per_second = 1_000_000 // TICK_US
    rec = _REC.pack
    out: list[bytes] = []
    with path.open("wb") as fh:
        fh.write(_PCAP_HEADER)
        for i in range(packets):
            if i % 5 == 4:
                frame, which = next(ordinary), "ordinary"
            else:
                if left == 0:
                    kind, left = next(blocks), size
                frame, which = next(sources[kind]), kind
                left -= 1
            counts[which] += 1
            n = len(frame)
            out.append(rec(T0 + i // per_second, (i % per_second) * TICK_US, n, n))
            out.append(frame)
            if len(out) >= 131_072:
                fh.write(b"".join(out))
                out.clear()
        fh.write(b"".join(out))
    return counts


# -- cache ------------------------------------------------------------------------------------


def source_key(packets: int) -> str:
    """What the cached file depends on: this module's and the builders' source, and N."""
    digest = hashlib.sha256()
    for module in (Path(__file__), Path(__file__).with_name("generate.py")):
        digest.update(module.read_bytes())
    digest.update(str(packets).encode())
    return digest.hexdigest()


def cached(
    packets: int = DEFAULT_PACKETS, cache_dir: Path = CACHE_DIR
) -> tuple[Path, dict[str, object]]:
    """The capture of ``packets`` frames, generated only when missing or stale.

    Returns its path and its manifest: ``key``, ``packets``, ``counts`` per kind,
    ``seconds`` the generation took (when this call generated it) and ``cached``.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = "attack-heavy" if packets == DEFAULT_PACKETS else f"attack-heavy-{packets}"
    path, meta_path = cache_dir / f"{name}.pcap", cache_dir / f"{name}.json"
    key = source_key(packets)
    if path.is_file() and meta_path.is_file():
        meta: dict[str, object] = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("key") == key and meta.get("size") == path.stat().st_size:
            return path, {**meta, "cached": True}
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    t0 = time.perf_counter()
    counts = generate(tmp, packets)
    seconds = time.perf_counter() - t0
    tmp.replace(path)  # atomic: a killed run never leaves a half file under the real name
    meta = {"key": key, "packets": packets, "counts": counts, "seconds": round(seconds, 3),
            "size": path.stat().st_size}  # fmt: skip
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path, {**meta, "cached": False}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the attack-heavy benchmark capture.")
    parser.add_argument("--packets", type=int, default=DEFAULT_PACKETS)
    parser.add_argument("--out", type=Path, help="write here (default: the cache in build/bench)")
    args = parser.parse_args(argv)
    if args.out is None:
        path, meta = cached(args.packets)
        counts = meta["counts"]
        how = "cached" if meta["cached"] else f"generated in {meta['seconds']} s"
    else:
        t0 = time.perf_counter()
        counts = generate(args.out, args.packets)
        path, how = args.out, f"generated in {time.perf_counter() - t0:.2f} s"
    print(f"attack-heavy: {path} ({args.packets:,} packets, {how}): {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
