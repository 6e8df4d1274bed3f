"""Real IPv6 attack tools, recorded in a namespace lab, replayed through ``v6sentry replay``.

Owns the end-to-end check that what thc-ipv6, ipv6toolkit and radvd really put on
a wire is classified as each scenario in ``tests/netlab.py`` declares: benign
captures raise no alert at all (with the lab policy and with routers learned),
attack captures raise at least their expected signature ids and
categories, and every capture holds the frames proving its tool actually ran. All
scenarios are recorded once per module, and every mismatch is reported together
in one failure. Also checks that the lab leaves no namespace behind.

It does not build the lab or define scenarios (``tests/netlab.py`` does), and it
does not pin exact alert counts or fields (``tests/test_pcaps.py`` does that for
the deterministic regression captures; real tools are not deterministic). Needs
root and the tools; skipped with the reason otherwise. Marked ``netlab`` so it can
be deselected with ``-m "not netlab"``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests import netlab

pytestmark = pytest.mark.netlab

ROOT = Path(__file__).resolve().parents[1]
POLICY = Path(__file__).with_name("netlab_policy.yaml")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, netlab.Recording]:
    """Every scenario recorded once, into a temporary directory shared by this module."""
    # Checked here, not at import: a deselected module must not even probe namespaces.
    tools = [tool for sc in netlab.SCENARIOS.values() for tool in sc.tools]
    problems = netlab.lab_problems(tools)
    if problems:
        pytest.skip(f"network-namespace lab unavailable: {'; '.join(problems)}")
    outdir = tmp_path_factory.mktemp("netlab")
    return {rec.scenario.name: rec for rec in netlab.record_all(outdir)}


def _replay(
    pcap: Path, out: Path, policy: Path | None = POLICY
) -> tuple[Counter[str], str, set[int]]:
    """Categories and sids of the alerts ``v6sentry replay`` raises; error text if it failed."""
    argv = ["replay", "--format", "eve", "-q", "-o", str(out)]
    if policy is not None:
        argv += ["--policy", str(policy)]
    proc = subprocess.run(
        [sys.executable, "-m", "detectors.cli", *argv, str(pcap)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        return Counter(), f"replay exit code {proc.returncode}: {proc.stderr.strip()}", set()
    lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
    alerts = [json.loads(line)["alert"] for line in lines]
    return Counter(a["category"] for a in alerts), "", {a["signature_id"] for a in alerts}


def _tool_summary(rec: netlab.Recording) -> str:
    """The tool runs of a recording, for a failure message: command, exit code, last output."""
    parts = []
    for run in rec.tool_runs:
        tail = run.output.strip().splitlines()[-2:]
        parts.append(f"`{run.command}` exit {run.returncode}: {' | '.join(tail) or '(no output)'}")
    return "; ".join(parts)


def test_every_scenario_raises_its_expected_alerts(
    recordings: dict[str, netlab.Recording], tmp_path: Path
) -> None:
    problems: list[str] = []
    for name, rec in recordings.items():
        sc = rec.scenario
        if rec.error:
            problems.append(f"{name}: recording failed: {rec.error}")
            continue
        # A tool that silently sent nothing must fail here, not pass a benign-looking check.
        for shortfall in rec.missing_evidence():
            problems.append(f"{name}: tool traffic missing: {shortfall}; {_tool_summary(rec)}")
        got, error, sids = _replay(rec.pcap, tmp_path / f"{name}.eve.jsonl")
        if error:
            problems.append(f"{name}: {error}")
            continue
        if sc.benign:
            if got:
                problems.append(f"{name}: benign capture raised alerts {dict(sorted(got.items()))}")
            # Without a policy the routers are learned: still silent.
            learned, error, _ = _replay(rec.pcap, tmp_path / f"{name}.learned.eve.jsonl", None)
            if error or learned:
                problems.append(
                    f"{name}: without a policy: {error or dict(sorted(learned.items()))}"
                )
        else:
            missing = sorted(sc.expect - set(got))
            if missing:
                problems.append(
                    f"{name}: missing categories {missing} "
                    f"(got {dict(sorted(got.items()))}, {rec.packets} packets)"
                )
            missing_sids = sorted(sc.sids - sids)
            if missing_sids:
                problems.append(
                    f"{name}: missing signature ids {missing_sids} (got {sorted(sids)})"
                )
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


def test_lab_leaves_no_namespace_behind(recordings: dict[str, netlab.Recording]) -> None:
    ours = f"{netlab.NS_PREFIX}{os.getpid()}-"
    left = [ns for ns in netlab.list_namespaces() if ns.startswith(ours)]
    assert not left, f"namespaces left behind: {left}"
