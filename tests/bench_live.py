"""Live-capture throughput (``python -m tests.bench_live``): reported, never asserted.

Owns comparing the capture paths ``v6sentry live`` could use, on a veth pair
inside a network namespace this module creates and always deletes: a bounded
burst of ``--frames`` frames (the office mix of ``tests.bench``: IPv4 and IPv6
TCP, some ND; documentation addresses only) is sent as fast as one Python raw
socket can from one end, and a consumer on the other end reports how many
frames it got, how fast, and what the kernel dropped. Consumers:

* ``ring``: one ``detectors._native.LiveRing`` (TPACKET_V3), frames counted in
  Rust (``count_batch``), no Python object per frame: the ring's own ceiling;
* ``ring+tuples``: the same ring handing Python the capture record tuples
  (``next_batch``), what the engine is fed;
* ``ring+engine``: ``detectors.live.capture`` on the ring with the whole
  detection engine (what ``v6sentry live`` does);
* ``tcpdump+engine``: ``tcpdump -w -`` piped into ``detectors.capture`` and the
  engine (drops as tcpdump reports them at exit);
* ``live`` and ``live-wN``: the ``v6sentry live`` command itself, with one
  process or with ``--workers N`` (N workers decode, the parent counts), stopped
  with SIGTERM once its packet count stops growing; frames and kernel drops from
  its final stats line. Its rate is the sender's when nothing was dropped (the
  command does not time itself).

The sender's own rate is reported too: the most this machine pushes through the
veth from one Python raw socket, the ceiling of what any consumer can be shown
to take.

Needs root (namespaces). Nothing leaves the namespace.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

# v6s-<pid>-...: tests/netlab.py deletes v6s-* namespaces whose owner pid is not alive.
NS_PREFIX = "v6s-"
CAP, SND = "cap0", "snd0"
IDLE_S = 1.0  # the consumer stops after this long without a frame (after the first)
REPO = Path(__file__).resolve().parent.parent


def _frames() -> list[bytes]:
    """The frames the sender cycles through: the office mix, or with ``--mix attack``
    (passed to the sender through ``BENCH_LIVE_MIX``) the first 50,000 frames of the
    attack-heavy capture (``pcaps/attack_heavy.py``: ND/RA floods with random sources,
    sweeps, fragments, tunnels)."""
    if os.environ.get("BENCH_LIVE_MIX") == "attack":
        from detectors.capture import open_capture
        from pcaps.attack_heavy import cached

        path, _meta = cached(50_000)
        with open_capture(str(path)) as reader:
            return [bytes(record[3]) for record in reader.records()]
    # Imported here: only the sender needs the frames.
    from tests.bench import _ipv4_tcp, _ipv6_tcp, _ns

    return [
        _ipv4_tcp(i) if i % 20 < 12 else _ipv6_tcp(i) if i % 20 < 19 else _ns(i)
        for i in range(1000)
    ]


# -- consumers (run inside the namespace) -------------------------------------------------


def _report(kind: str, got: int, first: float, last: float, drops: int | str) -> None:
    seconds = max(last - first, 1e-9)
    print(json.dumps({"kind": kind, "frames": got, "seconds": seconds, "drops": drops}))


PREFILL = False  # the consumer waits until the whole burst is in the ring, then drains


def _wait_for_go() -> None:
    if PREFILL:
        sys.stdin.readline()


def _consume_ring(kind: str, buffer_mb: int) -> None:
    from detectors._native import LiveRing

    ring = LiveRing.open(CAP, True, buffer_mb)
    print("ready", flush=True)
    _wait_for_go()
    got, first, last = 0, 0.0, 0.0
    while True:
        if kind == "ring":
            n, _bytes = ring.count_batch(int(IDLE_S * 1000))
        else:
            n = len(ring.next_batch(int(IDLE_S * 1000)))
        if n:
            if not got:
                first = time.perf_counter()
            got += n
            last = time.perf_counter()
        elif got and time.perf_counter() - last >= IDLE_S:
            break
    drops = ring.stats()[1]
    ring.close()
    _report(kind, got, first, last, drops)


def _consume_engine(buffer_mb: int) -> None:
    from detectors.engine import Engine
    from detectors.live.capture import LiveCapture
    from detectors.policy import empty_policy

    cap = LiveCapture([CAP], None, buffer_mb * 2**20, True)
    cap.open()
    link = cap.links[0]
    eng = Engine(empty_policy(), lambda _a: None)
    got, first, last = 0, 0.0, 0.0
    print("ready", flush=True)
    _wait_for_go()
    eng.pump_start()
    # The sensor's own path: each block goes through the native pipeline.
    while True:
        before = link.packets
        cap.feed(link, eng, int(IDLE_S * 1000))
        n = link.packets - before
        if n:
            if not got:
                first = time.perf_counter()
            got += n
            last = time.perf_counter()
        elif got and time.perf_counter() - last >= IDLE_S:
            break
    eng.finish()
    drops = cap.counters()[0].kernel_drops
    cap.close()
    _report("ring+engine", got, first, last, drops)


def _consume_tcpdump() -> None:
    from detectors.capture import open_capture
    from detectors.engine import Engine
    from detectors.policy import empty_policy

    proc = subprocess.Popen(
        ["tcpdump", "-i", CAP, "-w", "-", "-U", "-B", "32768", "--time-stamp-precision=nano"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    # tcpdump says "listening on" once its capture is open.
    line = proc.stderr.readline().decode()
    while "listening" not in line and line:
        line = proc.stderr.readline().decode()
    got, first, last = 0, 0.0, 0.0
    eng = Engine(empty_policy(), lambda _a: None)

    def frames() -> Iterator[tuple[int, int, int, bytes, int]]:
        nonlocal got, first, last
        print("ready", flush=True)
        # tcpdump -U writes the file header with the first frame: open after "ready".
        reader = open_capture("-", stdin=cast(BinaryIO, proc.stdout))
        for record in reader.records():
            if not got:
                first = time.perf_counter()
            got += 1
            last = time.perf_counter()
            yield record

    import threading

    def stopper() -> None:
        # tcpdump's pipe has no idle signal: stop it once the count stops growing.
        seen = -1
        while True:
            time.sleep(IDLE_S)
            if got and got == seen:
                proc.terminate()
                return
            seen = got

    threading.Thread(target=stopper, daemon=True).start()
    eng.run(frames())
    eng.finish()
    err = proc.stderr.read().decode()
    proc.wait()
    m = re.search(r"(\d+) packets? dropped by kernel", err)
    _report("tcpdump+engine", got, first, last, int(m.group(1)) if m else err.strip())


# -- the sender (run inside the namespace) ---------------------------------------------------


def _send(count: int) -> None:
    import socket

    frames = _frames()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.bind((SND, 0))
    send = sock.send
    t0 = time.perf_counter()
    sent = 0
    for i in range(count):
        try:
            send(frames[i % len(frames)])
            sent += 1
        except OSError:  # ENOBUFS: the sender outran its own queue
            pass
    print(json.dumps({"sent": sent, "seconds": time.perf_counter() - t0}))


# -- the orchestration (root namespace) --------------------------------------------------------


def _run_sender(ns: str, frames: int) -> subprocess.CompletedProcess[str]:
    """The burst, from a raw socket in the namespace; its JSON report on stdout."""
    return subprocess.run(
        _in_ns(ns, sys.executable, "-m", "tests.bench_live", "--send", str(frames)),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=True,
    )


STATS_RE = re.compile(r"packets (\d+), bytes \d+, kernel drops (\d+)")


def bench_sensor(ns: str, workers: int, frames: int, buffer_mb: int) -> dict[str, object]:
    """The ``v6sentry live`` command on the veth while the burst is sent."""
    import queue
    import threading

    argv = [sys.executable, "-m", "detectors.cli", "live", "-i", CAP, "-o", "/dev/null"]
    argv += ["--workers", str(workers), "--buffer-mb", str(buffer_mb), "--stats-interval", "1"]
    sensor = subprocess.Popen(
        _in_ns(ns, *argv),
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert sensor.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    stream = sensor.stderr

    def pump() -> None:
        for text in stream:
            lines.put(text)

    threading.Thread(target=pump, daemon=True).start()
    try:
        while "capturing on" not in (line := lines.get(timeout=60)):
            pass
        send = _run_sender(ns, frames)
        # Until the stats line's packet count stops growing: the sensor caught up.
        seen = -1
        while True:
            line = lines.get(timeout=60)
            m = STATS_RE.search(line)
            if m:
                if int(m.group(1)) == seen:
                    break
                seen = int(m.group(1))
        cpu = _cpu_seconds(ns, sensor.pid)
        sensor.send_signal(signal.SIGTERM)
        sensor.wait(60)
        final = ""
        while not lines.empty():
            line = lines.get()
            final = line if "final stats" in line else final
    finally:
        if sensor.poll() is None:
            sensor.kill()
            sensor.wait()
    m = STATS_RE.search(final)
    if m is None:
        raise RuntimeError(f"live --workers {workers}: no final stats line")
    sent = json.loads(send.stdout)
    return {
        "frames": int(m.group(1)),
        "drops": int(m.group(2)),
        "sent": sent["sent"],
        "send_pps": sent["sent"] / sent["seconds"],
        "seconds": sent["seconds"],
        "final": final.strip(),
        "cpu": cpu,
    }


def _cpu_seconds(ns: str, parent: int) -> dict[str, float]:
    """CPU seconds (user + system) each sensor process has used so far: where a live run's
    time goes, and how busy each process was while the sender ran."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for pid in sorted(int(p) for p in pids.split()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = "parent" if pid == parent else f"worker {len(out) - ('parent' in out)}"
        out[name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _in_ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def bench_one(
    ns: str, kind: str, frames: int, python: str, buffer_mb: int, prefill: bool = False
) -> dict[str, object]:
    argv = [python, "-m", "tests.bench_live", "--consumer", kind, "--buffer-mb", str(buffer_mb)]
    consumer = subprocess.Popen(
        _in_ns(ns, *argv, *(["--prefill"] if prefill else [])),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert consumer.stdout is not None
    try:
        if consumer.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{kind}: consumer did not start")
        send = _run_sender(ns, frames)
        out, _ = consumer.communicate("go\n", timeout=300)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    sent = json.loads(send.stdout)
    result["sent"] = sent["sent"]
    result["send_pps"] = sent["sent"] / sent["seconds"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_live", description=__doc__)
    parser.add_argument("--frames", type=int, default=200_000, help="burst size (default 200000)")
    parser.add_argument("--buffer-mb", type=int, default=128, help="ring size (default 128)")
    parser.add_argument("--only", action="append", help="run only this consumer (repeatable)")
    parser.add_argument(
        "--prefill",
        action="store_true",
        help="also fill the ring with the whole burst first, then time the drain alone "
        "(the consumer's rate without the sender in the way)",
    )
    parser.add_argument(
        "--mix",
        choices=("office", "attack"),
        default="office",
        help="what the sender sends (default office; attack: the attack-heavy capture's frames)",
    )
    parser.add_argument("--consumer", help=argparse.SUPPRESS)
    parser.add_argument("--send", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mix == "attack":
        os.environ["BENCH_LIVE_MIX"] = "attack"  # inherited by the sender's process
    if args.consumer:
        global PREFILL
        PREFILL = args.prefill
        if args.consumer == "tcpdump+engine":
            _consume_tcpdump()
        elif args.consumer == "ring+engine":
            _consume_engine(args.buffer_mb)
        else:
            _consume_ring(args.consumer, args.buffer_mb)
        return 0
    if args.send is not None:
        _send(args.send)
        return 0
    if os.geteuid() != 0:
        print("bench_live: needs root (network namespaces)", file=sys.stderr)
        return 2
    ns = f"{NS_PREFIX}{os.getpid()}-livebench"
    kinds = ["ring", "ring+tuples", "ring+engine"]
    if shutil.which("tcpdump"):
        kinds.append("tcpdump+engine")
    kinds += ["live", "live-w2"]
    if args.only:
        kinds = [k for k in args.only if k in kinds or re.fullmatch(r"live-w\d+", k)]
    # A SIGTERM (timeout, Ctrl-C's cousin) must still delete the namespace.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    _ip("netns", "add", ns)
    try:
        _ip("-n", ns, "link", "add", CAP, "type", "veth", "peer", "name", SND)
        for dev in (CAP, SND):
            # No IPv6 on the veths: only the burst is on the wire.
            _ip("netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
            _ip("-n", ns, "link", "set", dev, "up")
        print(
            f"bench_live: {args.frames:,} frames per run over a veth pair, "
            f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
            f"ring {args.buffer_mb} MiB"
        )
        alone = _run_sender(ns, args.frames)
        solo = json.loads(alone.stdout)
        print(
            f"bench_live: {'sender alone':<20} sent {solo['sent']:>9,} "
            f"({solo['sent'] / solo['seconds']:>9,.0f}/s)  nobody capturing: the ceiling"
        )
        runs = [(kind, False) for kind in kinds]
        if args.prefill:
            runs += [(kind, True) for kind in kinds if kind != "tcpdump+engine"]
        for kind, prefill in runs:
            if kind.startswith("live"):
                if prefill:
                    continue
                workers = int(kind.removeprefix("live-w")) if "-w" in kind else 1
                r = bench_sensor(ns, workers, args.frames, args.buffer_mb)
                rate = float(str(r["send_pps"]))
                print(
                    f"bench_live: {kind:<20} sent {r['sent']:>9,} ({rate:>9,.0f}/s)"
                    f"  delivered {r['frames']:>9,}"
                    + (f" ({rate:>9,.0f}/s)" if r["drops"] == 0 else "")
                    + f"  kernel drops {r['drops']}"
                )
                print(f"bench_live: {kind:<20} {r['final']}")
                cpu = cast(dict[str, float], r["cpu"])
                print(
                    f"bench_live: {kind:<20} CPU while sending {float(str(r['seconds'])):.1f} s: "
                    + ", ".join(f"{k} {v:.1f} s" for k, v in cpu.items())
                )
                continue
            r = bench_one(ns, kind, args.frames, sys.executable, args.buffer_mb, prefill)
            frames, seconds = int(str(r["frames"])), float(str(r["seconds"]))
            label = f"{kind} (drain)" if prefill else kind
            print(
                f"bench_live: {label:<20} sent {r['sent']:>9,} "
                f"({float(str(r['send_pps'])):>9,.0f}/s)"
                f"  delivered {frames:>9,} ({frames / seconds:>9,.0f}/s)"
                f"  kernel drops {r['drops']}"
            )
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
