"""Hunting in a real Elasticsearch node: rules push, hunt, cross-sensor sweeps.

Covers: the sweep family's observations (one per closed window with enough targets,
never per packet, capped per window with a counted overflow, none without a listener);
``rules push`` (one document per converted rule, idempotent, stale rules deleted) and
its Kibana NDJSON (import fields, the pipeline's index, ATT&CK pairing, valid ES|QL);
ES|QL detected as absent on the minimal node and its rule skipped; the round trip
(every regression capture's ECS alerts indexed, every Sigma rule over v6sentry alerts
finds exactly the alerts of its signature); three sensors each below the sweep
threshold found together; answered multi-sensor traffic and an already alerted source
not flagged; the exit codes; a fan-in scan below threshold at three sensors found by
destination /64, and no longer once a sensor alerted on it. Each test uses its own
index names and deletes them.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import struct
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from elasticsearch import Elasticsearch, helpers

from detectors.cli import main
from detectors.engine import Engine
from detectors.es.observations import Observation
from detectors.es.template import install_template
from detectors.hunt.search import esql_support
from detectors.policy import load_policy
from detectors.rules.cli import read_pack
from detectors.rules.push import kibana_ndjson, push, rule_documents
from detectors.rules.render import REPO
from pcaps.generate import R1_MAC, a6, at, eth, ip6, udp6
from tests.es_node import EsNode
from tests.golden import PCAPS, golden_path, manifest
from tests.test_cli import v6sentry

UPSTREAM = b"\x02\0\0\0\xff\x01"
SINCE, UNTIL = "2000-01-01T00:00:00Z", "now"
SCANNER_64 = "2001:db8:bad::/64"
# The pack's size follows from the family specs (one query per Sigma rule, one v6sentry
# rule per signature), so a new family changes it without editing this file.
PACK = read_pack(REPO)
QUERIES = sum(1 for path in PACK if path.startswith("sigma/queries/"))
V6SENTRY_RULES = sum(1 for path in PACK if path.startswith("sigma/rules/v6sentry/"))


# -- observations, without Elasticsearch -----------------------------------------------


def probes(src64: str, count: int, start: float) -> Iterator[tuple[int, bytes]]:
    """``count`` unanswered UDP probes from ``src64``::1 to distinct addresses of :1::/64."""
    src = a6(src64)[:8] + struct.pack("!Q", 1)
    for i in range(count):
        dst = a6("2001:db8:1::")[:8] + struct.pack("!Q", 0x1000 + i)
        frame = eth(ip6(src, dst, 17, udp6(src, dst, 40000, 161, b"")), UPSTREAM, R1_MAC)
        yield at(start + i * 0.01), frame


def observe(
    frames: list[tuple[int, bytes]], tmp_path: Path, thresholds: dict[str, float]
) -> tuple[list[Observation], Engine]:
    doc = yaml.safe_load((PCAPS / "policy.yaml").read_text())
    doc["thresholds"] = {"ipv6.sweep": thresholds}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    seen: list[Observation] = []
    engine = Engine(load_policy(str(path)), lambda _a: None, observe=seen.append)
    engine.run((ts, 0, 1, f, len(f)) for ts, f in sorted(frames))
    engine.finish()
    return seen, engine


def test_one_observation_per_window_with_enough_targets(tmp_path: Path) -> None:
    frames = [*probes("2001:db8:a1::", 30, 0), *probes("2001:db8:a2::", 10, 0)]
    frames += list(probes("2001:db8:a1::", 20, 400))  # the next window: a second observation
    seen, engine = observe(frames, tmp_path, {"observe_min_targets": 16})
    got = [(o.kind, o.key, o.details["estimated_targets"]) for o in seen]
    assert got == [
        ("sweep", "2001:db8:a1::/64|2001:db8:1::/64", 30),
        ("sweep", "2001:db8:a1::/64|2001:db8:1::/64", 20),
    ]
    assert seen[0].source_ip == "2001:db8:a1::1" and seen[0].details["no_reply_ratio"] == 1.0
    assert seen[0].start_ns == at(0) and seen[0].end_ns == at(0.29)
    assert engine.summary()["observations"] == {"sweep": 2}
    assert engine.summary()["alerts"] == {}


def test_observations_are_capped_per_window_and_the_overflow_counted(tmp_path: Path) -> None:
    frames = [f for n in range(10) for f in probes(f"2001:db8:b{n}::", 5, n)]
    seen, engine = observe(
        frames, tmp_path, {"observe_min_targets": 5, "max_observations_per_window": 2}
    )
    assert [o.kind for o in seen] == ["sweep", "sweep", "overflow"]
    # Eight more pair windows and the fan-in window of 2001:db8:1::/64 (ten source /64s
    # probed its five addresses) are past the cap.
    assert seen[-1].details["dropped"] == 9 and seen[-1].details["cap"] == 2
    assert engine.summary()["observations"] == {"dropped": 9, "overflow": 1, "sweep": 2}


def test_no_observation_below_the_minimum_or_without_a_listener(tmp_path: Path) -> None:
    seen, _ = observe(list(probes("2001:db8:c1::", 15, 0)), tmp_path, {"observe_min_targets": 16})
    assert seen == []
    engine = Engine(load_policy(str(PCAPS / "policy.yaml")), lambda _a: None)
    engine.run((ts, 0, 1, f, len(f)) for ts, f in probes("2001:db8:c1::", 50, 0))
    engine.finish()
    assert engine.summary()["observations"] == {}


# -- helpers for the node ---------------------------------------------------------------


@pytest.fixture()
def es(es_node: EsNode) -> Iterator[tuple[Elasticsearch, str, str]]:
    """A client, a namespace and a rules index of this test; both deleted afterwards."""
    tag = uuid.uuid4().hex[:10]
    client = es_node.client()
    namespace, rules_index = f"hunt{tag}", f"v6sentry-rules-{tag}"
    try:
        yield client, namespace, rules_index
    finally:
        for pattern in (f"logs-v6sentry.*-{namespace}", rules_index):
            client.options(ignore_status=404).indices.delete(
                index=pattern, expand_wildcards="all", allow_no_indices=True
            )
        client.close()


def replay(entry: dict[str, Any], sensor: str, tmp: Path) -> tuple[list[dict[str, Any]], list[Any]]:
    """ECS alerts and observation documents of one capture, as ``replay`` writes them."""
    out, events = tmp / f"{sensor}.alerts.jsonl", tmp / f"{sensor}.events.jsonl"
    argv = ["replay", "-q", "--format", "ecs", "--sensor-name", sensor]
    argv += ["-o", str(out), "--events", str(events)]
    if entry.get("policy"):
        argv += ["--policy", str(PCAPS / entry["policy"])]
    assert main([*argv, str(PCAPS / entry["file"])]) == 0
    read = [[json.loads(line) for line in p.read_text().splitlines()] for p in (out, events)]
    return read[0], read[1]


def index_alerts(client: Elasticsearch, docs: list[dict[str, Any]], namespace: str) -> None:
    index = f"logs-v6sentry.alert-{namespace}"
    install_template(client, index)
    actions = [{"_index": index, "_id": d["event"]["id"], "_source": d} for d in docs]
    helpers.bulk(client, actions, refresh="wait_for")


def index_events(client: Elasticsearch, docs: list[dict[str, Any]], index: str) -> None:
    """Observations from ``replay --events`` files, as ``replay --es`` would index them."""
    install_template(client, index)
    actions = [{"_index": index, "_id": d["event"]["id"], "_source": d} for d in docs]
    helpers.bulk(client, actions, refresh="wait_for")


def hunt(url: str, namespace: str, rules_index: str, *extra: str) -> tuple[int, dict[str, Any]]:
    argv = ["hunt", "--es", url, "--namespace", namespace, "--rules-index", rules_index]
    argv += ["--since", SINCE, "--until", UNTIL, "--format", "json", "--max-hits", "10000"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, *extra])
    assert code != 2, err.getvalue()
    report: dict[str, Any] = json.loads(out.getvalue())
    return code, report


def entry(name: str) -> dict[str, Any]:
    (found,) = [e for e in manifest() if e.get("name", e["file"]) == name]
    return found


# -- rules push and Kibana ------------------------------------------------------------------


def test_push_is_idempotent_and_deletes_stale_rules(es: tuple[Elasticsearch, str, str]) -> None:
    client, _, rules_index = es
    docs = rule_documents(read_pack(REPO))
    queries = [p for p in read_pack(REPO) if p.startswith("sigma/queries/")]
    assert len(docs) == len(queries) == QUERIES > 0
    assert push(client, docs, rules_index) == {"indexed": QUERIES, "deleted": 0}
    assert push(client, docs, rules_index) == {"indexed": QUERIES, "deleted": 0}
    assert client.count(index=rules_index)["count"] == QUERIES
    assert push(client, docs[1:], rules_index) == {"indexed": QUERIES - 1, "deleted": 1}
    assert not client.exists(index=rules_index, id=docs[0].id)
    stored = client.get(index=rules_index, id=docs[-1].id)["_source"]
    assert stored == docs[-1].doc
    host = next(d.doc for d in docs if d.doc["name"] == "v6sentry_sweep_host_sweep")
    assert host["index"] == "logs-v6sentry.alert-*" and host["language"] == "lucene"
    assert host["v6sentry"]["sid"] == 1000401 and host["v6sentry"]["category"] == "ipv6.sweep"
    esql = next(d.doc for d in docs if d.doc["language"] == "esql")
    assert esql["index"] == "logs-zeek.connection-*" and esql["query"].startswith("from ")
    assert "zeek_sweep_unanswered_probe" in esql["sigma"]  # the referenced base rule too


def test_kibana_ndjson_uses_the_pipeline_index_and_attack_pairs() -> None:
    docs = rule_documents(read_pack(REPO))
    lines = [json.loads(line) for line in kibana_ndjson(docs).splitlines()]
    assert len(lines) == QUERIES
    problems = []
    for rule, doc in zip(lines, sorted(docs, key=lambda d: d.doc["name"]), strict=True):
        for key in ("rule_id", "name", "description", "type", "language", "query", "severity"):
            if not isinstance(rule.get(key), str) or not rule[key]:
                problems.append(f"{doc.doc['name']}: {key} missing")
        if rule["type"] == "query" and rule["index"] != [doc.doc["index"]]:
            problems.append(f"{doc.doc['name']}: index {rule['index']}")
        if rule["type"] == "esql" and (
            not rule["query"].startswith("from ") or "where from" in rule["query"]
        ):
            problems.append(f"{doc.doc['name']}: ES|QL query {rule['query'][:60]}")
        if rule["enabled"] is not False or not rule["threat"]:
            problems.append(f"{doc.doc['name']}: enabled or threat")
    assert not problems, "\n".join(problems)
    host = next(r for r in lines if r["rule_id"] == "4c482a15-a516-5793-8c5d-9d84cae988be")
    pairs = {
        (t["tactic"]["id"], s["id"])
        for t in host["threat"]
        for tech in t["technique"]
        for s in [tech, *tech["subtechnique"]]
    }
    assert pairs == {("TA0043", "T1595"), ("TA0043", "T1595.001"), ("TA0007", "T1046")}


def test_esql_is_detected_as_missing_on_the_minimal_node(es_node: EsNode) -> None:
    client = es_node.client()
    supported, reason = esql_support(client)
    client.close()
    assert not supported and "405" in reason


# -- the round trip ----------------------------------------------------------------------


def test_every_v6sentry_sigma_rule_finds_exactly_its_alerts(
    es: tuple[Elasticsearch, str, str], es_node: EsNode, tmp_path: Path
) -> None:
    client, namespace, rules_index = es
    expected: dict[int, set[str]] = defaultdict(set)
    for i, item in enumerate(manifest()):
        sensor = f"s{i}"
        alerts, _ = replay(item, sensor, tmp_path)
        index_alerts(client, alerts, namespace)
        golden = [json.loads(x) for x in golden_path(item).read_text().splitlines()]
        # The golden EVE alerts are the expectation; the ECS replay must be the same alerts.
        assert sorted(a["v6sentry"]["alert_id"] for a in golden) == sorted(
            a["event"]["id"] for a in alerts
        ), item["file"]
        for alert in golden:
            expected[alert["alert"]["signature_id"]].add(alert["v6sentry"]["alert_id"])
    assert push(client, rule_documents(read_pack(REPO)), rules_index)["indexed"] == QUERIES
    code, report = hunt(es_node.url, namespace, rules_index)
    assert code == 0  # hits, but no --fail-on-hits
    problems = []
    seen_sids = set()
    for rule in report["rules"]:
        if rule["status"] == "error":
            problems.append(f"{rule['name']}: {rule['reason']}")
        if not rule["name"].startswith("v6sentry_"):
            continue
        seen_sids.add(rule["sid"])
        want, got = expected.get(rule["sid"], set()), set(rule["ids"])
        if got != want or rule["hits"] != len(want):
            problems.append(
                f"{rule['name']} (sid {rule['sid']}): {rule['hits']} hits; "
                f"missing {sorted(want - got)[:3]}, extra {sorted(got - want)[:3]}"
            )
    assert seen_sids == {int(s) for s in expected} | seen_sids
    assert len(seen_sids) == V6SENTRY_RULES
    esql = [r for r in report["rules"] if r["language"] == "esql"]
    assert [r["status"] for r in esql] == ["skipped"] and "405" in esql[0]["reason"]
    assert not problems, "\n".join(problems)
    code, _ = hunt(es_node.url, namespace, rules_index, "--fail-on-hits")
    assert code == 1


# -- several sensors -------------------------------------------------------------------------


def test_a_scanner_below_threshold_at_three_sensors_is_found(
    es: tuple[Elasticsearch, str, str], es_node: EsNode, tmp_path: Path
) -> None:
    client, namespace, rules_index = es
    push(client, rule_documents(read_pack(REPO)), rules_index)
    # Three sensors ship to the same node as they would in production: `replay --es`.
    for name in ("a", "b", "c"):
        item = entry(f"sensor_{name}.pcap")
        argv = ["replay", "--es", es_node.url, "--es-index", f"logs-v6sentry.alert-{namespace}"]
        argv += ["--spool", str(tmp_path / f"spool-{name}"), "--sensor-name", f"sensor-{name}"]
        argv += ["--policy", str(PCAPS / item["policy"])] if item.get("policy") else []
        proc = v6sentry(*argv, str(PCAPS / item["file"]))
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout == b""  # below threshold: no alert at any sensor
        assert re.search(rb"indexed 2, duplicates 0, .*failed 0", proc.stderr), proc.stderr
    client.indices.refresh(index=f"logs-v6sentry.*-{namespace}")
    assert client.count(index=f"logs-v6sentry.event-{namespace}")["count"] == 6
    code, report = hunt(es_node.url, namespace, rules_index, "--fail-on-hits")
    sources = report["cross_sensor"]["sources"]
    assert [s["source_prefix"] for s in sources] == [SCANNER_64]
    found = sources[0]
    assert found["flagged"] and code == 1
    assert found["sensors"] == ["sensor-a", "sensor-b", "sensor-c"]
    assert found["addresses"] == ["2001:db8:bad::7"]
    assert found["combined_targets"] == 45 + 50 + 55 == found["summed_targets"]
    assert found["destination_prefixes"] == 3 and found["alerted_by"] == []
    assert report["totals"]["hits"] == 0 and report["totals"]["cross_sensor_flagged"] == 1

    # One sensor sees nothing but the first one's traffic again: the /64 is not added twice.
    _, events = replay(entry("sensor_a.pcap"), "sensor-a2", tmp_path)
    index_events(client, events, f"logs-v6sentry.event-{namespace}")
    _, report = hunt(es_node.url, namespace, rules_index)
    found = report["cross_sensor"]["sources"][0]
    assert found["combined_targets"] == 150 and found["summed_targets"] == 195
    assert len(found["sensors"]) == 4

    # Two sensors: 95 targets together stay below medium_targets (100), or above it when
    # a site policy lowers it.
    policy = tmp_path / "site.yaml"
    doc = yaml.safe_load((PCAPS / "policy.yaml").read_text())
    doc["thresholds"] = {"ipv6.sweep": {"medium_targets": 90}}
    policy.write_text(yaml.safe_dump(doc))
    ns2 = f"{namespace}x"
    try:
        for name in ("a", "b"):
            _, events = replay(entry(f"sensor_{name}.pcap"), f"sensor-{name}", tmp_path)
            index_events(client, events, f"logs-v6sentry.event-{ns2}")
        code, report = hunt(es_node.url, ns2, rules_index, "--fail-on-hits")
        assert code == 0 and [s["combined_targets"] for s in report["cross_sensor"]["sources"]]
        assert not report["cross_sensor"]["sources"][0]["flagged"]
        code, report = hunt(es_node.url, ns2, rules_index, "--policy", str(policy))
        assert report["cross_sensor"]["sources"][0]["flagged"]
    finally:
        client.options(ignore_status=404).indices.delete(index=f"logs-v6sentry.*-{ns2}")


def test_answered_traffic_and_alerted_sources_are_not_flagged(
    es: tuple[Elasticsearch, str, str], es_node: EsNode, tmp_path: Path
) -> None:
    client, namespace, rules_index = es
    push(client, rule_documents(read_pack(REPO)), rules_index)
    benign = ("benign_dns_server.pcap", "benign_busy_client.pcap", "benign_pings.pcap")
    observed = 0
    for sensor in ("x", "y", "z"):
        for name in benign:
            alerts, events = replay(entry(name), sensor, tmp_path)
            assert alerts == []
            observed += len(events)
            index_events(client, events, f"logs-v6sentry.event-{namespace}")
    # At every sensor: host 1 pinging 20 neighbours. The DNS server's answers to its 500
    # clients are answers (from port 53 to ephemeral ports): no window, no observation.
    assert observed == 3
    code, report = hunt(es_node.url, namespace, rules_index, "--fail-on-hits")
    assert code == 0 and report["cross_sensor"]["sources"] == []

    # The scanner's /64 alerted at one sensor (sweep_lowbyte): not a cross-sensor finding.
    alerts, events = replay(entry("sweep_lowbyte.pcap"), "sensor-d", tmp_path)
    index_alerts(client, alerts, namespace)
    index_events(client, events, f"logs-v6sentry.event-{namespace}")
    _, events = replay(entry("sensor_a.pcap"), "sensor-a", tmp_path)
    index_events(client, events, f"logs-v6sentry.event-{namespace}")
    _, report = hunt(es_node.url, namespace, rules_index)
    (found,) = report["cross_sensor"]["sources"]
    assert found["source_prefix"] == SCANNER_64 and found["alerted_by"] == ["sensor-d"]
    # 1024 low-byte targets are past the exact counter: a sketch estimate within 5 %.
    assert abs(found["combined_targets"] - (1024 + 45)) < 0.05 * 1069 and not found["flagged"]


def test_hunt_and_push_take_credentials_like_shipping(es_node: EsNode, tmp_path: Path) -> None:
    """One connection contract for every command: no secret on the command line."""
    creds = tmp_path / "es.yaml"
    creds.write_text("username: elastic\npassword: secret\n")
    creds.chmod(0o640)
    for argv in (
        ["hunt", "--es", es_node.url, "--es-credentials", str(creds)],
        ["rules", "push", "--es", es_node.url, "--es-credentials", str(creds)],
    ):
        proc = v6sentry(*argv)
        assert proc.returncode == 2, argv
        assert b"readable or writable by group or others (mode 0640)" in proc.stderr, argv
    url = es_node.url.replace("http://", "http://elastic:secret@")
    for argv in (["hunt", "--es", url], ["rules", "push", "--es", url]):
        proc = v6sentry(*argv)
        assert proc.returncode == 2 and b"credentials in the URL are refused" in proc.stderr
    proc = v6sentry("hunt", "--es", es_node.url, "--es-ca", str(tmp_path / "missing.pem"))
    assert proc.returncode == 2 and b"missing.pem: CA file not found" in proc.stderr


# -- fan-in sweeps across sensors (issue 15) -----------------------------------------------


def test_a_fan_in_scan_below_threshold_at_three_sensors_is_found(
    es: tuple[Elasticsearch, str, str], es_node: EsNode, tmp_path: Path
) -> None:
    """Three sensors each see 60 probes into 2001:db8:1::/64, every one from its own
    random source /64: below medium_targets at each (no alert), one fan-in observation
    each. The hunt adds them up by destination /64 and flags the /64; once a sensor
    alerted on it, it is no longer flagged."""
    from detectors.detections.sweep.captures import fanin_probes, write_stream

    client, namespace, rules_index = es
    push(client, rule_documents(read_pack(REPO)), rules_index)
    for n, name in enumerate(("fa", "fb", "fc")):
        pcap = tmp_path / f"{name}.pcap"
        write_stream(pcap, fanin_probes(60, seed=100 + n, step=0.01, start=1 + 20 * n))
        alerts, events = replay({"file": str(pcap), "policy": "policy.yaml"}, name, tmp_path)
        assert alerts == []
        assert [e["v6sentry"]["observation"]["kind"] for e in events] == ["fanin"]
        index_events(client, events, f"logs-v6sentry.event-{namespace}")
    code, report = hunt(es_node.url, namespace, rules_index, "--fail-on-hits")
    (found,) = report["fanin"]["targets"]
    assert found["destination_prefix"] == "2001:db8:1::/64" and found["flagged"] and code == 1
    assert found["sensors"] == ["fa", "fb", "fc"] and found["alerted_by"] == []
    assert found["summed_targets"] == 180 == found["summed_source_prefixes"]
    assert found["max_targets"] == 60 and found["min_no_reply_ratio"] == 1.0
    assert len(found["sampled_sources"]) == 10
    assert report["totals"]["fanin_flagged"] == 1
    assert report["cross_sensor"]["sources"] == []  # no source /64 observed twice

    # A fourth sensor alerted on the /64 (the regression capture's fan-in sweep).
    alerts, events = replay(entry("sweep_fanin.pcap"), "fd", tmp_path)
    assert "1000404" in {a["rule"]["id"] for a in alerts}
    index_alerts(client, alerts, namespace)
    code, report = hunt(es_node.url, namespace, rules_index)
    (found,) = report["fanin"]["targets"]
    assert found["alerted_by"] == ["fd"] and not found["flagged"]
    assert report["totals"]["fanin_flagged"] == 0


# -- DNS backscatter originators across sensors (issue 15) ---------------------------------


def test_backscatter_originators_are_grouped_across_sensors(
    es: tuple[Elasticsearch, str, str], es_node: EsNode, tmp_path: Path
) -> None:
    client, namespace, rules_index = es
    push(client, rule_documents(read_pack(REPO)), rules_index)
    # Three sensors each see the mail server and a router interface looked up by many
    # resolvers (observations: benign classes), and the scanner and our own host (alerts).
    for sensor in ("dns-a", "dns-b", "dns-c"):
        alerts, events = replay(entry("dns_backscatter.pcap"), sensor, tmp_path)
        assert sorted(a["rule"]["category"] for a in alerts) == ["ipv6.dns_backscatter"] * 2
        assert sorted(e["v6sentry"]["observation"]["class"] for e in events) == [
            "router_interface",
            "well_known_service",
        ]
        index_events(client, events, f"logs-v6sentry.event-{namespace}")
        if sensor == "dns-a":
            index_alerts(client, alerts, namespace)
    code, report = hunt(es_node.url, namespace, rules_index, "--fail-on-hits")
    found = {o["originator"]: o for o in report["backscatter"]["originators"]}
    assert sorted(found) == ["2001:db8:1::25", "2001:db8:1:ff::1"]
    mail = found["2001:db8:1::25"]
    assert mail["names"] == ["mail.example.com"] and mail["classes"] == ["well_known_service"]
    assert mail["sensors"] == ["dns-a", "dns-b", "dns-c"] and mail["max_queriers"] >= 10
    assert mail["flagged"] and mail["alerted_by"] == []
    assert report["totals"]["backscatter_flagged"] == 2 and code == 1
    # One sensor is not enough.
    _, report = hunt(es_node.url, namespace, rules_index, "--min-sensors", "4")
    assert report["backscatter"]["originators"] == []
