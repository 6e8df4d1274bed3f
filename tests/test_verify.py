"""Tests for ``v6sentry verify`` (detectors/verify.py).

Owns checking that the examples' expectations file passes on the regression
captures, that each failure reason (missing, unexpected, count off, field mismatch,
truncation) exits 1 with the difference named, that bad input exits 2 naming file,
line and key, the JUnit XML (parsed back with junitparser), ``--update`` keeping
comments, the JSON Schema, and that ``-j 2`` gives the results of ``-j 1``.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from junitparser import Failure, JUnitXml

from detectors import verify
from detectors.cli import main
from detectors.detections import discover
from tests.golden import manifest

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "pcaps"
EXAMPLE = ROOT / "examples" / "verify" / "expectations.yaml"
ROGUE = f"{PCAPS / 'rogue_ra.pcap'}"
POLICY = f"{PCAPS / 'policy.yaml'}"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "expect.yaml"
    path.write_text(text.replace("ROGUE", ROGUE).replace("POLICY", POLICY), encoding="utf-8")
    return path


def _verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["verify", "-j", "1", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_example_expectations_pass_on_the_regression_captures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _verify(capsys, str(EXAMPLE))
    assert code == 0, out + err
    assert out.rstrip().endswith(" passed, 0 failed"), out
    # pcaps/manifest.yaml's captures and the families' (their captures.yaml).
    listed = {e["file"] for e in manifest()}
    cases = verify.load(str(EXAMPLE))
    assert {Path(c.capture).name for c in cases} == listed, "the example misses a capture"


ROGUE_OK = """\
captures:
  - capture: ROGUE
    policy: POLICY
    expect:
      ipv6.rogue_ra: 2
      1000101:
        count: 1
        where: {src_ip: "fe80::bad", v6sentry.router.mac: "02:00:00:00:66:66"}
"""


def test_field_matches_and_sids_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _verify(capsys, str(_write(tmp_path, ROGUE_OK)))
    assert code == 0, out + err
    assert "1 capture(s): 1 passed, 0 failed" in out


@pytest.mark.parametrize(
    ("expect", "difference"),
    [
        (
            "expect: {ipv6.rogue_ra: 2, ipv6.ndp_flood: 1}",
            "missing: ipv6.ndp_flood: 0 alerts, want 1",
        ),
        ("none: true", "unexpected: ipv6.rogue_ra sid 1000101: 1 alert(s)"),
        ("expect: {1000101: 1}", "unexpected: ipv6.rogue_ra sid "),
        ("expect: {ipv6.rogue_ra: 3}", "count off: ipv6.rogue_ra: 2 alert(s), want 3"),
        (
            "expect: {ipv6.rogue_ra: {min: 3, max: 5}}",
            "count off: ipv6.rogue_ra: 2 alert(s), want 3..5",
        ),
        (
            'expect: {ipv6.rogue_ra: {count: 2, where: {src_ip: "fe80::1234"}}}',
            "field mismatch: ipv6.rogue_ra where src_ip=fe80::1234: 0 alert(s), want 2; "
            "2 other(s) have src_ip=fe80:0000:0000:0000:0000:0000:0000:0",
        ),
        ("expect: {ipv6.rogue_ra: 2}\n    truncated: true", "truncation: capture damaged False"),
    ],
)
def test_each_failure_exits_1_naming_the_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], expect: str, difference: str
) -> None:
    path = _write(tmp_path, f"captures:\n  - capture: ROGUE\n    policy: POLICY\n    {expect}\n")
    code, out, err = _verify(capsys, str(path))
    assert code == 1, out + err
    assert difference in out, out
    assert "FAIL" in out and "0 passed, 1 failed" in out


def test_allow_other_accepts_unnamed_alerts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "allow_other: true\ncaptures:\n  - capture: ROGUE\n    policy: POLICY\n"
        "    expect: {1000101: 1}\n",
    )
    code, out, _ = _verify(capsys, str(path))
    assert code == 0, out


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("captures:\n  - capture: ROGUE\n    expekt: {}\n", ":3: captures[0].expekt: unknown key"),
        ("captures:\n  - capture: ROGUE\n", ":2: captures[0].expect: missing"),
        (
            "captures:\n  - capture: ROGUE\n    expect:\n      ipv6.nope: 1\n",
            ":4: captures[0].expect.ipv6.nope: unknown category",
        ),
        (
            "captures:\n  - capture: ROGUE\n    expect:\n      99: 1\n",
            ":4: captures[0].expect.99: unknown signature id",
        ),
        (
            "captures:\n  - capture: ROGUE\n    expect: {ipv6.rogue_ra: -1}\n",
            ":3: captures[0].expect.ipv6.rogue_ra: expected a count >= 0",
        ),
        (
            "captures:\n  - capture: ROGUE\n    expect: {ipv6.rogue_ra: {min: 3, max: 1}}\n",
            ":3: captures[0].expect.ipv6.rogue_ra: max 1 is below min 3",
        ),
        (
            "captures:\n  - capture: nothing_*.pcap\n    none: true\n",
            ":2: captures[0].capture: nothing_*.pcap matches no file",
        ),
        (
            "captures:\n  - capture: missing.pcap\n    none: true\n",
            ":2: captures[0].capture: capture missing.pcap not found",
        ),
        (
            "captures:\n  - capture: ROGUE\n    policy: nope.yaml\n    none: true\n",
            ":3: captures[0].policy: policy file nope.yaml not found",
        ),
        (
            "captures:\n  - capture: ROGUE\n    none: true\n    expect: {}\n",
            ":3: captures[0].none: none: true and expect: exclude each other",
        ),
        ("captures: [\n", "YAML syntax error"),
        ("allow_other: false\n", ":1: captures: missing"),
        ("", ":1: (top level): empty file"),
    ],
)
def test_bad_input_exits_2_naming_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, error: str
) -> None:
    path = _write(tmp_path, text)
    code, out, err = _verify(capsys, str(path))
    assert code == 2, out + err
    assert out == ""
    assert err.startswith(f"v6sentry: error: {path}:"), err
    assert error in err, err
    assert err.count("\n") == 1


def test_bad_policy_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad_policy.yaml").write_text("routers: 3\n", encoding="utf-8")
    path = _write(
        tmp_path, "captures:\n  - capture: ROGUE\n    policy: bad_policy.yaml\n    none: true\n"
    )
    code, _, err = _verify(capsys, str(path))
    assert code == 2 and "bad_policy.yaml:1: routers:" in err, err


def test_groups_share_a_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path,
        f"captures:\n  - policy: POLICY\n    captures:\n"
        f"      - capture: ['{PCAPS}/rogue_ra.pcap', '{PCAPS}/rogue_ra.pcap.gz']\n"
        f"        expect: {{ipv6.rogue_ra: 2}}\n"
        f"      - capture: '{PCAPS}/benign_r*.pcap'\n        none: true\n",
    )
    code, out, err = _verify(capsys, str(path))
    assert code == 0, out + err
    assert "3 capture(s): 3 passed" in out


def test_junit_is_parsed_back_by_junitparser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "captures:\n  - capture: ROGUE\n    policy: POLICY\n    expect: {ipv6.rogue_ra: 3}\n"
        f"  - capture: '{PCAPS}/benign_ra.pcap'\n    policy: POLICY\n    none: true\n",
    )
    report = tmp_path / "junit.xml"
    code, _, _ = _verify(capsys, "--junit", str(report), str(path))
    assert code == 1
    xml = JUnitXml.fromfile(str(report))
    suites = list(xml)
    assert len(suites) == 1
    cases = list(suites[0])
    assert [c.name for c in cases] == [ROGUE, f"{PCAPS}/benign_ra.pcap"]
    failed, passed = cases
    assert passed.is_passed and not failed.is_passed
    (failure,) = [r for r in failed.result if isinstance(r, Failure)]
    assert "count off: ipv6.rogue_ra: 2 alert(s), want 3" in (failure.message or "")
    assert all(c.time >= 0 for c in cases) and failed.time > 0
    assert suites[0].failures == 1 and suites[0].tests == 2


def test_update_rewrites_failures_and_keeps_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "# top comment\n"
        "captures:\n"
        "  # the rogue one\n"
        "  - capture: ROGUE  # inline\n"
        "    policy: POLICY\n"
        "    expect:\n"
        "      ipv6.rogue_ra: 5  # was wrong\n"
        "      1000101: {min: 1}\n"
        "  # the benign one, wrongly silent\n"
        "  - capture: ROGUE\n"
        "    name: second\n"
        "    policy: POLICY\n"
        "    none: true\n",
    )
    before = path.read_text(encoding="utf-8")
    code, _, err = _verify(capsys, "--update", str(path))
    assert code == 0, err
    text = path.read_text(encoding="utf-8")
    # Only the failing lines change: indentation, quoting and comments stay as written.
    removed = [line.strip() for line in before.splitlines() if line not in text.splitlines()]
    added = [line.strip() for line in text.splitlines() if line not in before.splitlines()]
    assert removed == ["ipv6.rogue_ra: 5  # was wrong", "none: true"], text
    assert added == ["ipv6.rogue_ra: 2  # was wrong", "ipv6.rogue_ra: 2"], text
    for comment in ("# top comment", "# the rogue one", "# inline", "# the benign one"):
        assert comment in text, text
    assert "ipv6.rogue_ra: 2" in text and "1000101: {min: 1}" in text, text
    assert "none: true" not in text
    doc = yaml.safe_load(text)
    assert doc["captures"][1]["expect"] == {"ipv6.rogue_ra": 2}
    assert list(doc["captures"][1]) == ["capture", "name", "policy", "expect"]
    code, out, err = _verify(capsys, str(path))
    assert code == 0, out + err
    again = path.read_text(encoding="utf-8")
    code, _, _ = _verify(capsys, "--update", str(path))
    assert code == 0 and path.read_text(encoding="utf-8") == again  # nothing to do


def test_parallel_results_equal_serial() -> None:
    cases = verify.load(str(EXAMPLE))
    serial = verify.check(cases, 1)
    parallel = verify.check(cases, 2)
    assert [r.outcome.alerts for r in serial] == [r.outcome.alerts for r in parallel]
    assert [r.problems for r in serial] == [r.problems for r in parallel]
    assert verify.table(serial) == verify.table(parallel)
    assert sum(len(r.outcome.alerts) for r in serial) > 50


def test_schema_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _verify(capsys, "--schema")
    assert code == 0
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    # YAML's integer sid keys are JSON object keys, i.e. strings.
    example = json.loads(json.dumps(example))
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"captures": [{"capture": "x", "expect": {"nope": 1}}]}, schema)
    assert verify.expectations_schema(discover()[0]) == schema


CI = ROOT / "examples" / "ci"


def test_ci_recipes_run_verify_with_junit() -> None:
    github = yaml.safe_load((CI / "github-actions.yml").read_text(encoding="utf-8"))
    steps = [s.get("run", "") for s in github["jobs"]["verify"]["steps"]]
    assert any(s.startswith("v6sentry verify --junit ") for s in steps), steps
    assert "pip install v6sentry" in steps
    gitlab = yaml.safe_load((CI / "gitlab-ci.yml").read_text(encoding="utf-8"))
    job = gitlab["v6sentry-verify"]
    assert any(s.startswith("v6sentry verify --junit verify-junit.xml") for s in job["script"])
    assert job["artifacts"]["reports"]["junit"] == "verify-junit.xml"


def test_pre_commit_hook_checks_every_policy(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = yaml.safe_load((CI / "pre-commit-config.yaml").read_text(encoding="utf-8"))
    (hook,) = config["repos"][0]["hooks"]
    # pre-commit appends the staged files to the entry; v6sentry is this checkout's.
    entry = hook["entry"].replace("v6sentry policy", f"{sys.executable} -m detectors policy")
    bad = tmp_path / "bad.yaml"
    bad.write_text("routers: 3\n", encoding="utf-8")
    run = subprocess.run(
        f"{entry} {POLICY} {bad}", shell=True, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2, run.stderr
    assert "valid policy" in run.stderr and f"{bad}:1: routers:" in run.stderr
    ok = subprocess.run(f"{entry} {POLICY}", shell=True, capture_output=True, timeout=120)
    assert ok.returncode == 0, ok.stderr


def test_readme_example_file_fits_the_schema() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### `v6sentry verify`", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    doc = json.loads(json.dumps(yaml.safe_load(block)))
    jsonschema.validate(doc, verify.expectations_schema(discover()[0]))


def test_update_leaves_a_glob_whose_captures_disagree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        f"captures:\n  - capture: [ROGUE, '{PCAPS}/benign_ra.pcap']\n    policy: POLICY\n"
        "    none: true\n",
    )
    before = path.read_text(encoding="utf-8")
    code, out, err = _verify(capsys, "--update", str(path))
    assert code == 1, out + err
    assert "captures of this glob differ; not updated" in err
    assert path.read_text(encoding="utf-8") == before
