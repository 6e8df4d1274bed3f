"""The slow-scan family's regression capture: scans over two days, timestamps written slow.

Owns ``slow_scan.pcap`` (no waiting: every timestamp is written, hours apart where the
scenario says so) and the frame helpers the slow-scan tests reuse (``slow_probes``):
- benign: the usual LAN traffic, and a long-lived client that opens TCP to 400 distinct
  server addresses in 40 /64s over 20 hours, every one answering SYN-ACK (silent: its
  servers answer it);
- a slow scan from one source: 300 echo requests to addresses of 2001:db8:1::/64, one a
  minute for 5 hours, three live hosts answering (``slow_scan``);
- a distributed slow scan: 250 TCP SYNs to 2001:db8:2::/64, one every two minutes, each
  from a source in its own /48 (``slow_fan_in``; no source /64 alone shows it);
- the horizon: one source probes 150 addresses, then, 30 hours later, 150 others; the
  first 150 have left the 24 h horizon, so it never reaches 200 (silent);
- a fast sweep of 300 addresses in 30 s, which ``ipv6.sweep`` reports (``host_sweep``),
  so ``ipv6.slow_scan`` does not, though the targets stay in its horizon.
"""

from __future__ import annotations

import random
from pathlib import Path

from pcaps.generate import (
    R1_MAC,
    Frame,
    a6,
    at,
    benign_traffic,
    echo6,
    eth,
    ip6,
    lan,
    tcp6,
    write_pcap,
)

CAPTURE = "slow_scan.pcap"
SCANNER_MAC = bytes([2, 0, 0, 0, 0x51, 1])
CLIENT_MAC = bytes([2, 0, 0, 0, 0x51, 2])


def addr(prefix: str, iid: int) -> bytes:
    """``prefix`` (a /64 written as ``2001:db8:1:0``) with interface identifier ``iid``."""
    return a6(prefix + "::")[:8] + iid.to_bytes(8, "big")


def slow_probes(
    src: bytes, targets: list[bytes], start: float, every: float, live: int = 0
) -> list[Frame]:
    """Echo requests from ``src`` to each target, ``every`` seconds apart from ``start``;
    the first ``live`` targets answer with an echo reply."""
    frames: list[Frame] = []
    for n, dst in enumerate(targets):
        t = start + n * every
        frames.append((at(t), lan(echo6(src, dst, 0x5105, n), SCANNER_MAC)))
        if n < live:
            frames.append(
                (at(t + 0.01), eth(echo6(dst, src, 0x5105, n, reply=True), R1_MAC, SCANNER_MAC))
            )
    return frames


def cap_slow_scan(out: Path) -> None:
    rng = random.Random(15)
    frames = benign_traffic(0, 300)
    # Benign: a long-lived client, 400 servers over 20 hours, all answering.
    client = a6("2001:db8:1::c1")
    for n in range(400):
        server = addr(f"2001:db8:5{n % 40:03x}:0", 0x443 + n)
        t = 600 + n * 180
        syn = ip6(client, server, 6, tcp6(client, server, 30000 + n, 443, 0x02), 64)
        frames.append((at(t), lan(syn, CLIENT_MAC)))
        ack = ip6(server, client, 6, tcp6(server, client, 443, 30000 + n, 0x12), 58)
        frames.append((at(t + 0.02), eth(ack, R1_MAC, CLIENT_MAC)))
    # A slow scan: one probe a minute for 5 hours, three live hosts.
    scanner = a6("2001:db8:bad:1::66")
    targets = [addr("2001:db8:1:0", rng.getrandbits(64)) for _ in range(300)]
    frames += slow_probes(scanner, targets, 3600, 60, live=3)
    # A distributed slow scan: a new source /48 per probe, one every two minutes.
    for n in range(250):
        src = addr(f"2001:db8:{0x4000 + n:x}:1", 0x10)
        dst = addr("2001:db8:2:0", rng.getrandbits(64))
        syn = ip6(src, dst, 6, tcp6(src, dst, 40000 + n, 22, 0x02), 57)
        frames.append((at(7200 + n * 120), eth(syn, R1_MAC, CLIENT_MAC)))
    # The horizon: 150 targets, then 150 others 30 hours later.
    patient = a6("2001:db8:bad:2::77")
    first = [addr("2001:db8:1:0", 0x1000 + n) for n in range(150)]
    later = [addr("2001:db8:1:0", 0x2000 + n) for n in range(150)]
    frames += slow_probes(patient, first, 1800, 30)
    frames += slow_probes(patient, later, 1800 + 30 * 3600, 30)
    # A fast sweep, 10 probes a second: ipv6.sweep's, not a slow scan.
    fast = a6("2001:db8:bad:3::99")
    frames += slow_probes(fast, [addr("2001:db8:1:0", 0x9000 + n) for n in range(300)], 900, 0.1)
    write_pcap(out / CAPTURE, sorted(frames))
