"""Running the stored rules, and the cross-sensor correlations, in Elasticsearch.

Owns what a hunt asks the cluster and what it reports:

- every rule in the rules index (``v6sentry rules push``): Lucene rules as ``query_string``
  searches on their index pattern over the time range, returning the rule's ``fields``
  and the document ids; ES|QL rules through ``POST /_query`` when the server has ES|QL,
  otherwise reported as skipped with the reason. Support is probed at run time with
  ``ROW x = 1`` (a minimal or ES|QL-less node answers 405), never from ``GET /``.
- the cross-sensor fan-in sweeps (``cross_sensor_fanin``): fan-in observations grouped by
  destination /64, flagged when sensors together pass the fan-in thresholds and none
  raised ``ipv6.sweep`` for that /64;
- the cross-sensor DNS backscatter originators (``backscatter_originators``): benign-class
  backscatter observations grouped by originator, flagged when several sensors saw one
  and none raised ``ipv6.dns_backscatter`` for it;
- the cross-sensor sweep: observations (``event.dataset: v6sentry.observation``) grouped
  by source /64 with terms and cardinality aggregations (sensors, destination /64s,
  source addresses) and, per destination /64, the largest estimate any sensor made (two
  sensors on one path see the same targets: they are not added twice). A source is
  reported when at least ``min_sensors`` sensors saw it, its combined targets reach the
  sweep spec's ``medium_targets`` and no sensor raised ``ipv6.sweep`` for it in the range.

Index patterns of the form ``logs-<dataset>-*`` can be narrowed to one namespace
(``logs-<dataset>-<namespace>``). Does not store rules (``detectors.rules.push``) or
format output (``detectors.hunt.cli``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from detectors.es import ALERT_PATTERN, EVENT_PATTERN, RULES_INDEX

MAX_SOURCES = 10000  # source /64s one correlation looks at
MAX_DEST_PREFIXES = 1000  # destination /64s per source whose estimates are combined
MAX_NAMED = 100  # sensors and addresses listed per source
_NAMESPACED = re.compile(r"\b(logs-[A-Za-z0-9_.]+)-\*")


@dataclass(frozen=True, slots=True)
class Range:
    """The hunt's time range: Elasticsearch date math or ISO 8601 on ``@timestamp``."""

    since: str
    until: str = "now"

    def filter(self) -> dict[str, Any]:
        return {"range": {"@timestamp": {"gte": self.since, "lte": self.until}}}


@dataclass(slots=True)
class RuleResult:
    rule_id: str
    name: str
    title: str
    level: str
    language: str
    index: str
    sid: int | None
    category: str | None
    status: str  # ok, no-index, skipped, error
    reason: str = ""
    hits: int = 0
    ids: list[str] = field(default_factory=list)  # event.id (the alert id) of each hit
    sample: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class CrossSensor:
    source_prefix: str
    addresses: list[str]
    sensors: list[str]
    combined_targets: int  # per destination /64 the largest estimate, summed
    summed_targets: int  # every sensor's estimates added (sensors on one path double count)
    destination_prefixes: int
    observations: int
    min_no_reply_ratio: float
    first_seen: float
    last_seen: float
    alerted_by: list[str]
    flagged: bool


def namespaced(pattern: str, namespace: str | None) -> str:
    """``logs-x.y-*`` -> ``logs-x.y-<namespace>``; anything else unchanged."""
    if not namespace:
        return pattern
    return _NAMESPACED.sub(lambda m: f"{m.group(1)}-{namespace}", pattern)


def esql_support(client: Elasticsearch) -> tuple[bool, str]:
    """Whether the server runs ES|QL, and why not. Connection errors propagate."""
    try:
        client.esql.query(query="ROW x = 1")
    except ApiError as exc:
        status = exc.meta.status
        why = {405: "the server has no ES|QL (POST /_query answered 405)"}
        return False, why.get(status, f"POST /_query answered {status}: {exc.message}")
    return True, ""


def load_rules(client: Elasticsearch, index: str = RULES_INDEX) -> list[dict[str, Any]]:
    """Every stored rule, in name order."""
    resp = client.search(index=index, query={"match_all": {}}, size=10000, sort=[{"name": "asc"}])
    return [h["_source"] for h in resp["hits"]["hits"]]


def _get(doc: dict[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def run_rule(
    client: Elasticsearch,
    rule: dict[str, Any],
    when: Range,
    namespace: str | None,
    esql: tuple[bool, str],
    max_hits: int,
) -> RuleResult:
    v6 = rule.get("v6sentry", {})
    index = namespaced(str(rule["index"]), namespace)
    result = RuleResult(
        rule_id=str(rule["rule_id"]),
        name=str(rule["name"]),
        title=str(rule["title"]),
        level=str(rule.get("level", "")),
        language=str(rule["language"]),
        index=index,
        sid=v6.get("sid"),
        category=v6.get("category"),
        status="ok",
    )
    try:
        if rule["language"] == "esql":
            if not esql[0]:
                result.status, result.reason = "skipped", esql[1]
                return result
            query = namespaced(str(rule["query"]), namespace)
            resp = client.esql.query(query=query, filter=when.filter())
            result.hits = len(resp.get("values", []))
            return result
        fields = [str(f) for f in rule.get("fields", [])]
        resp = client.search(
            index=index,
            query={
                "bool": {
                    "must": [{"query_string": {"query": str(rule["query"])}}],
                    "filter": [when.filter()],
                }
            },
            source_includes=sorted({"@timestamp", "event.id", *fields}),
            size=max_hits,
            track_total_hits=True,
            ignore_unavailable=True,
            allow_no_indices=True,
        )
    except ApiError as exc:
        result.status, result.reason = "error", f"{exc.meta.status}: {exc.message}"
        return result
    if resp["_shards"]["total"] == 0:
        result.status, result.reason = "no-index", f"no index matches {index}"
        return result
    result.hits = int(resp["hits"]["total"]["value"])
    hits = sorted(
        resp["hits"]["hits"], key=lambda h: (str(_get(h["_source"], "@timestamp")), h["_id"])
    )
    result.ids = [str(_get(h["_source"], "event.id") or h["_id"]) for h in hits]
    result.sample = [
        {f: _get(h["_source"], f) for f in fields if _get(h["_source"], f) is not None}
        for h in hits[:10]
    ]
    return result


def cross_sensor(
    client: Elasticsearch,
    when: Range,
    *,
    min_sensors: int,
    min_targets: float,
    min_no_reply: float,
    namespace: str | None = None,
) -> list[CrossSensor]:
    """Sources seen by several sensors (see the module docstring); flagged or not."""
    events = namespaced(EVENT_PATTERN, namespace)
    obs = "v6sentry.observation"
    resp = client.search(
        index=events,
        size=0,
        ignore_unavailable=True,
        allow_no_indices=True,
        query={
            "bool": {
                "filter": [
                    when.filter(),
                    {"term": {"event.dataset": "v6sentry.observation"}},
                    {"term": {f"{obs}.kind": "sweep"}},
                    # Answered probing (a server's clients, a client's servers) is no sweep.
                    {"range": {f"{obs}.no_reply_ratio": {"gte": min_no_reply}}},
                ]
            }
        },
        aggs={
            "sources": {
                "terms": {
                    "field": f"{obs}.source_prefix",
                    "size": MAX_SOURCES,
                    "min_doc_count": min_sensors,
                    "order": {"_key": "asc"},
                },
                "aggs": {
                    "sensor_count": {"cardinality": {"field": "observer.name"}},
                    "sensors": {"terms": {"field": "observer.name", "size": MAX_NAMED}},
                    "addresses": {"terms": {"field": "source.ip", "size": MAX_NAMED}},
                    "prefix_count": {"cardinality": {"field": f"{obs}.destination_prefix"}},
                    "summed": {"sum": {"field": f"{obs}.estimated_targets"}},
                    "ratio": {"min": {"field": f"{obs}.no_reply_ratio"}},
                    "first": {"min": {"field": f"{obs}.window.start"}},
                    "last": {"max": {"field": f"{obs}.window.end"}},
                    "prefixes": {
                        "terms": {
                            "field": f"{obs}.destination_prefix",
                            "size": MAX_DEST_PREFIXES,
                        },
                        "aggs": {"targets": {"max": {"field": f"{obs}.estimated_targets"}}},
                    },
                },
            }
        },
    )
    buckets = resp.get("aggregations", {}).get("sources", {}).get("buckets", [])
    candidates = [b for b in buckets if b["sensor_count"]["value"] >= min_sensors]
    keys = [b["key"] for b in candidates]
    alerted = _alerted_sensors(
        client, when, "ipv6.sweep", "v6sentry.source.prefix", keys, namespace
    )
    out = []
    for b in candidates:
        combined = sum(int(p["targets"]["value"] or 0) for p in b["prefixes"]["buckets"])
        by = alerted.get(b["key"], [])
        out.append(
            CrossSensor(
                source_prefix=b["key"],
                addresses=sorted(a["key"] for a in b["addresses"]["buckets"]),
                sensors=sorted(s["key"] for s in b["sensors"]["buckets"]),
                combined_targets=combined,
                summed_targets=int(b["summed"]["value"] or 0),
                destination_prefixes=int(b["prefix_count"]["value"]),
                observations=int(b["doc_count"]),
                min_no_reply_ratio=float(b["ratio"]["value"] or 0.0),
                first_seen=float(b["first"]["value"] or 0.0),
                last_seen=float(b["last"]["value"] or 0.0),
                alerted_by=by,
                flagged=combined >= min_targets and not by,
            )
        )
    return out


def _alerted_sensors(
    client: Elasticsearch,
    when: Range,
    category: str,
    field_name: str,
    keys: list[str],
    namespace: str | None,
) -> dict[str, list[str]]:
    """Key -> the sensors that raised ``category`` with ``field_name`` equal to that key in
    the range: what makes a cross-sensor candidate "alerted", not flagged. One query for
    the sweep sources (``v6sentry.source.prefix``), the fan-in destinations
    (``v6sentry.target_prefix``) and the backscatter originators."""
    if not keys:
        return {}
    resp = client.search(
        index=namespaced(ALERT_PATTERN, namespace),
        size=0,
        ignore_unavailable=True,
        allow_no_indices=True,
        query={
            "bool": {
                "filter": [
                    when.filter(),
                    {"term": {"rule.category": category}},
                    {"terms": {field_name: keys}},
                ]
            }
        },
        aggs={
            "keys": {
                "terms": {"field": field_name, "size": len(keys)},
                "aggs": {"sensors": {"terms": {"field": "observer.name", "size": MAX_NAMED}}},
            }
        },
    )
    buckets = resp.get("aggregations", {}).get("keys", {}).get("buckets", [])
    return {b["key"]: sorted(s["key"] for s in b["sensors"]["buckets"]) for b in buckets}


# -- fan-in sweeps across sensors (issue 15) ---------------------------------------------


@dataclass(slots=True)
class CrossSensorFanIn:
    """One destination /64 that several sensors saw probed from many source /64s."""

    destination_prefix: str
    sensors: list[str]
    summed_targets: int  # every sensor's estimates added (sensors on one path double count)
    max_targets: int  # the largest estimate one observation made
    summed_source_prefixes: int
    sampled_sources: list[str]
    observations: int
    min_no_reply_ratio: float
    first_seen: float
    last_seen: float
    alerted_by: list[str]
    flagged: bool


def cross_sensor_fanin(
    client: Elasticsearch,
    when: Range,
    *,
    min_sensors: int,
    min_targets: float,
    min_sources: float,
    min_no_reply: float,
    namespace: str | None = None,
) -> list[CrossSensorFanIn]:
    """Fan-in observations (``kind: fanin``: one closed destination /64 window with at
    least half ``fanin_min_sources`` source /64s, and at least two, at one sensor)
    grouped by destination /64. A /64 is flagged when at least ``min_sensors`` sensors
    observed it, their targets add up to ``min_targets``
    and their source /64s to ``min_sources``, and no sensor raised ``ipv6.sweep`` for
    that /64 (``v6sentry.target_prefix``) in the range. Sensors on disjoint paths (a
    multihomed site) see disjoint parts of a distributed scan, so the estimates are
    added; ``max_targets`` is the single largest, for sensors on one path."""
    obs = "v6sentry.observation"
    resp = client.search(
        index=namespaced(EVENT_PATTERN, namespace),
        size=0,
        ignore_unavailable=True,
        allow_no_indices=True,
        query={
            "bool": {
                "filter": [
                    when.filter(),
                    {"term": {"event.dataset": "v6sentry.observation"}},
                    {"term": {f"{obs}.kind": "fanin"}},
                    {"range": {f"{obs}.no_reply_ratio": {"gte": min_no_reply}}},
                ]
            }
        },
        aggs={
            "targets": {
                "terms": {
                    "field": f"{obs}.destination_prefix",
                    "size": MAX_SOURCES,
                    "min_doc_count": min_sensors,
                    "order": {"_key": "asc"},
                },
                "aggs": {
                    "sensor_count": {"cardinality": {"field": "observer.name"}},
                    "sensors": {"terms": {"field": "observer.name", "size": MAX_NAMED}},
                    "summed": {"sum": {"field": f"{obs}.estimated_targets"}},
                    "largest": {"max": {"field": f"{obs}.estimated_targets"}},
                    "sources": {"sum": {"field": f"{obs}.source_prefixes"}},
                    "sampled": {"terms": {"field": f"{obs}.sampled_sources", "size": 10}},
                    "ratio": {"min": {"field": f"{obs}.no_reply_ratio"}},
                    "first": {"min": {"field": f"{obs}.window.start"}},
                    "last": {"max": {"field": f"{obs}.window.end"}},
                },
            }
        },
    )
    buckets = resp.get("aggregations", {}).get("targets", {}).get("buckets", [])
    candidates = [b for b in buckets if b["sensor_count"]["value"] >= min_sensors]
    keys = [b["key"] for b in candidates]
    alerted = _alerted_sensors(
        client, when, "ipv6.sweep", "v6sentry.target_prefix", keys, namespace
    )
    out = []
    for b in candidates:
        summed = int(b["summed"]["value"] or 0)
        sources = int(b["sources"]["value"] or 0)
        by = alerted.get(b["key"], [])
        out.append(
            CrossSensorFanIn(
                destination_prefix=b["key"],
                sensors=sorted(s["key"] for s in b["sensors"]["buckets"]),
                summed_targets=summed,
                max_targets=int(b["largest"]["value"] or 0),
                summed_source_prefixes=sources,
                sampled_sources=sorted(s["key"] for s in b["sampled"]["buckets"]),
                observations=int(b["doc_count"]),
                min_no_reply_ratio=float(b["ratio"]["value"] or 0.0),
                first_seen=float(b["first"]["value"] or 0.0),
                last_seen=float(b["last"]["value"] or 0.0),
                alerted_by=by,
                flagged=summed >= min_targets and sources >= min_sources and not by,
            )
        )
    return out


# -- DNS backscatter originators across sensors (issue 15) ------------------------------


@dataclass(slots=True)
class BackscatterOriginator:
    """One originator in ``ipv6.dns_backscatter`` observations (the benign-looking classes:
    content provider, well-known service, router interface) of several sensors."""

    originator: str
    names: list[str]
    classes: list[str]
    sensors: list[str]
    max_queriers: int
    observations: int
    first_seen: float
    last_seen: float
    alerted_by: list[str]
    flagged: bool


def backscatter_originators(
    client: Elasticsearch,
    when: Range,
    *,
    min_sensors: int,
    namespace: str | None = None,
) -> list[BackscatterOriginator]:
    """Originators whose backscatter observations come from at least ``min_sensors``
    sensors; flagged when no sensor raised ``ipv6.dns_backscatter`` for them in the range.

    Each sensor saw many resolvers look the address up and named it benign from its PTR
    name; the same address reverse-resolved at the authoritative servers of several sites
    is one originator touching them all, whatever its name says."""
    obs = "v6sentry.observation"
    resp = client.search(
        index=namespaced(EVENT_PATTERN, namespace),
        size=0,
        ignore_unavailable=True,
        allow_no_indices=True,
        query={
            "bool": {
                "filter": [
                    when.filter(),
                    {"term": {"event.dataset": "v6sentry.observation"}},
                    {"term": {f"{obs}.kind": "dns_backscatter"}},
                ]
            }
        },
        aggs={
            "originators": {
                "terms": {
                    "field": f"{obs}.originator",
                    "size": MAX_SOURCES,
                    "min_doc_count": min_sensors,
                    "order": {"_key": "asc"},
                },
                "aggs": {
                    "sensor_count": {"cardinality": {"field": "observer.name"}},
                    "sensors": {"terms": {"field": "observer.name", "size": MAX_NAMED}},
                    "names": {"terms": {"field": f"{obs}.name", "size": MAX_NAMED}},
                    "classes": {"terms": {"field": f"{obs}.class", "size": 10}},
                    "queriers": {"max": {"field": f"{obs}.queriers"}},
                    "first": {"min": {"field": f"{obs}.window.start"}},
                    "last": {"max": {"field": "@timestamp"}},
                },
            }
        },
    )
    buckets = resp.get("aggregations", {}).get("originators", {}).get("buckets", [])
    candidates = [b for b in buckets if b["sensor_count"]["value"] >= min_sensors]
    keys = [b["key"] for b in candidates]
    alerted = _alerted_sensors(
        client, when, "ipv6.dns_backscatter", "v6sentry.originator.address", keys, namespace
    )
    out = []
    for b in candidates:
        by = alerted.get(b["key"], [])
        last = b["last"].get("value_as_string") or b["last"]["value"]
        out.append(
            BackscatterOriginator(
                originator=b["key"],
                names=sorted(n["key"] for n in b["names"]["buckets"]),
                classes=sorted(c["key"] for c in b["classes"]["buckets"]),
                sensors=sorted(s["key"] for s in b["sensors"]["buckets"]),
                max_queriers=int(b["queriers"]["value"] or 0),
                observations=int(b["doc_count"]),
                first_seen=float(b["first"]["value"] or 0.0),
                last_seen=float(b["last"]["value"] or 0.0) / 1000.0 if last else 0.0,
                alerted_by=by,
                flagged=not by,
            )
        )
    return out
