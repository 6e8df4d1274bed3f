"""The alert contract: the ``Alert`` object and its EVE and ECS renderings.

Owns what an alert is and how it is written: one JSON object per line,
compatible with Suricata EVE (``--format eve``) or as an Elastic Common Schema
document (``--format ecs``). This is the product's API: field names and
category values are stable; values may be added, never renamed. Detections
build alerts through ``detectors.detections.Detector.alert``; sinks (files,
Elasticsearch) consume them. Nothing here reads packets.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from detectors import __version__
from detectors.spec import EVE_SEVERITY, RISK_SCORE, AttackRef

ECS_VERSION = "8.11.0"
PROTO_NAMES = {58: "IPv6-ICMP", 6: "TCP", 17: "UDP", 41: "IPv6", 4: "IPv4", 59: "IPv6-NoNxt"}
ECS_TRANSPORT = {58: "ipv6-icmp", 6: "tcp", 17: "udp", 41: "ipv6", 4: "ipv4"}


def alert_id(detection_id: str, sid: int, identifier: str, first_ns: int) -> str:
    """Stable identity of one alert: same traffic, same id (replay, live, re-ship)."""
    raw = f"{detection_id}|{sid}|{identifier}|{first_ns}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def iso_ts(ts_ns: int) -> str:
    """EVE timestamp: microseconds and a +0000 offset, from packet time only."""
    dt = datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC)
    micros = (ts_ns % 1_000_000_000) // 1000
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}+0000"


def ecs_ts(ts_ns: int) -> str:
    """ECS @timestamp: ISO 8601 with nanoseconds and Z."""
    dt = datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts_ns % 1_000_000_000:09d}Z"


def ecs_observer(name: str | None) -> dict[str, Any]:
    """ECS ``observer``: this sensor, named when a name is given."""
    out: dict[str, Any] = {
        "type": "sensor",
        "product": "v6sentry",
        "vendor": "v6sentry",
        "version": __version__,
    }
    if name:
        out["name"] = name
    return out


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. ``evidence`` is JSON-safe and lands under ``v6sentry``."""

    ts_ns: int
    category: str
    signature: str
    signature_id: int
    rev: int
    severity: str
    detection_id: str
    title: str
    techniques: tuple[AttackRef, ...]
    tactics: tuple[AttackRef, ...]
    identifier: str
    id: str
    src_ip: str | None = None
    dest_ip: str | None = None
    proto: int | None = None
    src_port: int | None = None
    dest_port: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    src_mac: str | None = None
    dest_mac: str | None = None
    vlans: tuple[int, ...] = ()
    frame: int | None = None
    capture: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_eve(self, host: str | None = None) -> dict[str, Any]:
        """Suricata EVE ``alert`` record plus the ``v6sentry`` evidence object."""
        out: dict[str, Any] = {"timestamp": iso_ts(self.ts_ns)}
        if host:
            out["host"] = host
        if self.capture is not None:
            out["pcap_filename"] = self.capture
        if self.frame is not None:
            out["pcap_cnt"] = self.frame
        out["event_type"] = "alert"
        if self.vlans:
            out["vlan"] = list(self.vlans)
        for key, value in (
            ("src_ip", self.src_ip),
            ("src_port", self.src_port),
            ("dest_ip", self.dest_ip),
            ("dest_port", self.dest_port),
        ):
            if value is not None:
                out[key] = value
        if self.proto is not None:
            out["proto"] = PROTO_NAMES.get(self.proto, str(self.proto))
        if self.icmp_type is not None:
            out["icmp_type"] = self.icmp_type
            out["icmp_code"] = self.icmp_code
        if self.src_mac or self.dest_mac:
            out["ether"] = {"src_mac": self.src_mac, "dest_mac": self.dest_mac}
        out["alert"] = {
            "action": "allowed",
            "gid": 1,
            "signature_id": self.signature_id,
            "rev": self.rev,
            "signature": self.signature,
            "category": self.category,
            "severity": EVE_SEVERITY[self.severity],
            "metadata": {
                "mitre_technique_id": [t.id for t in self.techniques],
                "mitre_technique_name": [t.name for t in self.techniques],
                "mitre_tactic_id": [t.id for t in self.tactics],
                "mitre_tactic_name": [t.name for t in self.tactics],
                "v6sentry_detection_id": [self.detection_id],
                "severity": [self.severity],
            },
        }
        out["v6sentry"] = self._v6sentry()
        return out

    def _v6sentry(self) -> dict[str, Any]:
        return {
            "alert_id": self.id,
            "identifier": self.identifier,
            "detection_id": self.detection_id,
            "severity": self.severity,
            **self.evidence,
        }

    def to_ecs(self, observer: str | None = None) -> dict[str, Any]:
        """Elastic Common Schema document for the same alert."""
        network: dict[str, Any] = {"type": "ipv6"}
        if self.proto is not None:
            network["transport"] = ECS_TRANSPORT.get(self.proto, str(self.proto))
        if self.vlans:  # outermost tag first; ECS keeps the outer and one inner tag
            network["vlan"] = {"id": str(self.vlans[0])}
            if len(self.vlans) > 1:
                network["inner"] = {"vlan": {"id": str(self.vlans[1])}}
        doc: dict[str, Any] = {
            "@timestamp": ecs_ts(self.ts_ns),
            "ecs": {"version": ECS_VERSION},
            "event": {
                "kind": "alert",
                "category": ["network", "intrusion_detection"],
                "type": ["info"],
                "module": "v6sentry",
                "dataset": "v6sentry.alert",
                "id": self.id,
                "severity": RISK_SCORE[self.severity],
                "risk_score": RISK_SCORE[self.severity],
            },
            "rule": {
                "id": self.detection_id,
                "uuid": self.detection_id,
                "name": self.signature,
                "description": self.title,
                "category": self.category,
                "ruleset": "v6sentry",
                "version": str(self.rev),
                "reference": f"sid:{self.signature_id}",
            },
            "threat": {
                "framework": "MITRE ATT&CK",
                "technique": [{"id": t.id, "name": t.name} for t in self.techniques],
                "tactic": [{"id": t.id, "name": t.name} for t in self.tactics],
            },
            "network": network,
            "observer": ecs_observer(observer),
        }
        for side, ip, port, mac in (
            ("source", self.src_ip, self.src_port, self.src_mac),
            ("destination", self.dest_ip, self.dest_port, self.dest_mac),
        ):
            part: dict[str, Any] = {}
            if ip is not None:
                part["ip"] = ip
            if port is not None:
                part["port"] = port
            if mac is not None:
                part["mac"] = mac.upper().replace(":", "-")
            if part:
                doc[side] = part
        if self.icmp_type is not None:
            doc["icmp"] = {"type": self.icmp_type, "code": self.icmp_code}
        if self.capture is not None:
            doc["file"] = {"path": self.capture}
        doc["v6sentry"] = self._v6sentry()
        return doc


class AlertWriter:
    """Writes alerts as JSON lines in one format; counts what it wrote."""

    def __init__(self, stream: IO[str], fmt: str = "eve", host: str | None = None) -> None:
        if fmt not in ("eve", "ecs"):
            raise ValueError(f"unknown format {fmt!r}: use eve or ecs")
        self.stream = stream
        self.fmt = fmt
        self.host = host
        self.written = 0

    def __call__(self, alert: Alert) -> None:
        doc = alert.to_eve(self.host) if self.fmt == "eve" else alert.to_ecs(self.host)
        self.stream.write(json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n")
        self.written += 1
