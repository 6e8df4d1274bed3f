"""Golden EVE output for the regression captures (``make golden``).

Owns running the real CLI over every capture in ``pcaps/manifest.yaml`` and
writing (or comparing) ``pcaps/golden/<capture>.eve.jsonl``. Shared by
``tests/test_pcaps.py``. A family's own entries sit in
``detectors/detections/<family>/captures.yaml`` (``captures:``, as in the manifest;
their files are written by the family's ``captures.py``, see ``pcaps/generate.py``) and
are merged after the central ones, so a new family edits neither central file. Does not
decide what is correct: the manifest's
hand-written ``expect`` does; the golden files pin the exact alerts so any
change in identity, evidence or fields shows up as a reviewed diff.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from detectors.cli import main
from detectors.detections import family_dirs

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


FAMILY_MANIFEST = "captures.yaml"


def _entries(path: Path) -> list[dict[str, Any]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    entries = doc.get("captures") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: captures: expected a list of capture entries")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ValueError(f"{path}: captures[{i}].file: expected a capture file name")
        if not isinstance(entry.get("expect"), dict):
            raise ValueError(f"{path}: captures[{i}].expect: expected category -> count")
    return entries


def family_manifests(extra: Sequence[Path] = ()) -> list[Path]:
    """Every family's ``captures.yaml``, in discovery order (built-in, then extra folders)."""
    return [
        path
        for folder in family_dirs(extra)
        for path in sorted(folder.glob(f"*/{FAMILY_MANIFEST}"))
        if path.is_file()
    ]


def manifest(extra: Sequence[Path] = ()) -> list[dict[str, Any]]:
    """``pcaps/manifest.yaml``'s entries, then each family's; a capture listed twice fails."""
    entries = _entries(PCAPS / "manifest.yaml")
    where = {e.get("name", e["file"]): PCAPS / "manifest.yaml" for e in entries}
    for path in family_manifests(extra):
        for entry in _entries(path):
            name = entry.get("name", entry["file"])
            if name in where:
                raise ValueError(f"{path}: captures: {name} is already listed in {where[name]}")
            where[name] = path
            entries.append(entry)
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


def expectations_yaml(entries: Sequence[dict[str, Any]]) -> str:
    """The manifest's entries as a ``v6sentry verify`` expectations file (absolute paths):
    the manifest's counts are checked by the same code users run in CI."""
    doc: dict[str, Any] = {"allow_other": False, "captures": []}
    for entry in entries:
        item: dict[str, Any] = {"capture": str(PCAPS / entry["file"])}
        if "name" in entry:
            item["name"] = entry["name"]
        if entry.get("policy"):
            item["policy"] = str(PCAPS / entry["policy"])
        expect = {**(entry.get("expect") or {}), **(entry.get("sids") or {})}
        if expect:
            item["expect"] = expect
        else:
            item["none"] = True
        if entry.get("truncated"):
            item["truncated"] = True
        doc["captures"].append(item)
    return yaml.safe_dump(doc, sort_keys=False)


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
