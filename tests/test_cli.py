"""The ``v6sentry`` command as users run it: a real subprocess of the installed script.

Owns the CLI contract: ``--version``, exit codes 0/1/2, one-line errors that
name the file, standard input, gzip, ``-o``, ``--format``, ``--fail-on``,
truncated captures and ``--strict``, and the stderr summary.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from detectors import __version__

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "pcaps"
POLICY = PCAPS / "policy.yaml"
ROGUE = PCAPS / "rogue_ra.pcap"
BENIGN = PCAPS / "benign_ra.pcap"


def v6sentry(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("v6sentry", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "detectors"]
    return subprocess.run([*cmd, *args], input=stdin, capture_output=True, timeout=120)


def test_version() -> None:
    proc = v6sentry("--version")
    assert proc.returncode == 0
    assert proc.stdout.decode().strip() == f"v6sentry {__version__}"


def test_rogue_ra_is_reported_as_eve() -> None:
    proc = v6sentry("replay", "--policy", str(POLICY), str(ROGUE))
    assert proc.returncode == 0, proc.stderr
    alerts = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [a["alert"]["category"] for a in alerts] == ["ipv6.rogue_ra"] * 2
    first = alerts[0]
    assert first["event_type"] == "alert"
    assert first["proto"] == "IPv6-ICMP"
    # Suricata's form: IPv6 in full, so string joins with its EVE work.
    assert first["src_ip"] == "fe80:0000:0000:0000:0000:0000:0000:0bad"
    assert first["dest_ip"] == "ff02:0000:0000:0000:0000:0000:0000:0001"
    assert first["community_id"] == "1:ox99JYRLFPznLUi+qZc4jSRR7Ds="
    assert first["ether"]["src_mac"] == "02:00:00:00:66:66"
    assert 1_000_000 <= first["alert"]["signature_id"] <= 1_999_999
    assert first["alert"]["signature"].startswith("V6SENTRY ")
    assert first["alert"]["metadata"]["mitre_technique_id"][0].startswith("T")
    assert first["v6sentry"]["policy"]["source"].startswith("file")
    summary = proc.stderr.decode()
    assert "packets/s" in summary and "ipv6.rogue_ra=2" in summary and "malformed" in summary


def test_ecs_format() -> None:
    proc = v6sentry("replay", "--format", "ecs", "--policy", str(POLICY), str(ROGUE))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.decode().splitlines()[0])
    assert doc["event"]["kind"] == "alert"
    assert doc["event"]["category"] == ["network", "intrusion_detection"]
    assert doc["rule"]["category"] == "ipv6.rogue_ra"
    assert doc["threat"]["framework"] == "MITRE ATT&CK"
    assert doc["source"]["mac"] == "02-00-00-00-66-66"
    assert doc["v6sentry"]["alert_id"] == doc["event"]["id"]


def test_fail_on() -> None:
    assert (
        v6sentry("replay", "--policy", str(POLICY), "--fail-on", "high", str(ROGUE)).returncode == 1
    )
    assert (
        v6sentry("replay", "--policy", str(POLICY), "--fail-on", "low", str(ROGUE)).returncode == 1
    )
    assert (
        v6sentry("replay", "--policy", str(POLICY), "--fail-on", "critical", str(ROGUE)).returncode
        == 0
    )
    assert (
        v6sentry("replay", "--policy", str(POLICY), "--fail-on", "low", str(BENIGN)).returncode == 0
    )


def test_stdin_and_gzip_stdin() -> None:
    raw = ROGUE.read_bytes()
    for data in (raw, gzip.compress(raw)):
        proc = v6sentry("replay", "--policy", str(POLICY), "-", stdin=data)
        assert proc.returncode == 0, proc.stderr
        assert len(proc.stdout.decode().splitlines()) == 2


def test_output_file(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    proc = v6sentry("replay", "--policy", str(POLICY), "-o", str(out), str(ROGUE))
    assert proc.returncode == 0
    assert proc.stdout == b""
    assert len(out.read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["replay", "/nonexistent/x.pcap"], "/nonexistent/x.pcap"),
        (["replay", str(ROOT / "README.md")], "README.md"),
        (["replay", "--policy", "/nonexistent/p.yaml", str(ROGUE)], "/nonexistent/p.yaml"),
        (["replay", "--format", "xml", str(ROGUE)], "--format"),
        (["replay", "--fail-on", "urgent", str(ROGUE)], "--fail-on"),
        (["replay"], "CAPTURE"),
        (["replay", "-", "-"], "standard input"),
        (["replay", "-o", "/nonexistent/dir/out.jsonl", str(ROGUE)], "/nonexistent/dir/out.jsonl"),
    ],
)
def test_input_errors_exit_2_in_one_line(args: list[str], needle: str) -> None:
    proc = v6sentry(*args)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert proc.stdout == b""


def test_bad_policy_names_key_and_line(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("routers:\n  - address: fe80::1\n    mack: '02:00:00:00:01:01'\n")
    proc = v6sentry("replay", "--policy", str(policy), str(ROGUE))
    err = proc.stderr.decode()
    assert proc.returncode == 2
    assert "p.yaml:3" in err and "mack" in err


def test_router_address_with_two_macs_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    # Accepted before, the RA and ND detections picked different entries for fe80::1 and
    # the benign capture raised a spurious ipv6.ndp_spoof router_address_claim (1000221).
    text = POLICY.read_text(encoding="utf-8")
    dup = '  - address: fe80::1\n    mac: "02:00:00:00:01:09"\n'
    policy = tmp_path / "p.yaml"
    policy.write_text(text.replace("  - address: fe80::2\n", dup + "  - address: fe80::2\n"))
    proc = v6sentry("replay", "--policy", str(policy), str(BENIGN))
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert proc.stdout == b"" and len(err.strip().splitlines()) == 1, err
    assert (
        f"{policy}:8: routers[1]: duplicate router address fe80::1: already routers[0] (line 3;"
        in err
    )


def test_monitored_prefix_inside_a_dark_prefix_is_an_error(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        POLICY.read_text(encoding="utf-8").replace("dark: []", "dark: ['2001:db8::/32']")
    )
    proc = v6sentry("replay", "--policy", str(policy), str(BENIGN))
    err = proc.stderr.decode()
    assert proc.returncode == 2 and proc.stdout == b"", err
    assert (
        f"{policy}:15: prefixes.dark[0]: 2001:db8::/32 contains prefixes.monitored[0] "
        "2001:db8:1::/64 (line 14)" in err
    )


LEARNING = "v6sentry: warning: routers are learned, not checked against a policy ("


def test_learning_run_warns_and_says_so_in_the_summary(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    proc = v6sentry("replay", "--stats-json", str(stats), str(BENIGN), str(ROGUE))
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode().splitlines()
    warnings = [line for line in err if line.startswith(LEARNING)]
    assert warnings == [
        LEARNING + "no --policy given): any router that advertises in the first 600 s of "
        "traffic is trusted, a rogue one included (MLD queriers and DHCPv6 servers are "
        "learned the same way); list the legitimate routers under 'routers:' in a --policy FILE"
    ]  # once per run, however many captures
    for capture in (BENIGN, ROGUE):  # and in each capture's summary
        line = f"v6sentry: {capture}: policy none: routers learned from the first 600 s"
        assert any(x.startswith(line) and "(see --policy)" in x for x in err), err
    runs = json.loads(stats.read_text())["runs"]
    assert [r["policy"] for r in runs] == [
        {
            "file": None,
            "sha256": None,
            "routers": "learned",
            "listed_routers": 0,
            "learn_window_s": 600.0,
            "notice": warnings[0].removeprefix("v6sentry: warning: "),
        }
    ] * 2


def test_quiet_learning_run_keeps_one_line(tmp_path: Path) -> None:
    """-q drops the summary, not the warning: a weakened sensor is never silent."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("thresholds: {ipv6.rogue_ra: {learn_window_s: 60}}\n")
    proc = v6sentry("replay", "-q", "--policy", str(empty), str(BENIGN))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode().splitlines() == [
        LEARNING + f"{empty} has no 'routers' key): any router that advertises in the first "
        "60 s of traffic is trusted, a rogue one included (MLD queriers and DHCPv6 servers "
        "are learned the same way); list the legitimate routers under 'routers:' in a "
        "--policy FILE"
    ]


def test_listed_routers_run_does_not_warn(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    proc = v6sentry("replay", "--policy", str(POLICY), "--stats-json", str(stats), str(BENIGN))
    err = proc.stderr.decode()
    assert proc.returncode == 0 and "warning" not in err, err
    assert f"v6sentry: {BENIGN}: policy {POLICY}: 2 routers listed\n" in err
    summary = json.loads(stats.read_text())["runs"][0]["policy"]
    assert summary["routers"] == "listed" and summary["listed_routers"] == 2
    assert summary["notice"] is None and summary["file"] == str(POLICY)
    quiet = v6sentry("replay", "-q", "--policy", str(POLICY), str(BENIGN))
    assert quiet.stderr == b""


def test_help_says_what_no_policy_means() -> None:
    text = " ".join(v6sentry("replay", "--help").stdout.decode().split())
    assert "routers are then learned" in text and "warns" in text
    assert "the learned-routers one included" in text


def test_unknown_threshold_is_rejected(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("thresholds:\n  ipv6.rogue_ra:\n    learn_windw_s: 5\n")
    proc = v6sentry("replay", "--policy", str(policy), str(ROGUE))
    assert proc.returncode == 2
    assert "learn_windw_s" in proc.stderr.decode() and ":3" in proc.stderr.decode()


def test_threshold_override_changes_behaviour(tmp_path: Path) -> None:
    """Learning for 0 s means every RA after the first packet is judged."""
    policy = tmp_path / "p.yaml"
    policy.write_text("thresholds:\n  ipv6.rogue_ra:\n    learn_window_s: 0\n")
    learned = v6sentry("replay", str(ROGUE))
    strict = v6sentry("replay", "--policy", str(policy), str(ROGUE))
    assert strict.returncode == 0, strict.stderr
    assert len(strict.stdout.splitlines()) > len(learned.stdout.splitlines())


def test_truncated_capture_warns_and_strict_fails(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    data = ROGUE.read_bytes()
    cut.write_bytes(data[: len(data) - 7])
    proc = v6sentry("replay", "--policy", str(POLICY), str(cut))
    assert proc.returncode == 0
    assert "warning" in proc.stderr.decode() and "cut.pcap" in proc.stderr.decode()
    assert len(proc.stdout.splitlines()) == 2
    strict = v6sentry("replay", "--strict", "--policy", str(POLICY), str(cut))
    assert strict.returncode == 2
    assert len(strict.stdout.splitlines()) == 2  # alerts still written before the verdict


def test_several_captures_are_independent_unless_continuous() -> None:
    separate = v6sentry("replay", "--policy", str(POLICY), str(ROGUE), str(ROGUE))
    assert len(separate.stdout.splitlines()) == 4  # fresh state per capture
    joined = v6sentry("replay", "--continuous", "--policy", str(POLICY), str(ROGUE), str(ROGUE))
    assert len(joined.stdout.splitlines()) == 2  # one stream: suppression holds


def test_help_examples_name_real_options() -> None:
    proc = v6sentry("replay", "--help")
    assert proc.returncode == 0
    text = proc.stdout.decode()
    for option in ("--policy", "--format", "--fail-on", "-o", "--strict", "exit codes"):
        assert option in text


def test_live_prints_its_packaged_unit_dir_and_example_policy() -> None:
    """Both are package data, so a pip-installed sensor can be deployed without a checkout."""
    proc = v6sentry("live", "--unit-dir")
    assert proc.returncode == 0, proc.stderr.decode()
    units = Path(proc.stdout.decode().strip())
    assert sorted(p.name for p in units.iterdir()) == [
        "v6sentry-live.logrotate",
        "v6sentry-live@.service",
        "v6sentry.sysusers",
    ]
    proc = v6sentry("live", "--example-policy")
    assert proc.returncode == 0, proc.stderr.decode()
    assert Path(proc.stdout.decode().strip()).read_bytes() == POLICY.read_bytes()
