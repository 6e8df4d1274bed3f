"""``v6sentry live`` end to end on a span port, and its systemd deployment files.

Owns two checks. The lab ones (marked ``netlab``) run ``tests/netlab_live.py`` once
per module: the sensor, unprivileged with only CAP_NET_RAW and CAP_NET_ADMIN, on the
mirror port of a namespace LAN, must stay silent through a benign phase (radvd,
SLAAC, pings), raise each attack's signature ids within seconds naming the attacker,
exit 0 on SIGTERM after flushing its open windows, leave no namespace or process
behind, and agree with ``v6sentry replay`` of a tcpdump of the same port on every
alert id. The unit-file ones (no root needed) parse ``detectors/live/systemd/``: the
capabilities, hardening, reload and restart settings, an ExecStart the real ``live``
argument parser accepts, paths the hardening leaves writable, a logrotate rule that
matches the output and reloads the unit, and ``systemd-analyze verify`` where present.

It does not build the lab (``tests/netlab_live.py``), implement the sensor
(``detectors/live``) or test detections on captures (``tests/test_attack_tools.py``,
``tests/test_pcaps.py``). The lab is skipped without root or the tools; a missing
``live`` command fails, it does not skip.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import netlab_live
from tests.netlab_live import LiveRun

ROOT = Path(__file__).resolve().parents[1]
SYSTEMD = ROOT / "detectors" / "live" / "systemd"
UNIT = SYSTEMD / "v6sentry-live@.service"
LOGROTATE = SYSTEMD / "v6sentry-live.logrotate"
SYSUSERS = SYSTEMD / "v6sentry.sysusers"
CAPS = {"CAP_NET_RAW", "CAP_NET_ADMIN"}
# CapEff of a process holding exactly CAP_NET_ADMIN (12) and CAP_NET_RAW (13).
CAPS_MASK = (1 << 12) | (1 << 13)


# -- the lab --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run() -> Iterator[LiveRun]:
    """One run of the span lab, shared by the lab tests; its work dir removed after."""
    problems = netlab_live.lab_problems()
    if problems:
        pytest.skip(f"span lab unavailable: {'; '.join(problems)}")
    live = subprocess.run(
        [sys.executable, *netlab_live.SENSOR_ENTRY, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if live.returncode != 0:
        pytest.fail(f"`v6sentry live` is not available: {live.stderr.strip()}", pytrace=False)
    workdir = Path(tempfile.mkdtemp(prefix=f"{netlab_live.LIVE_PREFIX}{os.getpid()}-"))
    try:
        yield netlab_live.run_live_lab(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _context(run: LiveRun) -> str:
    """The sensor's last words, for failure messages."""
    tail = run.sensor_stderr.strip().splitlines()[-4:]
    return f"(run error: {run.error or 'none'}; sensor stderr tail: {' | '.join(tail)})"


def _alert_line(a: dict[str, Any]) -> str:
    return (
        f"{a['alert']['signature_id']} {a['alert']['category']} "
        f"{a.get('ether', {}).get('src_mac')} {a.get('src_ip')} {a['timestamp']}"
    )


@pytest.mark.netlab
def test_sensor_runs_unprivileged_with_only_its_capabilities(run: LiveRun) -> None:
    assert run.sensor_status, f"the sensor never started {_context(run)}"
    status = run.sensor_status
    assert status["Uid"].split() == [str(netlab_live.SENSOR_UID)] * 4, status
    for key in ("CapEff", "CapPrm", "CapAmb", "CapBnd"):
        assert int(status[key], 16) == CAPS_MASK, f"{key}={status[key]}: {status}"
    assert status["NoNewPrivs"] == "1", status


@pytest.mark.netlab
def test_benign_phase_raises_no_alert(run: LiveRun) -> None:
    assert not run.error, run.error
    assert not run.benign_alerts, "alerts during the benign phase:\n" + "\n".join(
        _alert_line(a) for a in run.benign_alerts
    )
    # Nor later, stamped with a packet time of the benign phase (a window closing late).
    start, end = run.benign_window
    late = [a for a in run.live_alerts if start <= netlab_live.packet_time(a) <= end]
    assert not late, "alerts for benign traffic:\n" + "\n".join(_alert_line(a) for a in late)


@pytest.mark.netlab
@pytest.mark.parametrize("name", [a.name for a in netlab_live.ATTACKS])
def test_attack_raises_its_alerts_in_time(run: LiveRun, name: str) -> None:
    results = {r.name: r for r in run.attacks}
    assert name in results, f"{name} did not run {_context(run)}"
    res = results[name]
    attack = next(a for a in netlab_live.ATTACKS if a.name == name)
    problems = []
    if res.missing:
        got = Counter(
            a["alert"]["signature_id"]
            for a in run.live_alerts
            if netlab_live.packet_time(a) >= res.started
        )
        problems.append(
            f"sids {res.missing} not within {attack.deadline:g} s of the start "
            f"(alerts since: {dict(got)})"
        )
    if res.at_exit_missing:
        problems.append(f"sids {res.at_exit_missing} not in the final flush at SIGTERM")
    problems += res.wrong_sender
    assert not problems, f"{name} ({res.command}): {'; '.join(problems)} {_context(run)}"


@pytest.mark.netlab
def test_sigterm_flushes_and_exits_zero(run: LiveRun) -> None:
    assert run.sensor_exit == 0, f"exit code {run.sensor_exit} {_context(run)}"
    # The final stats line is written after the last alert, on the way out.
    assert "final stats:" in run.sensor_stderr, _context(run)
    # Windows still open at SIGTERM (the ndp_exhaustion one, 60 s) were reported then.
    assert run.late_alerts >= 1, f"nothing written after SIGTERM {_context(run)}"
    assert not run.bad_lines, f"lines that are not JSON: {run.bad_lines[:3]}"


@pytest.mark.netlab
def test_nothing_left_behind(run: LiveRun) -> None:
    assert not run.namespaces_left, f"namespaces left: {run.namespaces_left}"
    assert not run.processes_left, f"processes left in the lab's namespaces: {run.processes_left}"
    ours = [ns for ns in netlab_live.live_namespaces() if ns.startswith(f"v6l-{os.getpid()}-")]
    assert not ours, f"namespaces of this run still listed by `ip netns`: {ours}"


def _final_stats(stderr: str) -> dict[str, int]:
    """packets and kernel drops from the sensor's last stats line."""
    lines = [line for line in stderr.splitlines() if "final stats:" in line]
    assert lines, f"no final stats line in: {stderr[-500:]}"
    found = re.search(r"packets (\d+), bytes \d+, kernel drops (\d+)", lines[-1])
    assert found, lines[-1]
    return {"packets": int(found.group(1)), "drops": int(found.group(2))}


@pytest.mark.netlab
def test_replay_of_the_span_capture_gives_the_same_alert_ids(run: LiveRun) -> None:
    assert not run.replay_error, run.replay_error
    assert run.replay_alerts, f"replay raised nothing from {run.capture_packets} packets"
    # Both saw every frame: otherwise a difference would be a capture loss, not a bug.
    assert " 0 packets dropped by kernel" in run.tcpdump_stats, run.tcpdump_stats
    stats = _final_stats(run.sensor_stderr)
    assert stats["drops"] == 0, f"the sensor lost frames: {stats}"
    live = netlab_live.identities(run.live_alerts)
    replay = netlab_live.identities(run.replay_alerts)
    assert live == replay, (
        f"live only: {sorted(live - replay)}; replay only: {sorted(replay - live)} "
        f"(sensor {stats['packets']} packets, capture {run.capture_packets})"
    )
    # One line per alert on both sides: no duplicates hiding behind the set.
    assert len(run.live_alerts) == len(live), Counter(
        a["v6sentry"]["alert_id"] for a in run.live_alerts
    ).most_common(3)


# -- the systemd unit and logrotate ------------------------------------------------------


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: section -> key -> every value (keys may repeat), in order."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: key outside a section: {line}"
        assert not line.endswith("\\"), f"{path}: continuation lines are not expected: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not key=value: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _one(service: dict[str, list[str]], key: str) -> str:
    values = service.get(key, [])
    assert len(values) == 1, f"{key}: want exactly one value, got {values}"
    return values[0]


def _exec_start(service: dict[str, list[str]], instance: str) -> list[str]:
    """ExecStart as systemd would run it for ``instance``, with the options variable empty."""
    line = _one(service, "ExecStart")
    line = line.replace("%i", instance).replace("%H", "sensor1").replace("%S", "/var/lib")
    line = line.replace("$V6SENTRY_LIVE_OPTS", "")
    assert "%" not in line and "$" not in line, f"unexpanded specifier or variable: {line}"
    return shlex.split(line)


def test_unit_runs_unprivileged_with_only_capture_capabilities() -> None:
    service = _unit(UNIT)["Service"]
    assert _one(service, "User") == "v6sentry"
    assert _one(service, "Group") == "v6sentry"
    assert set(_one(service, "AmbientCapabilities").split()) == CAPS
    assert set(_one(service, "CapabilityBoundingSet").split()) == CAPS
    assert _one(service, "NoNewPrivileges") == "yes"
    # The sysusers entry creates exactly that user, without a login shell.
    entries = [
        line.split()
        for line in SYSUSERS.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert [e[:2] for e in entries] == [["u", "v6sentry"]], entries
    assert entries[0][-1] == "/usr/sbin/nologin", entries


def test_unit_hardening() -> None:
    service = _unit(UNIT)["Service"]
    want = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "SystemCallArchitectures": "native",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "RestrictSUIDSGID": "yes",
        "RestrictNamespaces": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
    }
    got = {key: service.get(key, ["(missing)"])[-1] for key in want}
    assert got == want
    families = set(_one(service, "RestrictAddressFamilies").split())
    assert families == {"AF_PACKET", "AF_INET", "AF_INET6", "AF_UNIX"}


def test_unit_reload_restart_and_logging() -> None:
    unit = _unit(UNIT)
    service = unit["Service"]
    assert _one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert _one(service, "Restart") == "on-failure"
    # live exits 2 on usage, policy and privilege errors: restarting would loop.
    assert _one(service, "RestartPreventExitStatus") == "2"
    assert _one(service, "KillSignal") == "SIGTERM"
    assert _one(service, "StandardError") == "journal"
    assert _one(service, "StandardOutput") == "journal"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_exec_start_is_a_valid_live_command() -> None:
    from detectors.live import cli as live_cli

    service = _unit(UNIT)["Service"]
    argv = _exec_start(service, "eth1")
    assert Path(argv[0]).name == "v6sentry" and argv[1] == "live", argv
    parser = argparse.ArgumentParser(exit_on_error=False)
    live_cli.add_arguments(parser)
    args = parser.parse_args(argv[2:])
    assert args.interfaces == ["eth1"]
    # ProtectSystem=strict leaves only the service's own directories writable: the
    # alert file must be in LogsDirectory, and the policy in ConfigurationDirectory.
    logs = Path("/var/log") / _one(service, "LogsDirectory")
    assert Path(args.output).parent == logs, (args.output, logs)
    assert Path(args.policy).parent == Path("/etc") / _one(service, "ConfigurationDirectory")
    # The ES spool defaults to $XDG_STATE_HOME/v6sentry/spool: inside StateDirectory.
    env = dict(v.split("=", 1) for v in service["Environment"])
    state = Path(env["XDG_STATE_HOME"].replace("%S", "/var/lib")) / "v6sentry"
    assert state == Path("/var/lib") / _one(service, "StateDirectory")
    # Extra options come from the environment file, word-split ($VAR, not ${VAR}).
    assert "$V6SENTRY_LIVE_OPTS" in _one(service, "ExecStart").split()


def test_logrotate_matches_the_output_and_reloads_the_unit() -> None:
    service = _unit(UNIT)["Service"]
    output = _exec_start(service, "eth1")[_exec_start(service, "eth1").index("-o") + 1]
    text = LOGROTATE.read_text(encoding="utf-8")
    pattern = re.search(r"^(/\S+)\s*\{", text, re.MULTILINE)
    assert pattern, text
    assert fnmatch.fnmatch(output, pattern.group(1)), (output, pattern.group(1))
    post = re.search(r"postrotate\n(.*?)\n\s*endscript", text, re.DOTALL)
    assert post, text
    assert "systemctl reload 'v6sentry-live@*.service'" in post.group(1)
    # The reload must be the SIGHUP that makes the sensor reopen its file.
    assert "-HUP" in _one(service, "ExecReload")
    assert re.search(r"^\s*create 0640 v6sentry v6sentry$", text, re.MULTILINE), text


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify needs ExecStart's program to exist: point it at this checkout's script.
    script = Path(sys.prefix) / "bin" / "v6sentry"
    assert script.exists(), script
    text = UNIT.read_text(encoding="utf-8").replace("/opt/v6sentry/bin/v6sentry", str(script))
    unit = tmp_path / "v6sentry-live@eth1.service"
    unit.write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    # Any line about our unit is a warning about it (unknown key, bad value, ...).
    ours = [line for line in proc.stderr.splitlines() if "v6sentry-live@" in line]
    assert proc.returncode == 0 and not ours, proc.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=30", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    if exposure is None:
        pytest.skip(f"systemd-analyze security --offline unsupported: {security.stderr.strip()}")
    # 2.2 at the time of writing ("OK"); anything past 3 means hardening was lost.
    assert float(exposure.group(1)) <= 3.0, security.stdout[-2000:]
