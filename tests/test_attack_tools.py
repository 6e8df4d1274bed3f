"""Real IPv6 attack tools, recorded in a namespace lab, replayed through ``v6sentry replay``.

Owns the end-to-end check that what thc-ipv6, ipv6toolkit, nmap, masscan and radvd
really put on a wire is classified as each scenario in ``tests/netlab.py`` declares,
capture by capture: the LAN capture every scenario has, and for the routed scenarios
(a scanner outside r1, the LAN's /64 inside) the WAN capture and the merged "span"
capture too. Benign captures raise no alert at all (with the lab policy and with
routers learned), attack captures raise at least their expected signature ids and
categories, and every capture holds the frames proving its tool actually ran. Where
a span capture must show both a sweep and the router's NS storm, the
``ipv6.ndp_exhaustion`` alert must name the sweep in its correlation. Each scenario
is its own test (``-k scan6`` picks some), recorded once on first use, with all its
mismatches reported together. Also checks that the lab leaves no namespace behind.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import netlab

pytestmark = pytest.mark.netlab

ROOT = Path(__file__).resolve().parents[1]
POLICY = Path(__file__).with_name("netlab_policy.yaml")

Recorder = Callable[[str], netlab.Recording]


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    """Records a scenario on first request into a directory shared by this module."""
    # Checked here, not at import: a deselected module must not even probe namespaces.
    problems = netlab.lab_problems()
    if problems:
        pytest.skip(f"network-namespace lab unavailable: {'; '.join(problems)}")
    outdir = tmp_path_factory.mktemp("netlab")
    done: dict[str, netlab.Recording] = {}

    def record(name: str) -> netlab.Recording:
        if name not in done:
            missing = netlab.lab_problems(netlab.SCENARIOS[name].tools)
            if missing:
                pytest.skip(f"{name}: {'; '.join(missing)}")
            done[name] = netlab.record_all(outdir, [name])[0]
        return done[name]

    return record


def _replay(pcap: Path, out: Path, policy: Path | None = POLICY) -> tuple[list[Any], str]:
    """The alerts (EVE records) ``v6sentry replay`` raises; error text if it failed."""
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
        return [], f"replay exit code {proc.returncode}: {proc.stderr.strip()}"
    lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
    return [json.loads(line) for line in lines], ""


def _categories(alerts: list[Any]) -> Counter[str]:
    return Counter(a["alert"]["category"] for a in alerts)


def _tool_summary(rec: netlab.Recording) -> str:
    """The tool runs of a recording, for a failure message: command, exit code, last output."""
    parts = []
    for run in rec.tool_runs:
        tail = run.output.strip().splitlines()[-2:]
        note = f" ({run.note})" if run.note else ""
        parts.append(
            f"`{run.command}` exit {run.returncode}{note}: {' | '.join(tail) or '(no output)'}"
        )
    return "; ".join(parts)


def _uncorrelated(alerts: list[Any]) -> str:
    """Why no ndp_exhaustion alert names one of the sweeps in its correlation; "" if one does."""
    sweeps = {a["v6sentry"]["identifier"] for a in alerts if a["alert"]["category"] == "ipv6.sweep"}
    named = [
        a["v6sentry"].get("correlation", {}).get("sweeps", [])
        for a in alerts
        if a["alert"]["category"] == "ipv6.ndp_exhaustion"
    ]
    if any(sweeps & set(n) for n in named):
        return ""
    return f"ndp_exhaustion correlation names {named}, the sweeps are {sorted(sweeps)}"


def _check_capture(cap: netlab.Captured, out: Path) -> list[str]:
    """Every way one capture falls short of what its scenario expects, one line each."""
    exp = cap.expected
    alerts, error = _replay(cap.pcap, out.with_suffix(".eve.jsonl"))
    if error:
        return [error]
    got, sids = _categories(alerts), {a["alert"]["signature_id"] for a in alerts}
    problems = []
    if exp.benign:
        if got:
            problems.append(f"benign capture raised alerts {dict(sorted(got.items()))}")
        # Without a policy the routers are learned: still silent.
        learned, error = _replay(cap.pcap, out.with_suffix(".learned.eve.jsonl"), None)
        if error or learned:
            problems.append(
                f"without a policy: {error or dict(sorted(_categories(learned).items()))}"
            )
        return problems
    missing = sorted(exp.expect - set(got))
    if missing:
        problems.append(
            f"missing categories {missing} (got {dict(sorted(got.items()))}, {cap.packets} packets)"
        )
    missing_sids = sorted(exp.sids - sids)
    if missing_sids:
        problems.append(f"missing signature ids {missing_sids} (got {sorted(sids)})")
    # The sweep and the NS storm it drives must point at each other where both are seen.
    both = {"ipv6.sweep", "ipv6.ndp_exhaustion"} <= exp.expect <= set(got)
    if both and (why := _uncorrelated(alerts)):
        problems.append(why)
    return problems


@pytest.mark.parametrize("name", list(netlab.SCENARIOS))
def test_scenario_raises_its_expected_alerts(name: str, recorder: Recorder, tmp_path: Path) -> None:
    rec = recorder(name)
    problems: list[str] = []
    if rec.error:
        problems.append(f"recording failed: {rec.error}")
    else:
        # A tool that silently sent nothing must fail here, not pass a benign-looking check.
        for shortfall in rec.missing_evidence():
            problems.append(f"tool traffic missing: {shortfall}; {_tool_summary(rec)}")
        for point, cap in rec.captures.items():
            for line in _check_capture(cap, tmp_path / f"{name}.{point}"):
                problems.append(f"{cap.pcap.name}: {line}")
    assert not problems, f"{name}: {len(problems)} problems:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("name", "fast_sid", "slow_sid"),
    [("scan6_slow", 1000401, 1001401), ("alive6_slow_fan_in", 1000404, 1001402)],
)
def test_slow_scenarios_are_one_family_at_each_pace(
    name: str, fast_sid: int, slow_sid: int, recorder: Recorder, tmp_path: Path
) -> None:
    """Low-and-slow (issue 15): a real scan at its own rate is ipv6.sweep's (scan6 from
    one source: host_sweep; alive6 from 16 source /64s: fanin_sweep) and not also
    ipv6.slow_scan's; the same packets rewritten to one every 5 s are the other way
    round (slow_scan, slow_fan_in)."""
    rec = recorder(name)
    assert not rec.error, rec.error
    fast, error = _replay(rec.captures[netlab.OUTSIDE].pcap, tmp_path / "fast.eve.jsonl")
    assert not error, error
    slow, error = _replay(rec.captures[netlab.INSIDE].pcap, tmp_path / "slow.eve.jsonl")
    assert not error, error
    assert "ipv6.sweep" in _categories(fast) and "ipv6.slow_scan" not in _categories(fast)
    assert fast_sid in {a["alert"]["signature_id"] for a in fast}
    assert _categories(slow)["ipv6.slow_scan"] == 1 and "ipv6.sweep" not in _categories(slow)
    assert [a["alert"]["signature_id"] for a in slow] == [slow_sid]


@pytest.mark.parametrize(
    ("name", "pattern", "probes"),
    [
        ("scapy_tga_udp_eui64", "eui64", "udp"),
        ("nmap_tga_embedded_ipv4", "embedded_ipv4", "icmpv6_echo"),
    ],
)
def test_tga_scan_names_the_pattern_of_real_tool_targets(
    name: str, pattern: str, probes: str, recorder: Recorder, tmp_path: Path
) -> None:
    """Target-generation scans (issue 15 review): the identifier class of the targets a
    real tool probed names the alert's pattern, and the probe kind is the tool's."""
    rec = recorder(name)
    assert not rec.error, rec.error
    alerts, error = _replay(rec.captures[netlab.OUTSIDE].pcap, tmp_path / "out.eve.jsonl")
    assert not error, error
    tga = [a for a in alerts if a["alert"]["category"] == "ipv6.tga_scan"]
    assert len(tga) == 1, _categories(alerts)
    evidence = tga[0]["v6sentry"]
    assert evidence["pattern"] == pattern, evidence["patterns"]
    assert list(evidence["probes"]) == [probes]


def test_lab_leaves_no_namespace_behind(recorder: Recorder) -> None:
    ours = f"{netlab.NS_PREFIX}{os.getpid()}-"
    left = [ns for ns in netlab.list_namespaces() if ns.startswith(ours)]
    assert not left, f"namespaces left behind: {left}"


def test_an_allowed_zone_transfer_is_never_malformed(recorder: Recorder, tmp_path: Path) -> None:
    """DNS review fix (issue 15): nsd's real AXFR answer over many TCP segments. The
    segments after the first start inside a message; the decoder skips them as
    continuations (counted) and reports no ``dns`` malformed at all."""
    rec = recorder("dig_axfr_allowed")
    assert not rec.error, rec.error
    stats = tmp_path / "stats.json"
    pcap = rec.captures[netlab.INSIDE].pcap
    argv = ["replay", "-q", "-o", str(tmp_path / "eve.jsonl"), "--stats-json", str(stats)]
    proc = subprocess.run(
        [sys.executable, "-m", "detectors.cli", *argv, "--policy", str(POLICY), str(pcap)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    run = json.loads(stats.read_text(encoding="utf-8"))["runs"][0]
    dns = {k: v for k, v in run["malformed_reasons"].items() if k.startswith("dns.")}
    assert dns == {}, dns
    assert run["dns_tcp"]["continuation"] > 0, run["dns_tcp"]
