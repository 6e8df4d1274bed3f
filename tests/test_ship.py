"""Shipping alerts to a real Elasticsearch node: ``replay --es`` and ``v6sentry ship``.

Owns the shipping contract end to end against the session's real node (the
``es_node`` fixture, no mocks): the index template and its field types,
idempotency by alert id, EVE and ECS files giving the documents ``replay --es``
gives, retries on real 429 and 503 item errors, exactly-once delivery across a
node stopped mid-stream (spool and resend), the dead-letter file for a 400,
credential handling and the summary counts. Alerts come from the regression
captures with their manifest policies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from elasticsearch import Elasticsearch

from detectors.es.connect import ConfigError, connection
from detectors.es.template import TEMPLATE_NAME, TEMPLATE_PRIORITY, install_template
from detectors.ship.convert import Document, read_documents, titles
from detectors.ship.shipper import RetryPolicy, Shipper
from detectors.ship.spool import Spool
from tests.es_node import EsNode

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "pcaps"
# Captures with microsecond time stamps (EVE keeps microseconds; see convert.py), covering
# RA, ND, tunnel, sweep and evasion alerts, VLANs and the sweep/exhaustion correlation.
CAPTURES = (
    "rogue_ra.pcap",
    "rogue_ra_vlan.pcap",
    "ndp_spoof.pcap",
    "dad_dos.pcap",
    "ra_guard_evasion.pcap",
    "tunnels_teredo.pcap",
    "tunnels.pcap",
    "sweep_ndp_exhaustion.pcap",
    "sweep_high.pcap",  # medium and high tiers: same identifier and start, two documents
)
SENSOR = "sensor-test-1"
SUMMARY = re.compile(
    r"indexed (\d+), duplicates (\d+), retried (\d+), spooled (\d+), resent (\d+), failed (\d+)"
)


def v6sentry(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("v6sentry", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "detectors"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("V6SENTRY_ES_")}
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, **(env or {})},
        cwd=ROOT,
    )


def counts(stderr: str) -> dict[str, int]:
    """The counters of the last shipping summary line on stderr."""
    found = SUMMARY.findall(stderr)
    assert found, stderr
    names = ("indexed", "duplicates", "retried", "spooled", "resent", "failed")
    return dict(zip(names, map(int, found[-1]), strict=True))


def policy_of(capture: str) -> list[str]:
    manifest = yaml.safe_load((PCAPS / "manifest.yaml").read_text())
    entry = next(c for c in manifest["captures"] if c["file"] == capture)
    return ["--policy", f"pcaps/{entry['policy']}"] if entry.get("policy") else []


def replay_to_file(path: Path, fmt: str) -> list[str]:
    """Replay CAPTURES into one JSONL file; returns the alert ids in order."""
    lines: list[str] = []
    for capture in CAPTURES:
        proc = v6sentry(
            "replay", "-q", "--format", fmt, "--sensor-name", SENSOR,
            *policy_of(capture), f"pcaps/{capture}",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        lines.extend(proc.stdout.splitlines())
    path.write_text("".join(line + "\n" for line in lines))
    key = ("event", "id") if fmt == "ecs" else ("v6sentry", "alert_id")
    return [json.loads(line)[key[0]][key[1]] for line in lines]


def documents(client: Elasticsearch, index: str) -> dict[str, dict[str, Any]]:
    client.indices.refresh(index=index)
    resp = client.search(index=index, size=10_000, query={"match_all": {}})
    assert resp["hits"]["total"]["value"] == len(resp["hits"]["hits"])
    return {hit["_id"]: hit["_source"] for hit in resp["hits"]["hits"]}


def es_args(node: EsNode, index: str, spool: Path) -> list[str]:
    return ["--es", node.url, "--es-index", index, "--spool", str(spool)]


@pytest.fixture
def index(es_node: EsNode) -> Iterator[str]:
    name = f"logs-v6sentry.alert-t{uuid.uuid4().hex[:12]}"
    yield name
    es_node.client().options(ignore_status=404).indices.delete(index=name)


@pytest.fixture(scope="module")
def ecs_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("ship") / "alerts.ecs.jsonl"
    return path, replay_to_file(path, "ecs")


@pytest.fixture(scope="module")
def eve_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("ship") / "alerts.eve.jsonl"
    return path, replay_to_file(path, "eve")


def test_template_types_and_sigma_fields(
    es_node: EsNode, index: str, ecs_file: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, ids = ecs_file
    proc = v6sentry("ship", *es_args(es_node, index, tmp_path / "spool"), str(path))
    assert proc.returncode == 0, proc.stderr
    client = es_node.client()
    template = client.indices.get_index_template(name=TEMPLATE_NAME)["index_templates"][0]
    # Above Elastic's built-in logs template (100) and without data_stream: a plain index.
    assert template["index_template"]["priority"] == TEMPLATE_PRIORITY > 100
    assert "data_stream" not in template["index_template"]
    assert index in client.indices.get(index=index)
    mapping = client.indices.get_field_mapping(index=index, fields="*")[index]["mappings"]

    def type_of(field: str) -> str:
        leaf = field.rsplit(".", 1)[-1]
        return str(mapping[field]["mapping"][leaf]["type"])

    expected = {
        "@timestamp": "date_nanos",
        "source.ip": "ip",
        "destination.ip": "ip",
        "source.mac": "keyword",
        "destination.mac": "keyword",
        "event.id": "keyword",
        "event.kind": "keyword",
        "event.category": "keyword",
        "event.dataset": "keyword",
        "rule.id": "keyword",
        "rule.uuid": "keyword",
        "rule.reference": "keyword",
        "event.type": "keyword",
        "related.ip": "ip",
        "network.community_id": "keyword",
        "network.iana_number": "keyword",
        "threat.technique.reference": "keyword",
        "threat.tactic.reference": "keyword",
        "rule.category": "keyword",
        "rule.name": "keyword",
        "threat.technique.id": "keyword",
        "observer.name": "keyword",
        "network.vlan.id": "keyword",
        "v6sentry.alert_id": "keyword",
        "v6sentry.identifier": "keyword",
        "v6sentry.detection_id": "keyword",
        "v6sentry.router.address": "ip",
        "v6sentry.tunnel.outer_src": "ip",
        "v6sentry.first_seen": "date_nanos",
        "v6sentry.count": "long",
        "v6sentry.ra.prefixes": "keyword",
    }
    assert {field: type_of(field) for field in expected} == expected
    # No capture here names its interface (pcap files cannot): the installed template
    # maps observer.ingress.interface.name (in_iface) before any document has it.
    observer = template["index_template"]["template"]["mappings"]["properties"]["observer"]
    ingress = observer["properties"]["ingress"]["properties"]["interface"]["properties"]
    assert ingress["name"]["type"] == "keyword"
    # The Sigma rules' fields answer term queries: rogue RA from an unknown router.
    client.indices.refresh(index=index)  # shipping does not wait for search visibility
    hits = client.search(
        index="logs-v6sentry.alert-*",
        query={
            "bool": {
                "filter": [
                    {"term": {"_index": index}},
                    {"term": {"event.dataset": "v6sentry.alert"}},
                    {"term": {"rule.reference": "sid:1000101"}},
                    # As Elastic's Suricata integration indexes an EVE alert.
                    {"term": {"rule.id": "1000101"}},
                    {"term": {"event.type": "allowed"}},
                    {"term": {"related.ip": "ff02::1"}},
                    {"term": {"network.community_id": "1:ox99JYRLFPznLUi+qZc4jSRR7Ds="}},
                    {"term": {"v6sentry.identifier": "0||fe80::bad|02:00:00:00:66:66"}},
                    {"term": {"source.ip": "fe80::/10"}},
                    {"term": {"observer.name": SENSOR}},
                ]
            }
        },
    )["hits"]["hits"]
    assert len(hits) == 1
    assert hits[0]["_id"] == hits[0]["_source"]["v6sentry"]["alert_id"]
    one = client.search(index=index, query={"term": {"v6sentry.alert_id": ids[0]}})
    assert one["hits"]["total"]["value"] == 1


def test_replay_es_twice_leaves_one_copy(es_node: EsNode, index: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    runs = []
    for _ in range(2):
        proc = v6sentry(
            "replay", "--sensor-name", SENSOR, "--policy", "pcaps/policy.yaml",
            *es_args(es_node, index, spool), "pcaps/rogue_ra.pcap", "pcaps/ndp_spoof.pcap",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        runs.append((proc.stdout, counts(proc.stderr)))
    alert_ids = [json.loads(line)["v6sentry"]["alert_id"] for line in runs[0][0].splitlines()]
    assert runs[0][0] == runs[1][0]  # alerts still go to stdout, unchanged
    assert len(alert_ids) == len(set(alert_ids)) > 2
    first, second = runs[0][1], runs[1][1]
    assert first == {**first, "indexed": len(alert_ids), "duplicates": 0, "failed": 0}
    assert second == {**second, "indexed": 0, "duplicates": len(alert_ids), "failed": 0}
    assert sorted(documents(es_node.client(), index)) == sorted(alert_ids)


def test_eve_and_ecs_files_ship_the_documents_replay_ships(
    es_node: EsNode,
    ecs_file: tuple[Path, list[str]],
    eve_file: tuple[Path, list[str]],
    tmp_path: Path,
) -> None:
    client = es_node.client()
    names = {kind: f"logs-v6sentry.alert-t{uuid.uuid4().hex[:12]}" for kind in ("r", "e", "c")}
    try:
        for capture in CAPTURES:
            proc = v6sentry(
                "replay", "-q", "--sensor-name", SENSOR, *policy_of(capture),
                *es_args(es_node, names["r"], tmp_path / "spool"), f"pcaps/{capture}",
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
        for kind, (path, _) in (("e", eve_file), ("c", ecs_file)):
            proc = v6sentry("ship", *es_args(es_node, names[kind], tmp_path / "spool"), str(path))
            assert proc.returncode == 0, proc.stderr
            assert counts(proc.stderr)["indexed"] == len(set(ecs_file[1]))
        replayed, from_eve, from_ecs = (documents(client, names[k]) for k in ("r", "e", "c"))
        assert sorted(replayed) == sorted(set(ecs_file[1])) == sorted(set(eve_file[1]))
        assert from_eve == replayed
        assert from_ecs == replayed
    finally:
        for name in names.values():
            client.options(ignore_status=404).indices.delete(index=name)


def test_ship_is_idempotent_and_counts_duplicates(
    es_node: EsNode, index: str, eve_file: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, ids = eve_file
    args = ("ship", *es_args(es_node, index, tmp_path / "spool"), str(path))
    first, second = v6sentry(*args), v6sentry(*args)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    unique = len(set(ids))
    assert counts(first.stderr) == {
        "indexed": unique, "duplicates": len(ids) - unique, "retried": 0,
        "spooled": 0, "resent": 0, "failed": 0,
    }  # fmt: skip
    assert counts(second.stderr) == {**counts(first.stderr), "indexed": 0, "duplicates": len(ids)}
    assert sorted(documents(es_node.client(), index)) == sorted(set(ids))


def _later(seconds: float, action: Any) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def test_item_429_is_retried_until_it_succeeds(
    es_node: EsNode, index: str, ecs_file: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, ids = ecs_file
    client = es_node.client()
    # The index the shipper would make (v6sentry's template applies), made early so it can
    # be blocked; without the template, dynamic mapping of mixed evidence fields would
    # depend on which test put the template first.
    install_template(client, index)
    client.indices.create(index=index)
    client.indices.put_settings(index=index, settings={"index.blocks.read_only_allow_delete": True})
    timer = _later(
        1.2,
        lambda: client.indices.put_settings(
            index=index, settings={"index.blocks.read_only_allow_delete": None}
        ),
    )
    try:
        proc = v6sentry("ship", *es_args(es_node, index, tmp_path / "spool"), str(path))
    finally:
        timer.join()
    assert proc.returncode == 0, proc.stderr
    got = counts(proc.stderr)
    assert got["retried"] == len(ids) and got["indexed"] == len(set(ids)), proc.stderr
    assert got["spooled"] == got["failed"] == 0
    assert sorted(documents(client, index)) == sorted(set(ids))


def test_item_503_is_retried_until_the_shard_is_back(
    es_node: EsNode, index: str, ecs_file: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, ids = ecs_file
    client = es_node.client()
    client.indices.create(
        index=index,
        settings={"index.routing.allocation.require._name": "nope", "number_of_replicas": 0},
        wait_for_active_shards="0",
    )
    timer = _later(
        2.5,
        lambda: client.indices.put_settings(
            index=index, settings={"index.routing.allocation.require._name": None}
        ),
    )
    try:  # --es-timeout 2: bulk requests wait 1 s for the shard, then answer 503 per item
        proc = v6sentry(
            "ship", "--es-timeout", "2", *es_args(es_node, index, tmp_path / "spool"), str(path)
        )
    finally:
        timer.join()
    assert proc.returncode == 0, proc.stderr
    got = counts(proc.stderr)
    assert got["retried"] == len(ids) and got["indexed"] == len(set(ids)), proc.stderr
    assert sorted(documents(client, index)) == sorted(set(ids))


def test_mapping_conflict_goes_to_the_dead_letter_file(
    es_node: EsNode, index: str, ecs_file: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, ids = ecs_file
    lines = path.read_text().splitlines()
    bad = json.loads(lines[0])
    bad["source"]["ip"] = "not-an-address"
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([json.dumps(bad), *lines[1:]]) + "\n")
    spool = tmp_path / "spool"
    proc = v6sentry("ship", *es_args(es_node, index, spool), str(broken))
    assert proc.returncode == 1, proc.stderr
    got = counts(proc.stderr)
    assert got["failed"] == 1 and got["indexed"] == len(set(ids)) - 1, proc.stderr
    assert "dead-letter.jsonl" in proc.stderr
    [entry] = [json.loads(line) for line in (spool / "dead-letter.jsonl").read_text().splitlines()]
    assert entry["id"] == ids[0] and entry["index"] == index
    assert entry["reason"]["status"] == 400
    assert "source.ip" in json.dumps(entry["reason"]["error"])
    assert entry["doc"] == bad
    assert ids[0] not in documents(es_node.client(), index)


def test_node_stopped_mid_stream_every_alert_arrives_once(
    es_node: EsNode, index: str, ecs_file: tuple[Path, list[str]], tmp_path: Path
) -> None:
    """In-process, so the stop falls between two known bulk requests."""
    path, ids = ecs_file
    docs = list(read_documents(str(path), titles()))
    spool = Spool(tmp_path / "spool")
    shipper = Shipper(
        connection(es_node.url, environ={}, request_timeout=5).client(),
        index,
        spool,
        batch_docs=10,
        retry=RetryPolicy(attempts=2, base_s=0.1),
        probe_interval_s=0.0,
    )
    shipper.start()
    half = len(docs) // 2
    for doc in docs[:half]:
        shipper.add(doc)
    shipper.flush()
    es_node.stop()
    try:
        for doc in docs[half:]:
            shipper.add(doc)
        shipper.flush()
        assert shipper.down and spool.pending() == len(docs) - half
        # Already indexed documents that also sit in the spool come back as 409s.
        spool.append([(index, doc) for doc in docs[:3]])
    finally:
        es_node.start()
    shipper.close()  # the node answers again: the spool is resent
    assert spool.pending() == 0
    c = shipper.counts
    assert c.spooled == len(docs) - half
    assert c.resent == len(docs) - half + 3
    assert c.failed == 0
    assert c.indexed == len(set(ids))
    assert c.duplicates == len(ids) - len(set(ids)) + 3
    assert sorted(documents(es_node.client(), index)) == sorted(set(ids))


def test_unreachable_node_spools_and_resend_delivers_exactly_once(
    es_node: EsNode, index: str, eve_file: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, ids = eve_file
    spool = tmp_path / "spool"
    es_node.stop()
    try:
        away = v6sentry("ship", "--es-timeout", "2", *es_args(es_node, index, spool), str(path))
    finally:
        es_node.start()
    assert away.returncode == 1, away.stderr
    assert counts(away.stderr) == {
        "indexed": 0, "duplicates": 0, "retried": 0,
        "spooled": len(ids), "resent": 0, "failed": 0,
    }  # fmt: skip
    assert f"{len(ids)} documents wait in the spool" in away.stderr
    back = v6sentry("ship", "--resend", "--es", es_node.url, "--spool", str(spool))
    assert back.returncode == 0, back.stderr
    assert counts(back.stderr)["resent"] == len(ids)
    assert counts(back.stderr)["indexed"] == len(set(ids))
    assert not list(spool.glob("seg-*"))
    again = v6sentry("ship", "--resend", "--es", es_node.url, "--spool", str(spool))
    assert counts(again.stderr)["resent"] == 0
    assert sorted(documents(es_node.client(), index)) == sorted(set(ids))


def test_bad_input_line_names_file_and_line_and_ships_nothing(
    es_node: EsNode, index: str, ecs_file: tuple[Path, list[str]], tmp_path: Path
) -> None:
    lines = ecs_file[0].read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    stats = json.dumps({"timestamp": "2023-11-14T22:13:20.000000+0000", "event_type": "stats"})
    bad.write_text(f"{lines[0]}\n\n{stats}\n")
    proc = v6sentry("ship", *es_args(es_node, index, tmp_path / "spool"), str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"v6sentry: error: {bad}:3: EVE event_type 'stats' is not an alert"
    )
    bad.write_text(f"{lines[0]}\n{{not json\n")
    proc = v6sentry("ship", *es_args(es_node, index, tmp_path / "spool"), str(bad))
    assert proc.returncode == 2 and f"{bad}:2: " in proc.stderr
    assert not es_node.client().indices.exists(index=index)


def test_credentials_only_from_env_or_private_file(
    es_node: EsNode, index: str, ecs_file: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, _ = ecs_file
    creds = tmp_path / "es.yaml"
    creds.write_text("api_key: VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==\n")
    creds.chmod(0o644)
    args = es_args(es_node, index, tmp_path / "spool")
    proc = v6sentry("ship", *args, "--es-credentials", str(creds), str(path))
    assert proc.returncode == 2
    assert "readable or writable by group or others (mode 0644)" in proc.stderr
    assert f"chmod 600 {creds}" in proc.stderr
    creds.chmod(0o600)  # the test node runs without security: the key is sent, not checked
    proc = v6sentry("ship", *args, "--es-credentials", str(creds), "-q", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "plain http" in proc.stderr  # a warning, since a key travels in clear text
    url = es_node.url.replace("http://", "http://elastic:secret@")
    for bad in (
        ["--es", url],
        ["--es-api-key", "abc"],
        ["--es-password", "secret"],
        ["--es-username", "elastic"],
    ):
        proc = v6sentry("ship", *bad, str(path))
        assert proc.returncode == 2, bad
    assert "credentials in the URL are refused" in v6sentry("ship", "--es", url, str(path)).stderr
    helptext = v6sentry("ship", "--help").stdout + v6sentry("replay", "--help").stdout
    assert not re.search(r"--[\w-]*(key|password|user|token|insecure|no-verify)", helptext)
    proc = v6sentry("ship", *args, str(path), env={"V6SENTRY_ES_USERNAME": "elastic"})
    assert proc.returncode == 2 and "username and password go together" in proc.stderr


def test_connection_settings_come_from_env_file_and_ca(tmp_path: Path) -> None:
    env = {"V6SENTRY_ES_API_KEY": "k1"}
    conn = connection("https://es.example:9200", environ=env)
    assert (conn.api_key, conn.username, conn.source) == ("k1", None, "environment")
    assert "k1" not in repr(conn)
    env = {"V6SENTRY_ES_USERNAME": "u", "V6SENTRY_ES_PASSWORD": "p"}
    conn = connection("https://es.example:9200", environ=env)
    assert (conn.api_key, conn.username, conn.password) == (None, "u", "p")
    creds = tmp_path / "c.yaml"
    creds.write_text("username: u2\npassword: p2\n")
    creds.chmod(0o600)
    conn = connection("https://es.example:9200", str(creds), environ={"V6SENTRY_ES_API_KEY": "x"})
    assert (conn.api_key, conn.username, conn.password) == (None, "u2", "p2")
    with pytest.raises(ConfigError, match="CA file not found"):
        connection("https://es.example:9200", environ={"V6SENTRY_ES_CA": str(tmp_path / "no")})
    ca = tmp_path / "ca.pem"
    ca.write_text("not used here")
    assert connection("https://es.example:9200", ca_file=str(ca), environ={}).ca_file == str(ca)
    creds.write_text("api_key: a\nusername: u\npassword: p\n")
    with pytest.raises(ConfigError, match="not both"):
        connection("https://es.example:9200", str(creds), environ={})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_full_spool_is_a_clear_error(ecs_file: tuple[Path, list[str]], tmp_path: Path) -> None:
    lines = ecs_file[0].read_text().splitlines()
    big = tmp_path / "big.jsonl"
    copies = []
    for n in range(1 + (2 * 1024 * 1024) // len("".join(lines))):
        for line in lines:
            doc = json.loads(line)
            doc["event"]["id"] = doc["v6sentry"]["alert_id"] = f"{n:04d}{doc['event']['id'][4:]}"
            copies.append(json.dumps(doc))
    big.write_text("\n".join(copies) + "\n")
    spool = tmp_path / "spool"
    proc = v6sentry(
        "ship", "--es", f"http://127.0.0.1:{_closed_port()}", "--es-timeout", "1",
        "--spool", str(spool), "--spool-max-mb", "1", str(big),
    )  # fmt: skip
    assert proc.returncode == 2
    assert re.search(r"error: spool .* is full \(\d+ bytes used of 1048576\)", proc.stderr)
    assert sum(p.stat().st_size for p in spool.glob("seg-*")) <= 1024 * 1024


def test_progress_and_summary(
    es_node: EsNode, index: str, ecs_file: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, ids = ecs_file
    args = es_args(es_node, index, tmp_path / "spool")
    quiet = v6sentry("ship", *args, str(path))
    assert "[#" not in quiet.stderr  # stderr is a pipe here: no progress unless asked
    proc = v6sentry("ship", *args, "--progress", "--batch-size", "7", str(path))
    assert proc.returncode == 0, proc.stderr
    assert f"[{'#' * 30}] {len(ids)}/{len(ids)} 100%" in proc.stderr
    assert re.search(
        rf"v6sentry: ship: {len(ids)} documents to {re.escape(index)}: indexed 0, duplicates "
        rf"{len(ids)}, retried 0, spooled 0, resent 0, failed 0, unconfirmed 0 in [\d.]+ s "
        r"\([\d,]+ docs/s\)",
        proc.stderr,
    )


def test_eve_conversion_matches_to_ecs_for_every_regression_capture(tmp_path: Path) -> None:
    """No node needed: EVE -> ECS equals Alert.to_ecs for every alert of the manifest
    (microsecond captures; nanosecond ones differ only in @timestamp's last digits)."""
    manifest = yaml.safe_load((PCAPS / "manifest.yaml").read_text())
    known = titles()
    compared = 0
    for entry in manifest["captures"]:
        pol = ["--policy", f"pcaps/{entry['policy']}"] if entry.get("policy") else []
        out = {}
        for fmt in ("eve", "ecs"):
            proc = v6sentry("replay", "-q", "--format", fmt, "--sensor-name", SENSOR,
                            *pol, f"pcaps/{entry['file']}")  # fmt: skip
            out[fmt] = proc.stdout.splitlines()
        for eve, ecs in zip(out["eve"], out["ecs"], strict=True):
            converted = read_one(tmp_path, eve, known)
            expected = json.loads(ecs)
            if converted.source["@timestamp"] != expected["@timestamp"]:
                assert converted.source["@timestamp"][:26] == expected["@timestamp"][:26]
                converted.source["@timestamp"] = expected["@timestamp"]
            assert converted.source == expected, entry["file"]
            compared += 1
    assert compared > 100


def read_one(tmp_path: Path, line: str, known: dict[str, str]) -> Document:
    path = tmp_path / "one.jsonl"
    path.write_text(line + "\n")
    [doc] = list(read_documents(str(path), known))
    return doc


def test_replay_with_unreachable_es_still_prints_alerts_and_spools(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    started = time.monotonic()
    proc = v6sentry(
        "replay", "--policy", "pcaps/policy.yaml", "--es", f"http://127.0.0.1:{_closed_port()}",
        "--es-timeout", "1", "--spool", str(spool), "pcaps/rogue_ra.pcap",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    assert counts(proc.stderr)["spooled"] == 2
    assert "Elasticsearch unreachable" in proc.stderr
    assert Spool(spool).pending() == 2
    assert time.monotonic() - started < 60
