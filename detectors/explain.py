"""``v6sentry explain`` and ``v6sentry policy show|check``: what a sid means, what a policy is.

Owns two read-only views for an operator tuning a site: ``explain`` prints one
signature (or the signature of one alert, read from an EVE or ECS file) with
its detection, severity, ATT&CK, thresholds as the policy leaves them (policy
overrides marked), the RFCs it rests on, false positives, coverage and the
tuning entries that apply; ``policy show`` prints the effective policy as YAML
with every default filled in (detection and decoder thresholds included), and
``policy check`` only validates. Neither reads traffic nor writes a file.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
import textwrap
from collections.abc import Mapping
from typing import Any

import yaml

from detectors.detections import discover
from detectors.engine import DECODER_THRESHOLDS, known_signatures, known_thresholds
from detectors.policy import PREFERENCES, Policy, PolicyError, Tuning, empty_policy, load_policy
from detectors.rules.context import RFC_URL
from detectors.spec import DetectionSpec, FamilySpec, Signature, SpecError

EXIT_OK, EXIT_ERROR = 0, 2
_ALERT_ID = re.compile(r"[0-9a-f]{32}")

EXPLAIN_EPILOG = """\
examples:
  v6sentry explain 1000101 --policy pcaps/policy.yaml
  v6sentry explain 0437df163b1b81f9c9608f43e0c017f4 --alerts alerts.jsonl

An ALERT_ID (the 32 hex digits of v6sentry.alert_id in EVE, event.id in ECS) is
looked up in the --alerts FILE it was written to; its sid is then explained.
Exit codes: 0 printed, 2 unknown sid or alert id, or a bad policy or alerts file
(one line on stderr).
"""

POLICY_EPILOG = """\
examples:
  v6sentry policy show --policy pcaps/policy.yaml
  v6sentry policy check site.yaml

show prints YAML that loads as a policy: every threshold (each detection's and
the decoder's) with its value in force, the policy's own values kept, tuning
entries in file order (expired ones only named in a comment). Without --policy
it shows the defaults. check only validates: exit 0 valid, 2 not (one line on
stderr naming file, line and key).
"""


def add_parsers(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    explain = sub.add_parser(
        "explain",
        help="print what a signature (sid) or an alert means, with its thresholds and RFCs",
        description="Print a signature's detection, severity, ATT&CK, thresholds as the "
        "policy sets them (policy overrides marked), RFCs, false positives, coverage by "
        "other engines and the policy's tuning entries for it.",
        epilog=EXPLAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("what", metavar="ALERT_ID|SID", help="a sid, or an alert id")
    explain.add_argument("--policy", metavar="FILE", help="site policy YAML (default: none)")
    explain.add_argument(
        "--alerts",
        metavar="FILE",
        help="EVE or ECS alerts (JSON lines) to look an ALERT_ID up in",
    )
    policy = sub.add_parser(
        "policy",
        help="show the effective policy with every default, or check a policy file",
        epilog=POLICY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = policy.add_subparsers(
        dest="policy_command", metavar="ACTION", required=True, parser_class=parser_class
    )
    show = actions.add_parser(
        "show",
        help="print the effective policy as YAML, every default filled in",
        epilog=POLICY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("--policy", metavar="FILE", help="site policy YAML (default: none)")
    check = actions.add_parser(
        "check", help="validate a policy file (exit 0 valid, 2 not)", epilog=POLICY_EPILOG
    )
    check.add_argument("file", metavar="FILE", help="site policy YAML")


def _fail(message: str) -> int:
    print(f"v6sentry: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _load(path: str | None, specs: Mapping[str, FamilySpec]) -> Policy:
    if path is None:
        return empty_policy()
    return load_policy(path, known_thresholds(specs), known_signatures(specs))


# -- explain -----------------------------------------------------------------


def _find(
    specs: Mapping[str, FamilySpec], sid: int
) -> tuple[FamilySpec, DetectionSpec, Signature] | None:
    for spec in specs.values():
        for det in spec.detections.values():
            for sig in det.signatures.values():
                if sig.sid == sid:
                    return spec, det, sig
    return None


class _LookupError(Exception):
    """An alert id that cannot be explained; ``str()`` is the one-line reason."""


def alert_sid(alert_id: str, path: str) -> tuple[int, dict[str, Any]]:
    """The sid of alert ``alert_id`` in an EVE or ECS JSON-lines file, and the alert."""
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise _LookupError(f"{path}: cannot read alerts: {exc.strerror or exc}") from None
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                raise _LookupError(f"{path}:{n}: not a JSON line") from None
            if not isinstance(doc, dict):
                continue
            if doc.get("v6sentry", {}).get("alert_id") == alert_id and "alert" in doc:
                return int(doc["alert"]["signature_id"]), doc
            event, rule = doc.get("event", {}), doc.get("rule", {})
            ref = str(rule.get("reference", ""))
            if event.get("id") == alert_id and ref.startswith("sid:"):
                return int(ref[4:]), doc
    raise _LookupError(f"alert {alert_id} is not in {path}")


def _alert_line(doc: dict[str, Any]) -> str:
    """One line about the alert that was looked up: when, from where to where."""
    if "alert" in doc:  # EVE
        ts, src, dst = doc.get("timestamp"), doc.get("src_ip"), doc.get("dest_ip")
        ident = doc.get("v6sentry", {}).get("identifier")
    else:  # ECS
        ts = doc.get("@timestamp")
        src = doc.get("source", {}).get("ip")
        dst = doc.get("destination", {}).get("ip")
        ident = doc.get("v6sentry", {}).get("identifier")
    return f"{ts}: {_short(src)} -> {_short(dst)} (identifier {ident})"


def _short(address: Any) -> str:
    """An address as people write it: EVE spells IPv6 out in full, as Suricata does."""
    if not isinstance(address, str) or not address:
        return "-"
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def _value(value: float | int) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(
        " ".join(text.split()), 92, initial_indent=indent, subsequent_indent=indent
    )


def explain_lines(specs: Mapping[str, FamilySpec], policy: Policy, sid: int) -> list[str] | None:
    """The explanation of ``sid`` under ``policy``, or None for an unknown sid."""
    found = _find(specs, sid)
    if found is None:
        return None
    spec, det, sig = found
    overrides = policy.thresholds.get(det.category, {})
    where = policy.path or "none"
    lines = [
        f"sid {sig.sid} rev {sig.rev}: V6SENTRY {sig.text}",
        f"signature: {sig.key} of {det.category} ({det.title}; family {spec.family})",
        f"detection id: {det.id}",
        f"severity: {det.severity}",
        "ATT&CK: "
        + ", ".join(f"{t.id} {t.name}" for t in det.techniques)
        + "; tactics "
        + ", ".join(f"{t.id} {t.name}" for t in det.tactics),
        "what it reports:",
        *_wrap(sig.description, "  "),
        "how the detection works:",
        *_wrap(det.description, "  "),
        "RFCs: " + (", ".join(f"RFC {n} ({RFC_URL.format(number=n)})" for n in sig.rfcs) or "none"),
        f"thresholds of {det.category} (policy {where}):",
    ]
    for name, t in sorted(det.thresholds.items()):
        default = _value(t.default)
        origin = f"policy override; default {default}" if name in overrides else "default"
        lines.append(f"  {name} = {_value(overrides.get(name, t.default))} {t.unit} ({origin})")
        lines.extend(_wrap(t.meaning, "      "))
    lines.append("false positives:")
    for fp in det.false_positives + sig.false_positives:
        lines.extend(
            textwrap.wrap(" ".join(fp.split()), 92, initial_indent="  - ", subsequent_indent="    ")
        )
    lines.append("coverage by other engines:")
    for engine, c in sorted(sig.coverage.items()):
        lines.extend(_wrap(f"{engine}: {c.level}" + (f" ({c.why})" if c.why else ""), "  "))
    tuning = [e for e in policy.tuning if e.applies_to(det.category, sid)]
    lines.append(f"tuning (policy {where}):" + ("" if tuning else " none applies"))
    for entry in tuning:
        state = "expired, not applied" if entry.expired else "applied"
        until = f", until {entry.expires}" if entry.expires else ""
        lines.append(f"  {entry.label}: {entry.reason} ({state}{until})")
    return lines


def run_explain(args: argparse.Namespace) -> int:
    try:
        specs, _ = discover()
        policy = _load(args.policy, specs)
    except (SpecError, PolicyError) as exc:
        return _fail(str(exc))
    what = args.what.strip().lower()
    header: list[str] = []
    if what.isdigit() and not _ALERT_ID.fullmatch(what):
        sid = int(what)
    elif _ALERT_ID.fullmatch(what):
        if args.alerts is None:
            return _fail(
                f"{what} is an alert id: give the alerts file it was written to (--alerts FILE)"
            )
        try:
            sid, doc = alert_sid(what, args.alerts)
        except _LookupError as exc:
            return _fail(str(exc))
        header = [f"alert {what} {_alert_line(doc)}"]
    else:
        return _fail(f"{args.what!r} is neither a sid nor an alert id (32 hex digits)")
    lines = explain_lines(specs, policy, sid)
    if lines is None:
        return _fail(f"sid {sid} is not a v6sentry signature (see `v6sentry rules matrix`)")
    sys.stdout.write("\n".join([*header, *lines]) + "\n")
    return EXIT_OK


# -- policy show / check -------------------------------------------------------


def _mac(raw: bytes | None) -> str | None:
    return None if raw is None else ":".join(f"{b:02x}" for b in raw)


def _tuning_entry(t: Tuning) -> dict[str, Any]:
    out: dict[str, Any] = {"sid": t.sid} if t.sid is not None else {"detection": t.detection}
    if not t.enabled:
        out["enabled"] = False
    else:
        out["suppress"] = {k: e.text for k, e in (("src", t.src), ("dst", t.dst)) if e}
    if t.expires is not None:
        out["expires"] = t.expires.isoformat()
    out["reason"] = t.reason
    return out


def effective_policy(specs: Mapping[str, FamilySpec], policy: Policy) -> dict[str, Any]:
    """The policy as a policy document, every threshold default filled in."""
    out: dict[str, Any] = {}
    if policy.routers is not None:
        names = {v: k for k, v in PREFERENCES.items()}
        routers = []
        for r in policy.routers:
            entry: dict[str, Any] = {"address": str(ipaddress.IPv6Address(r.address))}
            if r.mac is not None:
                entry["mac"] = _mac(r.mac)
            if r.name is not None:
                entry["name"] = r.name
            # Only the keys the entry has: an absent key means "not checked".
            checked = {
                "prefixes": [str(p) for p in r.prefixes],
                "rdnss": [str(ipaddress.IPv6Address(a)) for a in r.rdnss],
                "dnssl": list(r.dnssl),
                "routes": [str(p) for p in r.routes],
                "mtu": r.mtu,
                "preference": names.get(r.preference) if r.preference is not None else None,
                "managed": r.managed,
                "other": r.other,
            }
            entry.update((k, v) for k, v in checked.items() if k in r.checked)
            routers.append(entry)
        out["routers"] = routers
    if policy.dhcpv6_servers is not None:
        servers = []
        for s in policy.dhcpv6_servers:
            server: dict[str, Any] = {
                "address": str(ipaddress.IPv6Address(s.address)),
                "mac": _mac(s.mac),
            }
            if s.duid is not None:
                server["duid"] = s.duid.hex(":")
            if s.name is not None:
                server["name"] = s.name
            if s.dns is not None:
                server["dns"] = [str(ipaddress.IPv6Address(a)) for a in s.dns]
            if s.domains is not None:
                server["domains"] = list(s.domains)
            servers.append(server)
        out["dhcpv6_servers"] = servers
    out["prefixes"] = {
        "monitored": [str(p) for p in policy.monitored],
        "dark": [str(p) for p in policy.dark],
    }
    out["tunnels"] = {"allowed": [str(p) for p in policy.tunnels_allowed]}
    thresholds: dict[str, dict[str, float | int]] = {}
    known = known_thresholds(specs)
    for category in sorted(known):
        given = policy.thresholds.get(category, {})
        defaults = DECODER_THRESHOLDS if category == "decoder" else known[category]
        thresholds[category] = {
            name: given.get(name, t.default) for name, t in sorted(defaults.items())
        }
    out["thresholds"] = thresholds
    out["tuning"] = [_tuning_entry(t) for t in policy.active_tuning]
    return out


def show_text(specs: Mapping[str, FamilySpec], policy: Policy) -> str:
    """``policy show``'s output: header comments, then the effective policy as YAML."""
    if policy.path is None:
        head = ["# Effective policy: no --policy (the defaults)"]
    else:
        head = [f"# Effective policy: {policy.path} (sha256 {policy.sha256})"]
    if policy.learns_routers:
        head.append("# routers: not listed, so they are learned (learn_window_s of ipv6.rogue_ra)")
    if policy.learns_dhcpv6_servers:
        head.append(
            "# dhcpv6_servers: not listed, so they are learned (learn_window_s of ipv6.rogue_ra)"
        )
    for t in policy.tuning:
        if t.expired:
            head.append(f"# not applied, expired on {t.expires}: {t.label}: {t.reason}")
    body = yaml.safe_dump(
        effective_policy(specs, policy), sort_keys=False, default_flow_style=False, width=88
    )
    return "\n".join(head) + "\n" + body


def run_policy(args: argparse.Namespace) -> int:
    path = args.file if args.policy_command == "check" else args.policy
    try:
        specs, _ = discover()
        policy = _load(path, specs)
    except (SpecError, PolicyError) as exc:
        return _fail(str(exc))
    for warning in policy.tuning_warnings():
        print(f"v6sentry: warning: {warning}", file=sys.stderr)
    if args.policy_command == "check":
        print(f"v6sentry: {path}: valid policy", file=sys.stderr)
        return EXIT_OK
    sys.stdout.write(show_text(specs, policy))
    return EXIT_OK
