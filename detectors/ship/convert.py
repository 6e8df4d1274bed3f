"""Alert files back into ECS documents: what ``v6sentry ship`` reads.

Owns recognising one JSON line as an ECS alert (``replay --format ecs``) or a
Suricata-EVE alert (``replay``'s default format) and turning it into the ECS
document that ``Alert.to_ecs`` would have produced, plus reading whole files
with errors that name the file and line. It does not send anything.

EVE lacks two things the ECS document has: the detection's title
(``rule.description``), taken from the specs by detection id, and nanoseconds:
EVE timestamps carry microseconds, so ``@timestamp`` of a converted EVE alert
ends in ``000`` where the capture had nanosecond time stamps.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from detectors.alerts import PROTO_NAMES, Alert
from detectors.detections import discover
from detectors.spec import SEVERITIES, AttackRef

_PROTO_NUMBERS = {name: number for number, name in PROTO_NAMES.items()}
# Evidence keys that Alert._v6sentry writes itself from the Alert's fields.
_OWN_KEYS = ("alert_id", "identifier", "detection_id", "severity")


class InputError(Exception):
    """A line that is not an alert v6sentry can ship; the message names file and line."""


@dataclass(frozen=True, slots=True)
class Document:
    """One ECS alert document and its stable id (the Elasticsearch ``_id``)."""

    id: str
    source: dict[str, Any]


def titles() -> dict[str, str]:
    """Detection UUID -> title, from the specs (EVE does not carry the title)."""
    specs, _ = discover()
    return {det.id: det.title for spec in specs.values() for det in spec.detections.values()}


def _eve_ts_ns(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError("timestamp is not a string")
    dt = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def _refs(ids: Any, names: Any, what: str) -> tuple[AttackRef, ...]:
    if not isinstance(ids, list) or not isinstance(names, list) or len(ids) != len(names):
        raise ValueError(f"alert.metadata {what} ids and names must be lists of one length")
    return tuple(AttackRef(str(i), str(n)) for i, n in zip(ids, names, strict=True))


def _opt_int(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} is not an integer")
    return value


def alert_from_eve(eve: dict[str, Any], known_titles: dict[str, str]) -> Alert:
    """The ``Alert`` an EVE line was written from (``Alert.to_eve`` inverted)."""
    rule = eve.get("alert")
    evidence = eve.get("v6sentry")
    if not isinstance(rule, dict) or not isinstance(evidence, dict):
        raise ValueError("EVE alert without 'alert' and 'v6sentry' objects")
    meta = rule.get("metadata")
    if not isinstance(meta, dict):
        raise ValueError("alert.metadata missing")
    detection_id = evidence.get("detection_id")
    if detection_id not in known_titles:
        raise ValueError(
            f"unknown detection id {detection_id!r} (written by another v6sentry version?"
            " ship its --format ecs output instead)"
        )
    severity = evidence.get("severity")
    if severity not in SEVERITIES:
        raise ValueError(f"v6sentry.severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    for key in ("alert_id", "identifier"):
        if not isinstance(evidence.get(key), str):
            raise ValueError(f"v6sentry.{key} missing")
    proto_name = eve.get("proto")
    proto: int | None = None
    if proto_name is not None:
        proto = _PROTO_NUMBERS.get(proto_name)
        if proto is None:
            if not (isinstance(proto_name, str) and proto_name.isdigit()):
                raise ValueError(f"unknown proto {proto_name!r}")
            proto = int(proto_name)
    ether = eve.get("ether") or {}
    vlans = eve.get("vlan") or []
    if not isinstance(ether, dict) or not isinstance(vlans, list):
        raise ValueError("ether must be an object and vlan a list")
    sid, rev = rule.get("signature_id"), rule.get("rev")
    if not isinstance(sid, int) or not isinstance(rev, int):
        raise ValueError("alert.signature_id and alert.rev must be integers")
    for key in ("signature", "category"):
        if not isinstance(rule.get(key), str):
            raise ValueError(f"alert.{key} missing")
    return Alert(
        ts_ns=_eve_ts_ns(eve.get("timestamp")),
        category=rule["category"],
        signature=rule["signature"],
        signature_id=sid,
        rev=rev,
        severity=severity,
        detection_id=detection_id,
        title=known_titles[detection_id],
        techniques=_refs(
            meta.get("mitre_technique_id"), meta.get("mitre_technique_name"), "technique"
        ),
        tactics=_refs(meta.get("mitre_tactic_id"), meta.get("mitre_tactic_name"), "tactic"),
        identifier=evidence["identifier"],
        id=evidence["alert_id"],
        src_ip=_opt_ip(eve.get("src_ip"), "src_ip"),
        dest_ip=_opt_ip(eve.get("dest_ip"), "dest_ip"),
        proto=proto,
        src_port=_opt_int(eve.get("src_port"), "src_port"),
        dest_port=_opt_int(eve.get("dest_port"), "dest_port"),
        icmp_type=_opt_int(eve.get("icmp_type"), "icmp_type"),
        icmp_code=_opt_int(eve.get("icmp_code"), "icmp_code"),
        src_mac=ether.get("src_mac"),
        dest_mac=ether.get("dest_mac"),
        vlans=tuple(int(v) for v in vlans),
        frame=_opt_int(eve.get("pcap_cnt"), "pcap_cnt"),
        capture=eve.get("pcap_filename"),
        in_iface=eve.get("in_iface") if isinstance(eve.get("in_iface"), str) else None,
        evidence={k: v for k, v in evidence.items() if k not in _OWN_KEYS},
    )


def _opt_ip(value: Any, name: str) -> str | None:
    """An EVE address (Suricata writes IPv6 in full) in the short form alerts hold."""
    if value is None:
        return None
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        raise ValueError(f"{name} {value!r} is not an IP address") from None


def document_from_line(
    obj: Any, known_titles: dict[str, str], sensor_name: str | None = None
) -> Document:
    """ECS document for one parsed JSON line, EVE or ECS; ValueError says why not.

    ``sensor_name`` fills ``observer.name`` only when the line has no sensor name
    (EVE ``host`` / ECS ``observer.name``): the sensor that saw the traffic wins.
    """
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if "@timestamp" in obj:
        event = obj.get("event")
        if not isinstance(event, dict) or event.get("kind") != "alert":
            raise ValueError("ECS document is not an alert (event.kind != 'alert')")
        doc_id = event.get("id")
        if not isinstance(doc_id, str) or not doc_id:
            raise ValueError("ECS alert without event.id")
        evidence = obj.get("v6sentry")
        if not isinstance(evidence, dict) or evidence.get("alert_id") != doc_id:
            raise ValueError("ECS alert whose v6sentry.alert_id is not its event.id")
        observer = obj.get("observer")
        if sensor_name and isinstance(observer, dict) and not observer.get("name"):
            observer["name"] = sensor_name
        return Document(doc_id, obj)
    if "event_type" in obj:
        if obj["event_type"] != "alert":
            raise ValueError(f"EVE event_type {obj['event_type']!r} is not an alert")
        alert = alert_from_eve(obj, known_titles)
        host = obj.get("host")
        observer_name = host if isinstance(host, str) and host else sensor_name
        return Document(alert.id, alert.to_ecs(observer_name))
    raise ValueError("neither an ECS alert (@timestamp) nor an EVE alert (event_type)")


def _open(path: str) -> IO[str]:
    if path == "-":
        return sys.stdin
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_documents(
    path: str, known_titles: dict[str, str], sensor_name: str | None = None
) -> Iterator[Document]:
    """Every alert of a JSONL file, in order. Blank lines are skipped; anything else
    that is not an alert raises InputError naming the file and line."""
    try:
        with _open(path) as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    yield document_from_line(obj, known_titles, sensor_name)
                except (ValueError, TypeError) as exc:
                    raise InputError(f"{path}:{number}: {exc}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read alerts: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None
