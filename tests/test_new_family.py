"""Adding a detection touches one folder: a toy family in a temporary folder, no other edit.

Owns the end-to-end proof that a family folder (``tests/toy_family.py``: a spec and a
Python ``Detector``, no ``native/`` folder) found through ``V6SENTRY_EXTRA_DETECTIONS`` is
picked up by the ``v6sentry`` command (``replay`` raises its alert), the rule packs
(``rules render`` writes its Sigma rule with its spec's date) and the Elasticsearch template
(its address evidence is mapped as ``ip``), and that its regression capture is written by
``pcaps/generate.py`` from the family's ``captures.py`` and listed through its
``captures.yaml`` (``tests/golden.py``), with ``pcaps/`` left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from detectors.detections import EXTRA_ENV
from detectors.es.template import template_body
from pcaps import generate
from pcaps.generate import a6, echo6, lan, mac, write_pcap
from tests import golden, toy_family

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    return toy_family.write_toy_family(tmp_path / "families")


def v6sentry(extra: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("v6sentry", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "detectors"]
    env = {**os.environ, EXTRA_ENV: str(extra), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )


def test_replay_runs_the_new_family(toy: Path, tmp_path: Path) -> None:
    capture = tmp_path / "echo.pcap"
    src, dst = a6("2001:db8::1"), a6("2001:db8::2")
    frames = [
        (1_700_000_000 * 10**9 + i * 10**9, lan(echo6(src, dst, 7, i), mac("02:00:00:00:00:01")))
        for i in range(3)
    ]
    write_pcap(capture, frames)
    proc = v6sentry(toy, "replay", str(capture))
    assert proc.returncode == 0, proc.stderr
    alerts = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [a["alert"]["signature_id"] for a in alerts] == [toy_family.SID]
    assert alerts[0]["v6sentry"]["pinged"] == {"address": "2001:db8::2", "count": 1}
    # Without the folder the command does not know the family.
    plain = subprocess.run(
        [sys.executable, "-m", "detectors", "replay", str(capture)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert plain.returncode == 0 and plain.stdout == "", plain.stderr


def test_rules_render_includes_the_new_family(toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "pack"
    proc = v6sentry(toy, "rules", "render", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    rule = out / "sigma" / "rules" / "v6sentry" / "v6sentry_toy_echo_first_echo.yml"
    assert rule.is_file(), sorted(p.name for p in (out / "sigma" / "rules" / "v6sentry").iterdir())
    text = rule.read_text(encoding="utf-8")
    assert f"{toy_family.SID}" in text and "date: 2026-12-02" in text
    # The Suricata rule comes from the family folder's suricata.rules.j2; a new sid starts
    # at rev 1, the rev its alerts carry until `make rules` records it in the lock.
    rules = (out / "suricata" / "v6sentry.rules").read_text(encoding="utf-8").splitlines()
    (toy_rule,) = [line for line in rules if f"sid:{toy_family.SID};" in line]
    assert toy_rule.startswith('alert icmp any any -> any any (msg:"V6SENTRY Toy first IPv6')
    assert "itype:128; threshold: type limit, track by_src, count 1, seconds 60;" in toy_rule
    assert toy_rule.endswith(" rev:1;)")


def test_es_template_maps_the_new_family_evidence(
    toy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pinged(body: dict[str, object]) -> dict[str, object]:
        props = body["template"]["mappings"]["properties"]  # type: ignore[index]
        return props["v6sentry"]["properties"].get("pinged", {})  # type: ignore[no-any-return]

    assert pinged(template_body()) == {}
    monkeypatch.setenv(EXTRA_ENV, str(toy))
    mapped = pinged(template_body())
    assert mapped["properties"]["address"]["type"] == "ip"  # type: ignore[index]


def test_the_new_family_brings_its_own_capture(toy: Path, tmp_path: Path) -> None:
    """The family's captures.py is run by the generator and its captures.yaml joins the
    manifest; replaying the capture gives what that entry expects."""
    assert generate.EXTRA_ENV == EXTRA_ENV
    family = toy / toy_family.NAME
    assert generate.family_capture_files([toy])[-1] == (family / "captures.py").resolve()
    out = tmp_path / "pcaps"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "pcaps" / "generate.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, EXTRA_ENV: str(toy)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / toy_family.CAPTURE).is_file()
    # The central captures are still written, byte for byte as committed.
    assert (out / "rogue_ra.pcap").read_bytes() == (ROOT / "pcaps" / "rogue_ra.pcap").read_bytes()
    assert toy_family.CAPTURE not in {p.name for p in (ROOT / "pcaps").iterdir()}

    assert toy_family.CAPTURE not in {e["file"] for e in golden.manifest()}
    entries = golden.manifest([toy])
    (entry,) = [e for e in entries if e["file"] == toy_family.CAPTURE]
    assert entries[-1] is entry and entry["expect"] == {toy_family.CATEGORY: 1}

    replayed = v6sentry(toy, "replay", str(out / toy_family.CAPTURE))
    assert replayed.returncode == 0, replayed.stderr
    alerts = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert dict(Counter(a["alert"]["category"] for a in alerts)) == entry["expect"]
    assert dict(Counter(a["alert"]["signature_id"] for a in alerts)) == entry["sids"]


def test_a_family_capture_listed_twice_is_an_error(toy: Path) -> None:
    manifest = toy / toy_family.NAME / golden.FAMILY_MANIFEST
    manifest.write_text("captures:\n  - file: rogue_ra.pcap\n    expect: {}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"captures\.yaml: captures: rogue_ra\.pcap is already"):
        golden.manifest([toy])
    manifest.write_text("captures:\n  - file: x.pcap\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"captures\.yaml: captures\[0\]\.expect"):
        golden.manifest([toy])
