"""What every rule template sees: the specs and the site policy as plain data.

Owns turning ``FamilySpec`` objects and a ``Policy`` into the one dictionary
(``build_context``) that the Suricata and Sigma templates render from, and
the policy values that become Suricata address and port variables. Every
string that came from the policy file is wrapped in ``PolicyText`` so the
renderer's escaping filters can tell it from text the project wrote.

It does not render, escape or write anything: ``render.py`` does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from detectors import __version__
from detectors.decoder import TEREDO_PORT
from detectors.policy import Policy
from detectors.spec import (
    COVERAGE_ENGINES,
    EVE_SEVERITY,
    DetectionSpec,
    FamilySpec,
    SpecError,
    suricata_classtype,
)

# Ports the tunnel detections watch; Suricata rules use them through variables.
AYIYA_PORT = 5072
# The 6to4 relay anycast range (RFC 3068, deprecated by RFC 7526).
RELAY_ANYCAST = "192.88.99.0/24"
# Where rules cite an RFC and an ATT&CK technique (T1557.001 -> T1557/001/).
RFC_URL = "https://www.rfc-editor.org/rfc/rfc{number}"
ATTACK_URL = "https://attack.mitre.org/techniques/{path}/"


@dataclass(frozen=True, slots=True)
class PolicyText:
    """A free-text value from the policy file, with where it was written."""

    value: str
    where: str  # "site.yaml:7: routers[0].name"

    def __str__(self) -> str:
        return self.value


def _addr(packed: bytes) -> str:
    return str(ipaddress.IPv6Address(packed))


def _mac(raw: bytes | None) -> str | None:
    return None if raw is None else ":".join(f"{b:02x}" for b in raw)


def _group(items: list[str]) -> str | None:
    """A Suricata address group, or None when empty (Suricata refuses an empty group)."""
    return f"[{','.join(items)}]" if items else None


def policy_data(policy: Policy) -> dict[str, Any]:
    """The policy as template data; free text wrapped in ``PolicyText``."""
    where = policy.path or "(no policy)"
    routers = [
        {
            "address": _addr(r.address),
            "mac": _mac(r.mac),
            "name": None
            if r.name is None
            else PolicyText(r.name, f"{where}:{r.line}: routers[{i}].name"),
            "line": r.line,
        }
        for i, r in enumerate(policy.routers or ())
    ]
    addresses = sorted({r["address"] for r in routers}, key=ipaddress.IPv6Address)
    return {
        "source": policy.source,
        "path": policy.path,
        "learned": policy.learns_routers,
        "hash": policy.sha256 or "none",
        "routers": routers,
        "router_addresses": addresses,
        "monitored": [str(n) for n in policy.monitored],
        "dark": [str(n) for n in policy.dark],
        "tunnels_allowed": [str(n) for n in policy.tunnels_allowed],
    }


def suricata_vars(policy: Mapping[str, Any]) -> dict[str, dict[str, str | None]]:
    """Address and port variables for the pack's ``suricata.yaml`` include.

    A value of None means the policy leaves the variable empty; the rules that
    need it are then left out of the pack, because Suricata cannot load an
    empty group and suricata-update comments out rules with unknown variables.

    Only variables some rule uses are here (``suricata.check_rules`` refuses
    others). The policy's monitored prefixes have none: no detection reads them.
    Its allowed tunnel endpoints have none either: v6sentry only lowers the
    severity of an allowed tunnel's alert, which one Suricata rule per signature
    cannot do for some addresses and not others.
    """
    return {
        "address-groups": {
            "IPV6_ROUTERS": _group(policy["router_addresses"]),
            "IPV6_DARK_PREFIXES": _group(policy["dark"]),
            "IPV6_6TO4_RELAYS": f"[{RELAY_ANYCAST}]",
        },
        "port-groups": {
            "TEREDO_PORTS": str(TEREDO_PORT),
            "AYIYA_PORTS": str(AYIYA_PORT),
        },
    }


def _tags(det: DetectionSpec) -> list[str]:
    """Sigma tags of every rule of the detection's signatures, whatever the log source.

    Built once here, from the spec only, so no template can give one signature
    different tags in different log sources.
    """
    return [f"attack.{t.id.lower()}" for t in det.techniques] + [
        f"attack.{t.name.lower().replace(' ', '-')}" for t in det.tactics
    ]


def _detection(det: DetectionSpec, policy: Policy, family: str) -> dict[str, Any]:
    overrides = policy.thresholds.get(det.category, {})
    tags = _tags(det)
    attack_refs = [ATTACK_URL.format(path=t.id.replace(".", "/")) for t in det.techniques]
    signatures = []
    for sig in sorted(det.signatures.values(), key=lambda s: s.sid):
        missing = [e for e in COVERAGE_ENGINES if e not in sig.coverage]
        if missing:
            raise SpecError(
                f"{family}/spec.yaml: {det.category} signature {sig.key}: "
                f"no coverage for {', '.join(missing)} (add coverage.<engine>.level)"
            )
        signatures.append(
            {
                "key": sig.key,
                "sid": sig.sid,
                "rev": sig.rev,
                "text": sig.text,
                "description": sig.description,
                "rfcs": list(sig.rfcs),
                # RFCs first: they say what the signature checks; ATT&CK says why it matters.
                "references": [RFC_URL.format(number=n) for n in sig.rfcs] + attack_refs,
                "tags": tags,
                "category": det.category,
                # A signature may have its own default severity (tunnels' <key>_severity).
                "eve_severity": EVE_SEVERITY[
                    det.parameters.get(f"{sig.key}_severity", det.severity)
                ],
                "coverage": {
                    e: {"level": c.level, "why": c.why, "rule": c.rule}
                    for e, c in sig.coverage.items()
                },
                # The detection's false positives, then the signature's own.
                "false_positives": list(det.false_positives) + list(sig.false_positives),
            }
        )
    return {
        "category": det.category,
        "name": det.category.split(".", 1)[1],
        "id": det.id,
        "title": det.title,
        "description": det.description,
        "severity": det.severity,
        "eve_severity": EVE_SEVERITY[det.severity],
        "classtype": suricata_classtype(det.category),
        "techniques": [{"id": t.id, "name": t.name} for t in det.techniques],
        "tactics": [{"id": t.id, "name": t.name} for t in det.tactics],
        "thresholds": {
            name: {
                "value": overrides.get(name, t.default),
                "default": t.default,
                "unit": t.unit,
                "meaning": t.meaning,
            }
            for name, t in det.thresholds.items()
        },
        "false_positives": list(det.false_positives),
        "parameters": det.parameters,
        "sigma_date": det.sigma_date,
        "signatures": signatures,
    }


def tuning_data(policy: Policy, detections: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    """The policy's tuning entries as template data: each with the sids it covers.

    Expired entries are listed (``expired``: the packs say they are not applied) but
    cover no sid. ``reason`` is policy text, so it is wrapped in ``PolicyText``.
    """
    where = policy.path or "(no policy)"
    out = []
    for t in policy.tuning:
        if t.sid is not None:
            sids = [t.sid]
        else:
            sids = [s["sid"] for s in detections[str(t.detection)]["signatures"]]
        sides = {}
        for side, end in (("src", t.src), ("dst", t.dst)):
            if end is not None:
                sides[side] = {"kind": "mac" if end.mac else "ip", "value": end.text}
        out.append(
            {
                "index": t.index,
                "line": t.line,
                "label": t.label,
                "target": t.target,
                "enabled": t.enabled,
                "sides": sides,
                "expires": t.expires.isoformat() if t.expires else None,
                "expired": t.expired,
                "reason": PolicyText(t.reason, f"{where}:{t.line}: tuning[{t.index}].reason"),
                "sids": [] if t.expired else sids,
            }
        )
    return out


def build_context(specs: Mapping[str, FamilySpec], policy: Policy) -> dict[str, Any]:
    """The dictionary every template renders from (sorted, so renders are deterministic)."""
    families: list[dict[str, Any]] = []
    for name in sorted(specs):
        spec = specs[name]
        families.append(
            {
                "family": spec.family,
                "title": spec.title,
                "description": spec.description,
                "detections": [
                    _detection(spec.detections[c], policy, spec.family)
                    for c in sorted(spec.detections)
                ],
            }
        )
    pol = policy_data(policy)
    detections: dict[str, dict[str, Any]] = {
        d["category"]: d for f in families for d in f["detections"]
    }
    tuning = tuning_data(policy, detections)
    return {
        "version": __version__,
        "policy": pol,
        "tuning": tuning,
        # Signatures an active tuning entry disables: the packs leave their rules out.
        "disabled": {sid: t for t in reversed(tuning) if not t["enabled"] for sid in t["sids"]},
        "vars": suricata_vars(pol),
        "families": families,
        "detections": detections,
        "signatures": {s["sid"]: s for d in detections.values() for s in d["signatures"]},
    }
