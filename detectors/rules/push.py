"""Rule documents for the rules index, and the Kibana detection-rules NDJSON.

Owns turning a rendered pack's Sigma files (``sigma/rules/<source>/<name>.yml`` and their
conversions ``sigma/queries/lucene/<name>.txt``, ``sigma/queries/esql/<name>.esql``) into
one document per rule that has a query: id, title, level, log source, target index
pattern, language, query, the Sigma YAML (with the rules a correlation refers to), and
the v6sentry signature (sid, category) it stands for; storing them idempotently
(``_id`` = Sigma rule id, stale v6sentry rules deleted); and the Kibana NDJSON.

Kibana NDJSON: pySigma-backend-elasticsearch 2.1.1 has ``siem_rule_ndjson`` for Lucene
and ES|QL, but it is not used as is: its ATT&CK ``threat`` block downloads the ATT&CK
bundle at conversion (no network here), pairs tactics with techniques by list position
(wrong when a rule has several), and removes the attack tags from the rule it converts;
its ``index`` is the backend's default list (``logs-*``, ``winlogbeat-*``, ...) instead
of the pipeline's index; its ES|QL variant prepends ``from <index> metadata ... | where``
to the converted query, which for a correlation (already ``from ... | stats``) gives an
invalid query. So the same import fields are written here from the committed queries,
the spec's ATT&CK references and the pipeline's index. Deprecated or server-managed
fields the backend writes (``output_index``, ``meta``, ``immutable``, ``throttle``,
``id``) are left out. Rules are imported disabled: enable them after review.

Does not render or convert rules (``render``, ``sigma``) and does not run them
(``detectors.hunt.search``, which reads the same index by its name in ``detectors.es``:
the two meet in Elasticsearch, not in an import, so ``hunt`` needs no rule packs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from elasticsearch import Elasticsearch, helpers

from detectors.detections import discover
from detectors.es import RULES_INDEX
from detectors.rules.sigma import PIPELINE_FILES, PIPELINES, QUERIES, RULES, attack_data
from detectors.spec import RISK_SCORE, AttackRef

# Kibana's schedule: every 5 minutes over the last 6 (one minute of overlap, Kibana's
# default), so an alert indexed late by up to a minute is still seen.
KIBANA_INTERVAL = "5m"
KIBANA_FROM = "now-6m"
# The ATT&CK tactics of each technique the specs use (ATT&CK Enterprise v16), so the
# Kibana threat block pairs them as ATT&CK does, not by list position. A spec technique
# missing here fails the export instead of producing a wrong mapping.
TECHNIQUE_TACTICS: dict[str, tuple[str, ...]] = {
    "T1001": ("TA0011",),
    "T1046": ("TA0007",),
    "T1048": ("TA0010",),
    "T1095": ("TA0011",),
    "T1210": ("TA0008",),
    "T1498": ("TA0040",),
    "T1499": ("TA0040",),
    "T1557": ("TA0006", "TA0009"),
    "T1562": ("TA0005",),
    "T1565": ("TA0040",),
    "T1572": ("TA0011",),
    "T1590": ("TA0043",),
    "T1595": ("TA0043",),
}
RULES_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "rule_id": {"type": "keyword"},
        "name": {"type": "keyword"},
        "title": {"type": "text"},
        "level": {"type": "keyword"},
        "status": {"type": "keyword"},
        "logsource": {
            "properties": {
                "product": {"type": "keyword"},
                "service": {"type": "keyword"},
                "category": {"type": "keyword"},
            }
        },
        "index": {"type": "keyword"},
        "language": {"type": "keyword"},
        "query": {"type": "text", "index": False},
        "sigma": {"type": "text", "index": False},
        "fields": {"type": "keyword"},
        "tags": {"type": "keyword"},
        "v6sentry": {
            "properties": {
                "sid": {"type": "long"},
                "category": {"type": "keyword"},
                "signature": {"type": "keyword"},
                "detection_id": {"type": "keyword"},
                "managed_by": {"type": "keyword"},
            }
        },
    },
}


class PushError(Exception):
    """The pack cannot be turned into rule documents (one line, names the file)."""


@dataclass(frozen=True, slots=True)
class RuleDoc:
    """One stored rule: its document and what the Kibana export needs beside it."""

    id: str
    doc: dict[str, Any]
    sigma: dict[str, Any]  # the parsed Sigma rule (the correlation, for ES|QL)


def _pipeline_index(logsource: str, rule_logsource: Mapping[str, Any]) -> str:
    """The index pattern the log source's pipeline sets for this rule's log source."""
    text = (PIPELINES / PIPELINE_FILES[logsource]).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    for item in data.get("transformations", []):
        if item.get("type") != "set_state" or item.get("key") != "index":
            continue
        conditions = [c for c in item.get("rule_conditions", []) if c.get("type") == "logsource"]
        if all(rule_logsource.get(k) == v for c in conditions for k, v in c.items() if k != "type"):
            return str(item["val"])
    raise PushError(f"{PIPELINE_FILES[logsource]}: no index for log source {dict(rule_logsource)}")


def _signatures() -> dict[str, dict[str, Any]]:
    """Rule name stem (``<category>_<signature>``) -> the v6sentry signature it stands for."""
    specs, _ = discover()
    out: dict[str, dict[str, Any]] = {}
    for spec in specs.values():
        for det in spec.detections.values():
            short = det.category.split(".", 1)[1]
            for key, sig in det.signatures.items():
                out[f"{short}_{key}"] = {
                    "sid": sig.sid,
                    "category": det.category,
                    "signature": key,
                    "detection_id": det.id,
                    "techniques": det.techniques,
                    "tactics": det.tactics,
                }
    return out


def rule_documents(files: Mapping[str, str]) -> list[RuleDoc]:
    """One document per converted query in a pack's files (path relative to the pack)."""
    rules = {p: t for p, t in files.items() if p.startswith(f"{RULES}/") and p.endswith(".yml")}
    by_name: dict[str, tuple[str, dict[str, Any]]] = {}
    for path, text in rules.items():
        data = yaml.safe_load(text)
        by_name[str(data["name"])] = (path, data)
    signatures = _signatures()
    out: list[RuleDoc] = []
    for path, text in sorted(files.items()):
        if not path.startswith(f"{QUERIES}/"):
            continue
        language = path.split("/")[2]
        stem = path.rsplit("/", 1)[1].rsplit(".", 1)[0]
        if stem not in by_name:
            raise PushError(f"{path}: no rule named {stem} in {RULES}/")
        rule_path, data = by_name[stem]
        logsource = rule_path.split("/")[2]
        sigma_text = rules[rule_path]
        if "correlation" in data:
            refs = [by_name[r] for r in data["correlation"]["rules"] if r in by_name]
            sigma_text = "---\n".join([*(rules[p] for p, _ in refs), sigma_text])
            ls = refs[0][1]["logsource"] if refs else {}
        else:
            ls = data.get("logsource", {})
        sig = signatures.get(stem.split("_", 1)[1])
        if sig is None:
            raise PushError(f"{rule_path}: no v6sentry signature is named {stem}")
        query = "".join(line for line in text.splitlines(True) if not line.startswith("//"))
        doc: dict[str, Any] = {
            "rule_id": str(data["id"]),
            "name": stem,
            "title": str(data["title"]),
            "description": str(data.get("description", "")),
            "level": str(data.get("level", "")),
            "status": str(data.get("status", "")),
            "logsource": {k: str(v) for k, v in sorted(ls.items())},
            "index": _pipeline_index(logsource, ls),
            "language": language,
            "query": query.strip(),
            "sigma": sigma_text,
            "fields": [str(f) for f in data.get("fields", [])],
            "tags": [str(t) for t in data.get("tags", [])],
            "falsepositives": [str(f) for f in data.get("falsepositives", [])],
            "v6sentry": {
                "sid": sig["sid"],
                "category": sig["category"],
                "signature": sig["signature"],
                "detection_id": sig["detection_id"],
                "managed_by": "v6sentry",
            },
        }
        out.append(RuleDoc(str(data["id"]), doc, {**data, "_attack": sig}))
    return out


def push(client: Elasticsearch, docs: list[RuleDoc], index: str = RULES_INDEX) -> dict[str, int]:
    """Store the rules (``_id`` = Sigma id); delete stored v6sentry rules no longer in the
    pack. Pushing the same pack twice changes nothing."""
    if not client.indices.exists(index=index):
        client.options(ignore_status=400).indices.create(
            index=index,
            settings={"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
            mappings=RULES_MAPPING,
        )
    actions = [{"_op_type": "index", "_index": index, "_id": d.id, "_source": d.doc} for d in docs]
    indexed, _ = helpers.bulk(client, actions, refresh="wait_for", stats_only=True)
    wanted = {d.id for d in docs}
    found = client.search(
        index=index,
        query={"term": {"v6sentry.managed_by": "v6sentry"}},
        source=False,
        size=10000,
    )
    stale = sorted(h["_id"] for h in found["hits"]["hits"] if h["_id"] not in wanted)
    if stale:
        helpers.bulk(
            client,
            [{"_op_type": "delete", "_index": index, "_id": i} for i in stale],
            refresh="wait_for",
        )
    return {"indexed": int(indexed), "deleted": len(stale)}


def _threat(techniques: tuple[AttackRef, ...], tactics: tuple[AttackRef, ...]) -> list[Any]:
    """Kibana's threat block: per tactic, the rule's techniques ATT&CK lists under it."""
    names = attack_data()["techniques"]
    out = []
    for tactic in tactics:
        entries: dict[str, dict[str, Any]] = {}
        for tech in techniques:
            parent = tech.id.split(".")[0]
            if parent not in TECHNIQUE_TACTICS:
                raise PushError(f"{tech.id}: no ATT&CK tactic known (add it to TECHNIQUE_TACTICS)")
            if tactic.id not in TECHNIQUE_TACTICS[parent]:
                continue
            entry = entries.setdefault(
                parent,
                {
                    "id": parent,
                    "name": str(names.get(parent, tech.name)),
                    "reference": f"https://attack.mitre.org/techniques/{parent}/",
                    "subtechnique": [],
                },
            )
            if tech.id != parent:
                entry["subtechnique"].append(
                    {
                        "id": tech.id,
                        "name": tech.name,
                        "reference": f"https://attack.mitre.org/techniques/"
                        f"{tech.id.replace('.', '/')}/",
                    }
                )
        if entries:
            out.append(
                {
                    "framework": "MITRE ATT&CK",
                    "tactic": {
                        "id": tactic.id,
                        "name": tactic.name,
                        "reference": f"https://attack.mitre.org/tactics/{tactic.id}/",
                    },
                    "technique": list(entries.values()),
                }
            )
    for tech in techniques:
        if not any(t in {x.id for x in tactics} for t in TECHNIQUE_TACTICS[tech.id.split(".")[0]]):
            raise PushError(f"{tech.id}: none of its ATT&CK tactics is listed with it")
    return out


def kibana_rule(rule: RuleDoc) -> dict[str, Any]:
    """One rule in Kibana's detection-rules import format (Security > Rules > Import)."""
    doc, attack = rule.doc, rule.sigma["_attack"]
    level = doc["level"] if doc["level"] in RISK_SCORE else "low"
    out: dict[str, Any] = {
        "rule_id": rule.id,
        "name": f"SIGMA - {doc['title']}",
        "description": doc["description"] or doc["title"],
        "enabled": False,
        "interval": KIBANA_INTERVAL,
        "from": KIBANA_FROM,
        "to": "now",
        "severity": level,
        "risk_score": RISK_SCORE[level],
        "author": [str(rule.sigma.get("author", "v6sentry"))],
        "license": "Apache-2.0",
        "tags": doc["tags"],
        "threat": _threat(attack["techniques"], attack["tactics"]),
        "references": [str(r) for r in rule.sigma.get("references", [])],
        "false_positives": doc["falsepositives"],
        "max_signals": 100,
        "version": 1,
        "exceptions_list": [],
        "actions": [],
    }
    if doc["language"] == "lucene":
        out.update(type="query", language="lucene", index=[doc["index"]], query=doc["query"])
    else:
        # An aggregating ES|QL query (stats ... by) needs no metadata fields in Kibana.
        out.update(type="esql", language="esql", query=doc["query"])
    return out


def kibana_ndjson(docs: list[RuleDoc]) -> str:
    """The import file: one rule per line, in rule-name order."""
    rules = sorted(docs, key=lambda d: d.doc["name"])
    return "".join(json.dumps(kibana_rule(d), sort_keys=True) + "\n" for d in rules)
