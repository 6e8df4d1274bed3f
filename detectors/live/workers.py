"""``v6sentry live --workers N``: N processes read and decode a link, one counts it.

Owns the parent and the workers of a multi-process live run. The parent opens N
captures of every interface before anything else (so a missing interface or
capability is still exit 2 in one line), each ring in the interface's
``PACKET_FANOUT`` group (the kernel's symmetric flow hash: both directions of a
flow reach the same worker, and so do all fragments of a datagram, which it hashes
by addresses alone; no kernel reassembly, so workers see the frames as sent), then
forks N workers.

Worker k keeps capture k, closes its copies of the others, and runs a ``LiveRun``
whose engine is a ``Forwarding``: it reads its ring and decodes natively, and sends
the events that detection uses, in batches of bytes, with its watermark (every
frame up to that packet time has been sent; an idle worker's is the wall clock
less ``WORKER_LAG_NS``) to the parent. The parent runs the one counting
``Engine``: it merges the workers' batches in packet order (``native/src/merge.rs``)
and counts them as one stream, so a scan or a flood whose flows the kernel
spread over the workers is one scan, with the windows, thresholds and alert ids
that one process (or ``replay``) gives. Parallel: reading and decoding; serial:
counting and judging, whose cost per event is the smaller part.

The parent writes every alert through the one ``-o`` output and ``--es``
shipper, prints the stats line (the workers' rings and decoders, its own
tables), and handles SIGHUP (it reopens the output and reloads the policy; the
workers reload theirs for the decoder's limits) and SIGTERM/SIGINT (each worker
sends what it holds and ends, the parent counts the rest, flushes its open
windows, then exits 0). A worker that dies stops the others and the run exits 2.

Differences from one process: each worker has its own fragment reassembly
(its own ``frag_max_*`` caps and timeouts, on its own clock), and ``pcap_cnt``
counts the frames of the worker that read the frame.
"""

from __future__ import annotations

import argparse
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
from detectors.detections import discover
from detectors.engine import Engine, Forwarding, Pump, known_signatures, known_thresholds
from detectors.es.observations import Observation
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
    log_policy_notice,
    reopen_output,
    reread_policy,
    tuned,
)
from detectors.policy import Policy, PolicyError, load_policy, policy_line
from detectors.ship import cli as ship_cli

# An idle worker tells the parent its time this often, as the wall clock less this lag
# (a ring hands a block over at most 10 ms after its first frame): the parent holds
# the other workers' events back only that long.
WORKER_POLL_S: Final = 0.02
WORKER_LAG_NS: Final = 50_000_000
# Items the parent queues from one worker before it stops reading that worker's pipe
# (the worker then waits, and its ring holds the frames): bounds the parent's memory
# while a slower worker holds the merge back.
MAX_QUEUED: Final = 262_144


def _worker_log(k: int, message: str) -> None:
    _log(f"worker {k}: {message}")


def fanout_base() -> int:
    """A PACKET_FANOUT group id for link 0 (link i: base + i), unique to this run in its
    network namespace while the pid is (two sensors must not share a group)."""
    return (os.getpid() * 16) & 0xFFFF


# -- a worker ---------------------------------------------------------------------------


class WorkerRun(LiveRun):
    """One worker's LiveRun: its engine is a ``Forwarding``, whose batches, and the
    stats, go to the parent's pipe. It judges nothing and writes nothing."""

    poll_s = WORKER_POLL_S
    idle_s = WORKER_POLL_S
    lag_ns = WORKER_LAG_NS

    def __init__(
        self, args: argparse.Namespace, capture: LiveCapture, policy: Policy, conn: Connection
    ) -> None:
        self.conn = conn
        super().__init__(args, capture, policy, _Output("-"), None)

    def _engine(self, policy: Policy) -> Pump:
        return Forwarding(policy, self._send, self.specs, self.classes)

    def _send(self, blob: bytes, items: int, watermark: int) -> None:
        self.conn.send(("events", (blob, items, watermark)))

    def _reopen_output(self) -> None:
        pass  # the parent owns the output

    def _reload(self) -> bool:
        """SIGHUP: read the policy again, for the decoder's limits; the parent says
        what happened (and why a bad policy was kept)."""
        if not self.args.policy:
            return False
        try:
            policy = load_policy(
                self.args.policy, known_thresholds(self.specs), known_signatures(self.specs)
            )
        except PolicyError:
            return False
        if policy.sha256 == self.policy.sha256:
            return False
        self.policy = policy
        return True

    def _log_reloaded(self) -> None:
        pass  # the parent logs the reload once

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


def _merge(
    stats: list[dict[str, Any]],
    alerts: dict[str, int],
    uptime: float,
    tables: dict[str, dict[str, int]],
    retired: dict[str, int],
    engines: int,
) -> dict[str, Any]:
    """The stats line: the workers' rings and decoders, the parent's alerts and tables."""
    links: dict[str, dict[str, Any]] = {}
    evictions: dict[str, int] = dict(retired)
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
    for name, table in tables.items():
        evictions[name] = evictions.get(name, 0) + table["evictions"]
    return {
        "uptime_s": round(uptime, 1),
        "packets": sum(s["packets"] for s in stats),
        "bytes": sum(s["bytes"] for s in stats),
        "kernel_drops": sum(s["kernel_drops"] for s in stats),
        "links": links,
        "alerts": dict(sorted(alerts.items())),
        "table_entries": sum(s["table_entries"] for s in stats)
        + sum(t["size"] for t in tables.values()),
        "evictions": {k: v for k, v in sorted(evictions.items()) if v},
        "engines": engines,
        "workers": [s["packets"] for s in stats],
    }


class Parent(Signals):
    """The parent of N workers: the counting Engine, one output, one shipper, signals."""

    def __init__(
        self,
        args: argparse.Namespace,
        policy: Policy,
        procs: list[multiprocessing.process.BaseProcess],
        conns: list[Connection],
        output: _Output,
    ) -> None:
        super().__init__()
        self.args = args
        self.policy = policy
        self.procs = procs
        self.conns = conns
        self.output = output
        self.shipping: ship_cli.ReplayShipping | None = None
        self.host = args.sensor_name if args.sensor_name is not None else socket.gethostname()
        self.writer = AlertWriter(output.stream, args.format, self.host)
        self.alerts: dict[str, int] = {}
        self.latest: dict[int, dict[str, Any]] = {}
        self.final: dict[int, dict[str, Any]] = {}
        self.started = time.monotonic()
        self.specs, self.classes = discover()
        self.engine = self._engine(None)
        self.engines = 1
        self._retired: dict[str, int] = {}
        self._tuned_retired = 0

    def _engine(self, previous: Engine | None) -> Engine:
        observe = self._observe if self.args.es else None
        engine = Engine(self.policy, self._write, self.specs, self.classes, observe)
        engine.interface_name = self._iface_name
        engine.merge_workers(len(self.procs), previous)
        return engine

    def _iface_name(self, index: int) -> str | None:
        """Alerts' ``in_iface``: record interface indexes are command-line positions."""
        names: list[str] = self.args.interfaces
        return names[index] if index < len(names) else None

    def _forward(self, sig: int) -> None:
        for proc in self.procs:
            if proc.pid is not None and proc.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    def _write(self, alert: Alert) -> None:
        self.writer(alert)
        self.output.stream.flush()
        self.alerts[alert.category] = self.alerts.get(alert.category, 0) + 1
        if self.shipping is not None:
            self.shipping.add(alert, self.host)

    def _observe(self, obs: Observation) -> None:
        if self.shipping is not None:
            self.shipping.add_observation(obs, self.host)

    def _handle(self, k: int, kind: str, body: Any) -> None:
        if kind == "events":
            blob, items, watermark = body
            self.engine.feed(k, blob, items, watermark)
        elif kind == "stats":
            self.latest[k] = body
        elif kind == "final":
            # Sent after the worker's last batch: it holds nothing back any more.
            self.latest[k] = self.final[k] = body
            self.engine.end_worker(k)

    def stats(self) -> dict[str, Any]:
        merged = _merge(
            [self.latest[k] for k in sorted(self.latest)],
            self.alerts,
            time.monotonic() - self.started,
            self.engine.table_stats(),
            self._retired,
            self.engines,
        )
        merged["policy"] = self.engine.policy_summary()
        merged["tuning_entries"] = len(self.policy.tuning)
        merged["tuning_suppressed"] = self._tuned_retired + tuned(self.engine)
        return merged

    def stats_line(self, final: bool = False) -> None:
        if self.shipping is not None:
            self.shipping.end_line()
        _log(format_stats(self.stats(), final))

    def loop(self) -> int:
        """Until every worker has ended, then count what is left and flush the open
        windows; EXIT_ERROR if a worker died on its own."""
        interval = self.args.stats_interval
        next_stats = time.monotonic() + interval if interval > 0 else float("inf")
        next_check = time.monotonic() + CHECK_S
        open_conns = dict(enumerate(self.conns))
        stopping = False
        failed = False
        while open_conns:
            # A worker far ahead of the others waits (its pipe fills) rather than
            # growing the parent's queue without bound.
            readable = [c for k, c in open_conns.items() if self.engine.queued(k) < MAX_QUEUED]
            ready = multiprocessing.connection.wait([*readable, self._wake_r], timeout=POLL_S)
            for conn in ready:
                if conn is self._wake_r:
                    self._drain_wakeup()
                    continue
                k = next(i for i, c in open_conns.items() if c is conn)
                try:
                    kind, body = open_conns[k].recv()
                except (EOFError, OSError):
                    del open_conns[k]
                    self.engine.end_worker(k)
                    if k not in self.final and not stopping:
                        failed = True
                    continue
                self._handle(k, kind, body)
            self.engine.run_merged()
            if failed and not stopping:
                _log("error: a worker stopped unexpectedly; stopping the others")
            if (self._stop or failed) and not stopping:
                stopping = True
                self._forward(signal.SIGTERM)
            if self._hup:
                self._hup = False
                self._reopen()
                self._reload()
                self._forward(signal.SIGHUP)
            now = time.monotonic()
            if now >= next_check:
                next_check = now + CHECK_S
                if self.shipping is not None:
                    self.shipping.shipper.tick()
            if now >= next_stats:
                next_stats = now + interval
                self.stats_line()
        self.engine.run_merged()  # every worker ended: nothing holds the rest back
        self.engine.finish()  # every open window is reported before exit
        for proc in self.procs:
            proc.join(10)
            if proc.exitcode != 0:
                failed = True
                _log(f"error: worker {proc.name} exited with code {proc.exitcode}")
        return EXIT_ERROR if failed else EXIT_CLEAN

    def _reopen(self) -> None:
        reopen_output(self.args, self.output, self.writer)

    def _reload(self) -> None:
        """SIGHUP: read the policy again; a changed one flushes the counting Engine and
        starts a new one, which takes over the workers' queued events."""
        policy = reread_policy(self.args, self.policy, self.specs)
        if policy is None:
            return
        self.policy = policy
        old = self.engine
        old.finish()
        for name, table in old.table_stats().items():
            self._retired[name] = self._retired.get(name, 0) + table["evictions"]
        self._tuned_retired += tuned(old)
        self.engine = self._engine(old)
        self.engines += 1
        _log(
            f"{self.args.policy}: policy reloaded (sha256 {policy.sha256[:12]}); "
            "open windows were flushed, detection state starts over"
        )
        log_policy_notice(policy, self.specs)


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
    parent = Parent(args, policy, procs, conns, output)
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
        + f", {policy_line(parent.engine.policy_summary())}"
    )
    log_policy_notice(policy, parent.specs)
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
