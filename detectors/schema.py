"""JSON Schemas of the alert contract: the EVE alert record and the ECS document.

Owns ``v6sentry schema eve|ecs`` (JSON Schema draft 2020-12 on stdout) and the
schemas themselves, built from the same constants the renderings use
(``detectors.alerts``) and from the detection specs (categories, sids), so a new
category or protocol name cannot be written without the schema allowing it. It
does not validate anything itself: consumers (and ``tests/test_alerts.py``, with
the ``jsonschema`` package) do. The top level of each document is closed
(``additionalProperties: false``): a key the contract does not name is a schema
error; the ``v6sentry`` evidence object is open, as detections add evidence.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from detectors.alerts import ECS_TRANSPORT, ECS_VERSION, PROTO_NAMES
from detectors.spec import EVE_SEVERITY, RISK_SCORE, SEVERITIES, FamilySpec

DIALECT = "https://json-schema.org/draft/2020-12/schema"
KINDS = ("eve", "ecs")

_INT64 = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
_PORT = {"type": "integer", "minimum": 0, "maximum": 65535}
_BYTE = {"type": "integer", "minimum": 0, "maximum": 255}
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
# EVE: IPv6 in full, as Suricata writes it (eight groups of four lower-case digits).
_EVE_IP = {"type": "string", "pattern": f"^(({_IPV4})|([0-9a-f]{{4}}:){{7}}[0-9a-f]{{4}})$"}
# ECS: any textual form; JSON Schema's formats say which.
_ECS_IP = {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
_COMMUNITY_ID = {"type": "string", "pattern": r"^1:[A-Za-z0-9+/]{27}=$"}
_UUID = {"type": "string", "pattern": r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$"}
_ALERT_ID = {"type": "string", "pattern": r"^[0-9a-f]{32}$"}
_EVE_MAC = {"type": ["string", "null"], "pattern": r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"}
_ECS_MAC = {"type": "string", "pattern": r"^[0-9A-F]{2}(-[0-9A-F]{2}){5}$"}
_STRINGS = {"type": "array", "items": {"type": "string"}}


def _obj(
    properties: Mapping[str, Any], required: tuple[str, ...] = (), closed: bool = True
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": dict(properties)}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    return out


def _vocabulary(specs: Mapping[str, FamilySpec]) -> tuple[list[str], list[int], list[str]]:
    """Categories, signature sids and detection UUIDs, sorted."""
    categories = sorted(c for f in specs.values() for c in f.detections)
    sids = sorted(
        s.sid for f in specs.values() for d in f.detections.values() for s in d.signatures.values()
    )
    uuids = sorted(d.id for f in specs.values() for d in f.detections.values())
    return categories, sids, uuids


def _evidence(uuids: list[str]) -> dict[str, Any]:
    return _obj(
        {
            "alert_id": _ALERT_ID,
            "identifier": {"type": "string", "minLength": 1},
            "detection_id": {"enum": uuids},
            "severity": {"enum": list(SEVERITIES)},
        },
        ("alert_id", "identifier", "detection_id", "severity"),
        closed=False,  # detections add their own evidence
    )


def eve_schema(specs: Mapping[str, FamilySpec]) -> dict[str, Any]:
    """The EVE alert record (``--format eve``), README "The alert contract"."""
    categories, sids, uuids = _vocabulary(specs)
    metadata = _obj(
        {
            "mitre_technique_id": _STRINGS,
            "mitre_technique_name": _STRINGS,
            "mitre_tactic_id": _STRINGS,
            "mitre_tactic_name": _STRINGS,
            "v6sentry_detection_id": {"type": "array", "items": {"enum": uuids}},
            "v6sentry_sid": {"type": "array", "items": {"enum": [str(s) for s in sids]}},
            "v6sentry_category": {"type": "array", "items": {"enum": categories}},
            "severity": {"type": "array", "items": {"enum": list(SEVERITIES)}},
        },
        (
            "mitre_technique_id",
            "mitre_tactic_id",
            "v6sentry_detection_id",
            "v6sentry_sid",
            "v6sentry_category",
            "severity",
        ),
    )
    alert = _obj(
        {
            "action": {"enum": ["allowed", "blocked"]},
            "gid": {"const": 1},
            "signature_id": {"enum": sids},
            "rev": {"type": "integer", "minimum": 1},
            "signature": {"type": "string", "pattern": "^V6SENTRY "},
            "category": {"enum": categories},
            "severity": {"enum": sorted(set(EVE_SEVERITY.values()))},
            "metadata": metadata,
        },
        ("action", "gid", "signature_id", "rev", "signature", "category", "severity", "metadata"),
    )
    proto = {
        "type": "string",
        "anyOf": [{"enum": sorted(set(PROTO_NAMES.values()))}, {"pattern": "^[0-9]{1,3}$"}],
    }
    props = {
        "timestamp": {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+0000$",
        },
        "flow_id": _INT64,
        "in_iface": {"type": "string", "minLength": 1},
        "host": {"type": "string"},
        "pcap_filename": {"type": "string"},
        "pcap_cnt": {"type": "integer", "minimum": 1},
        "event_type": {"const": "alert"},
        "vlan": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 4095}},
        "src_ip": _EVE_IP,
        "src_port": _PORT,
        "dest_ip": _EVE_IP,
        "dest_port": _PORT,
        "proto": proto,
        "icmp_type": _BYTE,
        "icmp_code": _BYTE,
        "community_id": _COMMUNITY_ID,
        "ether": _obj({"src_mac": _EVE_MAC, "dest_mac": _EVE_MAC}),
        "alert": alert,
        "v6sentry": _evidence(uuids),
    }
    schema = _obj(props, ("timestamp", "event_type", "src_ip", "dest_ip", "flow_id", "alert"))
    schema["required"].append("v6sentry")
    return {
        "$schema": DIALECT,
        "$id": "urn:v6sentry:schema:eve-alert",
        "title": "v6sentry EVE alert",
        "description": "One line of `v6sentry replay|live --format eve`: a Suricata EVE "
        "alert record plus the v6sentry evidence object.",
        **schema,
    }


def ecs_schema(specs: Mapping[str, FamilySpec]) -> dict[str, Any]:
    """The ECS alert document (``--format ecs``, and what ``ship`` indexes)."""
    categories, sids, uuids = _vocabulary(specs)
    ref = _obj(
        {"id": {"type": "string"}, "name": {"type": "string"}, "reference": {"type": "string"}},
        ("id", "name", "reference"),
    )
    side = _obj({"ip": _ECS_IP, "port": _PORT, "mac": _ECS_MAC})
    vlan = _obj({"id": {"type": "string", "pattern": "^[0-9]{1,4}$"}}, ("id",))
    props = {
        "@timestamp": {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$",
        },
        "ecs": _obj({"version": {"const": ECS_VERSION}}, ("version",)),
        "event": _obj(
            {
                "kind": {"const": "alert"},
                "category": {"const": ["network", "intrusion_detection"]},
                "type": {
                    "type": "array",
                    "items": {"enum": ["allowed", "denied"]},
                    "minItems": 1,
                },
                "module": {"const": "v6sentry"},
                "dataset": {"const": "v6sentry.alert"},
                "id": _ALERT_ID,
                "severity": {"enum": sorted(set(RISK_SCORE.values()))},
                "risk_score": {"enum": sorted(set(RISK_SCORE.values()))},
            },
            ("kind", "category", "type", "module", "dataset", "id", "severity", "risk_score"),
        ),
        "rule": _obj(
            {
                "id": {"enum": [str(s) for s in sids]},
                "uuid": {"enum": uuids},
                "name": {"type": "string", "pattern": "^V6SENTRY "},
                "description": {"type": "string"},
                "category": {"enum": categories},
                "ruleset": {"const": "v6sentry"},
                "version": {"type": "string", "pattern": "^[1-9][0-9]*$"},
                "reference": {"type": "string", "pattern": "^sid:[0-9]+$"},
            },
            ("id", "uuid", "name", "description", "category", "ruleset", "version"),
        ),
        "threat": _obj(
            {
                "framework": {"const": "MITRE ATT&CK"},
                "technique": {"type": "array", "items": ref},
                "tactic": {"type": "array", "items": ref},
            },
            ("framework", "technique", "tactic"),
        ),
        "network": _obj(
            {
                "type": {"const": "ipv6"},
                "transport": {
                    "type": "string",
                    "anyOf": [
                        {"enum": sorted(set(ECS_TRANSPORT.values()))},
                        {"pattern": "^[0-9]{1,3}$"},
                    ],
                },
                "iana_number": {"type": "string", "pattern": "^[0-9]{1,3}$"},
                "community_id": _COMMUNITY_ID,
                "vlan": vlan,
                "inner": _obj({"vlan": vlan}, ("vlan",)),
            },
            ("type",),
        ),
        "observer": _obj(
            {
                "type": {"const": "sensor"},
                "product": {"const": "v6sentry"},
                "vendor": {"const": "v6sentry"},
                "version": {"type": "string"},
                "name": {"type": "string"},
                "hostname": {"type": "string"},
                "ingress": _obj(
                    {"interface": _obj({"name": {"type": "string"}}, ("name",))}, ("interface",)
                ),
            },
            ("type", "product", "vendor", "version"),
        ),
        "source": side,
        "destination": side,
        "related": _obj({"ip": {"type": "array", "items": _ECS_IP, "minItems": 1}}, ("ip",)),
        "icmp": _obj({"type": _BYTE, "code": _BYTE}, ("type", "code")),
        "file": _obj({"path": {"type": "string"}}, ("path",)),
        "v6sentry": _evidence(uuids),
    }
    required = ("@timestamp", "ecs", "event", "rule", "threat", "network", "observer")
    return {
        "$schema": DIALECT,
        "$id": "urn:v6sentry:schema:ecs-alert",
        "title": "v6sentry ECS alert",
        "description": "One line of `v6sentry replay|live --format ecs`, and the document "
        "`v6sentry ship` indexes: an Elastic Common Schema alert shaped as Elastic's "
        "Suricata integration shapes a Suricata alert.",
        **_obj(props, (*required, "source", "destination", "related", "v6sentry")),
    }


def schema(kind: str, specs: Mapping[str, FamilySpec]) -> dict[str, Any]:
    if kind == "eve":
        return eve_schema(specs)
    if kind == "ecs":
        return ecs_schema(specs)
    raise ValueError(f"unknown schema {kind!r}: use eve or ecs")


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "schema",
        help="print the JSON Schema of an alert line (eve or ecs)",
        description="Print the JSON Schema (draft 2020-12) of one alert line as "
        "--format eve or --format ecs writes it, for validating consumers' input. The "
        "categories, sids and detection UUIDs are this version's.",
    )
    parser.add_argument("kind", choices=KINDS, help="eve (default) or ecs", nargs="?")


def run(args: argparse.Namespace) -> int:
    from detectors.detections import discover

    specs, _ = discover()
    doc = schema(args.kind or "eve", specs)
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return 0
