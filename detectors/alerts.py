"""The alert contract: the ``Alert`` object and its EVE and ECS renderings.

Owns what an alert is and how it is written: one JSON object per line,
compatible with Suricata EVE (``--format eve``) or as an Elastic Common Schema
document (``--format ecs``). This is the product's API: field names and
category values are stable; values may be added, never renamed. Detections
build alerts through ``detectors.detections.Detector.alert``; sinks (files,
Elasticsearch) consume them. Nothing here reads packets.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import IO, Any

import communityid

from detectors import __version__
from detectors.spec import EVE_SEVERITY, RISK_SCORE, AttackRef

ECS_VERSION = "8.11.0"
# As Suricata names them (its /etc/protocols names), so ``proto`` joins as a string;
# the extension headers name where a malformed packet's chain broke.
PROTO_NAMES = {
    58: "IPv6-ICMP", 6: "TCP", 17: "UDP", 41: "IPv6", 4: "IPv4", 59: "IPv6-NoNxt",
    0: "HOPOPT", 43: "IPv6-Route", 44: "IPv6-Frag", 60: "IPv6-Opts",
}  # fmt: skip
ECS_TRANSPORT = {58: "ipv6-icmp", 6: "tcp", 17: "udp", 41: "ipv6", 4: "ipv4"}

FORMATS = ("eve", "ecs")  # EVE JSON as Suricata writes it; Elastic Common Schema


# Community ID v1, seed 0, base64: what Zeek, Suricata and Elastic write by default.
_COMMUNITY_ID = communityid.CommunityID()
_COMMUNITY_ID_HEX = communityid.CommunityID(use_base64=False)
# Protocols whose Community ID hashes ports (or ICMP type and code) besides addresses.
_PORTED = frozenset((6, 17, 132))
_ICMP = frozenset((1, 58))


@cache
def community_id(
    proto: int,
    src: str,
    dst: str,
    sport: int | None = None,
    dport: int | None = None,
    icmp_type: int | None = None,
    icmp_code: int | None = None,
) -> tuple[str, int] | None:
    """Community ID v1 of a flow tuple and the ``flow_id`` derived from it.

    ``None`` when the tuple is incomplete (TCP, UDP or SCTP without ports, ICMP
    without a type): the spec hashes those fields, so an id without them would not
    join with anyone's. ``flow_id`` is the hash's first 63 bits, a positive int64 as
    Suricata's: the same flow in any alert, replay or live, gets the same value."""
    if proto in _PORTED:
        if sport is None or dport is None:
            return None
        tpl = communityid.FlowTuple(proto, src, dst, sport, dport)
    elif proto in _ICMP:
        if icmp_type is None:
            return None
        tpl = communityid.FlowTuple(proto, src, dst, icmp_type, icmp_code or 0)
    else:
        tpl = communityid.FlowTuple(proto, src, dst)
    hexed = _COMMUNITY_ID_HEX.calc(tpl)  # "1:<40 hex digits>"
    return _COMMUNITY_ID.calc(tpl), int(hexed[2:18], 16) & 0x7FFF_FFFF_FFFF_FFFF


def address_flow_id(proto: int, src: str, dst: str) -> int:
    """``flow_id`` of a tuple without ports or ICMP type: SHA-1 over the two addresses
    (lower first, as Community ID orders them) and the protocol, first 63 bits."""
    lo, hi = sorted((ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed))
    digest = hashlib.sha1(lo + hi + bytes([proto]), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def suricata_ip(address: str) -> str:
    """An address as Suricata's EVE writes it, so string joins work: IPv6 in full
    (eight groups of four lower-case hex digits, ``fe80:0000:...:0001``), IPv4 as is.
    Alerts hold the short form (identifiers, evidence, ECS); only EVE's top-level
    ``src_ip`` and ``dest_ip`` are written this way."""
    return ipaddress.ip_address(address).exploded


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


def attack_url(ref: str) -> str:
    """The ATT&CK page of a technique (``T1595.001``) or tactic (``TA0043``)."""
    kind = "tactics" if ref.startswith("TA") else "techniques"
    return f"https://attack.mitre.org/{kind}/{ref.replace('.', '/')}/"


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
    in_iface: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def flow(self) -> tuple[str | None, int | None]:
        """``(community_id, flow_id)`` of the alert's tuple.

        An incomplete tuple (no protocol, UDP without ports, an ICMPv6 header cut
        before its type) has no Community ID, since one
        without those fields would join with nobody's; its ``flow_id`` still comes
        from the addresses (and protocol, 0 when unknown) hashed as an address-only
        tuple, so every alert with addresses has one."""
        if self.src_ip is None or self.dest_ip is None:
            return None, None
        proto = self.proto if self.proto is not None else 0
        full = community_id(
            proto,
            self.src_ip,
            self.dest_ip,
            self.src_port,
            self.dest_port,
            self.icmp_type,
            self.icmp_code,
        )
        if full is not None and self.proto is not None:
            return full
        return None, address_flow_id(proto, self.src_ip, self.dest_ip)

    def to_eve(self, host: str | None = None) -> dict[str, Any]:
        """Suricata EVE ``alert`` record plus the ``v6sentry`` evidence object."""
        out: dict[str, Any] = {"timestamp": iso_ts(self.ts_ns)}
        cid, flow_id = self.flow()
        if flow_id is not None:
            out["flow_id"] = flow_id
        if self.in_iface is not None:
            out["in_iface"] = self.in_iface
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
            ("src_ip", None if self.src_ip is None else suricata_ip(self.src_ip)),
            ("src_port", self.src_port),
            ("dest_ip", None if self.dest_ip is None else suricata_ip(self.dest_ip)),
            ("dest_port", self.dest_port),
        ):
            if value is not None:
                out[key] = value
        if self.proto is not None:
            out["proto"] = PROTO_NAMES.get(self.proto, str(self.proto))
        if self.icmp_type is not None:
            out["icmp_type"] = self.icmp_type
            out["icmp_code"] = self.icmp_code
        if cid is not None:
            out["community_id"] = cid
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
                # The Suricata pack's rules carry the same three keys.
                "v6sentry_detection_id": [self.detection_id],
                "v6sentry_sid": [str(self.signature_id)],
                "v6sentry_category": [self.category],
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
        """Elastic Common Schema document for the same alert, shaped as Elastic's
        Suricata integration shapes an EVE alert (``rule.id`` the sid, ``event.type``
        with the action, ``related.ip``, ``network.community_id``, ``observer.ingress``)."""
        cid, _flow_id = self.flow()
        network: dict[str, Any] = {"type": "ipv6"}
        if self.proto is not None:
            network["transport"] = ECS_TRANSPORT.get(self.proto, str(self.proto))
            network["iana_number"] = str(self.proto)
        if cid is not None:
            network["community_id"] = cid
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
                # v6sentry never blocks: the EVE action is "allowed", which Elastic's
                # Suricata integration writes as event.type "allowed" ("denied" if blocked).
                "type": ["allowed"],
                "module": "v6sentry",
                "dataset": "v6sentry.alert",
                "id": self.id,
                "severity": RISK_SCORE[self.severity],
                "risk_score": RISK_SCORE[self.severity],
            },
            "rule": {
                # As the Suricata integration: rule.id is the sid; the UUID is rule.uuid.
                "id": str(self.signature_id),
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
                "technique": [
                    {"id": t.id, "name": t.name, "reference": attack_url(t.id)}
                    for t in self.techniques
                ],
                "tactic": [
                    {"id": t.id, "name": t.name, "reference": attack_url(t.id)}
                    for t in self.tactics
                ],
            },
            "network": network,
            "observer": ecs_observer(observer),
        }
        if self.in_iface is not None:
            doc["observer"]["ingress"] = {"interface": {"name": self.in_iface}}
        related = [ip for ip in (self.src_ip, self.dest_ip) if ip is not None]
        if related:
            doc["related"] = {"ip": list(dict.fromkeys(related))}
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
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}: use eve or ecs")
        self.stream = stream
        self.fmt = fmt
        self.host = host
        self.written = 0

    def __call__(self, alert: Alert) -> None:
        doc = alert.to_eve(self.host) if self.fmt == "eve" else alert.to_ecs(self.host)
        self.stream.write(json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n")
        self.written += 1


def add_output_arguments(parser: argparse.ArgumentParser, output_help: str) -> None:
    """``-o``, ``--format`` and ``--sensor-name``: where alerts go and how they are
    written, the same for ``replay`` and ``live``."""
    parser.add_argument("-o", "--output", metavar="FILE", default="-", help=output_help)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="eve",
        help="eve: Suricata EVE JSON (default); ecs: Elastic Common Schema",
    )
    parser.add_argument(
        "--sensor-name",
        metavar="NAME",
        default=None,
        help="EVE host / ECS observer.name (default: this host's name)",
    )
