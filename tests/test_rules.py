"""The rule-pack generator: determinism, golden files, revisions, sandboxing, escaping, CLI.

Suricata itself (``suricata -T``, replay agreement, suricata-update) is in
``test_suricata.py`` and the Sigma rules in ``test_sigma.py``; this file
covers what the generator guarantees for every part.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from detectors.detections import discover
from detectors.policy import empty_policy, load_policy
from detectors.rules import suricata
from detectors.rules.context import build_context
from detectors.rules.pack import COMMITTED_POLICY, committed_pack, render_pack, stale_files
from detectors.rules.render import (
    SIGMA_DIR,
    SURICATA_DIR,
    RenderError,
    environment,
    render_template,
    suricata_msg,
)
from tests.test_cli import v6sentry

ROOT = Path(__file__).resolve().parents[1]
RULES = f"suricata/{suricata.RULES_FILE}"
EVIL = ';"|{{ "pwn" ~ "ed" }}{% raw %}$HOME_NET'


def _policy_with_name(tmp_path: Path, name_yaml: str) -> Path:
    text = COMMITTED_POLICY.read_text(encoding="utf-8").replace("name: r1", f"name: {name_yaml}")
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _suricata_part(policy_path: Path | None) -> dict[str, str]:
    specs, _ = discover()
    policy = empty_policy() if policy_path is None else load_policy(str(policy_path))
    env = environment(SURICATA_DIR / "templates", SIGMA_DIR / "templates")
    files, _ = suricata.render(env, build_context(specs, policy), suricata.load_lock())
    return files


def test_committed_pack_is_fresh() -> None:
    """`make rules` output is committed; a fresh render must equal it byte for byte."""
    stale = stale_files(committed_pack())
    assert not stale, f"stale rule-pack files (run `make rules`): {stale}"


def test_readme_matrix_is_fresh() -> None:
    from detectors.rules.__main__ import main

    assert main(["--check"]) == 0, "README coverage matrix or pack is stale: run `make rules`"


def test_render_is_deterministic() -> None:
    policy = load_policy(str(COMMITTED_POLICY))
    first, second = render_pack(policy), render_pack(policy)
    assert first.files == second.files
    assert first.lock == second.lock


def test_every_signature_declares_coverage() -> None:
    specs, _ = discover()
    todo = [
        f"{det.category} {sig.key} {engine}"
        for spec in specs.values()
        for det in spec.detections.values()
        for sig in det.signatures.values()
        for engine, cov in sig.coverage.items()
        if "TODO" in cov.why
    ]
    assert not todo, f"coverage not assessed: {todo}"


def test_policy_lives_in_variables_not_in_rule_bodies(tmp_path: Path) -> None:
    """Two site policies give the same rule bodies and revisions; only the variables differ."""
    other = tmp_path / "other.yaml"
    other.write_text(
        COMMITTED_POLICY.read_text(encoding="utf-8").replace("fe80::2", "fe80::99"),
        encoding="utf-8",
    )
    a, b = _suricata_part(COMMITTED_POLICY), _suricata_part(other)
    body = [(r.sid, r.rev, r.fingerprint) for r in suricata.parse_rules(a[RULES])]
    assert body == [(r.sid, r.rev, r.fingerprint) for r in suricata.parse_rules(b[RULES])]
    vars_a = a[f"suricata/{suricata.VARS_FILE}"]
    vars_b = b[f"suricata/{suricata.VARS_FILE}"]
    assert "fe80::2" in vars_a and "fe80::99" in vars_b


def test_revision_bumps_only_for_a_changed_rule() -> None:
    text = _suricata_part(COMMITTED_POLICY)[RULES]
    rules = suricata.parse_rules(text)
    lock = suricata.load_lock()
    assert {r.sid: r.rev for r in rules} == {sid: v["rev"] for sid, v in lock.items()}
    changed = dict(lock)
    target = rules[0].sid
    changed[target] = {"rev": lock[target]["rev"], "sha": "0" * 16}
    del changed[rules[1].sid]
    out, new_lock = suricata.apply_revisions(rules, text, changed)
    revs = {r.sid: r.rev for r in suricata.parse_rules(out)}
    assert revs[target] == lock[target]["rev"] + 1
    assert revs[rules[1].sid] == 1  # new to the lock
    assert all(revs[r.sid] == lock[r.sid]["rev"] for r in rules[2:])
    assert new_lock[target]["sha"] == rules[0].fingerprint


def test_rule_checks_catch_broken_rules() -> None:
    specs, _ = discover()
    ctx = build_context(specs, load_policy(str(COMMITTED_POLICY)))
    good = _suricata_part(COMMITTED_POLICY)[RULES]
    rules = suricata.parse_rules(good)
    omitted = suricata.omitted_sids(good)
    assert suricata.check_rules(rules, ctx["vars"], ctx["signatures"], "x", omitted) == []
    first = rules[0]
    broken = (
        first.text.replace('msg:"V6SENTRY ', 'msg:"')
        .replace("mitre_tactic_id", "mitre_tactic")
        .replace("(", "(flow:to_server; content:$NOPE_VAR; ", 1)
    )
    problems = suricata.check_rules(
        [*suricata.parse_rules(broken), *rules], ctx["vars"], ctx["signatures"], "x", omitted
    )
    joined = "\n".join(problems)
    assert "msg does not start with 'V6SENTRY'" in joined
    assert "metadata lacks mitre_tactic_id" in joined
    assert "undefined variables NOPE_VAR" in joined
    assert f"sid {first.sid}: sid also on line" in joined
    # A signature declared covered but without a rule is reported by sid.
    missing = suricata.check_rules(rules[1:], ctx["vars"], ctx["signatures"], "x", omitted)
    if not any(r.metadata.get("v6sentry_sid") == [str(first.sid)] for r in rules[1:]):
        assert any(f"sid {first.sid}" in p and "has no rule" in p for p in missing)
    with pytest.raises(RenderError, match=r"x:1: not a complete rule"):
        suricata.parse_rules('alert ip any any -> any any (msg:"V6SENTRY x"; sid:1000101;)', "x")


def test_strict_undefined_and_sandbox(tmp_path: Path) -> None:
    (tmp_path / "missing.j2").write_text("{{ detection.no_such_field }}\n")
    (tmp_path / "escape.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    (tmp_path / "raw.j2").write_text("{{ policy.routers[0].name }}\n")
    env = environment(tmp_path)
    with pytest.raises(RenderError, match=r"missing\.j2.*no_such_field"):
        render_template(env, "missing.j2", detection={})
    with pytest.raises(RenderError, match=r"escape\.j2"):
        render_template(env, "escape.j2")
    specs, _ = discover()
    ctx = build_context(specs, load_policy(str(COMMITTED_POLICY)))
    with pytest.raises(RenderError, match=r"policy\.yaml:\d+: routers\[0\]\.name: policy text"):
        render_template(env, "raw.j2", **ctx)


def test_suricata_msg_escaping() -> None:
    assert suricata_msg('a;b"c\\d|e') == 'a\\;b\\"c\\\\d|e'
    with pytest.raises(RenderError, match="newline or control character"):
        suricata_msg("a\nb")


def test_hostile_router_name_cannot_break_out(tmp_path: Path) -> None:
    """Policy text with rule and template syntax renders literally and changes no rule."""
    name = EVIL + "{% endraw %}"
    path = _policy_with_name(tmp_path, json.dumps(name))
    assert load_policy(str(path)).routers is not None
    pack = render_pack(load_policy(str(path)))
    clean = render_pack(load_policy(str(COMMITTED_POLICY)))
    rules = suricata.parse_rules(pack.files[RULES])
    assert [r.fingerprint for r in rules] == [
        r.fingerprint for r in suricata.parse_rules(clean.files[RULES])
    ]
    text = "\n".join(pack.files.values())
    assert name in text and "pwned" not in text
    for rel, body in pack.files.items():
        if name in body and rel.endswith((".yml", ".yaml")):
            docs = list(yaml.safe_load_all(body))
            assert name in json.dumps(docs, ensure_ascii=False), rel
        for n, line in enumerate(body.splitlines(), 1):
            if name in line:
                assert line.lstrip().startswith("#") or rel.endswith((".yml", ".yaml")), (
                    f"{rel}:{n}: policy text outside a comment or YAML scalar: {line}"
                )


def test_router_name_with_newline_is_rejected(tmp_path: Path) -> None:
    path = _policy_with_name(tmp_path, json.dumps("core\nalert ip any any -> any any"))
    with pytest.raises(RenderError) as err:
        render_pack(load_policy(str(path)))
    assert re.search(r"site\.yaml:\d+: routers\[0\]\.name: .*newline", str(err.value))
    proc = v6sentry("rules", "render", "--policy", str(path), "-o", str(tmp_path / "pack"))
    assert proc.returncode == 2
    assert b"site.yaml:" in proc.stderr and b"routers[0].name" in proc.stderr


def test_cli_render_check_matrix(tmp_path: Path) -> None:
    out = tmp_path / "pack"
    proc = v6sentry("rules", "render", "--policy", str(COMMITTED_POLICY), "-o", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    assert (out / RULES).is_file() and (out / "suricata" / suricata.VARS_FILE).is_file()
    assert re.search(rb"wrote .*: \d+ Suricata rules.*\d+ Sigma rules", proc.stderr)
    # The committed pack is this render (its header names the policy by repo path).
    assert [
        (r.sid, r.rev, r.fingerprint) for r in suricata.parse_rules((out / RULES).read_text())
    ] == [(r.sid, r.rev, r.fingerprint) for r in suricata.parse_rules((ROOT / RULES).read_text())]
    proc = v6sentry("rules", "check", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    rules = out / RULES
    rules.write_text(rules.read_text().replace('msg:"V6SENTRY ', 'msg:"', 1))
    proc = v6sentry("rules", "check", "--no-suricata", str(out))
    assert proc.returncode == 1
    assert re.search(rb"v6sentry\.rules:\d+: sid \d+: msg does not start", proc.stderr)
    proc = v6sentry("rules", "matrix", "--format", "json")
    assert proc.returncode == 0
    matrix = json.loads(proc.stdout)
    assert len(matrix["signatures"]) == len(
        build_context(discover()[0], empty_policy())["signatures"]
    )
    proc = v6sentry("rules", "render", "--policy", str(tmp_path / "nope.yaml"), "-o", str(out))
    assert proc.returncode == 2 and b"nope.yaml" in proc.stderr


def test_no_policy_pack_names_what_it_leaves_out() -> None:
    files = _suricata_part(None)
    omitted = suricata.omitted_sids(files[RULES])
    rules = suricata.parse_rules(files[RULES])
    assert not any("$IPV6_ROUTERS" in r.text or "$IPV6_DARK_PREFIXES" in r.text for r in rules)
    ctx = build_context(discover()[0], empty_policy())
    declared = {
        sid for sid, s in ctx["signatures"].items() if s["coverage"]["suricata"]["level"] != "none"
    }
    assert omitted, "the no-policy pack should leave out the rules that need router variables"
    assert omitted <= declared
    assert not omitted & {r.sid for r in rules}
