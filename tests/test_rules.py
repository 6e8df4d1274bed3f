"""The rule-pack generator: determinism, golden files, revisions, sandboxing, escaping, CLI.

Suricata itself (``suricata -T``, replay agreement, suricata-update) is in
``test_suricata.py`` and the Sigma rules in ``test_sigma.py``; this file
covers what the generator guarantees for every part.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from detectors.detections import discover
from detectors.policy import empty_policy, load_policy
from detectors.rules import suricata
from detectors.rules.context import build_context
from detectors.rules.pack import (
    COMMITTED_POLICY,
    EXAMPLE_POLICY,
    MANIFEST,
    PackDirError,
    check_manifest,
    committed_pack,
    files_under,
    read_manifest,
    render_pack,
    stale_files,
)
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
VARS = f"suricata/{suricata.VARS_FILE}"
DARK_POLICY = ROOT / "pcaps" / "policy_dark.yaml"
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


def test_packaged_example_policy_is_the_committed_policy() -> None:
    """The installed package renders the committed pack from its own copy of the policy."""
    assert EXAMPLE_POLICY.read_bytes() == COMMITTED_POLICY.read_bytes(), (
        f"{EXAMPLE_POLICY} differs from {COMMITTED_POLICY}: copy the one you edited over the other"
    )


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
    assert all(r.rev == lock[r.sid]["rev"] for r in rules)
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


def test_one_revision_per_sid_for_rules_and_alerts() -> None:
    """The lock is the only revision: every signature's rev (its alerts' alert.rev) is the
    lock's, as is the rev of the Suricata rule with its sid; specs may not carry one."""
    specs, _ = discover()
    lock = suricata.load_lock()
    rules = {r.sid: r for r in suricata.parse_rules((ROOT / RULES).read_text())}
    sigs = [
        s
        for spec in specs.values()
        for d in spec.detections.values()
        for s in d.signatures.values()
    ]
    assert sigs
    for sig in sigs:
        assert sig.sid in lock, f"sid {sig.sid} has no revision in the lock (run `make rules`)"
        assert sig.rev == lock[sig.sid]["rev"]
        if sig.sid in rules:
            assert rules[sig.sid].rev == sig.rev
    assert any(sig.rev > 1 for sig in sigs)  # the lock's, not a default of 1
    for spec in specs.values():
        assert "rev:" not in Path(spec.path).read_text(encoding="utf-8"), spec.path


def test_signature_text_change_bumps_its_revision() -> None:
    """A signature without a rule is versioned by its text; `rules --check` sees drift."""
    specs, _ = discover()
    ctx = build_context(specs, load_policy(str(COMMITTED_POLICY)))
    lock = suricata.load_lock()
    text = (ROOT / RULES).read_text()
    rules = suricata.parse_rules(text)
    ruleless = next(sid for sid in sorted(ctx["signatures"]) if sid not in {r.sid for r in rules})
    _, same = suricata.apply_revisions(rules, text, lock, ctx["signatures"])
    assert same == lock
    edited = {**ctx["signatures"], ruleless: {**ctx["signatures"][ruleless], "text": "other"}}
    _, bumped = suricata.apply_revisions(rules, text, lock, edited)
    assert bumped[ruleless]["rev"] == lock[ruleless]["rev"] + 1
    missing = {k: v for k, v in lock.items() if k != ruleless}
    _, fresh = suricata.apply_revisions(rules, text, missing, ctx["signatures"])
    assert fresh[ruleless]["rev"] == 1 and fresh != missing


def test_spec_rev_is_rejected(tmp_path: Path) -> None:
    from detectors.spec import SpecError, load_spec

    src = ROOT / "detectors" / "detections" / "sweep" / "spec.yaml"
    text = src.read_text(encoding="utf-8").replace(
        "        sid: 1000401\n", "        sid: 1000401\n        rev: 1\n", 1
    )
    assert "rev: 1" in text
    bad = tmp_path / "spec.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(
        SpecError,
        match=r"spec\.yaml: .*signatures\.\w+\.rev: revisions are kept in rules\.lock\.yaml",
    ):
        load_spec(bad)


def test_site_render_keeps_the_rev_of_a_rule_the_committed_pack_omits() -> None:
    """1000411 is left out of the committed pack (no dark prefixes); a site that declares
    them gets the rule with the same rev as the signature's alerts."""
    lock = suricata.load_lock()
    rules = {r.sid: r for r in suricata.parse_rules(_suricata_part(DARK_POLICY)[RULES])}
    specs, _ = discover()
    sig = next(
        s
        for spec in specs.values()
        for d in spec.detections.values()
        for s in d.signatures.values()
        if s.sid == 1000411
    )
    committed = {r.sid for r in suricata.parse_rules((ROOT / RULES).read_text())}
    assert 1000411 in rules and 1000411 not in committed
    assert rules[1000411].rev == sig.rev == lock[1000411]["rev"]


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


@pytest.mark.parametrize("policy", ["policy.yaml", "policy_tunnels.yaml", "policy_dark.yaml"])
def test_every_variable_written_is_used_by_a_rule(policy: str) -> None:
    """No variable in the include that no rule reads (a policy value that seems to matter
    but does not): the policy's monitored prefixes and allowed tunnels are not written."""
    files = _suricata_part(ROOT / "pcaps" / policy)
    written = set(re.findall(r"^vars\.[a-z-]+\.([A-Z0-9_]+):", files[VARS], re.MULTILINE))
    used = set(re.findall(r"\$([A-Z][A-Z0-9_]*)", files[RULES]))
    assert written and written <= used, written - used
    assert "IPV6_MONITORED" not in written and "TUNNEL_ALLOWED" not in written


def test_rule_checks_catch_an_unused_variable() -> None:
    specs, _ = discover()
    ctx = build_context(specs, load_policy(str(COMMITTED_POLICY)))
    good = _suricata_part(COMMITTED_POLICY)[RULES]
    rules = suricata.parse_rules(good)
    variables = {**ctx["vars"], "address-groups": {**ctx["vars"]["address-groups"]}}
    variables["address-groups"]["IPV6_UNREAD"] = "[2001:db8::/32]"
    problems = suricata.check_rules(
        rules, variables, ctx["signatures"], "x", suricata.omitted_sids(good)
    )
    assert problems == [f"x: no rule uses $IPV6_UNREAD (defined in {suricata.VARS_FILE})"]


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The CLI in this process (a subprocess could import another checkout's package)."""
    from detectors.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err


def test_render_over_an_old_pack_removes_its_stale_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pack"
    code, err = _cli(capsys, "rules", "render", "--policy", str(DARK_POLICY), "-o", str(out))
    assert code == 0, err
    old = set(files_under(out))
    dark_rule = "sigma/rules/zeek/zeek_dark_prefix_dark_prefix.yml"
    assert dark_rule in old and MANIFEST in old
    # Without a policy there are no dark prefixes or routers: fewer rules.
    code, err = _cli(capsys, "rules", "render", "-o", str(out))
    assert code == 0, err
    new = set(files_under(out))
    gone = old - new
    assert dark_rule in gone
    assert all(f"removed {out / rel} (not in the new pack)" in err for rel in gone)
    assert set(read_manifest(out)) == new - {MANIFEST}
    assert check_manifest(out) == []
    code, err = _cli(capsys, "rules", "check", "--no-suricata", str(out))
    assert code == 0, err


def test_render_refuses_a_directory_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "etc"
    (foreign / "sigma").mkdir(parents=True)
    (foreign / "sigma" / "mine.yml").write_text("title: mine\n", encoding="utf-8")
    code, err = _cli(capsys, "rules", "render", "-o", str(foreign))
    assert code == 2
    assert f"{foreign}: not empty and not a pack written by `rules render` (no {MANIFEST})" in err
    assert files_under(foreign) == ["sigma/mine.yml"]

    out = tmp_path / "pack"
    assert _cli(capsys, "rules", "render", "-o", str(out))[0] == 0
    extra = out / "sigma" / "rules" / "v6sentry" / "site_rule.yml"
    extra.write_text("title: site\n", encoding="utf-8")
    before = {rel: (out / rel).read_bytes() for rel in files_under(out)}
    code, err = _cli(capsys, "rules", "render", "--policy", str(COMMITTED_POLICY), "-o", str(out))
    assert code == 2
    assert "holds files `rules render` did not write (sigma/rules/v6sentry/site_rule.yml;" in err
    assert {rel: (out / rel).read_bytes() for rel in files_under(out)} == before

    bad = out / MANIFEST
    bad.write_text(bad.read_text(encoding="utf-8") + f"{'0' * 64}  ../outside\n")
    with pytest.raises(PackDirError, match=rf"{re.escape(str(bad))}:\d+: \.\./outside is not"):
        read_manifest(out)


def test_check_reports_stale_files_and_broken_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule and its query left from an older pack are valid Sigma, so only the manifest
    tells them apart; empty and non-YAML files are reported, not a TypeError."""
    dark, out = tmp_path / "dark", tmp_path / "pack"
    assert _cli(capsys, "rules", "render", "--policy", str(DARK_POLICY), "-o", str(dark))[0] == 0
    assert _cli(capsys, "rules", "render", "-o", str(out))[0] == 0
    stale = [
        "sigma/rules/zeek/zeek_dark_prefix_dark_prefix.yml",
        "sigma/queries/lucene/zeek_dark_prefix_dark_prefix.txt",
    ]
    for rel in stale:
        shutil.copy(dark / rel, out / rel)
    code, err = _cli(capsys, "rules", "check", "--no-suricata", str(out))
    assert code == 1
    for rel in stale:
        assert f"{out / rel}: not in {MANIFEST}: a stale file of an older pack" in err
    for rel in stale:
        (out / rel).unlink()

    rule = "sigma/rules/v6sentry/v6sentry_rogue_ra_unknown_router.yml"
    (out / rule).write_text("", encoding="utf-8")
    (out / VARS).write_text("vars.address-groups.IPV6_ROUTERS: [\n", encoding="utf-8")
    code, err = _cli(capsys, "rules", "check", "--no-suricata", str(out))
    assert code == 1
    assert f"{out / rule}: changed since `rules render` wrote it" in err
    assert f"{out / VARS}: not YAML" in err
    (out / VARS).write_text("", encoding="utf-8")
    code, err = _cli(capsys, "rules", "check", "--no-suricata", str(out))
    assert code == 1
    assert f"{out / VARS}: empty or not a mapping" in err
    assert f"{rule}: empty (no rule)" in err
    assert "Traceback" not in err
    (out / MANIFEST).unlink()
    code, err = _cli(capsys, "rules", "check", "--no-suricata", str(out))
    assert code == 1 and f"{out / MANIFEST}: missing" in err


def test_push_kibana_default_is_the_committed_pack(tmp_path: Path) -> None:
    """Without --pack, push renders the committed pack (no checkout files read)."""
    default, from_dir = tmp_path / "default.ndjson", tmp_path / "dir.ndjson"
    proc = v6sentry("rules", "push", "--kibana", str(default))
    assert proc.returncode == 0, proc.stderr.decode()
    proc = v6sentry("rules", "push", "--kibana", str(from_dir), "--pack", str(ROOT))
    assert proc.returncode == 0, proc.stderr.decode()
    assert default.read_text(encoding="utf-8") == from_dir.read_text(encoding="utf-8")
    assert default.read_text(encoding="utf-8").count("\n") > 0


def test_push_names_a_pack_file_that_is_not_text(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(ROOT / "sigma", pack / "sigma")
    (pack / "sigma" / "rules" / "stray.pyc").write_bytes(b"\xa7\r\r\n\x00")
    proc = v6sentry("rules", "push", "--kibana", str(tmp_path / "k.ndjson"), "--pack", str(pack))
    assert proc.returncode == 2, proc.stderr.decode()
    assert proc.stderr.decode().count("\n") == 1
    assert f"{pack / 'sigma' / 'rules' / 'stray.pyc'}: not UTF-8 text" in proc.stderr.decode()
