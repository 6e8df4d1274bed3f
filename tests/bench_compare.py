"""v6sentry against Suricata 7 on the same captures (``make bench-compare``).

Owns the same-run comparison: on the attack-heavy capture (``pcaps/attack_heavy.py``,
cached in ``build/bench/``) and on ``make bench``'s office mix, it times the stages
of v6sentry (reader, reader + decoder, both in this process through
``tests/bench.py``'s functions, then the whole ``v6sentry replay`` console script
in a subprocess) and Suricata 7 in ``--runmode single`` with v6sentry's committed
rule pack (``suricata/``, rendered for ``pcaps/policy.yaml``; v6sentry replays
with the same policy). It prints the figures and the issue's targets, and can
write them as JSON (``--json``) and as a bar chart (``--plot``).

Both engines are started the way an operator starts them, so their wall times
include start-up (Python imports and detection specs; Suricata's rule load), with
v6sentry's modules compiled to bytecode first, as installing the wheel leaves them. The
start-up is measured apart, by running each engine on a one-packet capture, and
reported; the ratio and the targets use the wall times (start-up included), and
the start-up-free ratio is printed beside them.

Suricata's packet count comes from its own counters (the last ``stats`` record of
its ``eve.json``: ``decoder.pkts``; a pcap-file run has no ``capture.kernel_packets``),
v6sentry's from its ``--stats-json``. Nothing here asserts a timing: the machine is
shared and figures are noisy; ``tests/test_bench_compare.py`` checks the capture
and the alerts, never the speed.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import detectors
from detectors.rules import engine_suricata
from pcaps import attack_heavy
from tests import bench

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "pcaps" / "policy.yaml"  # the policy the committed Suricata pack is for
OFFICE_PACKETS = 1_000_000  # make bench's default, so both benches quote the same mix
RUN_TIMEOUT_S = 1800
TARGETS = {  # the targets: attack-heavy and office replay, and the ratio
    "attack_heavy_pps": 1_500_000,
    "attack_heavy_ratio": 5.0,
    "office_pps": 3_000_000,
}
MIXES = {"attack_heavy": "attack-heavy", "office": "office mix"}


@dataclass
class EngineRun:
    """One engine on one capture: what it counted, how long it took, what it raised."""

    engine: str
    packets: int  # as the engine itself counted them
    wall_s: float  # process start to exit, as a user times it
    startup_s: float  # the same engine on a one-packet capture
    engine_s: float | None  # the engine's own processing time, where it reports one
    alerts: int
    alerts_by: dict[str, int] = field(default_factory=dict)

    @property
    def pps(self) -> float:
        return self.packets / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def pps_no_startup(self) -> float:
        busy = self.wall_s - self.startup_s
        return self.packets / busy if busy > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "pps": round(self.pps),
            "pps_no_startup": round(self.pps_no_startup),
        }


def v6sentry_binary() -> str:
    """The console script installed beside this interpreter (``.venv/bin/v6sentry``)."""
    path = Path(sys.executable).with_name("v6sentry")
    if not path.is_file():
        raise SystemExit(f"bench-compare: {path}: missing (make venv installs it)")
    return str(path)


def one_packet_copy(src: Path, dst: Path) -> None:
    """The pcap header and first record of ``src``: each engine's start-up and shutdown
    with (next to) no packet work."""
    with src.open("rb") as fh:
        header = fh.read(24)
        record = fh.read(16)
        caplen = int.from_bytes(record[8:12], "little")
        dst.write_bytes(header + record + fh.read(caplen))


def _timed(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    return proc, time.perf_counter() - t0


def run_v6sentry(pcap: Path, work: Path) -> tuple[int, float, float, dict[str, int]]:
    """``v6sentry replay`` with the pack's policy: (packets, wall s, engine s, alerts by
    category). Alerts go to a file in ``work``, as a sensor writes them."""
    stats = work / "v6sentry-stats.json"
    args = [
        v6sentry_binary(), "replay", "-q", "--policy", str(POLICY),
        "-o", str(work / "v6sentry-alerts.jsonl"), "--stats-json", str(stats), str(pcap),
    ]  # fmt: skip
    proc, wall = _timed(args, work)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bench-compare: v6sentry replay {pcap} failed:\n{proc.stderr}")
    run = json.loads(stats.read_text(encoding="utf-8"))["runs"][0]
    return int(run["packets"]), wall, float(run["seconds"]), dict(run["alerts"])


_ELAPSED = re.compile(r"time elapsed ([0-9.]+)s")


def run_suricata(pcap: Path, work: Path) -> tuple[int, float, float | None, dict[str, int]]:
    """Suricata 7, one thread, v6sentry's pack: (packets, wall s, engine s, alerts by
    v6sentry category). ``work`` holds its configuration and logs."""
    rules, _, _ = engine_suricata.pack_files(ROOT)
    conf = engine_suricata.write_config(ROOT, work, stats=True)
    args = [
        engine_suricata.binary(), "-v", "-c", str(conf), "-S", str(rules), "-l", str(work),
        "-k", "none", "--runmode", "single",
        # No command socket: other Suricata runs on this machine may hold the default one.
        "--set", "unix-command.enabled=no",
        "-r", str(pcap),
    ]  # fmt: skip
    proc, wall = _timed(args, work)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 or "Failed to init pcap file" in output:
        raise SystemExit(
            f"bench-compare: suricata -r {pcap} failed:\n"
            + "\n".join(engine_suricata.problems(output))
        )
    packets, alerts = -1, dict[str, int]()
    for line in (work / "eve.json").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("event_type") == "stats":
            packets = int(record["stats"]["decoder"]["pkts"])  # the last record is final
        elif record.get("event_type") == "alert":
            meta = record["alert"].get("metadata", {})
            category = meta.get("v6sentry_category", ["?"])[0]
            alerts[category] = alerts.get(category, 0) + 1
    if packets < 0:
        raise SystemExit(f"bench-compare: suricata wrote no stats record for {pcap}")
    elapsed = _ELAPSED.search(output)
    return packets, wall, float(elapsed.group(1)) if elapsed else None, alerts


def compare(path: Path, tmp: Path) -> dict[str, Any]:
    """Every stage and both engines on one capture."""
    tiny = tmp / f"{path.stem}-one-packet.pcap"
    one_packet_copy(path, tiny)
    figures: dict[str, Any] = {"capture": str(path), "bytes": path.stat().st_size}

    n, read_s = bench.time_reader(path)
    figures["reader"] = {"packets": n, "seconds": read_s, "pps": n / read_s}
    n, dec_s = bench.time_decoder(path)
    figures["decoder"] = {"packets": n, "seconds": dec_s, "pps": n / dec_s}

    runs: dict[str, EngineRun] = {}
    for name, run in (("v6sentry", run_v6sentry), ("suricata", run_suricata)):
        with tempfile.TemporaryDirectory(dir=tmp) as a, tempfile.TemporaryDirectory(dir=tmp) as b:
            _, startup, _, _ = run(tiny, Path(a))
            packets, wall, engine_s, by = run(path, Path(b))
        runs[name] = EngineRun(name, packets, wall, startup, engine_s, sum(by.values()), by)
    v6, suri = runs["v6sentry"], runs["suricata"]
    figures["v6sentry"], figures["suricata"] = v6.as_json(), suri.as_json()
    figures["ratio"] = v6.pps / suri.pps if suri.pps else 0.0
    figures["ratio_no_startup"] = (
        v6.pps_no_startup / suri.pps_no_startup if suri.pps_no_startup else 0.0
    )
    return figures


# -- report --------------------------------------------------------------------------------


def _rate(pps: float) -> str:
    return f"{pps / 1e6:.2f} M" if pps >= 1e6 else f"{pps / 1e3:,.1f} k"


def table(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        f"{'mix':<13} {'engine / stage':<26} {'packets':>11} {'seconds':>9} {'packets/s':>11}"
        f" {'w/o start-up':>13}"
    ]
    for key, fig in results.items():
        mix = MIXES[key]
        for stage, label in (("reader", "v6sentry reader"), ("decoder", "v6sentry reader+decoder")):
            s = fig[stage]
            lines.append(
                f"{mix:<13} {label:<26} {s['packets']:>11,} {s['seconds']:>9.2f} {s['pps']:>11,.0f}"
            )
        for name, label in (("v6sentry", "v6sentry replay"), ("suricata", "Suricata 7 single")):
            r = fig[name]
            lines.append(
                f"{mix:<13} {label:<26} {r['packets']:>11,} {r['wall_s']:>9.2f} {r['pps']:>11,}"
                f" {r['pps_no_startup']:>13,}"
            )
        lines.append(
            f"{mix:<13} ratio v6sentry/Suricata: {fig['ratio']:.3f} (wall times, start-up "
            f"included: v6sentry {fig['v6sentry']['startup_s']:.2f} s, Suricata "
            f"{fig['suricata']['startup_s']:.2f} s); {fig['ratio_no_startup']:.3f} without"
        )
    return lines


def targets(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    if "attack_heavy" in results:
        fig = results["attack_heavy"]
        rows.append(("replay attack-heavy", fig["v6sentry"]["pps"], TARGETS["attack_heavy_pps"]))
        rows.append(("replay attack-heavy / Suricata", fig["ratio"], TARGETS["attack_heavy_ratio"]))
    if "office" in results:
        rows.append(
            ("replay office mix", results["office"]["v6sentry"]["pps"], TARGETS["office_pps"])
        )
    return [
        {"target": t, "today": today, "goal": goal, "met": today >= goal} for t, today, goal in rows
    ]


def target_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'target':<32} {'today':>12} {'goal':>12}  met"]
    for row in rows:
        ratio = "/" in row["target"]
        today = f"{row['today']:.3f}x" if ratio else f"{_rate(row['today'])}pps"
        goal = f">= {row['goal']:g}x" if ratio else f">= {_rate(row['goal'])}pps"
        lines.append(f"{row['target']:<32} {today:>12} {goal:>12}  {'yes' if row['met'] else 'no'}")
    return lines


def plot(results: dict[str, dict[str, Any]], out: Path) -> None:
    """Grouped bars, one group per mix: v6sentry's stages, then both engines."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    bars: list[tuple[str, str, str, Callable[[dict[str, Any]], float]]] = [
        ("reader", "v6sentry reader", "#9ecae1", lambda f: f["reader"]["pps"]),
        ("decoder", "v6sentry reader+decoder", "#4292c6", lambda f: f["decoder"]["pps"]),
        ("v6sentry", "v6sentry replay (full)", "#08519c", lambda f: f["v6sentry"]["pps"]),
        ("suricata", "Suricata 7 single-thread", "#e6550d", lambda f: f["suricata"]["pps"]),
    ]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    width = 0.8 / len(bars)
    for i, (_, label, color, get) in enumerate(bars):
        xs = [g + (i - (len(bars) - 1) / 2) * width for g in range(len(results))]
        values = [get(f) for f in results.values()]
        drawn = ax.bar(xs, values, width, label=label, color=color)
        ax.bar_label(drawn, labels=[_rate(v) for v in values], fontsize=7, padding=2)
    # The replay targets, as a dashed mark above each mix's full-replay bar.
    goals = {"attack_heavy": TARGETS["attack_heavy_pps"], "office": TARGETS["office_pps"]}
    replay_at = next(i for i, b in enumerate(bars) if b[0] == "v6sentry")
    for g, key in enumerate(results):
        x = g + (replay_at - (len(bars) - 1) / 2) * width
        ax.hlines(goals[key], x - width / 2, x + width / 2, colors="black", linestyles="dashed")
        label = f"replay target {_rate(goals[key])}"
        ax.annotate(label, (x, goals[key]), textcoords="offset points", xytext=(0, 3),
                    ha="center", fontsize=7)  # fmt: skip
    ax.set_xticks(range(len(results)), [MIXES[k] for k in results])
    ax.set_yscale("log")  # the stages differ by an order of magnitude or more
    ax.set_ylabel("packets/s (log scale)")
    packets = ", ".join(f"{MIXES[k]} {f['v6sentry']['packets']:,}" for k, f in results.items())
    ax.set_title(f"v6sentry vs Suricata 7, same run, one core each\n(packets: {packets})",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def compile_bytecode() -> None:
    """Compile the package's modules to bytecode before timing, as installing the wheel
    does (pip writes the .pyc files at install time). An editable install on a machine
    with PYTHONDONTWRITEBYTECODE set (this one, and CI's) otherwise compiles every module
    on every run: the office mix's start-up measured was then the compiler's (about
    0.15 s of 0.45 s), not v6sentry's."""
    if not compileall.compile_dir(Path(detectors.__file__).parent, quiet=1):
        raise SystemExit("bench-compare: compiling the detectors package failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--packets",
        type=int,
        default=attack_heavy.DEFAULT_PACKETS,
        help="packets in the attack-heavy capture (default 2,000,000; the office mix takes "
        f"the same, at most {OFFICE_PACKETS:,})",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw a bar chart")
    parser.add_argument("--no-office", action="store_true", help="the attack-heavy capture only")
    args = parser.parse_args(argv)
    compile_bytecode()

    capture, meta = attack_heavy.cached(args.packets)
    how = "from the cache" if meta["cached"] else f"generated in {meta['seconds']:.2f} s"
    print(f"bench-compare: {capture} ({args.packets:,} packets, {how})")
    print(f"bench-compare: packets per kind: {meta['counts']}")
    print(
        f"bench-compare: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}; figures are wall-clock and noisy on a shared machine"
    )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="v6sentry-bench-") as name:
        tmp = Path(name)
        results["attack_heavy"] = compare(capture, tmp)
        if not args.no_office:
            office = tmp / "office.pcap"
            bench.write_capture(office, min(args.packets, OFFICE_PACKETS))
            results["office"] = compare(office, tmp)
    print()
    for line in table(results):
        print(line)
    print()
    rows = targets(results)
    for line in target_lines(rows):
        print(line)
    fig = results["attack_heavy"]
    print()
    print(f"v6sentry alerts on attack-heavy: {fig['v6sentry']['alerts_by']}")
    suricata = fig["suricata"]
    print(f"Suricata alerts on attack-heavy: {suricata['alerts']} {suricata['alerts_by']}")
    if args.json:
        report = {
            "packets": args.packets,
            "capture": {**meta, "path": str(capture)},
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "ratio_uses": "wall times of both engines, start-up included",
            "mixes": results,
            "targets": rows,
        }
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"bench-compare: figures in {args.json}")
    if args.plot:
        plot(results, args.plot)
        print(f"bench-compare: chart in {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
