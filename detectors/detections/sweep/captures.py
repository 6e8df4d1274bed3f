"""The sweep family's fan-in captures (``pcaps/generate.py`` runs the ``cap_*`` here).

Owns the issue-15 scans whose every probe comes from a different source, seen on R1's
upstream link (probes arrive from the provider's router, replies leave R1):

- ``sweep_fanin.pcap``: 1,500 ICMPv6 echo requests, one every 10 ms, to random
  interface identifiers of 2001:db8:1::/64, each from a random address (and so a random
  /64) of 2001:db8::/32; five targets answer. With ``policy_sweep_small.yaml`` (sweep
  tables of 256) one fan-in sweep (medium) and the per-source tables thrashing (once
  each).
- ``sweep_fanin_benign.pcap``: a busy server (2001:db8:1::80) answering 600 clients from
  random /64s, and a CDN-like client (2001:db8:1::10) fetching from 300 addresses of
  one CDN /64, every one answering: no alert.

``fanin_probes`` and ``write_stream`` also build the large captures the tests write into
a temporary folder (20,000 and a million random-source probes, a scanner moving to a new
source /64 every 99 probes) without holding them in memory; ``busy_server_answers`` the
benign opposite (servers answering 100,000 clients, each in its own /64). Every generator is seeded
on its own, so the central captures' bytes do not change.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import dpkt

from pcaps.generate import (
    PREFIX,
    R1_MAC,
    UPSTREAM_MAC,
    Frame,
    S,
    a6,
    at,
    echo6,
    ip6,
    tcp6,
    udp6,
    wan6,
    write_pcap,
)

DOC32 = a6("2001:db8::")[:4]  # every random source is in the documentation /32
CDN = a6("2001:db8:cd::")[:8]
_ECHO_HEAD = struct.pack("!IHBB", 0x60000000, 16, 58, 57)  # 8-byte echo + 8-byte payload


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _words(b: bytes) -> int:
    return sum(struct.unpack(f"!{len(b) // 2}H", b))


def fast_echo(src: bytes, dst: bytes, seq: int) -> bytes:
    """An ICMPv6 echo request (id 0x15, 8-byte payload) from the upstream router to R1,
    checksummed without rebuilding the pseudo-header: a million are written in seconds."""
    body = struct.pack("!HH", 0x15, seq & 0xFFFF) + b"fanin-15"
    total = _words(src) + _words(dst) + 16 + 58 + (128 << 8) + _words(body)
    csum = ~_fold(total) & 0xFFFF or 0xFFFF
    icmp = struct.pack("!BBH", 128, 0, csum) + body
    return R1_MAC + UPSTREAM_MAC + b"\x86\xdd" + _ECHO_HEAD + src + dst + icmp


def fanin_probes(
    n: int,
    *,
    seed: int = 15,
    per_source: int = 1,
    step: float = 0.0001,
    start: float = 1.0,
    target: bytes = PREFIX,
) -> Iterator[Frame]:
    """``n`` echo requests to distinct random addresses of ``target``'s /64, a new random
    source /64 of 2001:db8::/32 every ``per_source`` probes (each probe from a random
    address of it)."""
    rng = random.Random(seed)
    src64 = b""
    for i in range(n):
        if i % per_source == 0:
            src64 = DOC32 + rng.randbytes(4)
        src = src64 + rng.randbytes(8)
        dst = target[:8] + rng.randbytes(8)
        yield at(start + i * step), fast_echo(src, dst, i)


def busy_server_answers(clients: int, *, seed: int = 1502, step: float = 0.002) -> Iterator[Frame]:
    """What a sensor on the servers' side of an asymmetric route sees of busy servers:
    32 servers in four /64s of 2001:db8:1::/48 answering ``clients`` clients, each from
    its own random /64 of 2001:db8::/32 on an ephemeral port, one client every ``step``
    seconds. Each client gets a SYN-ACK and an established ACK from port 443, and a DNS
    answer (from port 53) or a QUIC datagram (from 443). Nothing here is a probe."""
    rng = random.Random(seed)
    for i in range(clients):
        t = 1 + i * step
        client = DOC32 + rng.randbytes(12)
        server = PREFIX[:6] + struct.pack("!HQ", i % 4, 0x80 + i % 8)
        port = 1024 + rng.randrange(64512)
        synack = tcp6(server, client, 443, port, 0x12, 7000 + i, 2)
        yield at(t), wan6(ip6(server, client, 6, synack, 64))
        ack = tcp6(server, client, 443, port, 0x18, 7001 + i, 80)
        yield at(t + 0.0002), wan6(ip6(server, client, 6, ack, 64))
        sport = 53 if i % 2 else 443
        dgram = udp6(server, client, sport, port, b"answer")
        yield at(t + 0.0004), wan6(ip6(server, client, 17, dgram, 64))


def write_stream(path: Path, frames: Iterable[Frame]) -> int:
    """A classic pcap written as the frames come (nothing held); returns the count."""
    n = 0
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535, linktype=1)
        for ts, frame in frames:
            writer.writepkt_time(frame, Fraction(ts, S))
            n += 1
    return n


def cap_sweep_fanin(out: Path) -> None:
    frames: list[Frame] = []
    for i, (ts, frame) in enumerate(fanin_probes(1500, seed=1500, step=0.01)):
        frames.append((ts, frame))
        if i in (3, 400, 800, 1200, 1499):  # five targets exist and answer their prober
            src, dst = frame[22:38], frame[38:54]
            frames.append((ts + 2_000_000, wan6(echo6(dst, src, 0x15, i, 64, True))))
    write_pcap(out / "sweep_fanin.pcap", frames)


def cap_sweep_fanin_benign(out: Path) -> None:
    rng = random.Random(1501)
    server = PREFIX[:8] + struct.pack("!Q", 0x80)
    client = PREFIX[:8] + struct.pack("!Q", 0x10)
    frames: list[Frame] = []
    for i in range(600):  # 600 clients from random /64s connect to one server, answered
        t = 1 + i * 0.05
        c = DOC32 + rng.randbytes(12)
        syn = tcp6(c, server, 40000 + i, 443, 0x02)
        frames.append((at(t), wan6(ip6(c, server, 6, syn, 57))))
        synack = tcp6(server, c, 443, 40000 + i, 0x12, 5000 + i, 2)
        frames.append((at(t + 0.001), wan6(ip6(server, c, 6, synack, 64))))
    for i in range(300):  # one client fetching from 300 CDN addresses, every one answering
        t = 2 + i * 0.1
        edge = CDN + rng.randbytes(8)
        syn = tcp6(client, edge, 50000 + i, 443, 0x02)
        frames.append((at(t), wan6(ip6(client, edge, 6, syn, 64))))
        synack = tcp6(edge, client, 443, 50000 + i, 0x12, 9000 + i, 2)
        frames.append((at(t + 0.02), wan6(ip6(edge, client, 6, synack, 57))))
    write_pcap(out / "sweep_fanin_benign.pcap", sorted(frames))
