"""``v6sentry live``: the detection engine on network interfaces, unattended.

Owns the ``live`` arguments, exit codes (0 stopped by SIGTERM or SIGINT after
flushing, 2 usage, setup or privilege error, in one line on stderr), the run
loop and its timers, signals, output (re)opening and the periodic stats line.
Capture is ``detectors.live.capture``; detection is ``detectors.engine``
(the same Engine as ``replay``, so the same traffic raises the same alerts
with the same ids); Elasticsearch shipping is ``detectors.ship``'s
``ReplayShipping`` with ``Shipper.tick()`` called from the loop.
``detectors/cli.py`` calls ``add_parser``/``run``; ``python -m detectors.live``
runs the same thing on its own.

Time: packets carry kernel receive timestamps (the realtime clock). While
frames arrive they drive the engine's clock, exactly as in replay. When no
frame arrived for ``IDLE_S`` and the sockets are empty, the loop moves the
engine's clock to the wall clock (less ``LAG_NS`` for frames still on their
way to the socket), so windows on a quiet link close and their alerts go out.

Reload (SIGHUP): the output file is reopened (logrotate), and the policy file
is read again. An unchanged file (same sha256) keeps the engine as it is. A
changed one flushes the old engine (every open window is reported with what it
has seen, as at exit) and starts a new engine on the new policy: windows,
suppression and learned state start over, and the log says so. A policy with
an error keeps the old one and logs the error with its file and line.
"""

from __future__ import annotations

import argparse
import errno
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

from detectors.alerts import Alert, AlertWriter, add_output_arguments
from detectors.detections import discover
from detectors.engine import Engine, Pump, known_signatures, known_thresholds, learn_window_s
from detectors.es.observations import Observation
from detectors.live.capture import Link, LiveCapture, LiveCaptureError
from detectors.policy import (
    POLICY_HELP,
    Policy,
    PolicyError,
    empty_policy,
    load_policy,
    policy_line,
)
from detectors.ship import cli as ship_cli
from detectors.spec import FamilySpec, SpecError

EXIT_CLEAN, EXIT_ERROR = 0, 2
IDLE_S: Final = 0.5  # a link quiet this long gets its clock moved by the wall clock
LAG_NS: Final = 100_000_000  # frames timestamped but not yet queued when we look
CHECK_S: Final = 1.0  # interface health checks and Elasticsearch ticks
POLL_S: Final = 0.25

# Installed with the package, so a pip-installed sensor finds its unit files and a policy
# to start from: `v6sentry live --unit-dir` and `--example-policy` print these paths.
UNIT_DIR: Final = Path(__file__).resolve().parent / "systemd"
# The example policy is the rule pack's (detectors/rules/data), read here without
# importing detectors.rules (whose renderer needs the [siem] extra).
EXAMPLE_POLICY: Final = Path(__file__).resolve().parents[1] / "rules" / "data" / "policy.yaml"

EPILOG = """\
examples:
  v6sentry live -i eth1 --policy site.yaml -o /var/log/v6sentry/alerts.json
  v6sentry live -i eth1 -i eth2 --bpf "ip6 or proto 41 or udp" --format ecs
  v6sentry live -i eth1 --policy site.yaml --es https://es.example:9200

signals: SIGHUP reopens -o FILE and reloads --policy (a bad policy keeps the old
one); SIGTERM and SIGINT flush open windows and exit 0.

needs CAP_NET_RAW and CAP_NET_ADMIN: root, `setcap cap_net_raw,cap_net_admin+eip`
on the interpreter, or systemd AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN.

exit codes: 0 stopped by a signal, 2 usage, setup or privilege error.
"""


class _PrintPath(argparse.Action):
    """Print a packaged file's path and exit, like --version (so -i is not required)."""

    def __init__(self, option_strings: Sequence[str], dest: str, path: Path, help: str) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, help=help)
        self.path = path

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        if not self.path.exists():
            parser.exit(EXIT_ERROR, f"v6sentry: error: {self.path}: missing; reinstall v6sentry\n")
        print(self.path)
        parser.exit(EXIT_CLEAN)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``live`` options, for the sub-command and for ``python -m detectors.live``."""
    parser.add_argument(
        "--unit-dir",
        action=_PrintPath,
        path=UNIT_DIR,
        help="print the directory of the installed systemd unit, sysusers and logrotate "
        "files, and exit",
    )
    parser.add_argument(
        "--example-policy",
        action=_PrintPath,
        path=EXAMPLE_POLICY,
        help="print the path of the installed example policy (copy it, then edit), and exit",
    )
    parser.add_argument(
        "-i",
        "--interface",
        dest="interfaces",
        action="append",
        required=True,
        metavar="IFACE",
        help="capture on IFACE (repeat for several; each is its own link)",
    )
    parser.add_argument("--bpf", metavar="FILTER", help="kernel capture filter (tcpdump syntax)")
    parser.add_argument("--policy", metavar="FILE", help=POLICY_HELP)
    add_output_arguments(
        parser, "append alerts here, reopened on SIGHUP (default: - for standard output)"
    )
    parser.add_argument(
        "--stats-interval",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="a stats line on stderr this often (default 60; 0: only at exit)",
    )
    parser.add_argument(
        "--buffer-mb",
        metavar="MB",
        type=int,
        default=128,
        help="capture ring per interface (memory mapped, taken at start; split between "
        "--workers); a frame takes its length plus 80 bytes of it (default 128)",
    )
    parser.add_argument(
        "--no-promisc", action="store_true", help="do not put the interfaces in promiscuous mode"
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        type=int,
        default=1,
        help="N processes read and decode each interface's frames (PACKET_FANOUT, by "
        "flow hash); the parent merges them in packet order and counts one stream, so "
        "alerts equal one process's (default 1)",
    )
    ship_cli.add_replay_arguments(parser)


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    live = sub.add_parser(
        "live",
        help="capture on interfaces (span ports) and print alerts",
        description="Capture on network interfaces and write one alert per line, until "
        "SIGTERM or SIGINT.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(live)


def _log(message: str) -> None:
    print(f"v6sentry: live: {message}", file=sys.stderr, flush=True)


def log_policy_notice(policy: Policy, specs: Mapping[str, FamilySpec]) -> None:
    """At start-up and after a reload: a learning policy is a weaker sensor, and an
    expired tuning entry is not applied; say so."""
    notice = policy.learning_notice(learn_window_s(policy, specs))
    if notice is not None:
        _log(f"warning: {notice}")
    for warning in policy.tuning_warnings():
        _log(f"warning: {warning}")


def _fail(message: str) -> int:
    print(f"v6sentry: error: {message}", file=sys.stderr, flush=True)
    return EXIT_ERROR


class _Output:
    """``-o``: standard output, or a file opened for appending and reopened on demand."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stream: IO[str] = sys.stdout if path == "-" else self._open()

    def _open(self) -> IO[str]:
        return open(self.path, "a", encoding="utf-8")

    def reopen(self) -> None:
        if self.path == "-":
            return
        fresh = self._open()  # OSError leaves the old stream in place
        self.stream.close()
        self.stream = fresh

    def close(self) -> None:
        if self.stream is not sys.stdout:
            self.stream.close()


class Signals:
    """SIGHUP, SIGTERM and SIGINT as flags, and a wakeup socket that makes a waiting
    ``select`` return at once when one arrives. Shared by a sensor process (``LiveRun``)
    and the parent of ``--workers`` (``workers.Parent``)."""

    def __init__(self) -> None:
        self._stop = False
        self._hup = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._hup = True
        else:
            self._stop = True

    def install_signals(self) -> None:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        # The handler runs between bytecodes; the wakeup fd makes select return at once.
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)

    def _drain_wakeup(self) -> None:
        try:
            while self._wake_r.recv(64):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        self._wake_r.close()
        self._wake_w.close()


class LiveRun(Signals):
    """One ``v6sentry live`` process: capture, engine, output, shipping, signals."""

    # The loop's pace; a ``--workers`` worker tells the counting process its time more
    # often (``workers.WorkerRun``).
    poll_s: float = POLL_S
    idle_s: float = IDLE_S
    lag_ns: int = LAG_NS

    def __init__(
        self,
        args: argparse.Namespace,
        capture: LiveCapture,
        policy: Policy,
        output: _Output,
        shipping: ship_cli.ReplayShipping | None,
    ) -> None:
        super().__init__()
        self.args = args
        self.capture = capture
        self.policy = policy
        self.output = output
        self.shipping = shipping
        self.host = args.sensor_name if args.sensor_name is not None else socket.gethostname()
        self.writer = AlertWriter(output.stream, args.format, self.host)
        self.specs, self.classes = discover()
        self.engine: Pump = self._engine(policy)
        self.alerts: dict[str, int] = {}
        self.started = time.monotonic()
        self._last_frame = time.monotonic()
        self._last_advance = 0.0
        self._last_check = time.monotonic()
        self._next_stats = self._stats_due(time.monotonic())
        self.engines = 1
        self._retired: dict[str, int] = {}  # evictions of engines a reload replaced
        self._tuned_retired = 0  # alerts the policy's tuning dropped in replaced engines

    def _stats_due(self, now: float) -> float:
        interval = self.args.stats_interval
        return now + interval if interval > 0 else float("inf")

    def _engine(self, policy: Policy) -> Pump:
        observe = self._observe if self.shipping is not None else None
        engine = Engine(policy, self._sink, self.specs, self.classes, observe)
        engine.interface_name = self._iface_name
        return engine

    def _iface_name(self, index: int) -> str | None:
        """Alerts' ``in_iface``: record interface indexes are command-line positions."""
        names: list[str] = self.args.interfaces
        return names[index] if index < len(names) else None

    # -- sinks ------------------------------------------------------------------------

    def _sink(self, alert: Alert) -> None:
        self.writer(alert)
        self.output.stream.flush()  # an alert is out now, not when a buffer fills
        self.alerts[alert.category] = self.alerts.get(alert.category, 0) + 1
        if self.shipping is not None:
            self.shipping.add(alert, self.host)

    def _observe(self, obs: Observation) -> None:
        assert self.shipping is not None
        self.shipping.add_observation(obs, self.host)

    # -- the loop ----------------------------------------------------------------------

    def pump(self) -> None:
        """Frames from every interface into the engine, natively; housekeeping in
        between. Ends on a signal (stop, or a reload that needs a new engine)."""
        capture = self.capture
        while True:
            by_fd = {ring.fileno(): ring for ring in capture.rings()}
            try:
                ready, _, _ = select.select([self._wake_r.fileno(), *by_fd], [], [], self.poll_s)
            except InterruptedError:  # pragma: no cover - PEP 475 retries select
                ready = []
            got = False
            for fd in ready:
                ring = by_fd.get(fd)
                if ring is None:
                    self._drain_wakeup()
                    continue
                # One block per ready ring, then the others get their turn.
                got = capture.feed(capture.link_of(ring), self.engine) or got
            now = time.monotonic()
            if got:
                self._last_frame = now
            elif now - self._last_frame >= self.idle_s and now - self._last_advance >= self.idle_s:
                # Quiet: the sockets were empty, so packet time may follow the clock.
                self._last_advance = now
                self.engine.advance(time.time_ns() - self.lag_ns)
            if now - self._last_check >= CHECK_S:
                self._last_check = now
                capture.check()
                if self.shipping is not None:
                    self.shipping.shipper.tick()
            if now >= self._next_stats:
                self._next_stats = self._stats_due(now)
                self.stats_line()
            if self._stop:
                return
            if self._hup:
                self._hup = False
                if self._reload():
                    return  # run() starts a new engine on the new policy

    def _reopen_output(self) -> None:
        reopen_output(self.args, self.output, self.writer)

    def _reload(self) -> bool:
        """SIGHUP: reopen the output; reload the policy. True if a new engine is needed."""
        self._reopen_output()
        policy = reread_policy(self.args, self.policy, self.specs)
        if policy is None:
            return False
        self.policy = policy
        return True

    def run(self) -> None:
        """Until SIGTERM or SIGINT; the caller flushes."""
        while True:
            self.engine.pump_start()
            self.pump()
            if self._stop:
                return
            # A changed policy: report what the old engine holds, then start over.
            old = self.engine
            old.finish()
            self._retire(old)
            self.engine = self._engine(self.policy)
            self.engines += 1
            self._log_reloaded()

    def _log_reloaded(self) -> None:
        _log(
            f"{self.args.policy}: policy reloaded (sha256 {self.policy.sha256[:12]}); "
            "open windows were flushed, detection state starts over"
        )
        log_policy_notice(self.policy, self.specs)

    # -- statistics ----------------------------------------------------------------------

    def _retire(self, engine: Pump) -> None:
        # Evictions of engines replaced by a reload still count in the stats line.
        for name, table in engine.table_stats().items():
            self._retired[name] = self._retired.get(name, 0) + table["evictions"]
        self._tuned_retired += tuned(engine)

    def stats(self) -> dict[str, Any]:
        links: list[Link] = self.capture.counters()
        tables = self.engine.table_stats()
        evictions = dict(self._retired)
        for name, table in tables.items():
            evictions[name] = evictions.get(name, 0) + table["evictions"]
        return {
            "uptime_s": round(time.monotonic() - self.started, 1),
            "packets": sum(link.packets for link in links),
            "bytes": sum(link.bytes for link in links),
            "kernel_drops": sum(link.kernel_drops for link in links),
            "links": {
                link.name: {
                    "state": link.state,
                    "packets": link.packets,
                    "kernel_drops": link.kernel_drops,
                    "kernel_freezes": link.kernel_freezes,
                    "reopened": link.reopened,
                }
                for link in links
            },
            "alerts": dict(sorted(self.alerts.items())),
            "table_entries": sum(t["size"] for t in tables.values()),
            "evictions": {k: v for k, v in sorted(evictions.items()) if v},
            "engines": self.engines,
            "policy": self.policy.summary(learn_window_s(self.policy, self.specs)),
            "tuning_entries": len(self.policy.tuning),
            "tuning_suppressed": self._tuned_retired + tuned(self.engine),
        }

    def stats_line(self, final: bool = False) -> None:
        s = self.stats()
        if self.shipping is not None:
            self.shipping.end_line()
        _log(format_stats(s, final))


def reopen_output(args: argparse.Namespace, output: _Output, writer: AlertWriter) -> None:
    """SIGHUP's output half (logrotate): reopen ``-o FILE``; on failure keep the old one."""
    try:
        output.reopen()
        writer.stream = output.stream
        if args.output != "-":
            _log(f"reopened {args.output}")
    except OSError as exc:
        _log(f"error: cannot reopen {args.output}: {exc.strerror}; keeping the old one")


def reread_policy(
    args: argparse.Namespace, current: Policy, specs: Mapping[str, FamilySpec]
) -> Policy | None:
    """SIGHUP's policy half: the ``--policy`` file read again. None, with the reason
    logged, when there is no file, it has an error (the old policy stays) or it is
    unchanged (state is kept)."""
    if not args.policy:
        _log("SIGHUP: no --policy to reload (learned routers are kept)")
        return None
    try:
        policy = load_policy(args.policy, known_thresholds(specs), known_signatures(specs))
    except PolicyError as exc:
        _log(f"error: policy reload failed, keeping the old policy: {exc}")
        return None
    if policy.sha256 == current.sha256:
        _log(f"{args.policy}: policy unchanged, state kept")
        return None
    return policy


def tuned(engine: Pump) -> int:
    """Alerts the policy's tuning dropped in ``engine`` (0 for a worker's Forwarding,
    which judges nothing)."""
    return engine.tuning_summary()["suppressed"] if isinstance(engine, Engine) else 0


def format_stats(s: dict[str, Any], final: bool = False) -> str:
    """The stats line (without the ``v6sentry: live:`` prefix) of a ``stats()`` dict."""
    links = " ".join(
        f"{name}={v['state']}/{v['packets']}p/{v['kernel_drops']}d"
        for name, v in s["links"].items()
    )
    alerts = sum(s["alerts"].values())
    by_cat = " ".join(f"{k}={v}" for k, v in s["alerts"].items())
    evicted = sum(s["evictions"].values())
    where = " ".join(f"{k}={v}" for k, v in s["evictions"].items())
    return (
        f"{'final ' if final else ''}stats: uptime {s['uptime_s']:g} s, "
        f"packets {s['packets']}, bytes {s['bytes']}, kernel drops {s['kernel_drops']}, "
        f"alerts {alerts}"
        + (f" ({by_cat})" if by_cat else "")
        # Alerts the policy's tuning dropped (never silently): only when it has entries.
        + (f", tuning suppressed {s['tuning_suppressed']}" if s.get("tuning_entries") else "")
        + f", table entries {s['table_entries']}, evictions {evicted}"
        + (f" ({where})" if where else "")
        + f"; links {links}"
        + ("; workers " + "/".join(map(str, s["workers"])) if s.get("workers") else "")
        # Every line repeats a learning run's weakness; a listed policy stays quiet.
        + (f"; {policy_line(s['policy'])}" if s["policy"]["routers"] == "learned" else "")
    )


def run(args: argparse.Namespace) -> int:
    """``v6sentry live``."""
    if args.stats_interval < 0:
        return _fail("--stats-interval must be 0 or more")
    if args.buffer_mb < 1:
        return _fail("--buffer-mb must be at least 1")
    if args.workers < 1:
        return _fail("--workers must be at least 1")
    if len(set(args.interfaces)) != len(args.interfaces):
        return _fail("an interface is given twice")
    try:
        specs, _ = discover()
    except SpecError as exc:
        return _fail(f"detection spec: {exc}")
    try:
        policy = (
            load_policy(args.policy, known_thresholds(specs), known_signatures(specs))
            if args.policy
            else empty_policy()
        )
    except PolicyError as exc:
        return _fail(str(exc))
    if args.workers > 1:
        from detectors.live import workers  # imports this module: only when needed

        return workers.run(args, policy)
    try:
        capture = LiveCapture(
            args.interfaces, args.bpf, args.buffer_mb * 2**20, not args.no_promisc, _log
        )
        capture.open()
    except LiveCaptureError as exc:
        return _fail(str(exc))
    try:
        output = _Output(args.output)
    except OSError as exc:
        capture.close()
        return _fail(f"{args.output}: cannot write alerts: {exc.strerror}")
    try:
        shipping = ship_cli.ReplayShipping.open(args)
    except (ship_cli.SetupError, ship_cli.ShipError) as exc:
        capture.close()
        output.close()
        return _fail(str(exc))
    live = LiveRun(args, capture, policy, output, shipping)
    live.install_signals()
    names = ", ".join(f"{link.name} (iface {link.index})" for link in capture.links)
    _log(
        f"capturing on {names}"
        + (f", filter {args.bpf!r}" if args.bpf else "")
        + f", {policy_line(policy.summary(learn_window_s(policy, specs)))}"
    )
    log_policy_notice(policy, specs)
    code = EXIT_CLEAN
    try:
        live.run()
        live.engine.finish()  # every open window is reported before exit
        output.stream.flush()
        if shipping is not None:
            shipping.finish(quiet=False)
    except BrokenPipeError:
        # Whoever read our alerts went away; nothing more can be delivered there.
        _log("error: the alert output was closed")
        code = EXIT_ERROR
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EIO, errno.EBADF):
            _log(f"error: cannot write alerts: {exc.strerror}")
            code = EXIT_ERROR
        else:
            raise
    except ship_cli.ShipError as exc:
        _log(f"error: {exc}")
        code = EXIT_ERROR
    finally:
        if shipping is not None:
            shipping.abandon()  # a no-op after finish()
        live.stats_line(final=True)
        capture.close()
        live.close()
        output.close()
    if code == EXIT_ERROR and args.output == "-":
        # Python would complain again at exit while flushing a dead stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code
