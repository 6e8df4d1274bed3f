"""Detection spec YAML: the single source of truth for a detection family.

Owns loading and validating ``detections/<family>/spec.yaml`` into typed
objects: identity (UUID, sids), title, severity, ATT&CK ids, each signature's
own short description and the RFCs it cites, thresholds with
their meaning, false positives (the detection's, and a signature's own under
``signatures.<key>.false_positives``), and the native reducers the family's
detections are counted with (``reducers:``: what each observes, its key, what
it reduces and which thresholds it reads; the engine builds them by ``kind``).
Detectors read thresholds from here; the rule templates (Sigma, Suricata)
render from the same objects. This module does not evaluate traffic.

Revisions are not in the spec: a signature's ``rev`` (EVE ``alert.rev``, the Suricata
rule's ``rev:``) is read from the rule lock, ``rules/data/suricata/rules.lock.yaml``,
which ``make rules`` bumps when the signature's rule (or, without a rule, its text)
changes. One source, so the alert and the rule standing for it cannot disagree.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The one record of revisions (package data, so installed wheels have it too).
REVISION_LOCK = Path(__file__).parent / "rules" / "data" / "suricata" / "rules.lock.yaml"
# A signature the lock does not know yet is new: `make rules` will give it rev 1 too.
FIRST_REV = 1

SEVERITIES = ("low", "medium", "high", "critical")
# EVE's alert.severity: 1 is the most severe, as in Suricata's classification.config.
EVE_SEVERITY = {"critical": 1, "high": 1, "medium": 2, "low": 3}


def suricata_classtype(category: str) -> str:
    """The Suricata classtype of a v6sentry category (``ipv6.rogue_ra`` ->
    ``v6sentry-rogue-ra``). The pack's classification file describes it with the
    category itself, so Suricata's ``alert.category`` is v6sentry's, and gives it the
    detection's EVE severity as priority: one category and severity mapping for both."""
    return "v6sentry-" + category.split(".", 1)[1].replace("_", "-")


# Elastic's detection-rule risk scores for the same names (used in ECS output).
RISK_SCORE = {"low": 21, "medium": 47, "high": 73, "critical": 99}

_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
_TACTIC = re.compile(r"^TA\d{4}$")
_CATEGORY = re.compile(r"^ipv6\.[a-z0-9_]+$")
# A sentence ends at ., ! or ? followed by a space and a capital ("RFC 4861 6.1.2" does not).
_SENTENCE_END = re.compile(r"[.!?]\s+(?=[A-Z])")
# A signature description is short: it is a Sigma rule's description and a tooltip.
MAX_DESCRIPTION_SENTENCES = 2
_RFC_NAMED = re.compile(r"\bRFC (\d+)")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SpecError(Exception):
    """A spec file that does not follow the schema; names the file and key."""


@dataclass(frozen=True, slots=True)
class Threshold:
    """One tunable: its default, meaning, unit and allowed range."""

    name: str
    default: float
    meaning: str
    unit: str
    minimum: float | None
    maximum: float | None
    integer: bool


@dataclass(frozen=True, slots=True)
class AttackRef:
    """An ATT&CK technique or tactic, id and name."""

    id: str
    name: str


# Engines other than v6sentry whose rule packs render from the specs. Sigma over v6sentry's
# own alerts is always complete and Sigma over Suricata EVE follows the Suricata pack, so
# only these two are declared per signature.
COVERAGE_ENGINES = ("suricata", "zeek")
COVERAGE_LEVELS = ("full", "partial", "none")


@dataclass(frozen=True, slots=True)
class Coverage:
    """How far one engine's rules express a signature, and why not further.

    ``full``: the engine alerts on exactly the captures where v6sentry does.
    ``partial``: it catches part of it. For Suricata (proved on every regression
    capture) it alerts only where v6sentry does; for Zeek (no Zeek here to prove
    it) it approximates and may also fire elsewhere, which ``why`` says.
    ``none``: the engine's rule language or logs cannot express it.
    """

    level: str
    why: str
    # What the engine's rule itself matches, when that is less than the signature's
    # description says (partial coverage): the Sigma rule for its alerts describes this.
    rule: str = ""


@dataclass(frozen=True, slots=True)
class Signature:
    """One alert variant: its stable sid, its text and its coverage by other engines.

    ``description`` says in one or two sentences what this signature (not its whole
    detection) reports; ``rfcs`` are the RFC numbers it rests on, cited by the rule packs.
    """

    key: str
    sid: int
    rev: int  # from REVISION_LOCK, never from spec.yaml
    text: str
    description: str
    rfcs: tuple[int, ...]
    coverage: dict[str, Coverage] = field(default_factory=dict)
    # False positives of this signature only (the detection's apply to every signature).
    false_positives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DetectionSpec:
    """One alert category inside a family."""

    category: str
    id: str  # UUID
    title: str
    description: str
    severity: str
    techniques: tuple[AttackRef, ...]
    tactics: tuple[AttackRef, ...]
    signatures: dict[str, Signature]
    thresholds: dict[str, Threshold]
    false_positives: tuple[str, ...]
    parameters: dict[str, Any]
    # Sigma ``date`` of the detection's rules (YYYY-MM-DD): declared, never the render day,
    # so a re-render is byte-identical on any day.
    sigma_date: str = ""


# What an evidence field holds, for the Elasticsearch mapping: an IPv6 or IPv4 address
# (prefixes are keywords: ``ip`` rejects CIDR), a packet time in seconds since the epoch, a
# value that is a MAC in one signature and a number in another (``mixed``, a keyword), a
# string, a number, a flag, or an object of counts by free-form key (``flattened``).
EVIDENCE_TYPES = ("address", "time", "mixed", "keyword", "number", "boolean", "flattened")
_EVIDENCE_PATH = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


def _evidence(doc: Mapping[str, Any], where: str) -> dict[str, str]:
    node = _req(doc, "evidence", where, dict)
    out: dict[str, str] = {}
    for path, kind in node.items():
        w = f"{where}: evidence.{path}"
        if not isinstance(path, str) or not _EVIDENCE_PATH.match(path):
            raise SpecError(f"{w}: not a dotted lower-case field path")
        if kind not in EVIDENCE_TYPES:
            raise SpecError(f"{w}: type {kind!r} not one of {', '.join(EVIDENCE_TYPES)}")
        out[path] = kind
    return out


# Event kinds a native reducer may observe (``native/src/reducer.rs``, ``Observes``).
OBSERVABLE = (
    "ipv6_packet",
    "tunnel_packet",
    "nd_message",
    "malformed",
    "fragment_anomaly",
    "mld_message",
    "dhcpv6",
    "ext_options",
    "icmp_error",
    "dns_message",
)


@dataclass(frozen=True, slots=True)
class ReducerSpec:
    """A native reducer a family declares (Zeek's SumStats: observe, key, reduce).

    ``kind`` names the Rust reducer (``detectors/detections/<family>/native/``);
    ``observes`` the decoded event kinds it sees, in packet order, natively;
    ``key`` what it counts per, ``reduces`` what it keeps per key and window,
    ``outputs`` what it hands Python; ``thresholds`` the ``category.name``
    thresholds it reads (checked against the spec's own thresholds).
    """

    name: str
    kind: str
    observes: tuple[str, ...]
    key: str
    reduces: str
    outputs: str
    thresholds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FamilySpec:
    """A detection family: one folder, one spec, one or more categories."""

    family: str
    title: str
    description: str
    path: str
    detections: dict[str, DetectionSpec]
    reducers: dict[str, ReducerSpec] = field(default_factory=dict)
    # The sid range the family owns (``sids: {first, last}``); every signature is inside it.
    sids: tuple[int, int] = (0, 0)
    # Evidence field (dotted path under the alert's ``v6sentry`` object) -> EVIDENCE_TYPES
    # entry; the Elasticsearch template maps the fields from here.
    evidence: dict[str, str] = field(default_factory=dict)


def _reducer(name: str, node: Any, where: str, thresholds: set[str]) -> ReducerSpec:
    if not isinstance(node, dict):
        raise SpecError(f"{where}: expected a mapping with kind, observes, key, reduces")
    observes = _req(node, "observes", where, list)
    for kind in observes:
        if kind not in OBSERVABLE:
            raise SpecError(f"{where}.observes: '{kind}' not one of {', '.join(OBSERVABLE)}")
    used = _req(node, "thresholds", where, list)
    for t in used:
        if t not in thresholds:
            raise SpecError(f"{where}.thresholds: '{t}' is not a threshold of this spec")
    return ReducerSpec(
        name=name,
        kind=_req(node, "kind", where, str),
        observes=tuple(observes),
        key=_req(node, "key", where, str).strip(),
        reduces=_req(node, "reduces", where, str).strip(),
        outputs=_req(node, "outputs", where, str).strip(),
        thresholds=tuple(used),
    )


def _stamp(path: Path) -> tuple[str, str] | None:
    """What a cached parse of ``path`` is valid for: its name and a digest of its bytes
    (None when it does not exist). Reading a spec is cheap, parsing it is not; keying on
    the content rather than the mtime means a file rewritten within the clock's
    granularity (a test editing a spec twice) is never served stale."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SpecError(f"{path}: {exc}") from exc
    return (str(path.resolve()), hashlib.blake2b(data, digest_size=16).hexdigest())


# Parsed files by stamp, handed out as they are (see load_spec: callers must not mutate).
# A run reads the lock and every spec once: the engine, the families that read another
# family's thresholds (the DHCPv6 and MLD learning windows are the RA family's) and the
# rule renderers all ask again, and parsing YAML was most of the start-up of a short
# replay.
_REVISIONS: dict[tuple[str, str], dict[int, int]] = {}
_SPECS: dict[tuple[tuple[str, str], tuple[tuple[int, int], ...]], FamilySpec] = {}


def revisions(path: Path = REVISION_LOCK) -> dict[int, int]:
    """sid -> rev from the rule lock (empty when there is no lock)."""
    stamp = _stamp(path)
    if stamp is None:
        return {}
    cached = _REVISIONS.get(stamp)
    if cached is None:
        cached = _REVISIONS[stamp] = _read_revisions(path)
    return dict(cached)


def _read_revisions(path: Path) -> dict[int, int]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of sid to {{rev, sha}}")
    out: dict[int, int] = {}
    for sid, entry in data.items():
        if not isinstance(sid, int) or not isinstance(entry, dict):
            raise SpecError(f"{path}: {sid}: expected sid: {{rev: N, sha: HEX}}")
        rev = entry.get("rev")
        if not isinstance(rev, int) or isinstance(rev, bool) or rev < 1:
            raise SpecError(f"{path}: {sid}.rev: expected an integer >= 1, got {rev!r}")
        out[sid] = rev
    return out


def _req(node: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in node:
        raise SpecError(f"{where}: missing key '{key}'")
    value = node[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise SpecError(f"{where}.{key}: expected {kind}, got {type(value).__name__}")
    return value


def _attack(items: Any, where: str, pattern: re.Pattern[str]) -> tuple[AttackRef, ...]:
    if not isinstance(items, list) or not items:
        raise SpecError(f"{where}: expected a non-empty list of {{id, name}}")
    out = []
    for i, item in enumerate(items):
        w = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise SpecError(f"{w}: expected a mapping with id and name")
        ident = _req(item, "id", w, str)
        if not pattern.match(ident):
            raise SpecError(f"{w}.id: '{ident}' is not an ATT&CK id")
        out.append(AttackRef(ident, _req(item, "name", w, str)))
    return tuple(out)


def _threshold(name: str, node: Any, where: str) -> Threshold:
    if not isinstance(node, dict):
        raise SpecError(f"{where}: expected a mapping")
    default = _req(node, "default", where, (int, float))
    integer = bool(node.get("integer", isinstance(default, int)))
    minimum = node.get("min")
    maximum = node.get("max")
    if (minimum is not None and default < minimum) or (maximum is not None and default > maximum):
        raise SpecError(f"{where}.default: {default} outside [{minimum}, {maximum}]")
    return Threshold(
        name=name,
        default=default,
        meaning=_req(node, "meaning", where, str).strip(),
        unit=_req(node, "unit", where, str),
        minimum=minimum,
        maximum=maximum,
        integer=integer,
    )


def _coverage(node: Any, where: str) -> dict[str, Coverage]:
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise SpecError(f"{where}: expected a mapping of engine to {{level, why}}")
    out = {}
    for engine, item in node.items():
        w = f"{where}.{engine}"
        if engine not in COVERAGE_ENGINES:
            raise SpecError(f"{w}: unknown engine (one of {', '.join(COVERAGE_ENGINES)})")
        if not isinstance(item, dict):
            raise SpecError(f"{w}: expected a mapping with level and why")
        level = _req(item, "level", w, str)
        if level not in COVERAGE_LEVELS:
            raise SpecError(f"{w}.level: '{level}' not one of {', '.join(COVERAGE_LEVELS)}")
        why = str(item.get("why", "")).strip()
        if level != "full" and not why:
            raise SpecError(f"{w}.why: required when the level is not full")
        out[engine] = Coverage(
            level, " ".join(why.split()), " ".join(str(item.get("rule", "")).split())
        )
    return out


def _description(node: Mapping[str, Any], where: str) -> str:
    text = " ".join(_req(node, "description", where, str).split())
    sentences = len(_SENTENCE_END.findall(text)) + 1
    if not text.endswith("."):
        raise SpecError(f"{where}.description: must be whole sentences ending with '.'")
    if sentences > MAX_DESCRIPTION_SENTENCES:
        raise SpecError(
            f"{where}.description: {sentences} sentences; say what this signature reports "
            f"in at most {MAX_DESCRIPTION_SENTENCES} (the detection's description has the rest)"
        )
    return text


def _rfcs(node: Mapping[str, Any], where: str) -> tuple[int, ...]:
    items = _req(node, "rfcs", where, list)
    out: list[int] = []
    for i, n in enumerate(items):
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 99999:
            raise SpecError(f"{where}.rfcs[{i}]: {n!r} is not an RFC number")
        if n in out:
            raise SpecError(f"{where}.rfcs[{i}]: RFC {n} listed twice")
        out.append(n)
    return tuple(out)


def _sigma_date(node: Mapping[str, Any], where: str) -> str:
    sigma = _req(node, "sigma", where, dict)
    value = _req(sigma, "date", f"{where}.sigma", (datetime.date, str))
    try:
        # YAML reads an unquoted 2026-12-01 as a date; a quoted one must be ISO too.
        day = value if isinstance(value, datetime.date) else datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise SpecError(f"{where}.sigma.date: {value!r} is not a YYYY-MM-DD day") from exc
    return day.isoformat()


def _sid_range(doc: Mapping[str, Any], where: str) -> tuple[int, int]:
    node = _req(doc, "sids", where, dict)
    first = _req(node, "first", f"{where}: sids", int)
    last = _req(node, "last", f"{where}: sids", int)
    if not 1_000_000 <= first <= last <= 1_099_999:
        raise SpecError(
            f"{where}: sids: {first}-{last} is not a range inside 1000000-1099999 "
            "(sids from 1100000 are the Suricata pack's extra rules)"
        )
    return first, last


def _detection(node: Any, where: str, revs: Mapping[int, int]) -> DetectionSpec:
    if not isinstance(node, dict):
        raise SpecError(f"{where}: expected a mapping")
    category = _req(node, "category", where, str)
    if not _CATEGORY.match(category):
        raise SpecError(f"{where}.category: '{category}' must look like ipv6.name")
    ident = _req(node, "id", where, str)
    try:
        uuid.UUID(ident)
    except ValueError as exc:
        raise SpecError(f"{where}.id: '{ident}' is not a UUID") from exc
    severity = _req(node, "severity", where, str)
    if severity not in SEVERITIES:
        raise SpecError(f"{where}.severity: '{severity}' not one of {', '.join(SEVERITIES)}")
    sigs: dict[str, Signature] = {}
    for key, sig in _req(node, "signatures", where, dict).items():
        w = f"{where}.signatures.{key}"
        if not isinstance(sig, dict):
            raise SpecError(f"{w}: expected a mapping with sid and text")
        sid = _req(sig, "sid", w, int)
        if "rev" in sig:
            raise SpecError(
                f"{w}.rev: revisions are kept in {REVISION_LOCK.name} "
                "(detectors/rules/data/suricata/, written by `make rules`); remove rev"
            )
        if not 1_000_000 <= sid <= 1_999_999:
            raise SpecError(f"{w}.sid: {sid} outside the local range 1000000-1999999")
        description, rfcs = _description(sig, w), _rfcs(sig, w)
        text = _req(sig, "text", w, str)
        # The rules cite rfcs; an RFC the signature names but does not list would go uncited.
        named = {int(n) for n in _RFC_NAMED.findall(f"{text} {description}")}
        if named - set(rfcs):
            unlisted = ", ".join(str(n) for n in sorted(named - set(rfcs)))
            raise SpecError(f"{w}.rfcs: lacks RFC {unlisted}, named in its text or description")
        sigs[key] = Signature(
            key,
            sid,
            revs.get(sid, FIRST_REV),
            text,
            description,
            rfcs,
            _coverage(sig.get("coverage"), f"{w}.coverage"),
            tuple(str(f).strip() for f in (sig.get("false_positives") or [])),
        )
    thresholds = {
        name: _threshold(name, t, f"{where}.thresholds.{name}")
        for name, t in _req(node, "thresholds", where, dict).items()
    }
    fps = _req(node, "false_positives", where, list)
    return DetectionSpec(
        category=category,
        id=ident,
        title=_req(node, "title", where, str),
        description=_req(node, "description", where, str).strip(),
        severity=severity,
        techniques=_attack(node.get("techniques"), f"{where}.techniques", _TECHNIQUE),
        tactics=_attack(node.get("tactics"), f"{where}.tactics", _TACTIC),
        signatures=sigs,
        thresholds=thresholds,
        false_positives=tuple(str(f).strip() for f in fps),
        parameters=dict(node.get("parameters") or {}),
        sigma_date=_sigma_date(node, where),
    )


def load_spec(path: Path, revs: Mapping[int, int] | None = None) -> FamilySpec:
    """Load and validate one family spec; ``revs`` (sid -> rev) defaults to the lock's.

    The result is cached and shared by every caller with the same file and revisions.
    Its dataclasses are frozen (no attribute can be reassigned), but the freezing is
    shallow: ``detections``, ``reducers``, ``evidence``, ``signatures``, ``thresholds``,
    ``coverage`` and ``parameters`` (with the YAML lists inside it) are plain dicts and
    lists, shared with the cache. Callers must not mutate them; one that needs a changed
    spec works on a ``copy.deepcopy`` (as ``tests/test_engine.py`` does). Nothing in
    ``detectors/`` mutates them (they are copied, e.g. ``dict(det.thresholds)``). They are
    not deep-frozen with mapping proxies: those can be neither deep-copied (the tests
    deep-copy specs) nor dumped as JSON or YAML."""
    revs = revisions() if revs is None else revs
    stamp = _stamp(path)
    key = None if stamp is None else (stamp, tuple(sorted(revs.items())))
    if key is not None and (cached := _SPECS.get(key)) is not None:
        return cached
    spec = _parse_spec(path, revs)
    if key is not None:
        _SPECS[key] = spec
    return spec


def _parse_spec(path: Path, revs: Mapping[int, int]) -> FamilySpec:
    try:
        # libyaml's safe loader when PyYAML has it (5-10x faster; the same documents):
        # every run loads every spec, so this is most of the start-up after imports.
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: {exc}") from exc
    where = str(path)
    if not isinstance(doc, dict):
        raise SpecError(f"{where}: expected a mapping at the top level")
    detections = {}
    for i, node in enumerate(_req(doc, "detections", where, list)):
        det = _detection(node, f"{where}: detections[{i}]", revs)
        if det.category in detections:
            raise SpecError(f"{where}: category {det.category} defined twice")
        detections[det.category] = det
    first, last = _sid_range(doc, where)
    for det in detections.values():
        for sig in det.signatures.values():
            if not first <= sig.sid <= last:
                raise SpecError(
                    f"{where}: {det.category} signature {sig.key}: sid {sig.sid} "
                    f"outside the family's sids {first}-{last}"
                )
    known = {f"{cat}.{t}" for cat, det in detections.items() for t in det.thresholds}
    reducers_node = doc.get("reducers") or {}
    if not isinstance(reducers_node, dict):
        raise SpecError(f"{where}: reducers: expected a mapping of name -> reducer")
    reducers = {
        name: _reducer(name, node, f"{where}: reducers.{name}", known)
        for name, node in reducers_node.items()
    }
    return FamilySpec(
        family=_req(doc, "family", where, str),
        title=_req(doc, "title", where, str),
        description=_req(doc, "description", where, str).strip(),
        path=where,
        detections=detections,
        reducers=reducers,
        sids=(first, last),
        evidence=_evidence(doc, where),
    )
