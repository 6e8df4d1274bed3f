"""``v6sentry verify``: check captures against a user's expectations file.

Owns the expectations file (format, validation with ``file:line: key: problem``
errors, its JSON Schema), running each capture with its own engine (in a process
pool for ``-j N``), comparing the alerts with what is expected, the terminal table,
the JUnit XML report and ``--update``. It does not detect anything itself: each
capture goes through the same Engine, policy loading and EVE rendering as
``v6sentry replay``.

The file, paths relative to it::

    policy: site.yaml            # optional default for every capture
    allow_other: false           # default: an alert that no expectation names fails
    captures:
      - capture: rogue_ra.pcap   # a path or a glob, or a list of them
        expect:
          ipv6.rogue_ra: 2                     # category -> exact count
          1000101: {min: 1, max: 3}            # sid -> range
          ipv6.ndp_spoof:                      # count of alerts whose fields match
            count: 1
            where: {src_ip: "fe80::bad", v6sentry.router.mac: "02:00:00:00:0b:ad"}
      - capture: benign_*.pcap
        none: true                             # must raise no alert at all
      - policy: other.yaml       # a group: its policy and allow_other apply to its members
        captures:
          - capture: dark_prefix.pcap
            expect: {ipv6.dark_prefix: 1}

Exit codes: 0 all pass, 1 any expectation fails, 2 bad input (the file, a
policy, a capture that cannot be opened, usage).
"""

from __future__ import annotations

import argparse
import glob
import io
import ipaddress
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from detectors.policy import _CONSTRUCT, PolicyError, _Checker, _compose, _describe, _line

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
HOST = "verify"  # fixed EVE "host": results do not depend on the machine
_TAG = "tag:yaml.org,2002:"
_MAC = re.compile(r"[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}")
_GLOB = re.compile(r"[*?\[]")
ENTRY_KEYS = ("capture", "name", "policy", "none", "expect", "allow_other", "truncated")
GROUP_KEYS = ("captures", "policy", "allow_other")
TOP_KEYS = ("captures", "policy", "allow_other")
RULE_KEYS = ("count", "min", "max", "where")

EPILOG = """\
examples:
  v6sentry verify examples/verify/expectations.yaml
  v6sentry verify -j 4 --junit verify.xml examples/verify/expectations.yaml
  v6sentry verify --update examples/verify/expectations.yaml && git diff examples/
  v6sentry verify --schema > expectations.schema.json

exit codes: 0 every expectation holds, 1 an expectation fails (the table names
the difference: missing, unexpected, count off, field mismatch, truncation),
2 bad input (the expectations file, a policy or a capture; one line naming the
file, line and key). --update rewrites the failing expectations with the current
results, keeping the file's comments and order, and exits 0 (1 when the
captures of one glob disagree, which it leaves as written).
"""


class VerifyError(Exception):
    """Bad input. ``str()`` is one line, ``file:line: key: problem`` where there is one."""


@dataclass(frozen=True)
class Rule:
    """One expectation: alerts of a category (str) or sid (int), optionally with field
    values, counted within [minimum, maximum] (maximum None: no upper bound)."""

    key: str | int
    minimum: int
    maximum: int | None
    where: tuple[tuple[str, str], ...] = ()
    line: int = 0

    @property
    def label(self) -> str:
        what = f"sid {self.key}" if isinstance(self.key, int) else self.key
        if self.where:
            what += " where " + ", ".join(f"{k}={v}" for k, v in self.where)
        return what

    @property
    def wanted(self) -> str:
        if self.maximum == self.minimum:
            return str(self.minimum)
        if self.maximum is None:
            return f">= {self.minimum}"
        return f"{self.minimum}..{self.maximum}"

    def selects(self, alert: Mapping[str, Any]) -> bool:
        info = alert.get("alert", {})
        if isinstance(self.key, int):
            return bool(info.get("signature_id") == self.key)
        return bool(info.get("category") == self.key)


@dataclass(frozen=True)
class Case:
    """One capture to run and what it must raise."""

    name: str  # shown in the table and JUnit: the path as written (or ``name:``)
    capture: str  # absolute path
    policy: str | None  # absolute path, None: learning mode
    rules: tuple[Rule, ...]
    allow_other: bool
    truncated: bool
    line: int  # the entry's line, for messages
    entry: tuple[int, ...]  # index path of the entry in the file: (i,) or (group, i)
    is_glob: bool = False


@dataclass
class Outcome:
    """What one capture produced (picklable: it crosses the process pool)."""

    alerts: list[dict[str, Any]]
    capture_warnings: list[str]  # the reader's: truncated or corrupt
    seconds: float
    notice: str | None = None  # learning mode's warning (no policy)
    policy_warnings: list[str] = field(default_factory=list)  # expired tuning entries


@dataclass
class Result:
    case: Case
    outcome: Outcome
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


# -- the expectations file -------------------------------------------------


def load(path: str) -> list[Case]:
    """Parse and validate an expectations file; VerifyError names file, line and key."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise VerifyError(f"{path}: cannot read expectations: {exc.strerror}") from None
    try:
        return _Loader(path).cases(_compose(path, raw))
    except PolicyError as exc:  # the policy's checker formats file:line: key: problem
        raise VerifyError(str(exc).replace("policy is not UTF-8", "not UTF-8")) from None


class _Loader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.base = Path(path).resolve().parent
        self.check = _Checker(path)
        from detectors.detections import discover
        from detectors.engine import known_signatures

        specs, _ = discover()
        self.sids = known_signatures(specs)
        self.categories = set(self.sids.values()) | {
            c for f in specs.values() for c in f.detections
        }

    def fail(self, node: yaml.Node, where: str, problem: str) -> VerifyError:
        return VerifyError(f"{self.path}:{_line(node)}: {where}: {problem}")

    def cases(self, root: yaml.Node | None) -> list[Case]:
        if root is None:
            raise VerifyError(f"{self.path}:1: (top level): empty file: expected captures:")
        top = self.check.mapping(root, "", TOP_KEYS)
        if "captures" not in top:
            raise self.fail(root, "captures", "missing: list the captures to check")
        policy = self._policy(top["policy"], "policy") if "policy" in top else None
        allow = (
            self.check.boolean(top["allow_other"], "allow_other") if "allow_other" in top else False
        )
        out: list[Case] = []
        items = self.check.sequence(top["captures"], "captures")
        if not items:
            raise self.fail(top["captures"], "captures", "empty: list at least one capture")
        for i, item in enumerate(items):
            where = f"captures[{i}]"
            keys = self.check.mapping(item, where, None)
            if "captures" in keys:  # a group
                group = self.check.mapping(item, where, GROUP_KEYS)
                gpolicy = (
                    self._policy(group["policy"], f"{where}.policy")
                    if "policy" in group
                    else policy
                )
                gallow = (
                    self.check.boolean(group["allow_other"], f"{where}.allow_other")
                    if "allow_other" in group
                    else allow
                )
                members = self.check.sequence(group["captures"], f"{where}.captures")
                if not members:
                    raise self.fail(group["captures"], f"{where}.captures", "empty group")
                for j, member in enumerate(members):
                    out += self._entry(member, f"{where}.captures[{j}]", (i, j), gpolicy, gallow)
            else:
                out += self._entry(item, where, (i,), policy, allow)
        names = Counter(c.name for c in out)
        for case in out:
            if names[case.name] > 1:
                raise VerifyError(
                    f"{self.path}:{case.line}: {case.name}: listed twice with the same name "
                    f"(add name: to tell the entries apart)"
                )
        return out

    def _policy(self, node: yaml.Node, where: str) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "null":
            return None  # explicit null: learning mode, even inside a group with a policy
        rel = self.check.string(node, where)
        path = self.base / rel
        if not path.is_file():
            raise self.fail(node, where, f"policy file {rel} not found (relative to {self.base})")
        return str(path)

    def _entry(
        self,
        node: yaml.Node,
        where: str,
        index: tuple[int, ...],
        policy: str | None,
        allow: bool,
    ) -> list[Case]:
        keys = self.check.mapping(node, where, ENTRY_KEYS)
        if "capture" not in keys:
            raise self.fail(node, f"{where}.capture", "missing: a capture path or glob")
        cnode = keys["capture"]
        patterns = (
            [(self.check.string(n, f"{where}.capture[{k}]"), n) for k, n in enumerate(cnode.value)]
            if isinstance(cnode, yaml.SequenceNode)
            else [(self.check.string(cnode, f"{where}.capture"), cnode)]
        )
        files: list[tuple[str, str]] = []  # (shown, absolute)
        is_glob = len(patterns) > 1
        for pattern, pnode in patterns:
            if _GLOB.search(pattern):
                is_glob = True
                found = sorted(glob.glob(str(self.base / pattern)))
                found = [f for f in found if os.path.isfile(f)]
                if not found:
                    raise self.fail(pnode, f"{where}.capture", f"{pattern} matches no file")
                files += [(os.path.relpath(f, self.base), f) for f in found]
            else:
                path = self.base / pattern
                if not path.is_file():
                    raise self.fail(pnode, f"{where}.capture", f"capture {pattern} not found")
                files.append((pattern, str(path)))
        if "policy" in keys:
            policy = self._policy(keys["policy"], f"{where}.policy")
        if "allow_other" in keys:
            allow = self.check.boolean(keys["allow_other"], f"{where}.allow_other")
        truncated = (
            self.check.boolean(keys["truncated"], f"{where}.truncated")
            if "truncated" in keys
            else False
        )
        none = self.check.boolean(keys["none"], f"{where}.none") if "none" in keys else False
        if none and "expect" in keys:
            raise self.fail(
                keys["none"], f"{where}.none", "none: true and expect: exclude each other"
            )
        if not none and "expect" not in keys:
            raise self.fail(node, f"{where}.expect", "missing: write expect: or none: true")
        rules = () if none else self._rules(keys["expect"], f"{where}.expect")
        if none:
            allow = False  # silence means no alert of any kind
        name = self.check.string(keys["name"], f"{where}.name") if "name" in keys else None
        if name is not None and len(files) > 1:
            raise self.fail(
                keys["name"], f"{where}.name", "name: needs a single capture, not a glob"
            )
        return [
            Case(name or shown, path, policy, rules, allow, truncated, _line(node), index, is_glob)
            for shown, path in files
        ]

    def _rules(self, node: yaml.Node, where: str) -> tuple[Rule, ...]:
        if not isinstance(node, yaml.MappingNode):
            raise self.check.expected(
                node, where, "a mapping of category or sid to count", "write {} for none"
            )
        rules: list[Rule] = []
        seen: dict[str | int, int] = {}
        for knode, vnode in node.value:
            key = self._key(knode, where)
            at = f"{where}.{key}"
            if key in seen:
                raise self.fail(knode, at, f"duplicate key (first on line {seen[key]})")
            seen[key] = _line(knode)
            if isinstance(vnode, yaml.MappingNode):
                spec = self.check.mapping(vnode, at, RULE_KEYS)
                if "count" in spec and ("min" in spec or "max" in spec):
                    raise self.fail(vnode, at, "count excludes min and max")
                low: int
                high: int | None
                if "count" in spec:
                    low = high = self._count(spec["count"], f"{at}.count")
                else:
                    # max alone: 0..max; where alone: at least one matching alert
                    low = (
                        self._count(spec["min"], f"{at}.min")
                        if "min" in spec
                        else (0 if "max" in spec else 1)
                    )
                    high = self._count(spec["max"], f"{at}.max") if "max" in spec else None
                    if high is not None and high < low:
                        raise self.fail(vnode, at, f"max {high} is below min {low}")
                where_ = self._where(spec["where"], f"{at}.where") if "where" in spec else ()
            else:
                low = high = self._count(vnode, at)
                where_ = ()
            rules.append(Rule(key, low, high, where_, _line(knode)))
        return tuple(rules)

    def _key(self, node: yaml.Node, where: str) -> str | int:
        if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "int":
            sid = int(_CONSTRUCT.construct_yaml_int(node))
            if sid not in self.sids:
                raise self.fail(
                    node, f"{where}.{sid}", "unknown signature id (see `v6sentry rules`)"
                )
            return sid
        if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "str":
            if node.value not in self.categories:
                known = ", ".join(sorted(self.categories))
                raise self.fail(node, f"{where}.{node.value}", f"unknown category (known: {known})")
            return str(node.value)
        raise self.fail(node, where, f"keys are categories or sids, got {_describe(node)}")

    def _count(self, node: yaml.Node, where: str) -> int:
        value = self.check.integer(node, where)
        if value < 0:
            raise self.fail(node, where, f"expected a count >= 0, got {value}")
        return value

    def _where(self, node: yaml.Node, where: str) -> tuple[tuple[str, str], ...]:
        fields = self.check.mapping(node, where, None)
        if not fields:
            raise self.fail(node, where, "empty: name at least one field")
        out = []
        for name, vnode in fields.items():
            if not isinstance(vnode, yaml.ScalarNode) or vnode.tag == _TAG + "null":
                raise self.check.expected(vnode, f"{where}.{name}", "a scalar value")
            # The written text: an unquoted MAC is a base-60 integer to YAML 1.1.
            out.append((name, str(vnode.value)))
        return tuple(out)


# -- running ---------------------------------------------------------------

_SPECS: Any = None  # per process: discovered once, reused for every capture it runs


def run_capture(capture: str, policy_path: str | None) -> Outcome:
    """Replay one capture with a fresh engine, as ``v6sentry replay`` does; EVE alerts."""
    global _SPECS
    from detectors.alerts import AlertWriter
    from detectors.capture import open_capture
    from detectors.detections import discover
    from detectors.engine import (
        Engine,
        known_signatures,
        known_thresholds,
        learn_window_s,
        max_interfaces,
    )
    from detectors.policy import empty_policy, load_policy

    if _SPECS is None:
        _SPECS = discover()
    specs, classes = _SPECS
    policy = (
        load_policy(policy_path, known_thresholds(specs), known_signatures(specs))
        if policy_path
        else empty_policy()
    )
    out = io.StringIO()
    writer = AlertWriter(out, "eve", HOST)
    started = time.perf_counter()
    engine = Engine(policy, writer, specs, classes)
    reader = open_capture(capture, max_interfaces=max_interfaces(policy))
    engine.capture_name = reader.path
    try:
        engine.run_capture(reader)
    finally:
        reader.close()
    engine.finish()
    seconds = time.perf_counter() - started
    alerts = [json.loads(line) for line in out.getvalue().splitlines()]
    notice = policy.learning_notice(learn_window_s(policy, specs))
    return Outcome(alerts, list(reader.warnings), seconds, notice, policy.tuning_warnings())


def _run_one(case: Case) -> Outcome:
    return run_capture(case.capture, case.policy)


def run(cases: Sequence[Case], jobs: int) -> list[Outcome]:
    """Every case's outcome, in the cases' order whatever ``jobs`` is."""
    if jobs <= 1 or len(cases) <= 1:
        return [_run_one(c) for c in cases]
    # Imported here: every `v6sentry` command loads this module, and only a parallel
    # verify needs a process pool (about 15 ms of start-up for replay otherwise).
    import gc
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the native core and any threads are not fork-safe.
    ctx = multiprocessing.get_context("spawn")
    # Engines freed earlier in this process (a caller's serial run) may still wait in
    # reference cycles (detectors hold bound methods of themselves). Collect them here,
    # on the thread that made them: the pool's result thread could otherwise trigger the
    # collection, and the native reducers, bound to their thread, would leak with a
    # warning instead of being freed.
    gc.collect()
    with ProcessPoolExecutor(max_workers=min(jobs, len(cases)), mp_context=ctx) as pool:
        return list(pool.map(_run_one, cases))


# -- comparing -------------------------------------------------------------


def _field(alert: Mapping[str, Any], dotted: str) -> Any:
    """``v6sentry.router.mac`` -> alert["v6sentry"]["router"]["mac"]; missing -> None."""
    value: Any = alert
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _norm(value: Any) -> str:
    """Compare as text, addresses by value (EVE writes IPv6 in full), MACs in any case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if _MAC.fullmatch(text):
        return text.lower().replace("-", ":")
    return text


def _matches(alert: Mapping[str, Any], where: Iterable[tuple[str, str]]) -> bool:
    for name, want in where:
        got = _field(alert, name)
        if got is None or _norm(got) != _norm(want):
            return False
    return True


def _alert_label(alert: Mapping[str, Any]) -> tuple[str, int]:
    info = alert.get("alert", {})
    return str(info.get("category")), int(info.get("signature_id", 0))


def compare(case: Case, outcome: Outcome) -> list[str]:
    """The differences, one line each, in a fixed order; [] when the capture passes."""
    problems: list[str] = []
    alerts = outcome.alerts
    for rule in case.rules:
        selected = [a for a in alerts if rule.selects(a)]
        matched = [a for a in selected if _matches(a, rule.where)]
        n = len(matched)
        if n >= rule.minimum and (rule.maximum is None or n <= rule.maximum):
            continue
        if rule.where and len(selected) > n and n < rule.minimum:
            differ = [a for a in selected if not _matches(a, rule.where)]
            seen = sorted({", ".join(f"{k}={_field(a, k)}" for k, _ in rule.where) for a in differ})
            problems.append(
                f"field mismatch: {rule.label}: {n} alert(s), want {rule.wanted}; "
                f"{len(differ)} other(s) have {'; '.join(seen)}"
            )
        elif n == 0:
            problems.append(f"missing: {rule.label}: 0 alerts, want {rule.wanted}")
        else:
            problems.append(f"count off: {rule.label}: {n} alert(s), want {rule.wanted}")
    if not case.allow_other:
        named = {r.key for r in case.rules}
        other = Counter(
            _alert_label(a)
            for a in alerts
            if not ({_alert_label(a)[0], _alert_label(a)[1]} & named)
        )
        for (category, sid), n in sorted(other.items()):
            problems.append(f"unexpected: {category} sid {sid}: {n} alert(s)")
    truncated = _damaged(outcome)
    if truncated != case.truncated:
        said = "; ".join(outcome.capture_warnings) or "no warning"
        problems.append(
            f"truncation: capture damaged {truncated}, expected {case.truncated} ({said})"
        )
    return problems


def check(cases: Sequence[Case], jobs: int) -> list[Result]:
    outcomes = run(cases, jobs)
    return [Result(c, o, compare(c, o)) for c, o in zip(cases, outcomes, strict=True)]


# -- output ----------------------------------------------------------------


def table(results: Sequence[Result]) -> str:
    """Deterministic (no times): the same results print the same bytes."""
    width = max([len("CAPTURE")] + [len(r.case.name) for r in results])
    lines = [f"{'CAPTURE':<{width}}  RESULT  ALERTS  DIFFERENCE"]
    for r in results:
        first, *rest = r.problems or [""]
        status = "pass" if r.passed else "FAIL"
        lines.append(
            f"{r.case.name:<{width}}  {status:<6}  {len(r.outcome.alerts):>6}  {first}".rstrip()
        )
        lines += [f"{'':<{width}}  {'':<6}  {'':>6}  {p}" for p in rest]
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results)} capture(s): {len(results) - failed} passed, {failed} failed")
    return "\n".join(lines) + "\n"


def junit(results: Sequence[Result], suite: str) -> bytes:
    """JUnit XML: one testcase per capture, its time, the difference in the failure."""
    import xml.etree.ElementTree as ET  # only --junit needs it, not every command's start-up

    failures = sum(not r.passed for r in results)
    total = sum(r.outcome.seconds for r in results)
    root = ET.Element("testsuites", tests=str(len(results)), failures=str(failures))
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{total:.3f}",
    )
    for r in results:
        tc = ET.SubElement(
            ts,
            "testcase",
            classname=f"v6sentry.verify.{suite}",
            name=r.case.name,
            time=f"{r.outcome.seconds:.3f}",
        )
        if not r.passed:
            fail = ET.SubElement(tc, "failure", message=r.problems[0], type="ExpectationFailed")
            fail.text = "\n".join(r.problems)
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


# -- --update --------------------------------------------------------------


KEEP = "keep"  # in _wanted: a rule that passes keeps its value as written


def update(path: str, results: Sequence[Result]) -> list[str]:
    """Rewrite failing entries with the current results, keeping comments and order.

    ruamel.yaml round-trips the file (comments, key order, quoting), unlike PyYAML,
    which drops comments. Rules that pass are left as written (ranges, ``where``);
    a failing one becomes the current exact count. Returns messages for entries that
    could not be updated (a glob whose captures disagree).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.util import load_yaml_guess_indent

    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    # The file's own indentation ("  - capture:" or "- capture:"): the diff then shows
    # only the changed counts, not a reformatted file.
    _, sequence, offset = load_yaml_guess_indent(text)
    sequence, offset = sequence or 2, offset or 0
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap a long line the user wrote
    rt.indent(mapping=max(sequence - offset, 2), sequence=sequence, offset=offset)
    doc = rt.load(text)
    by_entry: dict[tuple[int, ...], list[Result]] = {}
    for r in results:
        by_entry.setdefault(r.case.entry, []).append(r)
    refused: list[str] = []
    for index, group in by_entry.items():
        if all(r.passed for r in group):
            continue
        node = doc["captures"][index[0]]
        if len(index) == 2:
            node = node["captures"][index[1]]
        first = group[0]
        expect, truncated = _wanted(first)
        if any(_wanted(r) != (expect, truncated) for r in group[1:]):
            refused.append(
                f"{path}:{first.case.line}: {first.case.name}: the captures of this glob "
                f"differ; not updated"
            )
            continue
        if "none" in node and expect:
            position = list(node).index("none")
            del node["none"]
            node.insert(position, "expect", CommentedMap())
        if "expect" in node:
            old = node["expect"]
            if not isinstance(old, CommentedMap):
                old = node["expect"] = CommentedMap()
            for key in [k for k in old if k not in expect]:
                del old[key]
            for key, value in expect.items():
                current = old.get(key)
                if isinstance(value, dict) and isinstance(current, CommentedMap):
                    # a failing `where` rule: its fields stay as written, the count changes
                    for bound in ("min", "max"):
                        current.pop(bound, None)
                    if "count" in current:
                        current["count"] = value["count"]
                    else:
                        current.insert(0, "count", value["count"])
                elif value != KEEP:
                    old[key] = value
        if truncated != first.case.truncated:
            node["truncated"] = truncated
    with open(path, "w", encoding="utf-8") as fh:
        rt.dump(doc, fh)
    return refused


def _wanted(r: Result) -> tuple[dict[str | int, Any], bool]:
    """The expect mapping that makes ``r`` pass, and whether the capture is damaged."""
    expect: dict[str | int, Any] = {}
    alerts = r.outcome.alerts
    for rule in r.case.rules:
        n = sum(1 for a in alerts if rule.selects(a) and _matches(a, rule.where))
        if n >= rule.minimum and (rule.maximum is None or n <= rule.maximum):
            expect[rule.key] = KEEP
        elif rule.where:
            expect[rule.key] = {"count": n, "where": dict(rule.where)}
        elif n:
            expect[rule.key] = n
        # a plain rule whose category or sid no longer alerts at all is dropped
    if not r.case.allow_other:
        named = {rule.key for rule in r.case.rules}
        for a in alerts:
            category, sid = _alert_label(a)
            if category not in named and sid not in named:
                expect[category] = int(expect.get(category, 0)) + 1
    return expect, _damaged(r.outcome)


def _damaged(outcome: Outcome) -> bool:
    """A truncated or corrupt capture: the reader's warnings (not the policy's)."""
    return bool(outcome.capture_warnings)


# -- JSON Schema -------------------------------------------------------------


def expectations_schema(specs: Mapping[str, Any]) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the expectations file."""
    from detectors.engine import known_signatures

    sids = sorted(known_signatures(specs))
    categories = sorted({c for f in specs.values() for c in f.detections})
    count = {"type": "integer", "minimum": 0}
    rule = {
        "oneOf": [
            count,
            {
                "type": "object",
                "properties": {
                    "count": count,
                    "min": count,
                    "max": count,
                    "where": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": {
                            "type": ["string", "integer", "number", "boolean"]
                        },
                    },
                },
                "additionalProperties": False,
            },
        ]
    }
    paths = {
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]
    }
    policy = {"type": ["string", "null"]}
    entry = {
        "type": "object",
        "properties": {
            "capture": paths,
            "name": {"type": "string"},
            "policy": policy,
            "none": {"type": "boolean"},
            "expect": {
                "type": "object",
                "propertyNames": {"enum": categories + [str(s) for s in sids]},
                "additionalProperties": rule,
            },
            "allow_other": {"type": "boolean"},
            "truncated": {"type": "boolean"},
        },
        "required": ["capture"],
        "oneOf": [{"required": ["expect"]}, {"required": ["none"]}],
        "additionalProperties": False,
    }
    group = {
        "type": "object",
        "properties": {
            "captures": {"type": "array", "items": entry, "minItems": 1},
            "policy": policy,
            "allow_other": {"type": "boolean"},
        },
        "required": ["captures"],
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "v6sentry verify expectations",
        "type": "object",
        "properties": {
            "captures": {
                "type": "array",
                "minItems": 1,
                "items": {"anyOf": [entry, group]},
            },
            "policy": policy,
            "allow_other": {"type": "boolean"},
        },
        "required": ["captures"],
        "additionalProperties": False,
    }


# -- command line ------------------------------------------------------------


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "verify",
        help="check captures against an expectations file (CI regression tests)",
        description="Replay every capture an expectations file lists, each with its own "
        "engine and policy, and check the alerts against what the file expects: counts "
        "per category or sid (exact or min/max), field values, silence.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("expectations", nargs="?", metavar="EXPECTATIONS.yaml")
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=_cores(),
        metavar="N",
        help="captures run in parallel, each in its own process (default: the number of cores)",
    )
    parser.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    parser.add_argument(
        "--update",
        action="store_true",
        help="write the current results into the failing entries (comments and order kept)",
    )
    parser.add_argument(
        "--schema", action="store_true", help="print the expectations file's JSON Schema and exit"
    )


def _cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _fail(message: str) -> int:
    print(f"v6sentry: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def main(args: argparse.Namespace) -> int:
    from detectors.capture import CaptureError
    from detectors.detections import discover

    if args.schema:
        specs, _ = discover()
        sys.stdout.write(json.dumps(expectations_schema(specs), indent=2, sort_keys=True) + "\n")
        return EXIT_PASS
    if not args.expectations:
        return _fail("verify: give an EXPECTATIONS.yaml file (or --schema)")
    if args.jobs < 1:
        return _fail(f"verify: -j {args.jobs}: expected at least 1")
    try:
        cases = load(args.expectations)
        _check_inputs(cases)
        results = check(cases, args.jobs)
    except (VerifyError, PolicyError, CaptureError) as exc:
        return _fail(str(exc))
    notices = sorted({r.outcome.notice for r in results if r.outcome.notice})
    for notice in notices:
        learning = [r.case.name for r in results if r.outcome.notice == notice]
        print(f"v6sentry: warning: {', '.join(learning)}: {notice}", file=sys.stderr)
    for warning in sorted({w for r in results for w in r.outcome.policy_warnings}):
        print(f"v6sentry: warning: {warning}", file=sys.stderr)
    sys.stdout.write(table(results))
    if args.junit:
        try:
            Path(args.junit).write_bytes(junit(results, Path(args.expectations).stem))
        except OSError as exc:
            return _fail(f"{args.junit}: cannot write JUnit XML: {exc.strerror}")
    if args.update and not all(r.passed for r in results):
        refused = update(args.expectations, results)
        for message in refused:
            print(f"v6sentry: warning: {message}", file=sys.stderr)
        changed = sum(not r.passed for r in results)
        print(f"updated {args.expectations}: {changed} capture(s) rewritten", file=sys.stderr)
        return EXIT_FAIL if refused else EXIT_PASS
    return EXIT_PASS if all(r.passed for r in results) else EXIT_FAIL


def _check_inputs(cases: Sequence[Case]) -> None:
    """Every policy loads and every capture opens before anything runs: bad input is
    one error line (exit 2), never a half-run table."""
    from detectors.capture import open_capture
    from detectors.detections import discover
    from detectors.engine import known_signatures, known_thresholds
    from detectors.policy import load_policy

    specs, _ = discover()
    for policy in sorted({c.policy for c in cases if c.policy}):
        load_policy(policy, known_thresholds(specs), known_signatures(specs))
    for case in cases:
        open_capture(case.capture).close()
