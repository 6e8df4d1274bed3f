"""The ``v6sentry`` command line.

Owns argument parsing, exit codes and the human summary on stderr. It wires
capture files to the engine, alerts to the chosen output and observations
(``--events``) to their file; it does not decode or detect anything itself.
The ``rules``, ``hunt`` and ``ship`` sub-commands live in their packages,
``verify`` in ``detectors/verify.py``.

Exit codes: 0 clean, 1 an alert at or above ``--fail-on``, 2 usage, input or
output error (one line on stderr), 130/143 stopped by SIGINT/SIGTERM after
flushing the alerts and printing the summary. A truncated or corrupt capture is processed up
to the damage and reported as a warning; the exit code then follows the
alerts (0 or 1), unless ``--strict`` makes it an input error (2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import IO, Any, NoReturn

from detectors import __version__, extras
from detectors import explain as explain_cli
from detectors import schema as schema_cli
from detectors import verify as verify_cli
from detectors.alerts import Alert, AlertWriter, add_output_arguments
from detectors.capture import CaptureError, CaptureReader, open_capture
from detectors.detections import discover
from detectors.engine import (
    Engine,
    known_signatures,
    known_thresholds,
    learn_window_s,
    max_interfaces,
)
from detectors.es.observations import Observation, ObservationWriter
from detectors.hunt import cli as hunt_cli
from detectors.live import cli as live_cli
from detectors.policy import POLICY_HELP, PolicyError, empty_policy, load_policy, policy_line
from detectors.rules import cli as rules_cli
from detectors.ship import cli as ship_cli
from detectors.spec import SEVERITIES, SpecError

EXIT_CLEAN, EXIT_ALERTS, EXIT_ERROR = 0, 1, 2
# Stopped by a signal, after flushing and summarising (the shell's 128 + signal number).
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
_DIGITS = re.compile(r"(\d+)")

EPILOG = """\
examples:
  v6sentry replay pcaps/rogue_ra.pcap --policy pcaps/policy.yaml
  v6sentry replay --fail-on high --format ecs -o alerts.jsonl capture.pcapng.gz
  tcpdump -w - -i eth1 | v6sentry replay -

  v6sentry replay -r /var/spool/pcaps/ -o alerts.jsonl

exit codes: 0 clean, 1 alerts at or above --fail-on, 2 usage, input or output
error (one line; an output error is a full disk, an unwritable -o FILE or a
closed standard output), 130 stopped by SIGINT, 143 stopped by SIGTERM.
A truncated capture is processed up to the damage with a warning and exits by
its alerts (0 or 1); with --strict it exits 2. SIGINT or SIGTERM stops reading
after the current batch of records: the alerts so far are flushed (and shipped
or spooled with --es), the summary is printed, and the exit code is 130 or 143;
a second signal ends the process at once.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="v6sentry",
        description="IPv6 threat sensor: rogue RAs, ND attacks, tunnels and /64 sweeps.",
    )
    parser.add_argument("--version", action="version", version=f"v6sentry {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    replay = sub.add_parser(
        "replay",
        help="read capture files and print alerts",
        description="Read pcap or pcapng captures (optionally gzip-compressed, '-' for "
        "standard input) and write one alert per line.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument(
        "captures",
        nargs="*",
        metavar="CAPTURE",
        help="capture file, directory (every regular non-hidden file in it, in natural "
        "name order, one summary each), or - for standard input",
    )
    replay.add_argument(
        "-r",
        "--read",
        action="append",
        metavar="CAPTURE",
        help="a capture, as the positional CAPTURE (repeatable; read before positional ones)",
    )
    replay.add_argument("--policy", metavar="FILE", help=POLICY_HELP)
    add_output_arguments(replay, "write alerts here (default: - for standard output)")
    replay.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        metavar="SEVERITY",
        help=f"exit 1 if any alert is at least this severe ({', '.join(SEVERITIES)})",
    )
    replay.add_argument(
        "--continuous",
        action="store_true",
        help="treat several captures as one stream (rotated files); "
        "by default each capture starts with fresh state",
    )
    replay.add_argument(
        "--strict",
        action="store_true",
        help="a truncated or corrupt capture is an input error (exit 2)",
    )
    replay.add_argument(
        "--stats-json", metavar="FILE", help="also write the run's counters as JSON to FILE"
    )
    replay.add_argument(
        "--events",
        metavar="FILE",
        help="also write observations (ECS events, event.dataset v6sentry.observation: "
        "sub-threshold sweeps for `v6sentry hunt`) to FILE as JSON lines",
    )
    replay.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no summary on stderr (warnings still go there, the learned-routers one included)",
    )
    ship_cli.add_replay_arguments(replay)
    rules_cli.add_parser(sub, _Parser)
    hunt_cli.add_parser(sub, _Parser)
    live_cli.add_parser(sub, _Parser)
    ship_cli.add_parser(sub, _Parser)
    explain_cli.add_parsers(sub, _Parser)
    schema_cli.add_parser(sub, _Parser)
    verify_cli.add_parser(sub, _Parser)
    return parser


def _fail(message: str) -> int:
    print(f"v6sentry: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _summary_lines(name: str, summary: dict[str, Any], seconds: float) -> list[str]:
    rate = summary["packets"] / seconds if seconds > 0 else 0.0
    alerts = " ".join(f"{k}={v}" for k, v in summary["alerts"].items()) or "none"
    reasons = ", ".join(f"{k}={v}" for k, v in summary["malformed_reasons"].items())
    tunnels = " ".join(f"{k}={v}" for k, v in summary["tunnels"].items()) or "none"
    anomalies = " ".join(f"{k}={v}" for k, v in summary["fragment_anomalies"].items())
    lines = [
        f"v6sentry: {name}: {summary['packets']} packets, {summary['bytes']} bytes in "
        f"{seconds:.2f} s ({rate:,.0f} packets/s)",
        f"v6sentry: {name}: alerts: {alerts}",
        f"v6sentry: {name}: malformed {summary['malformed']}"
        + (f" ({reasons})" if reasons else "")
        + f"; snapped {summary['snapped']}; IPv6 {summary['ipv6']}, ND {summary['nd']}"
        + f"; tunnels {tunnels}",
        f"v6sentry: {name}: fragments {summary['fragments']}, reassembled "
        f"{summary['reassembled']}, pending {summary['fragments_pending']}"
        + (f", anomalies {anomalies}" if anomalies else "")
        + (
            f"; IPv4 fragments skipped {summary['ipv4_fragments_skipped']}"
            if summary["ipv4_fragments_skipped"]
            else ""
        ),
    ]
    lines.append(f"v6sentry: {name}: {policy_line(summary['policy'])}")
    tuning = summary["tuning"]
    if tuning["entries"]:
        lines.append(f"v6sentry: {name}: {tuning_line(tuning)}")
    evicted = {k: v["evictions"] for k, v in summary["tables"].items() if v["evictions"]}
    if evicted:
        lines.append(
            f"v6sentry: {name}: table evictions: "
            + " ".join(f"{k}={v}" for k, v in sorted(evicted.items()))
        )
    if summary["unsupported_link"]:
        lines.append(
            f"v6sentry: warning: {name}: {summary['unsupported_link']} frames on "
            f"unsupported link types (seen: {summary['link_types']})"
        )
    return lines


def tuning_line(tuning: dict[str, Any]) -> str:
    """The policy's tuning in one line: what each entry dropped, and why (Engine.tuning_summary)."""
    parts = []
    for e in tuning["entries"]:
        target = f"sid {e['sid']}" if "sid" in e else e["detection"]
        if "enabled" in e:
            action = "disabled"
        else:
            action = "suppress " + " ".join(f"{k} {v}" for k, v in e["suppress"].items())
        state = "expired, not applied" if e["expired"] else f"suppressed {e['suppressed']}"
        parts.append(f"{e['entry']} {target} {action}: {state} ({e['reason']})")
    return f"tuning: suppressed {tuning['suppressed']}: " + "; ".join(parts)


class _OutputError(Exception):
    """An output could not be written (disk full, device gone, closed): exit 2, one line."""


def _write_failed(name: str, what: str, exc: OSError) -> _OutputError:
    return _OutputError(f"{name}: cannot write {what}: {exc.strerror or exc}")


def _flush(stream: IO[str], name: str, what: str, close: bool = False) -> None:
    """Flush (and close) an output; OSError becomes _OutputError naming it, except a
    broken pipe, which means the reader left (handled by the caller)."""
    try:
        stream.flush()
        if close:
            stream.close()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _write_failed(name, what, exc) from None


def _silence_stdout() -> None:
    """After stdout failed: point fd 1 at /dev/null so that the interpreter's own
    flush at exit does not print a second error about the same data."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass


def _close_quietly(stream: IO[str] | None) -> None:
    """Cleanup after an error already reported: a second error would say nothing new."""
    if stream is None or stream is sys.stdout:
        return
    with contextlib.suppress(OSError):
        stream.close()


class _Stop:
    """SIGTERM and SIGINT during ``replay``: a flag the engine reads between batches,
    so that the run stops with what it read flushed and summarised, instead of a
    traceback (SIGINT) or no summary at all (SIGTERM)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signum
        # A second signal is not asked to wait: it ends the process at once (the
        # default action, no traceback), e.g. a reader blocked on a silent pipe.
        for sig in self._previous:
            signal.signal(sig, signal.SIG_DFL)

    def __call__(self) -> bool:
        return self.signum is not None

    def install(self) -> None:
        # Handlers can only be set from the main thread (in-process callers in tests
        # may run replay elsewhere; they keep the default behaviour).
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        return EXIT_SIGINT if self.signum == signal.SIGINT else EXIT_SIGTERM


def _natural_key(name: str) -> list[tuple[int, int, str]]:
    """Digit runs compare as numbers: tcpdump -C's cap, cap1, cap2, ..., cap10 in order."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.split(name)]


def _capture_paths(args: argparse.Namespace) -> list[str]:
    """``-r`` captures, then positional ones; a directory stands for every regular,
    non-hidden file in it, in natural name order. CaptureError for an empty one."""
    paths: list[str] = []
    for path in [*(args.read or []), *args.captures]:
        if path != "-" and os.path.isdir(path):
            try:
                names = sorted(os.listdir(path), key=_natural_key)
            except OSError as exc:
                raise CaptureError(f"{path}: cannot list directory: {exc.strerror}") from None
            found = [
                os.path.join(path, n)
                for n in names
                if not n.startswith(".") and os.path.isfile(os.path.join(path, n))
            ]
            if not found:
                raise CaptureError(f"{path}: directory holds no capture files")
            paths.extend(found)
        else:
            paths.append(path)
    return paths


def replay(args: argparse.Namespace) -> int:
    try:
        captures = _capture_paths(args)
    except CaptureError as exc:
        return _fail(str(exc))
    if not captures:
        return _fail("replay: give at least one CAPTURE (a file, a directory, - or -r FILE)")
    if captures.count("-") > 1:
        return _fail("standard input ('-') can be read only once")
    if args.output == "-" and sys.stdout is None:
        return _fail("standard output is closed: cannot write alerts (use -o FILE)")
    try:
        specs, classes = discover()
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
    # Every capture is checked before anything is read (a bad one is an error in one
    # line, with no half-run), but opened for reading only when its turn comes: a
    # directory of thousands of files holds one reader at a time.
    stdin_reader: CaptureReader | None = None
    cap = max_interfaces(policy)
    try:
        for path in captures:
            if path == "-":  # standard input cannot be opened twice
                stdin_reader = open_capture(path, max_interfaces=cap)
            else:
                open_capture(path).close()
    except CaptureError as exc:
        if stdin_reader is not None:
            stdin_reader.close()
        return _fail(str(exc))
    try:  # before any output is opened: a bad --es setting is a usage error
        shipping = ship_cli.ReplayShipping.open(args)
    except (ship_cli.SetupError, ship_cli.ShipError) as exc:
        if stdin_reader is not None:
            stdin_reader.close()
        return _fail(str(exc))

    out: IO[str]
    out_name = "standard output" if args.output == "-" else args.output
    try:
        out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        if shipping is not None:
            shipping.abandon()
        return _fail(f"{args.output}: cannot write alerts: {exc.strerror}")
    host = args.sensor_name if args.sensor_name is not None else socket.gethostname()
    writer = AlertWriter(out, args.format, host)
    events: IO[str] | None = None
    if args.events:
        try:
            events = open(args.events, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            if stdin_reader is not None:
                stdin_reader.close()
            _close_quietly(out)
            if shipping is not None:
                shipping.abandon()
            return _fail(f"{args.events}: cannot write observations: {exc.strerror}")
    write_events = ObservationWriter(events, host) if events is not None else None

    def ship_and_write(obs: Observation) -> None:
        if write_events is not None:
            try:
                write_events(obs)
            except BrokenPipeError:
                raise
            except OSError as exc:
                raise _write_failed(args.events, "observations", exc) from None
        if shipping is not None:
            shipping.add_observation(obs, host)

    # Observations cost nothing unless someone takes them (--events or --es).
    observe = ship_and_write if write_events is not None or shipping is not None else None
    worst = -1  # rank in SEVERITIES of the most severe alert written

    def sink(alert: Alert) -> None:
        nonlocal worst
        try:
            writer(alert)
        except BrokenPipeError:
            raise  # the reader of standard output went away: handled below
        except OSError as exc:
            raise _write_failed(out_name, "alerts", exc) from None
        worst = max(worst, SEVERITIES.index(alert.severity))
        if shipping is not None:
            shipping.add(alert, host)

    # Before any packet and whatever -q says: a learning run trusts whichever router
    # speaks first, and the user must not find that out from the alerts' evidence.
    notice = policy.learning_notice(learn_window_s(policy, specs))
    if notice is not None:
        print(f"v6sentry: warning: {notice}", file=sys.stderr)
    for warning in policy.tuning_warnings():  # an expired entry is not applied: say so
        print(f"v6sentry: warning: {warning}", file=sys.stderr)
    warnings: list[str] = []
    runs: list[dict[str, Any]] = []
    engine: Engine | None = None
    stop = _Stop()
    started = time.perf_counter()
    stop.install()
    try:
        for number, path in enumerate(captures):
            last = number == len(captures) - 1
            if engine is None or not args.continuous:
                engine = Engine(policy, sink, specs, classes, observe)
            t0 = time.perf_counter()
            if stdin_reader is not None and path == "-":
                reader = stdin_reader
            else:
                reader = open_capture(path, max_interfaces=cap)
            engine.capture_name = reader.path
            engine.interface_name = _pcapng_names(reader)
            try:
                complete = engine.run_capture(reader, stop)
            finally:
                reader.close()
            warnings.extend(reader.warnings)
            if not complete:
                rest = len(captures) - number - 1
                warnings.append(
                    f"{reader.path}: stopped by {stop.name} after {engine.summary()['packets']} "
                    f"packets" + (f"; {rest} later capture(s) not read" if rest else "")
                )
            if not args.continuous or last or not complete:
                engine.finish()
                # Written out before the summary claims them: a full disk is then one
                # error line, not a summary of alerts that never reached the file.
                _flush(out, out_name, "alerts")
                if events is not None:
                    _flush(events, args.events, "observations")
                summary = engine.summary()
                seconds = time.perf_counter() - (started if args.continuous else t0)
                summary["capture"] = captures if args.continuous else reader.path
                summary["seconds"] = round(seconds, 6)
                runs.append(summary)
                if not args.quiet:
                    if shipping is not None:
                        shipping.end_line()
                    label = f"{len(captures)} captures" if args.continuous else reader.path
                    for line in _summary_lines(label, summary, seconds):
                        print(line, file=sys.stderr)
            if not complete:
                break
        _flush(out, out_name, "alerts", close=out is not sys.stdout)
        if events is not None:
            _flush(events, args.events, "observations", close=True)
        if shipping is not None:
            shipping.finish(args.quiet)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_CLEAN  # the reader of our output went away (e.g. `| head`)
    except _OutputError as exc:
        if out is sys.stdout:
            _silence_stdout()
        return _fail(str(exc))
    except CaptureError as exc:
        return _fail(str(exc))
    except ship_cli.ShipError as exc:
        return _fail(str(exc))
    finally:
        stop.restore()
        if stdin_reader is not None:
            stdin_reader.close()
        if shipping is not None:
            shipping.abandon()  # a no-op after finish()
        _close_quietly(out)
        _close_quietly(events)
    for warning in warnings:
        print(f"v6sentry: warning: {warning}", file=sys.stderr)
    if args.stats_json:
        try:
            with open(args.stats_json, "w", encoding="utf-8") as fh:
                json.dump(
                    {
                        "version": __version__,
                        "runs": runs,
                        "warnings": warnings,
                        "interrupted": stop.name or None,
                    },
                    fh,
                    indent=2,
                    sort_keys=True,
                )
        except OSError as exc:
            return _fail(f"{args.stats_json}: cannot write stats: {exc.strerror}")
    if stop():
        return stop.exit_code
    if warnings and args.strict:
        return _fail(f"{len(warnings)} capture problem(s) and --strict is set")
    if args.fail_on is not None and worst >= SEVERITIES.index(args.fail_on):
        return EXIT_ALERTS
    return EXIT_CLEAN


def _pcapng_names(reader: CaptureReader) -> Callable[[int], str | None]:
    """Interface index -> its pcapng ``if_name`` (a pcap file names none)."""

    def name(index: int) -> str | None:
        interfaces = reader.interfaces  # grows while a pcapng is read
        return interfaces[index].name if index < len(interfaces) else None

    return name


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    need = extras.needed(args.command, getattr(args, "es", None))
    if need is not None:
        problem = extras.missing(*need)
        if problem is not None:
            return _fail(problem)
    if args.command == "replay":
        return replay(args)
    if args.command == "rules":
        return rules_cli.run(args)
    if args.command == "hunt":
        return hunt_cli.run(args)
    if args.command == "live":
        return live_cli.run(args)
    if args.command == "ship":
        return ship_cli.run(args)
    if args.command == "explain":
        return explain_cli.run_explain(args)
    if args.command == "policy":
        return explain_cli.run_policy(args)
    if args.command == "schema":
        return schema_cli.run(args)
    if args.command == "verify":
        return verify_cli.main(args)
    parser.print_help(sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
