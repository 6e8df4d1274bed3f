"""The Elasticsearch index template for v6sentry alerts, and installing templates.

Owns the composable index template (field types of the
ECS alert document and the dynamic policy for the ``v6sentry.*`` evidence) and
putting a template on a cluster idempotently: the alert template, or the
observation template (``detectors.es.events``) for ``logs-v6sentry.event-*``
indices. It does not send documents (``detectors.ship.shipper``) nor build them
(``detectors.alerts``).

Why a plain index and not a data stream: Elastic's built-in ``logs`` template
(pattern ``logs-*-*``, priority 100) would turn ``logs-v6sentry.alert-default``
into a data stream. A data stream writes to its newest backing index only, so
an ``op_type=create`` with the alert id as ``_id`` could not see a copy that
already sits in an older backing index after a rollover, and re-shipping a
capture would duplicate it. Our template has a higher priority (200) and no
``data_stream`` section, so the name stays an ordinary index where ``_id`` is
unique across everything ever shipped, and the committed Sigma rules
(``logs-v6sentry.alert-*``) still match it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors.detections import discover, evidence_fields
from detectors.es import ALERT_PATTERN, EVENT_PATTERN, events

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

INDEX_PATTERN = ALERT_PATTERN
TEMPLATE_NAME = "v6sentry-alert"
# Above Elastic's built-in "logs" template (100); see the module docstring.
TEMPLATE_PRIORITY = 200
# Bumped whenever the body below changes; an installed template of another version is replaced.
TEMPLATE_VERSION = 2

_KEYWORD: dict[str, Any] = {"type": "keyword", "ignore_above": 1024}
# Evidence values are produced by many detectors; a value of an unexpected type is kept
# in _source and listed in _ignored rather than rejecting the whole alert.
_EVIDENCE_IP: dict[str, Any] = {"type": "ip", "ignore_malformed": True}
_EVIDENCE_TIME: dict[str, Any] = {
    "type": "date_nanos",
    "format": "epoch_second||strict_date_optional_time_nanos",
    "ignore_malformed": True,
}

# Evidence types (``evidence:`` in each family's spec, ``detectors.detections.BASE_EVIDENCE``
# for the base class's) that the template maps. Keywords, numbers and flags are left to the
# dynamic templates below, which map them the same way.
_EVIDENCE_MAPPINGS: dict[str, dict[str, Any]] = {
    "address": _EVIDENCE_IP,
    "time": _EVIDENCE_TIME,
    "mixed": _KEYWORD,
    "flattened": {"type": "flattened"},
}


def evidence_by_type() -> dict[str, tuple[str, ...]]:
    """Evidence field paths by type, from the discovered families' specs."""
    specs, _ = discover()
    out: dict[str, list[str]] = {}
    for path, kind in sorted(evidence_fields(specs).items()):
        out.setdefault(kind, []).append(path)
    return {kind: tuple(paths) for kind, paths in out.items()}


def _nest(flat: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Dotted paths to Elasticsearch ``properties`` objects."""
    root: dict[str, Any] = {}
    for path, mapping in sorted(flat.items()):
        node = root
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[leaf] = mapping
    return root


def _properties() -> dict[str, Any]:
    kw = _KEYWORD
    flat: dict[str, dict[str, Any]] = {
        "@timestamp": {"type": "date_nanos"},
        "ecs.version": kw,
        "file.path": kw,
        "icmp.type": {"type": "long"},
        "icmp.code": {"type": "long"},
        "network.type": kw,
        "network.transport": kw,
        "network.vlan.id": kw,
        "network.inner.vlan.id": kw,
        "threat.framework": kw,
        "threat.technique.id": kw,
        "threat.technique.name": kw,
        "threat.tactic.id": kw,
        "threat.tactic.name": kw,
        "threat.technique.reference": kw,
        "threat.tactic.reference": kw,
        "network.community_id": kw,
        "network.iana_number": kw,
        "related.ip": {"type": "ip"},
        "observer.ingress.interface.name": kw,
        "event.severity": {"type": "long"},
        "event.risk_score": {"type": "float"},
        "event.ingested": {"type": "date"},
        "v6sentry.count": {"type": "long"},
    }
    for name in ("kind", "category", "type", "module", "dataset", "id", "action", "code"):
        flat[f"event.{name}"] = kw
    for name in ("id", "uuid", "name", "description", "category", "ruleset", "version"):
        flat[f"rule.{name}"] = kw
    flat["rule.reference"] = kw
    for name in ("type", "product", "vendor", "version", "name", "hostname"):
        flat[f"observer.{name}"] = kw
    for side in ("source", "destination"):
        flat[f"{side}.ip"] = {"type": "ip"}
        flat[f"{side}.port"] = {"type": "long"}
        flat[f"{side}.mac"] = kw
    for name in ("alert_id", "identifier", "detection_id", "severity"):
        flat[f"v6sentry.{name}"] = kw
    flat["v6sentry.correlation.prefix"] = kw
    flat["v6sentry.correlation.sweeps"] = kw
    for kind, paths in evidence_by_type().items():
        if kind in _EVIDENCE_MAPPINGS:
            flat.update({f"v6sentry.{p}": _EVIDENCE_MAPPINGS[kind] for p in paths})
    return _nest(flat)


def template_body() -> dict[str, Any]:
    """The composable index template for ``logs-v6sentry.alert-*`` (and a custom index)."""
    return {
        "index_patterns": [INDEX_PATTERN],
        "priority": TEMPLATE_PRIORITY,
        "version": TEMPLATE_VERSION,
        "_meta": {"managed_by": "v6sentry", "description": "v6sentry alerts (ECS)"},
        "template": {
            "settings": {"index": {"number_of_shards": 1}},
            "mappings": {
                "dynamic": True,
                # Evidence strings such as "2023-11-14" or "10" must not become dates or numbers.
                "date_detection": False,
                "numeric_detection": False,
                "dynamic_templates": [
                    {
                        # Every number as double: a field first seen as 3 and later as 0.5
                        # would otherwise be mapped long and silently truncate the 0.5.
                        "v6sentry_numbers": {
                            "path_match": "v6sentry.*",
                            "match_mapping_type": ["long", "double"],
                            "mapping": {"type": "double", "ignore_malformed": True},
                        }
                    },
                    {
                        "v6sentry_booleans": {
                            "path_match": "v6sentry.*",
                            "match_mapping_type": "boolean",
                            "mapping": {"type": "boolean", "ignore_malformed": True},
                        }
                    },
                    {"strings_as_keywords": {"match_mapping_type": "string", "mapping": _KEYWORD}},
                ],
                "properties": _properties(),
            },
        },
    }


def template_for(index: str) -> tuple[str, dict[str, Any]]:
    """Template name and body that apply to ``index``: observations for an event index,
    else alerts (a custom alert index name gets its own pattern)."""
    if index.startswith(EVENT_PATTERN[:-1]):
        return events.TEMPLATE_NAME, events.template_body()
    body = template_body()
    if _matches_default(index):
        return TEMPLATE_NAME, body
    body["index_patterns"] = [index]
    return f"{TEMPLATE_NAME}-{index}", body


def _matches_default(index: str) -> bool:
    return index.startswith(INDEX_PATTERN[:-1]) and len(index) > len(INDEX_PATTERN) - 1


def install_template(client: Elasticsearch, index: str) -> bool:
    """Put the template unless the same version is already there; True when it was put."""
    name, body = template_for(index)
    found = client.options(ignore_status=404).indices.get_index_template(name=name)
    for entry in found.body.get("index_templates", []) if found.meta.status == 200 else []:
        installed = entry.get("index_template", {})
        if (
            installed.get("version") == body["version"]
            and installed.get("index_patterns") == body["index_patterns"]
        ):
            return False
    client.indices.put_index_template(
        name=name,
        index_patterns=body["index_patterns"],
        priority=body["priority"],
        version=body["version"],
        meta=body["_meta"],
        template=body["template"],
    )
    return True
