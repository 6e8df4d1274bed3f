"""Tuning (the policy's ``tuning:``), as Suricata's threshold.config and Zeek's Notice policy.

Owns the tuning contract: entries that disable a detection or a signature, or
suppress its alerts by source or destination prefix or MAC, each with a reason
and an optional expiry; validation errors with file, line and key; expired
entries warned about and not applied; the sensor dropping the alerts at
emission and counting each drop per entry in the summary and ``--stats-json``.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from detectors.alerts import Alert
from detectors.capture import open_capture
from detectors.detections import discover
from detectors.engine import Engine, known_signatures, known_thresholds
from detectors.policy import Policy, PolicyError, load_policy

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "pcaps"
ROGUE = PCAPS / "rogue_ra.pcap"
SPECS, CLASSES = discover()
TODAY = datetime.date(2026, 6, 1)
# pcaps/policy.yaml's routers: rogue_ra.pcap then raises sid 1000101 from fe80::bad and
# sid 1000102 from fe80::1 (a policy router's address from MAC 02:00:00:00:66:66).
ROUTERS = (PCAPS / "policy.yaml").read_text(encoding="utf-8")


def v6sentry(*args: str) -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("v6sentry", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "detectors"]
    return subprocess.run([*cmd, *args], capture_output=True, timeout=120)


def site(tmp_path: Path, tuning: str) -> str:
    path = tmp_path / "site.yaml"
    path.write_text(ROUTERS + "tuning:\n" + tuning, encoding="utf-8")
    return str(path)


def load(path: str, today: datetime.date = TODAY) -> Policy:
    return load_policy(path, known_thresholds(SPECS), known_signatures(SPECS), today)


def replay(policy: Policy) -> tuple[list[Alert], Engine]:
    alerts: list[Alert] = []
    engine = Engine(policy, alerts.append, SPECS, CLASSES)
    reader = open_capture(str(ROGUE))
    try:
        engine.run_capture(reader)
    finally:
        reader.close()
    engine.finish()
    return alerts, engine


def test_entries_load_with_every_form(tmp_path: Path) -> None:
    policy = load(
        site(
            tmp_path,
            """\
  - sid: 1000101
    enabled: false
    reason: lab routers come and go
  - detection: ipv6.rogue_ra
    suppress: {src: "2001:db8:1::/64", dst: 33-33-00-00-00-01}
    expires: 2026-12-31
    reason: "  change   CHG-1 "
  - detection: ipv6.sweep
    suppress: {dst: "2001:db8:1::53"}
    expires: "2026-06-01"
    reason: scanner
""",
        )
    )
    first, second, third = policy.tuning
    assert (first.sid, first.enabled, first.src, first.line) == (1000101, False, None, 20)
    assert second.detection == "ipv6.rogue_ra" and second.reason == "change CHG-1"
    assert second.src is not None and second.src.text == "2001:db8:1::/64"
    assert second.dst is not None and second.dst.mac == "33:33:00:00:00:01"
    assert second.expires == datetime.date(2026, 12, 31) and not second.expired
    assert third.dst is not None and third.dst.text == "2001:db8:1::53/128"
    assert not third.expired  # the expiry day itself still applies
    assert policy.active_tuning == policy.tuning
    assert second.hits("2001:db8:1::9", None, None, "33:33:00:00:00:01")
    assert not second.hits("2001:db8:1::9", None, None, "33:33:00:00:00:02")
    assert not second.hits("2001:db8:2::9", None, None, "33:33:00:00:00:01")
    assert not second.hits(None, None, None, "33:33:00:00:00:01")


@pytest.mark.parametrize(
    ("entry", "line", "needle"),
    [
        ("  - {sid: 1000101, enabled: false}\n", 20, "tuning[0]: missing required key 'reason'"),
        ("  - {sid: 1000101, enabled: false, reason: ''}\n", 20, "tuning[0].reason: empty"),
        ("  - {sid: 42, enabled: false, reason: x}\n", 20, "tuning[0].sid: 42 is not a v6sentry"),
        (
            "  - {detection: ipv6.nope, enabled: false, reason: x}\n",
            20,
            "tuning[0].detection: 'ipv6.nope' is not a detection (known: ipv6.",
        ),
        ("  - {enabled: false, reason: x}\n", 20, "exactly one of 'detection' (a category) or"),
        (
            "  - {sid: 1000101, detection: ipv6.rogue_ra, enabled: false, reason: x}\n",
            20,
            "exactly one of 'detection'",
        ),
        ("  - {sid: 1000101, reason: x}\n", 20, "exactly one of 'enabled: false' (disable)"),
        ("  - {sid: 1000101, enabled: true, reason: x}\n", 20, "enabled: true is the default"),
        (
            "  - sid: 1000101\n    reason: x\n    suppress: {src: '2001:db8::1::/64'}\n",
            22,
            "tuning[0].suppress.src: '2001:db8::1::/64' is not an IPv6 or IPv4 prefix",
        ),
        (
            "  - sid: 1000101\n    reason: x\n    suppress: {src: '2001:db8::1/64'}\n",
            22,
            "has host bits set",
        ),
        ("  - sid: 1000101\n    reason: x\n    suppress: {}\n", 22, "give 'src', 'dst' or both"),
        (
            "  - sid: 1000101\n    reason: x\n    suppress: {mac: 02:00:00:00:01:01}\n",
            22,
            "tuning[0].suppress.mac: unknown key (allowed: src, dst)",
        ),
        (
            "  - {sid: 1000101, enabled: false, reason: x, expires: 2026-13-01}\n",
            20,
            "tuning[0].expires: '2026-13-01' is not a date (YYYY-MM-DD)",
        ),
        (
            "  - {sid: 1000101, enabled: false, reason: x, expires: 1st of May}\n",
            20,
            "'1st of May' is not a date",
        ),
        ("  - {sid: 1000101, enabled: false, reason: x, until: 1}\n", 20, "unknown key"),
        ("  sid: 1000101\n", 20, "tuning: expected a list"),
    ],
)
def test_errors_name_file_line_and_key(tmp_path: Path, entry: str, line: int, needle: str) -> None:
    path = site(tmp_path, entry)
    with pytest.raises(PolicyError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert needle in message, message


def test_expired_entries_are_kept_warned_and_not_applied(tmp_path: Path) -> None:
    path = site(
        tmp_path,
        "  - {sid: 1000101, enabled: false, reason: old change, expires: 2026-05-31}\n",
    )
    policy = load(path)
    assert policy.tuning[0].expired and policy.active_tuning == ()
    assert policy.tuning_warnings() == [
        f"{path}:20: tuning[0]: sid 1000101 disabled expired on 2026-05-31 (old change); "
        "not applied: renew 'expires' or remove the entry"
    ]
    alerts, engine = replay(policy)
    assert sorted(a.signature_id for a in alerts) == [1000101, 1000102]
    assert engine.tuning_summary()["entries"][0]["suppressed"] == 0
    # The day before, the same entry applies.
    assert not load(path, datetime.date(2026, 5, 31)).tuning[0].expired


def test_disabled_signature_and_detection_are_dropped_and_counted(tmp_path: Path) -> None:
    alerts, engine = replay(
        load(site(tmp_path, "  - {sid: 1000101, enabled: false, reason: lab}\n"))
    )
    assert [a.signature_id for a in alerts] == [1000102]
    assert engine.summary()["alerts"] == {"ipv6.rogue_ra": 1}
    assert engine.tuning_summary() == {
        "suppressed": 1,
        "entries": [
            {
                "entry": "tuning[0]",
                "line": 20,
                "sid": 1000101,
                "enabled": False,
                "expires": None,
                "reason": "lab",
                "expired": False,
                "suppressed": 1,
            }
        ],
    }
    alerts, engine = replay(
        load(site(tmp_path, "  - {detection: ipv6.rogue_ra, enabled: false, reason: lab}\n"))
    )
    assert alerts == [] and engine.tuning_summary()["suppressed"] == 2


@pytest.mark.parametrize(
    ("suppress", "left"),
    [
        ("{src: 'fe80::bad/128'}", [1000102]),
        ("{src: 'fe80::/64'}", []),
        ("{src: '2001:db8::/32'}", [1000101, 1000102]),
        ("{src: '02:00:00:00:66:66'}", []),
        ("{src: 02-00-00-00-66-66, dst: 'ff02::1'}", []),
        ("{src: '02:00:00:00:66:66', dst: 'ff02::2'}", [1000101, 1000102]),
        ("{dst: '33:33:00:00:00:01'}", []),
    ],
)
def test_suppression_by_prefix_or_mac(tmp_path: Path, suppress: str, left: list[int]) -> None:
    entry = f"  - {{detection: ipv6.rogue_ra, suppress: {suppress}, reason: r}}\n"
    alerts, engine = replay(load(site(tmp_path, entry)))
    assert sorted(a.signature_id for a in alerts) == left
    assert engine.tuning_summary()["suppressed"] == 2 - len(left)


def test_first_matching_entry_in_file_order_counts(tmp_path: Path) -> None:
    alerts, engine = replay(
        load(
            site(
                tmp_path,
                "  - {detection: ipv6.rogue_ra, suppress: {src: 'fe80::/64'}, reason: a}\n"
                "  - {sid: 1000101, enabled: false, reason: b}\n",
            )
        )
    )
    assert alerts == []
    assert [e["suppressed"] for e in engine.tuning_summary()["entries"]] == [2, 0]


def test_replay_summary_and_stats_json_show_suppressed(tmp_path: Path) -> None:
    path = site(
        tmp_path,
        "  - {sid: 1000101, enabled: false, reason: lab routers}\n"
        "  - {sid: 1000102, suppress: {src: 'fe80::/64'}, expires: 2020-01-01, reason: gone}\n",
    )
    stats = tmp_path / "stats.json"
    proc = v6sentry("replay", "--policy", path, "--stats-json", str(stats), str(ROGUE))
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["alert"]["signature_id"] for x in proc.stdout.splitlines()] == [1000102]
    err = proc.stderr.decode()
    assert f"v6sentry: warning: {path}:21: tuning[1]: sid 1000102 suppress src fe80::/64 " in err
    assert (
        f"v6sentry: {ROGUE}: tuning: suppressed 1: tuning[0] sid 1000101 disabled: "
        "suppressed 1 (lab routers); tuning[1] sid 1000102 suppress src fe80::/64: "
        "expired, not applied (gone)"
    ) in err
    run = json.loads(stats.read_text())["runs"][0]
    assert run["tuning"]["suppressed"] == 1
    assert [e["suppressed"] for e in run["tuning"]["entries"]] == [1, 0]
    assert [e["expired"] for e in run["tuning"]["entries"]] == [False, True]


def test_no_tuning_no_summary_line() -> None:
    proc = v6sentry("replay", "--policy", str(PCAPS / "policy.yaml"), str(ROGUE))
    assert proc.returncode == 0 and b"tuning" not in proc.stderr


# -- rule packs ----------------------------------------------------------------

PACK_TUNING = """\
  - {sid: 1000101, enabled: false, reason: lab routers come and go}
  - {detection: ipv6.tunnel_isatap, enabled: false, reason: ISATAP is allowed here}
  - {detection: ipv6.rogue_ra, suppress: {src: "fe80::/64"}, expires: 2099-01-01, reason: lab}
  - {sid: 1000106, suppress: {dst: "ff02::1"}, reason: all-nodes}
  - {sid: 1000106, suppress: {src: "02:00:00:00:66:66"}, reason: by mac}
  - {sid: 1000106, suppress: {src: "fe80::/64", dst: "ff02::1"}, reason: both sides}
  - {sid: 1000106, suppress: {src: "fe80::/64"}, expires: 2020-01-01, reason: old}
"""


def tuned_pack(tmp_path: Path) -> dict[str, str]:
    from detectors.rules.pack import render_pack

    return render_pack(load(site(tmp_path, PACK_TUNING))).files


def test_suricata_pack_leaves_out_disabled_rules_and_writes_suppressions(tmp_path: Path) -> None:
    from detectors.rules.suricata import omitted_sids, parse_rules

    files = tuned_pack(tmp_path)
    text = files["suricata/v6sentry.rules"]
    stands_for = {int(v) for r in parse_rules(text) for v in r.metadata["v6sentry_sid"]}
    assert 1000101 not in stands_for and 1000311 not in stands_for
    assert {1000101, 1000311} <= omitted_sids(text)
    assert (
        "# omitted sid 1000101: disabled by the policy's tuning[0] (line 20): sid 1000101 "
        "disabled: lab routers come and go\n"
    ) in text
    assert 1000106 in stands_for  # suppressed, not disabled: the rule stays
    threshold = files["suricata/threshold.config"]
    suppress = [line for line in threshold.splitlines() if not line.startswith("#") and line]
    assert suppress == [
        "suppress gen_id 1, sig_id 1000106, track by_src, ip fe80::/64",
        "suppress gen_id 1, sig_id 1000108, track by_src, ip fe80::/64",
        "suppress gen_id 1, sig_id 1000109, track by_src, ip fe80::/64",
        "suppress gen_id 1, sig_id 1000106, track by_dst, ip ff02::1/128",
    ]
    assert "#   not expressible: Suricata suppresses by IP address, not by MAC" in threshold
    assert "#   not expressible: Suricata suppresses by source or by destination, not both" in (
        threshold
    )
    assert "#   expired on 2020-01-01: not applied" in threshold
    assert "# tuning[1] (line 21): ipv6.tunnel_isatap disabled: ISATAP is allowed here" in (
        threshold
    )


@pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed")
def test_suricata_loads_the_tuned_pack_and_its_threshold_file(tmp_path: Path) -> None:
    from detectors.rules import engine_suricata

    for rel, text in tuned_pack(tmp_path).items():
        if rel.startswith("suricata/"):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(text, encoding="utf-8")
    assert engine_suricata.test_config(tmp_path) == []
    conf = engine_suricata.write_config(tmp_path, tmp_path)
    assert "threshold-file: " in conf.read_text(encoding="utf-8")
    # The file is really read: a bad address in it is Suricata's error.
    path = tmp_path / "suricata" / "threshold.config"
    path.write_text(
        path.read_text() + "suppress gen_id 1, sig_id 1000106, track by_src, ip 2001:zz::/64\n"
    )
    assert any("2001:zz::/64" in p for p in engine_suricata.test_config(tmp_path))


def test_sigma_pack_leaves_out_disabled_rules_and_filters_suppressions(tmp_path: Path) -> None:
    files = tuned_pack(tmp_path)
    names = [rel.rsplit("/", 1)[1] for rel in files if rel.startswith("sigma/rules/")]
    assert not [n for n in names if "unknown_router" in n or "isatap" in n]
    assert "v6sentry_rogue_ra_small_mtu.yml" in names
    own = files["sigma/rules/v6sentry/v6sentry_rogue_ra_small_mtu.yml"]
    assert '  tuning_4:\n    source.mac: "02-00-00-00-66-66"\n' in own
    assert '  tuning_3:\n    destination.ip|cidr: "ff02::1/128"\n' in own
    assert "tuning_6" not in own  # expired
    assert "condition: selection and not 1 of tuning_*" in own
    eve = files["sigma/rules/suricata/suricata_rogue_ra_small_mtu.yml"]
    assert "tuning[4] (line 24): sid 1000106 suppress src 02:00:00:00:66:66: not expressible" in eve
    assert "tuning_4:" not in eve and '    src_ip|cidr: "fe80::/64"\n' in eve
    query = files["sigma/queries/lucene/v6sentry_rogue_ra_small_mtu.txt"]
    assert "NOT (source.ip:fe80\\:\\:\\/64 OR destination.ip:ff02\\:\\:1\\/128" in query


def test_untuned_pack_has_an_empty_threshold_file() -> None:
    from detectors.rules.pack import committed_pack

    text = committed_pack().files["suricata/threshold.config"]
    assert "(the policy has no tuning entries)" in text
    assert not [line for line in text.splitlines() if line and not line.startswith("#")]


# -- explain and policy show -------------------------------------------------------


def test_explain_a_sid_with_policy_overrides_and_tuning(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        ROUTERS.replace("thresholds: {}", "thresholds: {ipv6.rogue_ra: {suppress_s: 60}}")
        + "tuning:\n  - {sid: 1000101, enabled: false, reason: lab routers}\n"
        "  - {detection: ipv6.sweep, enabled: false, reason: not this one}\n",
        encoding="utf-8",
    )
    proc = v6sentry("explain", "1000101", "--policy", str(path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.startswith(
        "sid 1000101 rev 2: V6SENTRY Rogue IPv6 RA from a router not in the policy\n"
    )
    assert "signature: unknown_router of ipv6.rogue_ra" in out
    assert "severity: high\n" in out and "T1557 Adversary-in-the-Middle" in out
    assert "RFCs: RFC 4861 (https://www.rfc-editor.org/rfc/rfc4861)\n" in out
    assert "  suppress_s = 60 seconds (policy override; default 3600)\n" in out
    assert "  learn_window_s = 600 seconds (default)\n" in out
    assert "  - A new or replaced router not yet added to the policy.\n" in out
    assert "  suricata: partial" in out
    assert "  tuning[0] (line 20): sid 1000101 disabled: lab routers (applied)\n" in out
    assert "tuning[1]" not in out  # another detection's entry


def test_explain_an_alert_id_from_its_alerts_file(tmp_path: Path) -> None:
    for fmt in ("eve", "ecs"):
        alerts = tmp_path / f"alerts.{fmt}"
        proc = v6sentry(
            "replay",
            "-q",
            "--format",
            fmt,
            "-o",
            str(alerts),
            "--policy",
            str(PCAPS / "policy.yaml"),
            str(ROGUE),
        )
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(alerts.read_text().splitlines()[1])
        ident = doc["v6sentry"]["alert_id"]
        proc = v6sentry("explain", ident, "--alerts", str(alerts))
        assert proc.returncode == 0, proc.stderr
        first, second = proc.stdout.decode().splitlines()[:2]
        assert first.startswith(f"alert {ident} ") and "fe80::1 -> ff02::1" in first
        assert second.startswith("sid 1000102 rev 1: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["42"], "v6sentry: error: sid 42 is not a v6sentry signature"),
        (["0" * 32], "is an alert id: give the alerts file it was written to (--alerts FILE)"),
        (["f" * 32, "--alerts", str(ROGUE) + ".nope"], "cannot read alerts"),
        (["nonsense"], "'nonsense' is neither a sid nor an alert id"),
    ],
)
def test_explain_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    proc = v6sentry("explain", *args)
    assert proc.returncode == 2 and proc.stdout == b""
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and message in err, err


def test_explain_unknown_alert_id(tmp_path: Path) -> None:
    alerts = tmp_path / "a.jsonl"
    alerts.write_text('{"event_type": "alert"}\n', encoding="utf-8")
    proc = v6sentry("explain", "a" * 32, "--alerts", str(alerts))
    assert proc.returncode == 2
    assert proc.stderr.decode() == f"v6sentry: error: alert {'a' * 32} is not in {alerts}\n"


def test_policy_show_fills_every_default_and_loads_back(tmp_path: Path) -> None:
    import yaml

    from detectors.engine import DECODER_THRESHOLDS

    path = tmp_path / "site.yaml"
    path.write_text(
        ROUTERS.replace(
            "thresholds: {}",
            "thresholds: {ipv6.rogue_ra: {suppress_s: 60}, decoder: {max_vlan_tags: 2}}",
        )
        + "tuning:\n  - {sid: 1000101, enabled: false, reason: lab}\n"
        "  - {sid: 1000102, suppress: {src: 'fe80::/64'}, expires: 2020-01-01, reason: old}\n",
        encoding="utf-8",
    )
    proc = v6sentry("policy", "show", "--policy", str(path))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert text.startswith(f"# Effective policy: {path} (sha256 ")
    assert "# not applied, expired on 2020-01-01: tuning[1] (line 21)" in text
    assert b"expired on 2020-01-01" in proc.stderr
    doc = yaml.safe_load(text)
    th = doc["thresholds"]
    assert th["decoder"] == {
        name: 2 if name == "max_vlan_tags" else t.default
        for name, t in sorted(DECODER_THRESHOLDS.items())
    }
    assert th["ipv6.rogue_ra"]["suppress_s"] == 60 and th["ipv6.rogue_ra"]["window_s"] == 60
    for spec in SPECS.values():
        for cat, det in spec.detections.items():
            assert set(th[cat]) == set(det.thresholds)
    assert doc["tuning"] == [{"sid": 1000101, "enabled": False, "reason": "lab"}]
    assert [r["address"] for r in doc["routers"]] == ["fe80::1", "fe80::2"]
    shown = tmp_path / "shown.yaml"
    shown.write_text(text, encoding="utf-8")
    again, first = load(str(shown)), load(str(path))

    def routers(p: Policy) -> list[tuple[object, ...]]:
        return [(r.address, r.mac, r.name, r.prefixes, r.rdnss, r.checked) for r in p.routers or ()]

    assert routers(again) == routers(first)
    assert again.thresholds["ipv6.rogue_ra"]["suppress_s"] == 60


def test_policy_show_without_policy_and_policy_check(tmp_path: Path) -> None:
    proc = v6sentry("policy", "show")
    assert proc.returncode == 0
    text = proc.stdout.decode()
    assert "# routers: not listed, so they are learned" in text
    assert "\nrouters:" not in text
    assert "learn_window_s: 600\n" in text
    good = v6sentry("policy", "check", str(PCAPS / "policy.yaml"))
    assert good.returncode == 0 and b"valid policy" in good.stderr
    bad = site(tmp_path, "  - {sid: 1000101, enabled: false}\n")
    proc = v6sentry("policy", "check", bad)
    assert proc.returncode == 2
    assert proc.stderr.decode() == (
        f"v6sentry: error: {bad}:20: tuning[0]: missing required key 'reason' "
        "(why the alerts may go)\n"
    )
