"""The Suricata part of the pack: rules, their revisions, and the variables include.

Owns which Suricata templates render (``suricata.rules.j2`` in the family's own
folder, else ``data/suricata/templates/<family>.rules.j2``, for each family that has
one, between ``header.rules.j2`` and the variables include ``vars.yaml.j2``; the
classtypes ``classification.config.j2``; and
``threshold.config.j2`` for the policy's tuning suppressions), the rules a tuning entry
disables (left out, with a comment), the rule revisions, and the structural checks on
the rendered rules: one rule per line, msg prefix, sid range, metadata, every
variable defined and every defined variable used, and agreement between the
rules and each signature's declared Suricata coverage.

Revisions: ``data/suricata/rules.lock.yaml`` records each sid's ``rev`` and a hash
of its rule without the ``rev`` and the policy hash, and for each v6sentry signature
without a rule in the committed pack a hash of its alert text. When either
changes, ``make rules`` bumps its ``rev`` and rewrites the lock; renders for a
site policy read the lock and never write it. The lock is the only record of
revisions: the specs carry none and alerts take ``alert.rev`` from it (see
``detectors.spec.revisions``), so a rule and the alerts it stands for agree. Rule syntax is in the
templates, never here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from detectors.rules.render import RenderError, family_template, render_template, suricata_comment
from detectors.spec import FIRST_REV, REVISION_LOCK

RULES_FILE = "v6sentry.rules"
# A family's own Suricata template, in its folder: looked up before the central one.
FAMILY_TEMPLATE = "suricata.rules.j2"
# Folders holding nothing but rendered files (none: the two Suricata files sit beside the
# templates and the lock).
GENERATED_DIRS: tuple[str, ...] = ()
VARS_FILE = "v6sentry-vars.yaml"
# The policy's tuning suppressions (suricata.yaml's threshold-file:).
THRESHOLD_FILE = "threshold.config"
# The pack's classtypes (one per category); suricata-update merges any file named so.
CLASSIFICATION_FILE = "v6sentry-classification.config"
LOCK = REVISION_LOCK
MSG_PREFIX = "V6SENTRY "
SID_RANGE = (1_000_000, 1_999_999)
# Metadata every rule carries (Suricata's `metadata: key value, ...`).
# v6sentry_sid names the signature a rule stands for; a signature needing several rules
# (ISATAP's two interface-id forms) has one with sid == its own sid and others beside it.
REQUIRED_METADATA = (
    "mitre_technique_id",
    "mitre_tactic_id",
    "v6sentry_detection_id",
    "v6sentry_sid",
    "policy_hash",
)

_RULE = re.compile(r"^(alert|drop|pass|reject) \S+ [^(]+ \((?P<opts>.*)\)$")
_SID = re.compile(r"(?:^|;)\s*sid:\s*(\d+)\s*;")
_REV = re.compile(r"(?:^|;)\s*rev:\s*(\d+)\s*;")
_MSG = re.compile(r'(?:^|;)\s*msg:\s*"((?:[^"\\]|\\.)*)"\s*;')
_METADATA = re.compile(r"(?:^|;)\s*metadata:\s*((?:[^;\\]|\\.)*);")
_VAR = re.compile(r"\$([A-Z][A-Z0-9_]*)")
_CLASSTYPE = re.compile(r"(?:^|;)\s*classtype:\s*([^;\s]+)\s*;")
_CLASSIFICATION = re.compile(r"^config classification:\s*([^,\s]+),([^,]+),(\d+)\s*$")
_POLICY_HASH = re.compile(r"policy_hash [0-9a-fnoe]+")
# A template that leaves a rule out for this policy says so in a comment of this form,
# e.g. "# omitted sid 1000101: the policy lists no routers (IPV6_ROUTERS is empty)".
_OMITTED = re.compile(r"^#\s*omitted sid (\d+):\s*\S", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rendered rule line and what the checks read from it."""

    line: int  # 1-based, in the rendered rules file
    text: str
    sid: int
    rev: int
    msg: str
    metadata: dict[str, list[str]]

    @property
    def fingerprint(self) -> str:
        body = _REV.sub(";", self.text, count=1)
        body = _POLICY_HASH.sub("policy_hash -", body)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def parse_rules(text: str, where: str = RULES_FILE) -> list[Rule]:
    """Every rule of a rules file; ``RenderError`` names the line of the first bad one."""
    rules = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _RULE.match(line)
        opts = m.group("opts") if m else ""
        sid, rev, msg, meta = (p.search(opts) for p in (_SID, _REV, _MSG, _METADATA))
        if not (m and sid and rev and msg and meta):
            raise RenderError(
                f"{where}:{n}: not a complete rule (action, header, msg, sid, rev, metadata)"
            )
        metadata: dict[str, list[str]] = {}
        for item in meta.group(1).split(","):
            key, _, value = item.strip().partition(" ")
            metadata.setdefault(key, []).append(value.strip())
        rules.append(Rule(n, line, int(sid.group(1)), int(rev.group(1)), msg.group(1), metadata))
    return rules


def parse_classification(text: str, where: str) -> dict[str, tuple[str, int]]:
    """classtype -> (description, priority) of a classification file; ``RenderError``
    names the first line that is neither a comment nor a ``config classification:``."""
    out: dict[str, tuple[str, int]] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _CLASSIFICATION.match(line)
        if m is None:
            raise RenderError(f"{where}:{n}: not 'config classification: name,description,N'")
        out[m.group(1)] = (m.group(2), int(m.group(3)))
    return out


def omitted_sids(text: str) -> set[int]:
    """Signatures a rendered rules file says it left out for its policy."""
    return {int(m) for m in _OMITTED.findall(text)}


def check_rules(
    rules: list[Rule],
    variables: Mapping[str, Any],
    signatures: Mapping[int, Any],
    where: str,
    omitted: frozenset[int] | set[int] = frozenset(),
    classtypes: Mapping[str, tuple[str, int]] | None = None,
) -> list[str]:
    """Problems with a rendered rule list; empty when it is a valid v6sentry pack.

    ``classtypes`` (from ``parse_classification``) checks each rule's classtype."""
    problems = []
    seen: dict[int, int] = {}
    stands_for: dict[int, int] = {}
    defined = {k for group in variables.values() for k, v in group.items() if v is not None}
    for r in rules:
        at = f"{where}:{r.line}: sid {r.sid}"
        if r.sid in seen:
            problems.append(f"{at}: sid also on line {seen[r.sid]}")
        seen[r.sid] = r.line
        if not SID_RANGE[0] <= r.sid <= SID_RANGE[1]:
            problems.append(f"{at}: outside the local range {SID_RANGE[0]}-{SID_RANGE[1]}")
        if not r.msg.startswith(MSG_PREFIX):
            problems.append(f"{at}: msg does not start with {MSG_PREFIX.strip()!r}")
        missing = [k for k in REQUIRED_METADATA if k not in r.metadata]
        if missing:
            problems.append(f"{at}: metadata lacks {', '.join(missing)}")
        for value in r.metadata.get("v6sentry_sid", []):
            if not value.isdigit() or int(value) not in signatures:
                problems.append(f"{at}: v6sentry_sid {value} is not a signature's sid")
            else:
                stands_for.setdefault(int(value), r.line)
        classtype = _CLASSTYPE.search(r.text)
        if classtype is None:
            problems.append(f"{at}: no classtype")
        elif classtypes is not None and classtype.group(1) not in classtypes:
            problems.append(f"{at}: classtype {classtype.group(1)} is not in {CLASSIFICATION_FILE}")
        unknown = sorted(set(_VAR.findall(r.text)) - defined)
        if unknown:
            problems.append(f"{at}: uses undefined variables {', '.join(unknown)}")
    used = {name for r in rules for name in _VAR.findall(r.text)}
    for name in sorted(defined - used):
        # A variable no rule reads tells the operator the policy value matters when it does not.
        problems.append(f"{where}: no rule uses ${name} (defined in {VARS_FILE})")
    for sid, sig in sorted(signatures.items()):
        level = sig["coverage"]["suricata"]["level"]
        what = f"sid {sid} ({sig['category']} {sig['key']})"
        if level != "none" and sid not in stands_for and sid not in omitted:
            problems.append(f"{where}: {what} is declared {level} for Suricata but has no rule")
        if level != "none" and sid in stands_for and sid not in seen:
            problems.append(f"{where}: {what}: one of its rules must use sid {sid}")
        if level == "none" and sid in stands_for:
            problems.append(
                f"{where}:{stands_for[sid]}: {what} is declared none for Suricata but has a rule"
            )
    return problems


def load_lock(path: Path = LOCK) -> dict[int, dict[str, Any]]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {int(k): dict(v) for k, v in data.items()}


def dump_lock(lock: Mapping[int, Mapping[str, Any]]) -> str:
    lines = [
        "# Revisions of the Suricata rules and of v6sentry's alerts (alert.rev): sid -> rev",
        "# and a hash of the rule without rev and policy hash (or, for a signature without a",
        "# rule, of its alert text). `make rules` bumps rev when that changes; do not edit.",
    ]
    for sid in sorted(lock):
        lines.append(f"{sid}: {{rev: {lock[sid]['rev']}, sha: {lock[sid]['sha']}}}")
    return "\n".join(lines) + "\n"


def signature_fingerprint(text: str) -> str:
    """The lock hash of a signature without a rule: its EVE ``alert.signature``."""
    return hashlib.sha256(f"{MSG_PREFIX}{text}".encode()).hexdigest()[:16]


def _bump(old: Mapping[str, Any] | None, sha: str) -> int:
    # New to the lock: first revision; changed: one past the lock.
    return FIRST_REV if old is None else int(old["rev"]) + (old["sha"] != sha)


def apply_revisions(
    rules: list[Rule],
    text: str,
    lock: Mapping[int, Mapping[str, Any]],
    signatures: Mapping[int, Mapping[str, Any]] | None = None,
) -> tuple[str, dict[int, dict[str, Any]]]:
    """``text`` with each rule's rev from the lock, bumped where the rule changed.

    The lock returned also versions each of ``signatures`` (sid -> context signature)
    that no rule uses the sid of, by its text, so every alert's rev is in the lock.
    """
    new_lock: dict[int, dict[str, Any]] = {}
    by_line = {r.line: r for r in rules}
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        rule = by_line.get(n)
        if rule is not None:
            old = lock.get(rule.sid)
            sig = (signatures or {}).get(rule.sid)
            if (
                old is not None
                and sig is not None
                and old["sha"] == signature_fingerprint(sig["text"])
            ):
                # A rule the committed pack leaves out (its policy cannot support it) is
                # versioned by its signature's text: a site's render keeps that rev, so the
                # rule and the signature's alerts still agree.
                old = {**old, "sha": rule.fingerprint}
            rev = _bump(old, rule.fingerprint)
            new_lock[rule.sid] = {"rev": rev, "sha": rule.fingerprint}
            line = _REV.sub(f"; rev:{rev};", line, count=1)
        out.append(line)
    for sid, sig in sorted((signatures or {}).items()):
        if sid not in new_lock:
            sha = signature_fingerprint(sig["text"])
            new_lock[sid] = {"rev": _bump(lock.get(sid), sha), "sha": sha}
    return "\n".join(out) + "\n", new_lock


def _stands_for(rule: Rule) -> set[int]:
    return {int(v) for v in rule.metadata.get("v6sentry_sid", []) if v.isdigit()}


def disable(text: str, disabled: Mapping[int, Mapping[str, Any]]) -> str:
    """``text`` without the rules of the signatures a tuning entry disables.

    The first rule of each such signature becomes an ``omitted sid`` comment naming the
    entry and its reason (as the templates do for rules a policy cannot support).
    """
    if not disabled:
        return text
    lines = text.splitlines()
    said: set[int] = set()
    drop: list[int] = []
    for rule in parse_rules(text):
        hit = sorted(_stands_for(rule) & set(disabled))
        if not hit:
            continue
        sid = hit[0]
        if sid in said:
            drop.append(rule.line)
            continue
        said.add(sid)
        t = disabled[sid]
        lines[rule.line - 1] = (
            f"# omitted sid {sid}: disabled by the policy's {suricata_comment(t['label'])}: "
            f"{suricata_comment(t['reason'])}"
        )
    for n in sorted(drop, reverse=True):
        del lines[n - 1]
    return "\n".join(lines) + "\n"


def suppressions(rules: list[Rule], tuning: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The tuning entries with ``rules``: the pack's rule sids standing for their sids."""
    return [
        {**t, "rules": sorted(r.sid for r in rules if _stands_for(r) & set(t["sids"]))}
        for t in tuning
    ]


def render(
    env: jinja2.Environment, ctx: Mapping[str, Any], lock: Mapping[int, Mapping[str, Any]]
) -> tuple[dict[str, str], dict[int, dict[str, Any]]]:
    """The Suricata files of a pack (relative path -> text) and the lock they imply."""
    loader = env.loader
    assert loader is not None
    names = set(loader.list_templates())
    parts = [render_template(env, "header.rules.j2", **ctx)]
    for family in ctx["families"]:
        # The family folder's own template first, then the central one (or none: a family
        # whose signatures all declare no Suricata coverage needs no template).
        own = family_template(family["family"], FAMILY_TEMPLATE)
        central = f"{family['family']}.rules.j2"
        for name in (own, central):
            if name in names:
                parts.append(render_template(env, name, family=family, **ctx))
                break
    text = "\n".join(p.rstrip("\n") for p in parts) + "\n"
    text = disable(text, ctx["disabled"])
    rules = parse_rules(text)
    classification = render_template(env, "classification.config.j2", **ctx)
    classtypes = parse_classification(classification, CLASSIFICATION_FILE)
    problems = check_rules(
        rules, ctx["vars"], ctx["signatures"], RULES_FILE, omitted_sids(text), classtypes
    )
    if problems:
        raise RenderError("; ".join(problems))
    text, new_lock = apply_revisions(parse_rules(text), text, lock, ctx["signatures"])
    tuning = suppressions(rules, ctx["tuning"])
    return {
        f"suricata/{RULES_FILE}": text,
        f"suricata/{VARS_FILE}": render_template(env, "vars.yaml.j2", **ctx),
        f"suricata/{THRESHOLD_FILE}": render_template(
            env, "threshold.config.j2", **{**ctx, "tuning": tuning}
        ),
        f"suricata/{CLASSIFICATION_FILE}": classification,
    }, new_lock
