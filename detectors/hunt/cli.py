"""``v6sentry hunt``: run the stored rules and the cross-sensor sweep hunt, report hits.

Owns the ``hunt`` sub-command's arguments, its table and JSON output, and its exit
codes: 0 the hunt ran (with or without hits), 1 hits were found and ``--fail-on-hits``
is set, 2 usage, connection or input error (one line on stderr). A hit is a document
a Lucene rule matched, a row an ES|QL rule returned, or a flagged cross-sensor source.
Rules the server cannot run (ES|QL on a server without it) are listed as skipped and
never change the exit code. What is asked of the cluster lives in
``detectors.hunt.search``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from detectors.detections import discover
from detectors.engine import known_signatures, known_thresholds
from detectors.es import RULES_INDEX
from detectors.es.connect import ConfigError, add_connection_arguments, client_from_args
from detectors.policy import PolicyError, empty_policy, load_policy
from detectors.spec import SpecError

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

# The Elasticsearch client (and ``search``, which needs it) is imported when `hunt` runs:
# building the command line for `replay` or `live` must not pay for it.

EXIT_OK, EXIT_HITS, EXIT_ERROR = 0, 1, 2

EPILOG = """\
examples:
  v6sentry rules push --es http://127.0.0.1:9200
  v6sentry hunt --es http://127.0.0.1:9200                  # the last window_s (300 s)
  v6sentry hunt --es URL --since now-24h --format json --fail-on-hits

Run it every few minutes with the default range (the sweep spec's window_s): a
scanner whose probes at every sensor stay below medium_targets is reported once its
combined targets reach medium_targets within one range. A longer --since adds up
everything in the range. Fan-in: a destination /64 probed from many source /64s
(random-source scans) that several sensors observed below fanin_sweep is reported
once their targets add up to medium_targets from fanin_min_sources source /64s.

exit codes: 0 ran (hits or not), 1 hits and --fail-on-hits, 2 usage, connection or
input error. Skipped rules (ES|QL on a server without it) never change the exit code.
"""


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    hunt = sub.add_parser(
        "hunt",
        help="run the stored rules and the cross-sensor sweep hunt in Elasticsearch",
        description="Run every rule stored by `v6sentry rules push` against the alert "
        "and event indices, and correlate sub-threshold sweep observations across sensors.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hunt.add_argument("--es", metavar="URL", required=True, help="Elasticsearch URL")
    add_connection_arguments(hunt)
    hunt.add_argument(
        "--rules-index", metavar="NAME", default=RULES_INDEX, help=f"default {RULES_INDEX}"
    )
    hunt.add_argument(
        "--namespace",
        metavar="NS",
        help="narrow logs-<dataset>-* index patterns to logs-<dataset>-NS",
    )
    hunt.add_argument(
        "--since",
        metavar="TIME",
        help="start of the range: ISO 8601 or date math (default now-<window_s>s)",
    )
    hunt.add_argument("--until", metavar="TIME", default="now", help="end (default now)")
    hunt.add_argument(
        "--policy", metavar="FILE", help="site policy: its ipv6.sweep thresholds apply"
    )
    hunt.add_argument(
        "--min-sensors", type=int, default=2, metavar="N", help="sensors a source needs (2)"
    )
    hunt.add_argument(
        "--max-hits", type=int, default=1000, metavar="N", help="ids listed per rule (1000)"
    )
    hunt.add_argument("--format", choices=("table", "json"), default="table")
    hunt.add_argument("--fail-on-hits", action="store_true", help="exit 1 when anything hit")


def _fail(message: str) -> int:
    print(f"v6sentry: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def sweep_thresholds(policy_path: str | None) -> dict[str, float]:
    """The ipv6.sweep thresholds: spec defaults, then the policy's overrides."""
    specs, _ = discover()
    policy = (
        load_policy(policy_path, known_thresholds(specs), known_signatures(specs))
        if policy_path
        else empty_policy()
    )
    det = specs["sweep"].detections["ipv6.sweep"]
    overrides = policy.thresholds.get("ipv6.sweep", {})
    return {n: float(overrides.get(n, t.default)) for n, t in det.thresholds.items()}


def hunt(client: Elasticsearch, args: argparse.Namespace) -> dict[str, Any]:
    from detectors.hunt.search import Range, cross_sensor, esql_support, load_rules, run_rule

    """The whole hunt as one JSON-safe report."""
    th = sweep_thresholds(args.policy)
    when = Range(args.since or f"now-{int(th['window_s'])}s", args.until)
    esql = esql_support(client)
    rules = [
        run_rule(client, r, when, args.namespace, esql, args.max_hits)
        for r in load_rules(client, args.rules_index)
    ]
    sources = cross_sensor(
        client,
        when,
        min_sensors=args.min_sensors,
        min_targets=th["medium_targets"],
        min_no_reply=th["min_no_reply_ratio"],
        namespace=args.namespace,
    )
    report: dict[str, Any] = {
        "range": {"since": when.since, "until": when.until},
        "esql": {"supported": esql[0], "reason": esql[1]},
        "rules": [asdict(r) for r in rules],
        "cross_sensor": {
            "thresholds": {
                "min_sensors": args.min_sensors,
                "medium_targets": th["medium_targets"],
                "min_no_reply_ratio": th["min_no_reply_ratio"],
            },
            "sources": [asdict(s) for s in sources],
        },
        "totals": {
            "rules": len(rules),
            "rules_hit": sum(1 for r in rules if r.hits),
            "hits": sum(r.hits for r in rules),
            "skipped": sum(1 for r in rules if r.status == "skipped"),
            "errors": sum(1 for r in rules if r.status == "error"),
            "cross_sensor_flagged": sum(1 for s in sources if s.flagged),
        },
    }
    add_fanin(report, client, args, th, when)
    # DNS backscatter originators across sensors (issue 15).
    from detectors.hunt.search import backscatter_originators

    originators = backscatter_originators(
        client, when, min_sensors=args.min_sensors, namespace=args.namespace
    )
    report["backscatter"] = {
        "thresholds": {"min_sensors": args.min_sensors},
        "originators": [asdict(o) for o in originators],
    }
    report["totals"]["backscatter_flagged"] = sum(1 for o in originators if o.flagged)
    return report


def table(report: dict[str, Any]) -> str:
    rows = [("RULE", "LANG", "INDEX", "HITS", "STATUS")]
    for r in report["rules"]:
        status = r["status"] + (f": {r['reason']}" if r["reason"] else "")
        rows.append((r["name"], r["language"], r["index"], str(r["hits"]), status))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in rows
    ]
    cs = report["cross_sensor"]
    t = cs["thresholds"]
    lines.append("")
    lines.append(
        f"cross-sensor sweeps (>= {t['min_sensors']} sensors, combined targets >= "
        f"{t['medium_targets']:g}, no-reply >= {t['min_no_reply_ratio']:g}, no ipv6.sweep alert):"
    )
    if not cs["sources"]:
        lines.append("  none")
    for s in cs["sources"]:
        verdict = "FLAGGED" if s["flagged"] else "below threshold"
        if s["alerted_by"]:
            verdict = f"alerted by {', '.join(s['alerted_by'])}"
        lines.append(
            f"  {s['source_prefix']} ({', '.join(s['addresses']) or 'several addresses'}): "
            f"{len(s['sensors'])} sensors ({', '.join(s['sensors'])}), "
            f"{s['combined_targets']} targets in {s['destination_prefixes']} /64s: {verdict}"
        )
    lines += fanin_table(report)
    tot = report["totals"]
    lines.append("")
    lines.append(
        f"{tot['rules']} rules, {tot['rules_hit']} hit ({tot['hits']} hits), "
        f"{tot['skipped']} skipped, {tot['errors']} errors; "
        f"{tot['cross_sensor_flagged']} cross-sensor sources flagged; "
        f"range {report['range']['since']} .. {report['range']['until']}"
    )
    bs = report.get("backscatter", {"originators": [], "thresholds": {"min_sensors": 0}})
    lines.append("")
    lines.append(
        f"DNS backscatter originators (>= {bs['thresholds']['min_sensors']} sensors, "
        "no ipv6.dns_backscatter alert):"
    )
    if not bs["originators"]:
        lines.append("  none")
    for o in bs["originators"]:
        verdict = f"alerted by {', '.join(o['alerted_by'])}" if o["alerted_by"] else "FLAGGED"
        lines.append(
            f"  {o['originator']} ({', '.join(o['names']) or 'no name'}; "
            f"{', '.join(o['classes'])}): {len(o['sensors'])} sensors "
            f"({', '.join(o['sensors'])}), up to {o['max_queriers']} queriers: {verdict}"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from elasticsearch import ApiError, TransportError

    if args.min_sensors < 1 or args.max_hits < 0:
        return _fail("--min-sensors must be at least 1 and --max-hits at least 0")
    try:
        client = client_from_args(args)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        if not client.indices.exists(index=args.rules_index):
            return _fail(f"{args.rules_index}: no rules index (run `v6sentry rules push` first)")
        started = time.perf_counter()
        report = hunt(client, args)
        seconds = time.perf_counter() - started
    except (PolicyError, SpecError) as exc:
        return _fail(str(exc))
    except (ApiError, TransportError) as exc:
        return _fail(f"{args.es}: {exc}")
    finally:
        client.close()
    if args.format == "json":
        json.dump(report, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(table(report))
    print(f"v6sentry: hunt ran in {seconds:.2f} s", file=sys.stderr)
    errors = report["totals"]["errors"]
    if errors:
        print(f"v6sentry: warning: {errors} rules failed to run (see the report)", file=sys.stderr)
    hit = (
        report["totals"]["hits"]
        or report["totals"]["cross_sensor_flagged"]
        or report["totals"]["fanin_flagged"]
        or report["totals"]["backscatter_flagged"]
    )
    return EXIT_HITS if hit and args.fail_on_hits else EXIT_OK


# -- fan-in sweeps across sensors (issue 15) ---------------------------------------------


def add_fanin(
    report: dict[str, Any],
    client: Elasticsearch,
    args: argparse.Namespace,
    th: dict[str, float],
    when: Any,
) -> None:
    """The cross-sensor fan-in hunt (``search.cross_sensor_fanin``) into ``report``."""
    from detectors.hunt.search import cross_sensor_fanin

    targets = cross_sensor_fanin(
        client,
        when,
        min_sensors=args.min_sensors,
        min_targets=th["medium_targets"],
        min_sources=th["fanin_min_sources"],
        min_no_reply=th["min_no_reply_ratio"],
        namespace=args.namespace,
    )
    report["fanin"] = {
        "thresholds": {
            "min_sensors": args.min_sensors,
            "medium_targets": th["medium_targets"],
            "fanin_min_sources": th["fanin_min_sources"],
            "min_no_reply_ratio": th["min_no_reply_ratio"],
        },
        "targets": [asdict(t) for t in targets],
    }
    report["totals"]["fanin_flagged"] = sum(1 for t in targets if t.flagged)


def fanin_table(report: dict[str, Any]) -> list[str]:
    fan = report["fanin"]
    t = fan["thresholds"]
    lines = [
        "",
        f"cross-sensor fan-in sweeps (>= {t['min_sensors']} sensors, summed targets >= "
        f"{t['medium_targets']:g} from >= {t['fanin_min_sources']:g} source /64s, no-reply "
        f">= {t['min_no_reply_ratio']:g}, no ipv6.sweep alert):",
    ]
    if not fan["targets"]:
        lines.append("  none")
    for f in fan["targets"]:
        verdict = "FLAGGED" if f["flagged"] else "below threshold"
        if f["alerted_by"]:
            verdict = f"alerted by {', '.join(f['alerted_by'])}"
        lines.append(
            f"  {f['destination_prefix']}: {len(f['sensors'])} sensors "
            f"({', '.join(f['sensors'])}), {f['summed_targets']} targets from "
            f"{f['summed_source_prefixes']} source /64s: {verdict}"
        )
    return lines
