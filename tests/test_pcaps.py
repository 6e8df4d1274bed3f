"""Data-driven tests over every regression capture in ``pcaps/``.

Owns checking each capture against its manifest entry (alert categories, sids
and counts, truncation) through ``v6sentry verify`` (the mechanism users run in
CI; ``examples/verify/expectations.yaml`` must say the same), its golden EVE
file, the generator's determinism, and that every capture has an entry. All
mismatches are collected and reported together in one failure.
"""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from detectors import verify
from detectors.cli import main
from tests.golden import GOLDEN, PCAPS, expectations_yaml, golden_path, manifest, replay

EXAMPLE = PCAPS.parent / "examples" / "verify" / "expectations.yaml"


def test_every_capture_meets_its_manifest_expectations_through_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The manifest's counts, sids and truncation flags, checked by `v6sentry verify`."""
    path = tmp_path / "manifest.expectations.yaml"
    path.write_text(expectations_yaml(manifest()), encoding="utf-8")
    report = tmp_path / "junit.xml"
    code = main(["verify", "-j", "2", "--junit", str(report), str(path)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert f"{len(manifest())} capture(s): {len(manifest())} passed, 0 failed" in out, out


def test_example_expectations_say_what_the_manifest_says(tmp_path: Path) -> None:
    """examples/verify/expectations.yaml is the user-style copy of the manifest."""
    path = tmp_path / "manifest.expectations.yaml"
    path.write_text(expectations_yaml(manifest()), encoding="utf-8")

    def meaning(cases: list[verify.Case]) -> list[tuple[Any, ...]]:
        return [
            (
                Path(c.capture).name,
                Path(c.name).name,
                c.policy and Path(c.policy).name,
                sorted((str(r.key), r.minimum, r.maximum, r.where) for r in c.rules),
                c.allow_other,
                c.truncated,
            )
            for c in cases
        ]

    assert meaning(verify.load(str(EXAMPLE))) == meaning(verify.load(str(path)))


def test_every_capture_matches_its_golden_file(tmp_path: Path) -> None:
    """Exact EVE output; also no decoder exception and a clean exit on every capture."""
    problems: list[str] = []
    for i, entry in enumerate(manifest()):
        workdir = tmp_path / str(i)
        workdir.mkdir()
        run = replay(entry, workdir)
        name = entry["file"]
        if run.exit_code != 0:
            problems.append(f"{name}: exit code {run.exit_code}: {run.stderr.strip()}")
        name = entry.get("name", name)
        for summary in run.stats.get("runs", []):
            errors = summary["malformed_reasons"].get("decoder.decoder_error", 0)
            if errors:
                problems.append(f"{name}: {errors} decoder exceptions")
        golden = golden_path(entry)
        if not golden.exists():
            problems.append(
                f"{name}: no golden file {golden.relative_to(PCAPS.parent)} (run `make golden`)"
            )
        else:
            want_lines = golden.read_text(encoding="utf-8").splitlines()
            if want_lines != run.lines:
                problems.append(
                    f"{name}: EVE output differs from {golden.name} (review, then `make golden`)"
                )
    assert not problems, "\n".join(problems)


def test_every_capture_is_in_the_manifest() -> None:
    listed = {e["file"] for e in manifest()}
    present = {p.name for p in PCAPS.iterdir() if p.is_file() and ".pcap" in p.name}
    assert present - listed == set(), f"captures without a manifest entry: {present - listed}"
    assert listed - present == set(), f"manifest entries without a capture: {listed - present}"
    names = {e.get("name", e["file"]) for e in manifest()}
    assert len(names) == len(manifest()), "two manifest entries share a golden name"
    goldens = {p.name.removesuffix(".eve.jsonl") for p in GOLDEN.glob("*.eve.jsonl")}
    assert goldens - names == set(), f"stale golden files: {goldens - names}"


def test_generator_is_deterministic(tmp_path: Path) -> None:
    """`make pcaps` output equals the committed captures, byte for byte."""
    subprocess.run(
        [sys.executable, str(PCAPS / "generate.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    names = sorted(p.name for p in tmp_path.iterdir() if ".pcap" in p.name)
    assert names, "generator wrote no captures"
    _, mismatch, errors = filecmp.cmpfiles(PCAPS, tmp_path, names, shallow=False)
    assert not mismatch and not errors, f"regenerate with `make pcaps`: {mismatch + errors}"


@pytest.mark.parametrize("fmt", ["eve", "ecs"])
def test_output_is_deterministic(tmp_path: Path, fmt: str) -> None:
    """Same input, same bytes out, in both formats."""
    entries = [e for e in manifest() if e.get("expect")]
    assert entries
    for entry in entries:
        first = replay(entry, tmp_path, "--format", fmt).lines
        second = replay(entry, tmp_path, "--format", fmt).lines
        assert first == second, entry["file"]


def test_flood_state_stays_within_caps(tmp_path: Path) -> None:
    """2000 RAs from random sources: the 256-entry table evicts and counts, never grows."""
    (entry,) = [e for e in manifest() if e["file"] == "ra_flood_random.pcap"]
    run = replay(entry, tmp_path)
    tables = run.stats["runs"][0]["tables"]
    routers = tables["router_advert.routers"]
    assert routers["cap"] == 256 and routers["size"] <= 256
    assert routers["evictions"] == 2000 - 256
    assert "table evictions: " in run.stderr and "router_advert.routers=1744" in run.stderr
