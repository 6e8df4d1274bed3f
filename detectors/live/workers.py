"""``v6sentry live --workers N``: N processes share each interface, one output.

Owns the parent and the workers of a multi-process live run. The parent opens N
captures of every interface before anything else (so a missing interface or
capability is still exit 2 in one line), each ring in the interface's
``PACKET_FANOUT`` group (the kernel's symmetric flow hash: both directions of a
flow reach the same worker, and so do all fragments of a datagram, which it hashes
by addresses alone; no kernel reassembly, so workers see the frames as sent), then
forks N
workers. Worker k keeps capture k, closes its copies of the others, and runs its
own ``LiveRun`` and Engine; it writes nothing itself but sends its alerts,
observations (with ``--es``) and stats to the parent over a pipe. The parent
writes every alert once through the one ``-o`` output and ``--es`` shipper
(an alert id a worker already sent is not written twice), prints the stats line
summed over the workers, and forwards SIGHUP (each worker reloads the policy;
the parent reopens the output) and SIGTERM/SIGINT (each worker flushes its open
windows, the parent writes what they send, then exits 0). A worker that dies
stops the others and the run exits 2.

What this does not do (yet): merge per-window state across workers. Each
worker's detectors count only the flows hashed to it, so a detection that counts
across flows of one link (RA and ND floods from randomised sources, sweeps whose
probes span many flows, per-link alert caps) sees 1/N of them: it may alert
later, with partial counts, from several workers, or not at all. ``--workers 1``
(the default) is exact.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import functools
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection
from typing import Any, Final

from detectors.alerts import Alert, AlertWriter
from detectors.engine import Engine
from detectors.live.capture import LiveCapture, LiveCaptureError
from detectors.live.cli import (
    CHECK_S,
    EXIT_CLEAN,
    EXIT_ERROR,
    POLL_S,
    LiveRun,
    Signals,
    _fail,
    _log,
    _Output,
    format_stats,
)
from detectors.observations import Observation
from detectors.policy import Policy
from detectors.ship import cli as ship_cli

SEEN_IDS: Final = 65_536  # alert ids remembered to drop a repeat from another worker


def _worker_log(k: int, message: str) -> None:
    _log(f"worker {k}: {message}")


def fanout_base() -> int:
    """A PACKET_FANOUT group id for link 0 (link i: base + i), unique to this run in its
    network namespace while the pid is (two sensors must not share a group)."""
    return (os.getpid() * 16) & 0xFFFF


# -- a worker ---------------------------------------------------------------------------


class WorkerRun(LiveRun):
    """One worker's LiveRun: alerts, observations and stats go to the parent's pipe."""

    def __init__(
        self, args: argparse.Namespace, capture: LiveCapture, policy: Policy, conn: Connection
    ) -> None:
        self.conn = conn
        super().__init__(args, capture, policy, _Output("-"), None)

    def _engine(self, policy: Policy) -> Engine:
        observe = self._observe if self.args.es else None
        return Engine(policy, self._sink, self.specs, self.classes, observe)

    def _sink(self, alert: Alert) -> None:
        self.alerts[alert.category] = self.alerts.get(alert.category, 0) + 1
        self.conn.send(("alert", alert))

    def _observe(self, obs: Observation) -> None:
        self.conn.send(("obs", obs))

    def _reopen_output(self) -> None:
        pass  # the parent owns the output

    def _stats_due(self, now: float) -> float:
        # The parent prints the line; it needs fresh numbers from every worker.
        interval = self.args.stats_interval
        return now + min(interval, CHECK_S) if interval > 0 else float("inf")

    def stats_line(self, final: bool = False) -> None:
        self.conn.send(("final" if final else "stats", self.stats()))


def _worker(
    args: argparse.Namespace,
    policy: Policy,
    captures: list[LiveCapture],
    k: int,
    conn: Connection,
) -> None:
    for i, other in enumerate(captures):
        if i != k:
            other.close(count=False)  # worker i reads (and counts) that one
    capture = captures[k]
    run = WorkerRun(args, capture, policy, conn)
    run.install_signals()
    try:
        run.run()
        run.engine.finish()  # every open window is reported before exit
        run.stats_line(final=True)
    finally:
        capture.close()
        run.close()
        conn.close()


# -- the parent ---------------------------------------------------------------------------


def _merge(stats: list[dict[str, Any]], alerts: dict[str, int], uptime: float) -> dict[str, Any]:
    links: dict[str, dict[str, Any]] = {}
    evictions: dict[str, int] = {}
    for s in stats:
        for name, v in s["links"].items():
            link = links.setdefault(name, {**v, "packets": 0, "kernel_drops": 0})
            link["packets"] += v["packets"]
            link["kernel_drops"] += v["kernel_drops"]
            if v["state"] != "up":
                link["state"] = v["state"]  # one worker's ring down or gone shows
            link["reopened"] = max(link["reopened"], v["reopened"])
        for name, n in s["evictions"].items():
            evictions[name] = evictions.get(name, 0) + n
    return {
        "uptime_s": round(uptime, 1),
        "packets": sum(s["packets"] for s in stats),
        "bytes": sum(s["bytes"] for s in stats),
        "kernel_drops": sum(s["kernel_drops"] for s in stats),
        "links": links,
        "alerts": dict(sorted(alerts.items())),
        "table_entries": sum(s["table_entries"] for s in stats),
        "evictions": dict(sorted(evictions.items())),
        "engines": max((s["engines"] for s in stats), default=1),
    }


class Parent(Signals):
    """The parent of N workers: one output, one shipper, signals forwarded."""

    def __init__(
        self,
        args: argparse.Namespace,
        procs: list[multiprocessing.process.BaseProcess],
        conns: list[Connection],
        output: _Output,
    ) -> None:
        super().__init__()
        self.args = args
        self.procs = procs
        self.conns = conns
        self.output = output
        self.shipping: ship_cli.ReplayShipping | None = None
        self.host = args.sensor_name if args.sensor_name is not None else socket.gethostname()
        self.writer = AlertWriter(output.stream, args.format, self.host)
        self.alerts: dict[str, int] = {}
        self.seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.latest: dict[int, dict[str, Any]] = {}
        self.final: dict[int, dict[str, Any]] = {}
        self.started = time.monotonic()

    def _forward(self, sig: int) -> None:
        for proc in self.procs:
            if proc.pid is not None and proc.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    def _write(self, alert: Alert) -> None:
        if alert.id in self.seen:
            return  # the same alert from another worker
        self.seen[alert.id] = None
        if len(self.seen) > SEEN_IDS:
            self.seen.popitem(last=False)
        self.writer(alert)
        self.output.stream.flush()
        self.alerts[alert.category] = self.alerts.get(alert.category, 0) + 1
        if self.shipping is not None:
            self.shipping.add(alert, self.host)

    def _handle(self, k: int, kind: str, body: Any) -> None:
        if kind == "alert":
            self._write(body)
        elif kind == "obs":
            if self.shipping is not None:
                self.shipping.add_observation(body, self.host)
        elif kind == "stats":
            self.latest[k] = body
        elif kind == "final":
            self.latest[k] = self.final[k] = body

    def stats(self) -> dict[str, Any]:
        return _merge(list(self.latest.values()), self.alerts, time.monotonic() - self.started)

    def stats_line(self, final: bool = False) -> None:
        if self.shipping is not None:
            self.shipping.end_line()
        _log(format_stats(self.stats(), final))

    def loop(self) -> int:
        """Until every worker has ended; EXIT_ERROR if one died on its own."""
        interval = self.args.stats_interval
        next_stats = time.monotonic() + interval if interval > 0 else float("inf")
        next_check = time.monotonic() + CHECK_S
        open_conns = dict(enumerate(self.conns))
        stopping = False
        failed = False
        while open_conns:
            ready = multiprocessing.connection.wait(
                [*open_conns.values(), self._wake_r], timeout=POLL_S
            )
            for conn in ready:
                if conn is self._wake_r:
                    self._drain_wakeup()
                    continue
                k = next(i for i, c in open_conns.items() if c is conn)
                try:
                    kind, body = open_conns[k].recv()
                except (EOFError, OSError):
                    del open_conns[k]
                    if k not in self.final and not stopping:
                        failed = True
                    continue
                self._handle(k, kind, body)
            if failed and not stopping:
                _log("error: a worker stopped unexpectedly; stopping the others")
            if (self._stop or failed) and not stopping:
                stopping = True
                self._forward(signal.SIGTERM)
            if self._hup:
                self._hup = False
                self._reopen()
                self._forward(signal.SIGHUP)
            now = time.monotonic()
            if now >= next_check:
                next_check = now + CHECK_S
                if self.shipping is not None:
                    self.shipping.shipper.tick()
            if now >= next_stats:
                next_stats = now + interval
                self.stats_line()
        for proc in self.procs:
            proc.join(10)
            if proc.exitcode != 0:
                failed = True
                _log(f"error: worker {proc.name} exited with code {proc.exitcode}")
        return EXIT_ERROR if failed else EXIT_CLEAN

    def _reopen(self) -> None:
        try:
            self.output.reopen()
            self.writer.stream = self.output.stream
            if self.args.output != "-":
                _log(f"reopened {self.args.output}")
        except OSError as exc:
            _log(f"error: cannot reopen {self.args.output}: {exc.strerror}; keeping the old one")


def run(args: argparse.Namespace, policy: Policy) -> int:
    """``v6sentry live --workers N`` (N > 1), after ``cli.run`` checked the arguments."""
    n = args.workers
    group = fanout_base()
    per_worker = max(1, args.buffer_mb // n) * 2**20
    captures: list[LiveCapture] = []
    try:
        for k in range(n):
            log = functools.partial(_worker_log, k)
            capture = LiveCapture(
                args.interfaces, args.bpf, per_worker, not args.no_promisc, log, fanout=group
            )
            captures.append(capture)
            capture.open()
    except LiveCaptureError as exc:
        for capture in captures:
            capture.close()
        return _fail(str(exc))
    try:
        output = _Output(args.output)
    except OSError as exc:
        for capture in captures:
            capture.close()
        return _fail(f"{args.output}: cannot write alerts: {exc.strerror}")
    # Fork before the shipper starts its thread: a child gets no half-held locks.
    sys.stdout.flush()
    sys.stderr.flush()
    ctx = multiprocessing.get_context("fork")
    procs: list[multiprocessing.process.BaseProcess] = []
    conns: list[Connection] = []
    for k in range(n):
        recv, send = ctx.Pipe(duplex=False)
        child = ctx.Process(
            target=_worker, args=(args, policy, captures, k, send), name=f"v6sentry-live-{k}"
        )
        child.start()
        send.close()
        procs.append(child)
        conns.append(recv)
    for capture in captures:
        capture.close(count=False)  # the workers read (and count) them now
    parent = Parent(args, procs, conns, output)
    parent.install_signals()
    try:
        parent.shipping = ship_cli.ReplayShipping.open(args)
    except (ship_cli.SetupError, ship_cli.ShipError) as exc:
        parent._forward(signal.SIGKILL)
        for proc in procs:
            proc.join(10)
        output.close()
        parent.close()
        return _fail(str(exc))
    names = ", ".join(f"{name} (iface {i})" for i, name in enumerate(args.interfaces))
    _log(
        f"capturing on {names} with {n} workers (fanout group {group})"
        + (f", filter {args.bpf!r}" if args.bpf else "")
        + f", policy {args.policy or 'learned'}"
    )
    code = EXIT_CLEAN
    try:
        code = parent.loop()
        output.stream.flush()
        if parent.shipping is not None:
            parent.shipping.finish(quiet=False)
    except BrokenPipeError:
        _log("error: the alert output was closed")
        code = EXIT_ERROR
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EIO, errno.EBADF):
            raise
        _log(f"error: cannot write alerts: {exc.strerror}")
        code = EXIT_ERROR
    except ship_cli.ShipError as exc:
        _log(f"error: {exc}")
        code = EXIT_ERROR
    finally:
        parent._forward(signal.SIGTERM)
        for proc in procs:
            proc.join(10)
            if proc.exitcode is None:
                proc.kill()
                proc.join()
        if parent.shipping is not None:
            parent.shipping.abandon()
        parent.stats_line(final=True)
        parent.close()
        output.close()
    if code == EXIT_ERROR and args.output == "-":
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code
