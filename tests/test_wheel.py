"""The wheel as users install it: built by maturin, installed where no Rust exists.

Owns the packaging contract of the native core: ``make wheel``'s maturin build
gives one manylinux, abi3 wheel holding ``detectors._native`` and the package
data; installed into a fresh virtual environment whose PATH has no cargo or
rustc, its ``v6sentry`` command replays a capture from another directory and
writes exactly the golden alerts. Slow-ish (a venv and PyPI dependencies), so
it is one test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.golden import GOLDEN, PCAPS, ROOT, SENSOR


def _alerts(lines: list[str]) -> list[dict[str, object]]:
    alerts = [json.loads(line) for line in lines if line.strip()]
    for alert in alerts:  # golden files keep only file names (tests/golden.py)
        alert["pcap_filename"] = Path(str(alert["pcap_filename"])).name
        policy = alert["v6sentry"]["policy"]
        if "file" in policy:
            policy["file"] = Path(policy["file"]).name
            policy["source"] = f"file:{policy['file']}"
    return alerts


def test_wheel_installs_and_replays_without_rust(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "maturin", "build", "--release", "--locked", "--out", str(dist)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=1200,
    )
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    # abi3 for CPython >= 3.11, and a manylinux platform tag (maturin checks the symbols).
    assert "-cp311-abi3-manylinux" in wheel.name, wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "detectors/_native.abi3.so" in names
    assert "detectors/detections/sweep/spec.yaml" in names
    assert not any(n.startswith(("native/", "tests/", "pcaps/")) for n in names)
    assert not any(n.endswith(".rs") for n in names)  # the Rust is inside _native

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    # Only the venv's bin on PATH: no cargo, no rustc, no checkout on sys.path.
    env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    assert shutil.which("cargo", path=env["PATH"]) is None
    assert shutil.which("rustc", path=env["PATH"]) is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = elsewhere / "alerts.jsonl"
    capture = PCAPS / "rogue_ra.pcap"
    proc = subprocess.run(
        [
            str(venv / "bin" / "v6sentry"),
            "replay",
            "--sensor-name",
            SENSOR,
            "--policy",
            str(PCAPS / "policy.yaml"),
            "-o",
            str(out),
            str(capture),
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr.decode()
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import detectors._native as n; print(n.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where  # the installed core, not the checkout's
    golden = (GOLDEN / "rogue_ra.pcap.eve.jsonl").read_text(encoding="utf-8").splitlines()
    assert _alerts(out.read_text(encoding="utf-8").splitlines()) == _alerts(golden)
    assert os.path.getsize(out) > 0
