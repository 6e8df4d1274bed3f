"""The wheel as users install it: built by maturin, installed where no Rust exists.

Owns the packaging contract of the native core: ``make wheel``'s maturin build
gives one manylinux, abi3 wheel holding ``detectors._native`` and the package
data; installed into a fresh virtual environment whose PATH has no cargo or
rustc, its ``v6sentry`` command replays a capture from another directory and
writes exactly the golden alerts. The plain install is the sensor only: replay
loads no Jinja2, pySigma or Elasticsearch client, and ``rules`` names the
``[siem]`` extra it needs. With ``[siem,es]`` added, every sub-command runs from
outside the checkout on package data alone: ``rules render``, ``check``,
``matrix``, ``push --kibana`` (the NDJSON it writes equals the checkout's; the
Elasticsearch and Kibana side of push is tests/test_hunt.py's), each ``--help``,
and ``live --unit-dir`` / ``--example-policy``. Slow-ish (a venv and PyPI
dependencies, one wheel build), so it is one test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from detectors.rules.cli import read_pack
from detectors.rules.push import kibana_ndjson, rule_documents
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
    # Package data: everything `rules` and a sensor deployment read, without a checkout.
    for data in (
        "detectors/rules/data/suricata/templates/sweep.rules.j2",
        "detectors/rules/data/suricata/rules.lock.yaml",
        "detectors/rules/data/sigma/templates/sigma/v6sentry_alert.yml.j2",
        "detectors/rules/data/sigma/pipelines/v6sentry_ecs.yml",
        "detectors/rules/data/sigma/attack.yaml",
        "detectors/rules/data/policy.yaml",
        "detectors/live/systemd/v6sentry-live@.service",
    ):
        assert data in names, data
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        line.split(":", 1)[1].strip()
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    core = [r for r in requires if "extra ==" not in r]
    # Names as PEP 503 normalises them (the wheel's metadata writes ruamel.yaml as ruamel-yaml).
    names = [re.sub(r"[-_.]+", "-", re.split(r"[<>=!~ ;]", r)[0]).lower() for r in core]
    assert names == ["pyyaml", "communityid", "ruamel-yaml"], core

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

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "v6sentry"), *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    # The sensor-only install: no SIEM modules, and rules names the extra it needs.
    loaded = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sys; from detectors.cli import main; main(sys.argv[1:]); "
            "print(sorted(m for m in ('jinja2', 'sigma', 'elasticsearch') if m in sys.modules))",
            "replay",
            "-o",
            str(elsewhere / "again.jsonl"),
            str(capture),
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.stdout.strip().splitlines()[-1] == "[]", loaded.stderr
    res = run("rules", "matrix")
    assert res.returncode == 2, res.stderr
    assert "pip install 'v6sentry[siem]'" in res.stderr and res.stderr.count("\n") == 1
    # The SOC commands that need no extra work from a sensor-only install too.
    res = run("schema", "eve")
    assert res.returncode == 0 and json.loads(res.stdout)["type"] == "object", res.stderr
    res = run("schema", "ecs")
    assert res.returncode == 0 and json.loads(res.stdout)["type"] == "object", res.stderr
    res = run("policy", "check", str(PCAPS / "policy.yaml"))
    assert res.returncode == 0, res.stderr
    res = run("policy", "show", "--policy", str(PCAPS / "policy.yaml"))
    assert res.returncode == 0 and "thresholds:" in res.stdout, res.stderr
    res = run("explain", "1000101")
    assert res.returncode == 0 and "sid 1000101" in res.stdout, res.stderr
    # verify is a core command (CI jobs install only the core): ruamel.yaml comes with it.
    expectations = elsewhere / "expect.yaml"
    expectations.write_text(
        f"captures:\n  - capture: {PCAPS / 'rogue_ra.pcap'}\n    policy: {PCAPS / 'policy.yaml'}\n"
        "    expect: {ipv6.rogue_ra: 1}\n",
        encoding="utf-8",
    )
    res = run("verify", "-j", "2", "--update", str(expectations))
    assert res.returncode == 0 and "0 passed, 1 failed" in res.stdout, res.stdout + res.stderr
    res = run("verify", "-j", "2", str(expectations))
    assert res.returncode == 0 and "1 passed, 0 failed" in res.stdout, res.stdout + res.stderr

    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[siem,es]"],
        check=True,
        capture_output=True,
        timeout=900,
    )
    commands = ("replay", "rules", "hunt", "live", "ship", "explain", "policy", "schema", "verify")
    for command in commands:
        res = run(command, "--help")
        assert res.returncode == 0 and "usage: v6sentry" in res.stdout, (command, res.stderr)
    for action in ("render", "check", "matrix", "push"):
        res = run("rules", action, "--help")
        assert res.returncode == 0 and "usage: v6sentry" in res.stdout, (action, res.stderr)

    res = run("live", "--unit-dir")
    assert res.returncode == 0, res.stderr
    units = Path(res.stdout.strip())
    assert units.is_relative_to(venv) and (units / "v6sentry-live@.service").is_file()
    res = run("live", "--example-policy")
    assert res.returncode == 0, res.stderr
    example = Path(res.stdout.strip())
    assert example.is_relative_to(venv)
    assert example.read_bytes() == (PCAPS / "policy.yaml").read_bytes()

    pack = elsewhere / "pack"
    res = run("rules", "render", "--policy", str(example), "-o", str(pack))
    assert res.returncode == 0, res.stderr
    assert (pack / "suricata" / "v6sentry.rules").is_file()
    assert any((pack / "sigma" / "rules").rglob("*.yml"))
    # Suricata itself is not on this PATH; tests/test_rules.py runs suricata -T.
    res = run("rules", "check", "--no-suricata", str(pack))
    assert res.returncode == 0, res.stderr
    res = run("rules", "matrix", "--format", "json")
    assert res.returncode == 0 and json.loads(res.stdout)["signatures"], res.stderr
    # Without --pack, push renders the committed pack from package data (it used to read
    # site-packages/sigma, pySigma's own package, and fail on its .pyc files).
    kibana = elsewhere / "kibana.ndjson"
    res = run("rules", "push", "--kibana", str(kibana))
    assert res.returncode == 0, res.stderr
    assert kibana.read_text(encoding="utf-8") == kibana_ndjson(rule_documents(read_pack(ROOT)))
