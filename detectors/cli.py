"""The ``v6sentry`` command line.

Owns argument parsing, exit codes and the human summary on stderr. It wires
capture files to the engine, alerts to the chosen output and observations
(``--events``) to their file; it does not decode or detect anything itself.
The ``rules``, ``hunt`` and ``ship`` sub-commands live in their packages.

Exit codes: 0 clean, 1 an alert at or above ``--fail-on``, 2 usage or input
error (one line on stderr). A truncated or corrupt capture is processed up
to the damage and reported as a warning; the exit code then follows the
alerts (0 or 1), unless ``--strict`` makes it an input error (2).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Sequence
from typing import IO, Any, NoReturn

from detectors import __version__
from detectors.alerts import Alert, AlertWriter
from detectors.capture import CaptureError, CaptureReader, open_capture
from detectors.detections import discover
from detectors.engine import Engine, known_thresholds, learn_window_s
from detectors.hunt import cli as hunt_cli
from detectors.live import cli as live_cli
from detectors.observations import Observation, ObservationWriter
from detectors.policy import POLICY_HELP, PolicyError, empty_policy, load_policy, policy_line
from detectors.rules import cli as rules_cli
from detectors.ship import cli as ship_cli
from detectors.spec import SEVERITIES, SpecError

EXIT_CLEAN, EXIT_ALERTS, EXIT_ERROR = 0, 1, 2

EPILOG = """\
examples:
  v6sentry replay pcaps/rogue_ra.pcap --policy pcaps/policy.yaml
  v6sentry replay --fail-on high --format ecs -o alerts.jsonl capture.pcapng.gz
  tcpdump -w - -i eth1 | v6sentry replay -

exit codes: 0 clean, 1 alerts at or above --fail-on, 2 usage or input error.
A truncated capture is processed up to the damage with a warning and exits by
its alerts (0 or 1); with --strict it exits 2.
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
    replay.add_argument("captures", nargs="+", metavar="CAPTURE", help="capture file, or -")
    replay.add_argument("--policy", metavar="FILE", help=POLICY_HELP)
    replay.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="-",
        help="write alerts here (default: - for standard output)",
    )
    replay.add_argument(
        "--format",
        choices=("eve", "ecs"),
        default="eve",
        help="eve: Suricata EVE JSON (default); ecs: Elastic Common Schema",
    )
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
        "--sensor-name",
        metavar="NAME",
        default=None,
        help="EVE host / ECS observer.name (default: this host's name)",
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


def replay(args: argparse.Namespace) -> int:
    try:
        specs, classes = discover()
    except SpecError as exc:
        return _fail(f"detection spec: {exc}")
    try:
        policy = (
            load_policy(args.policy, known_thresholds(specs)) if args.policy else empty_policy()
        )
    except PolicyError as exc:
        return _fail(str(exc))
    if args.captures.count("-") > 1:
        return _fail("standard input ('-') can be read only once")
    try:  # before any file is opened: a bad --es setting is a usage error
        shipping = ship_cli.ReplayShipping.open(args)
    except (ship_cli.SetupError, ship_cli.ShipError) as exc:
        return _fail(str(exc))
    readers: list[CaptureReader] = []
    try:
        for path in args.captures:
            readers.append(open_capture(path))
    except CaptureError as exc:
        for reader in readers:
            reader.close()
        return _fail(str(exc))

    out: IO[str]
    try:
        out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        return _fail(f"{args.output}: cannot write alerts: {exc.strerror}")
    host = args.sensor_name if args.sensor_name is not None else socket.gethostname()
    writer = AlertWriter(out, args.format, host)
    events: IO[str] | None = None
    if args.events:
        try:
            events = open(args.events, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            for reader in readers:
                reader.close()
            if out is not sys.stdout:
                out.close()
            return _fail(f"{args.events}: cannot write observations: {exc.strerror}")
    write_events = ObservationWriter(events, host) if events is not None else None

    def ship_and_write(obs: Observation) -> None:
        if write_events is not None:
            write_events(obs)
        if shipping is not None:
            shipping.add_observation(obs, host)

    # Observations cost nothing unless someone takes them (--events or --es).
    observe = ship_and_write if write_events is not None or shipping is not None else None
    worst = -1  # rank in SEVERITIES of the most severe alert written

    def sink(alert: Alert) -> None:
        nonlocal worst
        writer(alert)
        worst = max(worst, SEVERITIES.index(alert.severity))
        if shipping is not None:
            shipping.add(alert, host)

    # Before any packet and whatever -q says: a learning run trusts whichever router
    # speaks first, and the user must not find that out from the alerts' evidence.
    notice = policy.learning_notice(learn_window_s(policy, specs))
    if notice is not None:
        print(f"v6sentry: warning: {notice}", file=sys.stderr)
    warnings: list[str] = []
    runs: list[dict[str, Any]] = []
    engine: Engine | None = None
    started = time.perf_counter()
    try:
        for reader in readers:
            if engine is None or not args.continuous:
                engine = Engine(policy, sink, specs, classes, observe)
            engine.capture_name = reader.path
            t0 = time.perf_counter()
            try:
                engine.run_capture(reader)
            except CaptureError as exc:
                return _fail(str(exc))
            finally:
                reader.close()
            warnings.extend(reader.warnings)
            if not args.continuous or reader is readers[-1]:
                engine.finish()
                summary = engine.summary()
                seconds = time.perf_counter() - (started if args.continuous else t0)
                summary["capture"] = args.captures if args.continuous else reader.path
                summary["seconds"] = round(seconds, 6)
                runs.append(summary)
                if not args.quiet:
                    if shipping is not None:
                        shipping.end_line()
                    label = f"{len(readers)} captures" if args.continuous else reader.path
                    for line in _summary_lines(label, summary, seconds):
                        print(line, file=sys.stderr)
        out.flush()
        if shipping is not None:
            shipping.finish(args.quiet)
    except BrokenPipeError:
        return EXIT_CLEAN  # the reader of our output went away (e.g. `| head`)
    except ship_cli.ShipError as exc:
        return _fail(str(exc))
    finally:
        if shipping is not None:
            shipping.abandon()  # a no-op after finish()
        if out is not sys.stdout:
            out.close()
        if events is not None:
            events.close()
    for warning in warnings:
        print(f"v6sentry: warning: {warning}", file=sys.stderr)
    if args.stats_json:
        try:
            with open(args.stats_json, "w", encoding="utf-8") as fh:
                json.dump(
                    {"version": __version__, "runs": runs, "warnings": warnings},
                    fh,
                    indent=2,
                    sort_keys=True,
                )
        except OSError as exc:
            return _fail(f"{args.stats_json}: cannot write stats: {exc.strerror}")
    if warnings and args.strict:
        return _fail(f"{len(warnings)} capture problem(s) and --strict is set")
    if args.fail_on is not None and worst >= SEVERITIES.index(args.fail_on):
        return EXIT_ALERTS
    return EXIT_CLEAN


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
    parser.print_help(sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
