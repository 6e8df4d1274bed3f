"""Real tunnel traffic, recorded in a namespace lab, replayed through ``v6sentry replay``.

Owns the end-to-end check that what miredo, miredo-server and the lab's own
protocol-41 and AYIYA senders put on a wire is classified as each scenario in
``tests/netlab_tunnels.py`` declares: every expected category and signature id is
raised, no category outside the scenario's expectations is (real tunnel traffic must
not look malformed or like an attack it is not), and every capture holds the
frames proving its traffic crossed. Every scenario is recorded once per module and
checked in its own test. Also checks that the lab leaves no namespace behind.

It does not build the lab or define scenarios (``tests/netlab_tunnels.py`` does),
and does not pin exact alert counts or fields (``tests/test_pcaps.py`` does that
for the deterministic regression captures; miredo's ports and Teredo addresses
change every run). Needs root; the Teredo scenario also needs miredo, miredo-server
and /dev/net/tun. Whatever cannot run is skipped with the reason. Marked ``netlab``
so it can be deselected with ``-m "not netlab"``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests import netlab_tunnels as tunnels
from tests.netlab import lab_problems

pytestmark = pytest.mark.netlab

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tunnels.Recording]:
    """Every scenario that can run here, recorded once into a shared temporary directory."""
    # Checked here, not at import: a deselected module must not even probe namespaces.
    # The lab's own needs skip the module; a scenario's (miredo, /dev/net/tun) skip it alone.
    problems = lab_problems()
    if problems:
        pytest.skip(f"network-namespace lab unavailable: {'; '.join(problems)}")
    runnable = [n for n, sc in tunnels.SCENARIOS.items() if not tunnels.scenario_problems(sc)]
    if not runnable:
        pytest.skip("no tunnel scenario can run here")
    outdir = tmp_path_factory.mktemp("netlab_tunnels")
    return {rec.scenario.name: rec for rec in tunnels.record_all(outdir, runnable)}


def _replay(pcap: Path, out: Path) -> tuple[Counter[str], set[int]]:
    """Categories and signature ids of the alerts ``v6sentry replay`` raises, no policy."""
    argv = ["replay", "--format", "eve", "-q", "-o", str(out), str(pcap)]
    proc = subprocess.run(
        [sys.executable, "-m", "detectors.cli", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"replay exit code {proc.returncode}: {proc.stderr.strip()}"
    lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
    alerts = [json.loads(line)["alert"] for line in lines]
    return Counter(a["category"] for a in alerts), {a["signature_id"] for a in alerts}


def _runs(rec: tunnels.Recording) -> str:
    """The runs and notes of a recording, for a failure message."""
    parts = [f"`{r.command}` exit {r.returncode}" for r in rec.tool_runs]
    return "; ".join(parts + rec.notes)


@pytest.mark.parametrize("name", list(tunnels.SCENARIOS))
def test_scenario_raises_its_alerts(
    name: str, recordings: dict[str, tunnels.Recording], tmp_path: Path
) -> None:
    sc = tunnels.SCENARIOS[name]
    if name not in recordings:
        pytest.skip(f"{name}: {'; '.join(tunnels.scenario_problems(sc))}")
    rec = recordings[name]
    assert rec.error is None, f"recording failed: {rec.error}; {_runs(rec)}"
    # Traffic that never crossed must fail here, not pass or fail on the alerts.
    missing = rec.missing_evidence()
    assert not missing, f"tunnel traffic missing: {missing}; {_runs(rec)}"
    got, sids = _replay(rec.pcap, tmp_path / f"{name}.eve.jsonl")
    problems = []
    if sc.expect - set(got):
        problems.append(f"missing categories {sorted(sc.expect - set(got))}")
    if sc.sids - sids:
        problems.append(f"missing signature ids {sorted(sc.sids - sids)}")
    if set(got) - sc.expect:
        problems.append(f"unexpected categories {sorted(set(got) - sc.expect)}")
    summary = f"got {dict(sorted(got.items()))}, sids {sorted(sids)}, {len(rec.packets)} packets"
    assert not problems, f"{name}: {'; '.join(problems)} ({summary})"


def test_lab_leaves_no_namespace_behind(recordings: dict[str, tunnels.Recording]) -> None:
    assert recordings, "no scenario was recorded"
    left = tunnels.leftover_namespaces()
    assert not left, f"namespaces left behind: {left}"
