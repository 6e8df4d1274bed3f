"""Replay throughput (``make bench``): reported with figures, never asserted.

Owns building a synthetic mixed capture (mostly ordinary IPv4/IPv6 TCP, some
UDP, a sprinkling of ND and tunnelled packets, the traffic mix of an office
span port) and timing three stages on it: the capture reader alone, reader
plus decoder, and the whole ``v6sentry replay`` pipeline. Also measures the
sweep detection's memory while one scanner probes ``--sweep-targets`` (10
million by default) distinct addresses of one /64: peak RSS at checkpoints,
the state-table sizes and the alerts raised. Tests never time anything; this
module is where speed and memory are measured.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from detectors._native import time_native
from detectors.capture import open_capture
from detectors.cli import main
from detectors.engine import Engine
from detectors.policy import empty_policy

ETH_V4 = bytes.fromhex("020000000202020000000201") + b"\x08\x00"
ETH_V6 = bytes.fromhex("020000000202020000000201") + b"\x86\xdd"


def _ipv4_tcp(i: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 40000 + i % 1000, 443, i, 0, 0x50, 0x10, 65535, 0, 0)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(tcp),
        i & 0xFFFF,
        0,
        64,
        6,
        0,
        bytes([192, 0, 2, i % 250 + 1]),
        bytes([198, 51, 100, 1]),
    )
    return ETH_V4 + ip + tcp + b"x" * 6


def _ipv6(nh: int, payload: bytes, hlim: int = 64, src_last: int = 1) -> bytes:
    src = bytes.fromhex("20010db8000100000000000000000000")[:15] + bytes([src_last])
    dst = bytes.fromhex("20010db80001000000000000000000ff")
    return ETH_V6 + struct.pack("!IHBB", 0x60000000, len(payload), nh, hlim) + src + dst + payload


def _ipv6_tcp(i: int) -> bytes:
    return _ipv6(6, struct.pack("!HHIIBBHHH", 50000 + i % 1000, 443, i, 0, 0x50, 0x10, 65535, 0, 0))


def _ns(i: int) -> bytes:
    body = struct.pack("!BBHI", 135, 0, 0, 0) + bytes(15) + bytes([i % 200])
    body += bytes([1, 1]) + bytes.fromhex("020000000201")
    return _ipv6(58, body, 255)


def write_capture(path: Path, packets: int) -> None:
    """A pcap of ``packets`` frames: 60% IPv4 TCP, 35% IPv6 TCP, 5% ND."""
    frames = [
        _ipv4_tcp(i) if i % 20 < 12 else _ipv6_tcp(i) if i % 20 < 19 else _ns(i)
        for i in range(1000)
    ]
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(packets):
            frame = frames[i % 1000]
            fh.write(
                struct.pack(
                    "<IIII", 1_700_000_000 + i // 100_000, i % 1_000_000, len(frame), len(frame)
                )
            )
            fh.write(frame)


def time_reader(path: Path) -> tuple[int, float]:
    """Stage 1: the native capture reader alone; (records read, seconds)."""
    return time_native(str(path), False)


def time_decoder(path: Path) -> tuple[int, float]:
    """Stage 2: native reader plus decoder, every event kind built, no detection;
    (frames decoded, seconds)."""
    return time_native(str(path), True)


def time_python_records(path: Path) -> tuple[int, float]:
    """The reader through its Python API (one tuple per record), for comparison."""
    t0 = time.perf_counter()
    with open_capture(str(path)) as reader:
        n = sum(1 for _ in reader.records())
    return n, time.perf_counter() - t0


def time_replay(path: Path) -> float:
    """Stage 3: the whole ``v6sentry replay`` pipeline in this process; seconds."""
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        main(["replay", "-q", "-o", os.devnull, str(path)])
    return time.perf_counter() - t0


def bench(packets: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pcap"
        write_capture(path, packets)
        size = path.stat().st_size
        print(
            f"bench: {packets:,} packets, {size / 2**20:.1f} MiB, one core "
            f"(python {sys.version.split()[0]}, {os.cpu_count()} CPUs)"
        )

        n, read_s = time_reader(path)
        print(f"bench: reader only        {n / read_s:>12,.0f} packets/s (native)")

        _, dec_s = time_decoder(path)
        print(f"bench: reader + decoder   {packets / dec_s:>12,.0f} packets/s (native)")

        n, py_s = time_python_records(path)
        print(f"bench: reader, Python API {n / py_s:>12,.0f} packets/s (a tuple per record)")

        full_s = time_replay(path)
        print(f"bench: v6sentry replay    {packets / full_s:>12,.0f} packets/s ({full_s:.2f} s)")


def sweep_frames(targets: int) -> Iterator[tuple[int, int, int, bytes, int]]:
    """UDP probes from one scanner to ``targets`` distinct addresses of one /64,
    10 us apart (so 10 million fit one 300 s window)."""
    src = bytes.fromhex("20010db80bad00000000000000000001")
    head = ETH_V6 + struct.pack("!IHBB", 0x60000000, 8, 17, 64) + src
    dst64 = bytes.fromhex("20010db800010000")
    udp = struct.pack("!HHHH", 40000, 161, 8, 0)
    t0 = 1_700_000_000 * 10**9
    for i in range(targets):
        # Spread the targets over the whole interface-identifier space.
        iid = (i * 0x9E3779B97F4A7C15) & (2**64 - 1)
        frame = head + dst64 + iid.to_bytes(8, "big") + udp
        yield t0 + i * 10_000, 0, 1, frame, len(frame)


def bench_sweep_memory(targets: int) -> None:
    alerts: list[str] = []
    engine = Engine(empty_policy(), lambda a: alerts.append(f"{a.signature_id}/{a.severity}"))
    checkpoints = {targets // 100, targets // 10, targets // 2, targets}
    t0 = time.perf_counter()
    done = 0

    def counted() -> Iterator[tuple[int, int, int, bytes, int]]:
        nonlocal done
        for record in sweep_frames(targets):
            done += 1
            if done in checkpoints:
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                sizes = engine.table_stats()
                print(
                    f"bench: sweep {done:>12,} distinct targets: peak RSS {rss:7.1f} MiB, "
                    f"sweep.pairs {sizes['sweep.pairs']['size']}, "
                    f"sweep.sources {sizes['sweep.sources']['size']}, "
                    f"alerts {alerts}"
                )
            yield record

    engine.run(counted())
    engine.finish()
    took = time.perf_counter() - t0
    print(f"bench: sweep {targets:,} targets in {took:.1f} s ({targets / took:,.0f} packets/s)")


def bench_random_sources(packets: int) -> None:
    """Peak RSS while ``packets`` attack frames whose sources are random on every
    packet (NS, NA and RA floods, a random-source sweep, fragments, tunnels: the
    attack-heavy generator) go through the whole replay: memory is bounded by the
    table caps, and what the caps pushed out is counted as evictions."""
    from pcaps.attack_heavy import cached

    path, _meta = cached(packets)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stats = Path(tempfile.mkdtemp()) / "stats.json"
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        main(["replay", "-q", "-o", os.devnull, "--stats-json", str(stats), str(path)])
    took = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import json

    tables = json.loads(stats.read_text(encoding="utf-8"))["runs"][0]["tables"]
    evicted = {k: v["evictions"] for k, v in tables.items() if v["evictions"]}
    full = sum(1 for v in tables.values() if v["size"] >= v["cap"])
    print(
        f"bench: random sources {packets:,} packets in {took:.1f} s "
        f"({packets / took:,.0f} packets/s): peak RSS {rss:.1f} MiB "
        f"(was {before:.1f} before), {full} tables at their cap, evictions {evicted}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--sweep-targets", type=int, default=10_000_000)
    parser.add_argument("--random-sources", type=int, default=1_000_000)
    args = parser.parse_args()
    bench(args.packets)
    if args.random_sources:
        bench_random_sources(args.random_sources)
    if args.sweep_targets:
        bench_sweep_memory(args.sweep_targets)
