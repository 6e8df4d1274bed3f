"""``v6sentry ship`` and the ``--es`` options of ``v6sentry replay``.

Owns the shipping arguments, their checks, messages, summary line and exit
codes (``ship``: 0 every document delivered, 1 some spooled or refused, 2
usage, input or configuration error). The shipping itself is
``detectors.ship.shipper``; this module only wires files, alerts and options
to it. ``detectors/cli.py`` calls ``add_parser``/``run`` for ``ship`` and
``add_replay_arguments``/``ReplayShipping`` for ``replay --es``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from detectors.alerts import Alert
from detectors.es import ALERT_INDEX, ALERT_PATTERN, EVENT_INDEX, EVENT_PATTERN
from detectors.es.connect import ENV_API_KEY, ENV_CA, ENV_PASSWORD, ENV_USERNAME, ConfigError
from detectors.es.connect import connection as make_connection
from detectors.es.observations import Observation
from detectors.ship import ShipError
from detectors.ship.convert import Document, InputError, read_documents, titles
from detectors.ship.progress import Progress
from detectors.ship.spool import DEFAULT_MAX_BYTES, Spool, default_spool_dir
from detectors.spec import SpecError

if TYPE_CHECKING:
    from detectors.ship.shipper import Shipper

__all__ = [
    "ReplayShipping",
    "SetupError",
    "ShipError",
    "add_parser",
    "add_replay_arguments",
    "run",
]

EXIT_OK, EXIT_UNDELIVERED, EXIT_ERROR = 0, 1, 2
DEFAULT_URL = "http://localhost:9200"

EPILOG = f"""\
examples:
  v6sentry replay --policy site.yaml --es https://es.example:9200 capture.pcap
  v6sentry replay --format ecs -o alerts.jsonl capture.pcap
  v6sentry ship --es https://es.example:9200 alerts.jsonl
  v6sentry ship --es https://es.example:9200 --resend

Alerts are indexed as ECS documents into {ALERT_INDEX} (a plain index; the
index template v6sentry-alert is installed first) with the alert id as _id, so
shipping the same alerts twice leaves one copy. ship reads EVE (replay's
default) and ECS (--format ecs) JSON lines.

credentials come only from the environment ({ENV_API_KEY}, or
{ENV_USERNAME} and {ENV_PASSWORD}) or from --es-credentials FILE
(YAML: api_key, or username and password; mode 600). The CA bundle is
--es-ca FILE or {ENV_CA}. TLS certificates are always verified.

When Elasticsearch is unreachable or keeps rejecting documents, they go to the
spool directory (default {default_spool_dir()}) and are resent at the start of
every run, while a run goes on once the node is back, and by ship --resend.
So do documents a bulk reply does not confirm (no items list, fewer items than
documents, an item without a status or for another _id, a reply that is not JSON).
Documents refused for good are written to dead-letter.jsonl in the spool directory.

exit codes (ship): 0 all delivered, 1 some spooled or refused, 2 usage, input or
configuration error.
"""


class SetupError(Exception):
    """Options that cannot work (bad URL, credentials file, spool directory)."""


def _es_options(parser: argparse.ArgumentParser, replay: bool) -> None:
    group = parser.add_argument_group("Elasticsearch")
    if replay:
        group.add_argument(
            "--es",
            metavar="URL",
            help="also index the alerts into Elasticsearch at URL (http(s)://HOST:PORT)",
        )
    else:
        group.add_argument(
            "--es", metavar="URL", default=DEFAULT_URL, help=f"default {DEFAULT_URL}"
        )
    group.add_argument(
        "--es-index", metavar="INDEX", default=ALERT_INDEX, help=f"default {ALERT_INDEX}"
    )
    group.add_argument(
        "--es-credentials",
        metavar="FILE",
        help="YAML with api_key, or username and password (mode 600); default: environment",
    )
    group.add_argument("--es-ca", metavar="FILE", help=f"CA bundle (default: ${ENV_CA})")
    group.add_argument(
        "--es-timeout",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="per-request timeout; bulk requests wait at most half of it for shards (default 30)",
    )
    group.add_argument(
        "--spool",
        metavar="DIR",
        type=Path,
        help=f"spool for undelivered alerts (default {default_spool_dir()})",
    )
    group.add_argument(
        "--spool-max-mb",
        metavar="MB",
        type=int,
        default=DEFAULT_MAX_BYTES // (1024 * 1024),
        help="bound of the spool; a run that would pass it stops with an error (default 1024)",
    )
    group.add_argument(
        "--progress",
        action="store_true",
        help="progress on stderr even when it is not a terminal",
    )


def add_replay_arguments(replay: argparse.ArgumentParser) -> None:
    """``replay --es URL`` and its companions."""
    _es_options(replay, replay=True)


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    ship = sub.add_parser(
        "ship",
        help="index alert files (EVE or ECS JSON lines) into Elasticsearch",
        description="Bulk-index alerts written by `v6sentry replay` into Elasticsearch, "
        "exactly once, spooling what cannot be delivered.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ship.add_argument(
        "files", nargs="*", metavar="ALERTS", help="JSON-lines alert file (.gz too), or -"
    )
    ship.add_argument(
        "--resend", action="store_true", help="resend the spool (the only action without ALERTS)"
    )
    ship.add_argument(
        "--sensor-name",
        metavar="NAME",
        help="observer.name for alerts that carry no sensor name (EVE host, ECS observer.name)",
    )
    ship.add_argument(
        "--batch-size", metavar="N", type=int, default=500, help="documents per bulk request"
    )
    ship.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    _es_options(ship, replay=False)


def _fail(message: str) -> int:
    print(f"v6sentry: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _warn(message: str) -> None:
    print(f"v6sentry: warning: {message}", file=sys.stderr)


def _shipper(args: argparse.Namespace, total: int | None, label: str, force_tty: bool) -> Shipper:
    from detectors.ship.shipper import Shipper  # the Elasticsearch client, only to ship

    if args.es_timeout <= 0:
        raise SetupError("--es-timeout must be positive")
    if args.spool_max_mb <= 0:
        raise SetupError("--spool-max-mb must be positive")
    try:
        conn = make_connection(args.es, args.es_credentials, args.es_ca, None, args.es_timeout)
    except ConfigError as exc:
        raise SetupError(str(exc)) from None
    if conn.source != "none" and urlsplit(conn.url).scheme == "http":
        _warn(f"sending credentials over plain http to {conn.url}; use https")
    try:
        spool = Spool(args.spool or default_spool_dir(), max_bytes=args.spool_max_mb * 1024 * 1024)
    except OSError as exc:
        raise SetupError(f"{args.spool or default_spool_dir()}: cannot use spool: {exc}") from None
    show = args.progress or (force_tty and sys.stderr.isatty())
    return Shipper(
        conn.client(),
        args.es_index,
        spool,
        batch_docs=getattr(args, "batch_size", 500),
        bulk_timeout=f"{max(args.es_timeout / 2, 0.5):g}s",
        progress=Progress(sys.stderr, total, label) if show else None,
        warn=_warn,
    )


def _summary(label: str, shipper: Shipper, total: int, seconds: float) -> list[str]:
    c = shipper.counts
    rate = (c.indexed + c.duplicates) / seconds if seconds > 0 else 0.0
    target = f"{total} documents to {shipper.index}" if total else "spool resend"
    lines = [f"v6sentry: {label}: {target}: {c.line()} in {seconds:.2f} s ({rate:,.0f} docs/s)"]
    waiting = shipper.spool.pending()
    if waiting:
        lines.append(
            f"v6sentry: {label}: {waiting} documents wait in the spool {shipper.spool.directory}; "
            "the next run or `v6sentry ship --resend` sends them"
        )
    if c.failed:
        lines.append(
            f"v6sentry: {label}: {c.failed} documents refused, see {shipper.spool.dead_letter_path}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """``v6sentry ship``."""
    if not args.files and not args.resend:
        return _fail("ship: give alert files, or --resend to resend the spool (see --help)")
    if args.batch_size < 1:
        return _fail("--batch-size must be at least 1")
    if args.files.count("-") > 1:
        return _fail("standard input ('-') can be read only once")
    try:
        known = titles()
    except SpecError as exc:
        return _fail(f"detection spec: {exc}")
    # Every file is read and checked before anything is sent: a bad line stops the run
    # with nothing half-shipped, and the count gives the progress bar its total.
    documents: list[tuple[str, list[Document] | None]] = []
    total = 0
    try:
        for path in args.files:
            if path == "-":  # standard input can be read once: keep it
                docs = list(read_documents(path, known, args.sensor_name))
                documents.append((path, docs))
                total += len(docs)
            else:
                total += sum(1 for _ in read_documents(path, known, args.sensor_name))
                documents.append((path, None))
    except InputError as exc:
        return _fail(str(exc))
    try:
        shipper = _shipper(args, total, "ship", force_tty=True)
    except SetupError as exc:
        return _fail(str(exc))
    started = time.perf_counter()
    try:
        shipper.start()
        for path, kept in documents:
            stream = kept if kept is not None else read_documents(path, known, args.sensor_name)
            for doc in stream:
                shipper.add(doc)
        shipper.close()
    except (ShipError, InputError) as exc:
        return _fail(str(exc))
    if not args.quiet:
        for line in _summary("ship", shipper, total, time.perf_counter() - started):
            print(line, file=sys.stderr)
    c = shipper.counts
    return EXIT_UNDELIVERED if c.failed or shipper.spool.pending() else EXIT_OK


_ALERT_PREFIX, _EVENT_PREFIX = ALERT_PATTERN[:-1], EVENT_PATTERN[:-1]  # without the *


class ReplayShipping:
    """``replay --es``: every alert the engine raises is also shipped."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.shipper = _shipper(args, None, "es", force_tty=False)
        self.started = time.perf_counter()
        self.total = 0
        self.finished = False
        self.shipper.start()

    @classmethod
    def open(cls, args: argparse.Namespace) -> ReplayShipping | None:
        """None without ``--es``; SetupError or ShipError when it cannot work."""
        return cls(args) if args.es else None

    def add(self, alert: Alert, host: str | None) -> None:
        self.total += 1
        self.shipper.add(Document(alert.id, alert.to_ecs(host)))

    def add_observation(self, obs: Observation, host: str | None) -> None:
        """Sub-threshold observations go to the event index, for ``v6sentry hunt``."""
        self.total += 1
        doc = obs.to_ecs(host)
        self.shipper.add(Document(doc["event"]["id"], doc), self.event_index)

    @property
    def event_index(self) -> str:
        """The alert index's sibling: logs-v6sentry.alert-NS -> logs-v6sentry.event-NS."""
        index = self.shipper.index
        if index.startswith(_ALERT_PREFIX):
            return _EVENT_PREFIX + index[len(_ALERT_PREFIX) :]
        return EVENT_INDEX

    def end_line(self) -> None:
        """Before other stderr lines: end the progress line, if one is drawn."""
        if self.shipper.progress is not None and self.shipper.progress.tty:
            sys.stderr.write("\n")

    def finish(self, quiet: bool) -> None:
        """Send the rest and print the shipping summary (ShipError if it cannot)."""
        self.finished = True
        self.shipper.close()
        if not quiet:
            seconds = time.perf_counter() - self.started
            for line in _summary("es", self.shipper, self.total, seconds):
                print(line, file=sys.stderr)

    def abandon(self) -> None:
        """The replay stopped early (broken pipe, bad capture): still send or spool
        the alerts it wrote, since they were printed and must not be missing."""
        if self.finished:
            return
        self.finished = True
        try:
            self.shipper.close()
        except ShipError as exc:
            print(f"v6sentry: error: {exc}", file=sys.stderr)
