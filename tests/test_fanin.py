"""Fan-in sweeps and state thrashing (issue 15), reproduced as the issue reported them.

Covers: about 20,000 probes into one /64, each from a random source (an alert where
the per-source tables only thrashed); a million of them (an alert with bounded peak RSS
and counted evictions, and the thrashing reported once per table); a scanner moving to
a new source /64 every 99 probes, just under the per-source tier (an alert, RSS
bounded); the fan-in evidence (sampled sources with their /48 and /32 shares); the
fan-in observations; answered fan-in staying silent; and busy servers' answers to 100,000
clients, each in its own /64, opening no window at all. The large captures are written
by the sweep family's ``captures.py`` into a temporary folder and replayed by the real
command in a fresh process, which reports its own peak RSS (VmHWM) on exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from detectors.detections.sweep.captures import busy_server_answers, fanin_probes, write_stream
from detectors.engine import Engine
from detectors.es.observations import Observation
from detectors.policy import empty_policy, load_policy
from tests.golden import PCAPS

ROOT = PCAPS.parent
FANIN, THRASH = 1000404, 1000405
# The issue saw 376 MB. Every family's tables full at their caps stay below this: in the
# 99-probes case most of the ~190 MB are the sweep's 8,192 exact pair sets and tga_scan's
# 8,192 windows (each about 6 KiB), the rest the interpreter and the other tables.
RSS_LIMIT_KIB = 256 * 1024


# The replay runs under this wrapper, which reports the process's own peak RSS (VmHWM)
# on exit. ru_maxrss from wait4 cannot be used: at exec the kernel keeps the old address
# space's peak, so a child of a large pytest process (a full `make test` run reaches 2 GB)
# reports the parent's size, not the replay's.
_PEAK = """
import runpy, sys
sys.argv = ["v6sentry", *sys.argv[1:]]
try:
    runpy.run_module("detectors.cli", run_name="__main__", alter_sys=True)
finally:
    with open("/proc/self/status", encoding="ascii") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print(f"peak-rss-kib {peak}", file=sys.stderr)
"""


def replay_rss(pcap: Path, out: Path) -> tuple[list[dict[str, Any]], str, int]:
    """EVE alerts, stderr and the peak RSS (KiB) of ``v6sentry replay`` in its own process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", _PEAK, "replay", str(pcap)]
    argv += ["--policy", str(PCAPS / "policy.yaml"), "-o", str(out)]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    peak = [line for line in lines if line.startswith("peak-rss-kib ")]
    assert len(peak) == 1, proc.stderr
    err = "\n".join(line for line in lines if not line.startswith("peak-rss-kib "))
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    return alerts, err, int(peak[0].split()[1])


def sids(alerts: list[dict[str, Any]]) -> list[int]:
    return [a["alert"]["signature_id"] for a in alerts]


def evictions(stderr: str, table: str) -> int:
    for part in stderr.split():
        if part.startswith(f"{table}="):
            return int(part.split("=")[1])
    return 0


def test_twenty_thousand_random_sources_into_one_64_alert(tmp_path: Path) -> None:
    """The issue's first report: no alert, sweep.pairs=31796 evictions. Now a fan-in
    sweep, reaching high, and the per-source tables reported as thrashing."""
    pcap = tmp_path / "fanin20k.pcap"
    write_stream(pcap, fanin_probes(20_000, step=0.001))
    alerts, err, _ = replay_rss(pcap, tmp_path / "a.jsonl")
    fan = [a for a in alerts if a["alert"]["signature_id"] == FANIN]
    assert [a["v6sentry"]["tier"] for a in fan] == ["medium", "high"]
    ev = fan[0]["v6sentry"]
    assert ev["target_prefix"] == "2001:db8:1::/64" and ev["no_reply_ratio"] == 1.0
    assert ev["source_prefixes"] == 100 and ev["exact"]
    conc = ev["source_concentration"]
    # Random /64s of the documentation /32: all in one /32, spread over the /48s.
    assert conc["top_32"] == {"2001:db8::/32": 1.0} and conc["max_share_32"] == 1.0
    assert conc["max_share_48"] < 0.1 and conc["sampled"] > 16
    assert len(ev["sampled_sources"]) == 10
    thrash = {
        a["v6sentry"]["table"]: a["v6sentry"]
        for a in alerts
        if a["alert"]["signature_id"] == THRASH
    }
    assert set(thrash) == {"sweep.sources", "sweep.pairs"}
    assert thrash["sweep.sources"]["evictions"] == 8192 == thrash["sweep.sources"]["cap"]
    assert evictions(err, "sweep.pairs") == 20_000 - 8192
    assert sorted(set(sids(alerts))) == [FANIN, THRASH]  # no per-source sweep


def test_a_million_random_sources_alert_in_bounded_memory(tmp_path: Path) -> None:
    """The issue's second report: a million such probes, 991,806 evictions and no alert.
    Now fan-in alerts up to critical, each table thrashing is reported once, and the
    replay's peak RSS stays flat (the fan-in window is three fixed-size sketches)."""
    pcap = tmp_path / "fanin1m.pcap"
    write_stream(pcap, fanin_probes(1_000_000))
    alerts, err, rss = replay_rss(pcap, tmp_path / "a.jsonl")
    tiers = [a["v6sentry"]["tier"] for a in alerts if a["alert"]["signature_id"] == FANIN]
    assert tiers == ["medium", "high", "critical"]
    assert sorted(
        a["v6sentry"]["table"] for a in alerts if a["alert"]["signature_id"] == THRASH
    ) == [
        "sweep.pairs",
        "sweep.sources",
    ]
    assert evictions(err, "sweep.pairs") == 991_806 and evictions(err, "sweep.fanin") == 0
    print(f"1M random sources: peak RSS {rss} KiB; {err.strip().splitlines()[-1]}")
    assert rss < RSS_LIMIT_KIB, rss


def test_a_new_source_64_every_99_probes_alerts_with_bounded_memory(tmp_path: Path) -> None:
    """The issue's third report: each source /64 stays at 99 targets, below
    medium_targets, and the exact sets grew RSS to 376 MB. Now one fan-in sweep (medium
    once eight source /64s did it, then high), and RSS within the caps."""
    pcap = tmp_path / "fanin99.pcap"
    write_stream(pcap, fanin_probes(1_000_000, per_source=99))
    alerts, err, rss = replay_rss(pcap, tmp_path / "a.jsonl")
    fan = [a["v6sentry"] for a in alerts if a["alert"]["signature_id"] == FANIN]
    assert [f["tier"] for f in fan] == ["medium", "high"]
    assert fan[0]["source_prefixes"] == 8 and fan[0]["estimated_targets"] == 99 * 7 + 6
    assert set(sids(alerts)) == {FANIN}  # no per-source tier; the tables did not thrash
    print(f"99 probes per source /64: peak RSS {rss} KiB; {err.strip().splitlines()[-1]}")
    assert rss < RSS_LIMIT_KIB, rss


def run(frames: Any, observe: Any = None) -> list[Any]:
    alerts: list[Any] = []
    engine = Engine(load_policy(str(PCAPS / "policy.yaml")), alerts.append, observe=observe)
    engine.run((ts, 0, 1, f, len(f)) for ts, f in frames)
    engine.finish()
    return alerts


def test_a_distributed_scan_below_the_tier_is_one_fanin_observation() -> None:
    seen: list[Observation] = []
    alerts = run(fanin_probes(60, step=0.01), seen.append)
    assert alerts == []
    (obs,) = [o for o in seen if o.kind == "fanin"]
    assert obs.key == "2001:db8:1::/64|fanin"
    d = obs.details
    assert (d["estimated_targets"], d["source_prefixes"], d["no_reply_ratio"]) == (60, 60, 1.0)
    assert len(d["sampled_sources"]) == 10
    # One source /64 per probe: no per-source window reached observe_min_targets.
    assert [o.kind for o in seen] == ["fanin"]


def test_the_benign_fan_in_capture_stays_silent_without_a_policy() -> None:
    from detectors.capture import open_capture

    alerts: list[Any] = []
    engine = Engine(empty_policy(), alerts.append)
    with open_capture(str(PCAPS / "sweep_fanin_benign.pcap")) as reader:
        engine.run(reader.records())
    engine.finish()
    assert alerts == []


def test_busy_servers_answering_100k_clients_open_no_window() -> None:
    """The review of the fan-in work: every answer opened a pair window (server /64,
    client /64) and a fan-in window on the client's /64, so 32 busy servers answering
    100,000 clients in as many /64s (SYN-ACKs, established ACKs, DNS and QUIC answers, as
    a sensor on the servers' side of an asymmetric route sees them) thrashed both tables
    and raised state_thrashing. Answers now only count as responders: zero alerts, and
    the sweep's tables hold nothing."""
    alerts: list[Any] = []
    engine = Engine(load_policy(str(PCAPS / "policy.yaml")), alerts.append)
    engine.run((ts, 0, 1, f, len(f)) for ts, f in busy_server_answers(100_000))
    stats = engine.table_stats()
    engine.finish()
    assert alerts == []
    for table in ("sweep.sources", "sweep.pairs", "sweep.fanin"):
        assert stats[table]["size"] == 0 and stats[table]["evictions"] == 0, stats[table]
