"""Golden EVE output for the regression captures (``make golden``).

Owns running the real CLI over every capture in ``pcaps/manifest.yaml`` and
writing (or comparing) ``pcaps/golden/<capture>.eve.jsonl``. Shared by
``tests/test_pcaps.py``. Does not decide what is correct: the manifest's
hand-written ``expect`` does; the golden files pin the exact alerts so any
change in identity, evidence or fields shows up as a reviewed diff.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from detectors.cli import main

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "pcaps"
GOLDEN = PCAPS / "golden"
SENSOR = "golden"  # fixed EVE "host" so the files do not depend on the machine


@dataclass(frozen=True)
class Run:
    """What one replay of a capture produced."""

    exit_code: int
    alerts: list[dict[str, Any]]
    lines: list[str]
    stats: dict[str, Any]
    stderr: str


def manifest() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PCAPS / "manifest.yaml").read_text(encoding="utf-8"))
    entries: list[dict[str, Any]] = doc["captures"]
    return entries


def replay(entry: dict[str, Any], tmp: Path, *extra: str) -> Run:
    """Run ``v6sentry replay`` in-process on one manifest entry."""
    out = tmp / "alerts.jsonl"
    stats = tmp / "stats.json"
    argv = ["replay", "-o", str(out), "--stats-json", str(stats), "--sensor-name", SENSOR]
    if entry.get("policy"):
        argv += ["--policy", str(PCAPS / entry["policy"])]
    argv += [*extra, str(PCAPS / entry["file"])]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
    # pcap_filename is the path given on the command line; make it repo-relative.
    alerts = [json.loads(line) for line in lines]
    # Paths are as given on the command line; keep only names so files match on any checkout.
    for alert in alerts:
        if "pcap_filename" in alert:
            alert["pcap_filename"] = Path(alert["pcap_filename"]).name
        policy = alert.get("v6sentry", {}).get("policy", {})
        if "file" in policy:
            policy["file"] = Path(policy["file"]).name
            policy["source"] = f"file:{policy['file']}"
    lines = [json.dumps(a, separators=(",", ":"), ensure_ascii=False) for a in alerts]
    data = json.loads(stats.read_text(encoding="utf-8")) if stats.exists() else {}
    return Run(code, alerts, lines, data, err.getvalue())


def golden_path(entry: dict[str, Any]) -> Path:
    """``name`` tells apart two entries replaying one capture (with and without a policy)."""
    return GOLDEN / f"{entry.get('name', entry['file'])}.eve.jsonl"


def regenerate() -> int:
    import tempfile

    GOLDEN.mkdir(exist_ok=True)
    for entry in manifest():
        with tempfile.TemporaryDirectory() as tmp:
            run = replay(entry, Path(tmp))
        golden_path(entry).write_text("".join(line + "\n" for line in run.lines), "utf-8")
        print(f"golden: {entry['file']}: {len(run.lines)} alerts")
    return 0


if __name__ == "__main__":
    sys.exit(regenerate())
