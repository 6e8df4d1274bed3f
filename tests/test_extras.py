"""The package's dependency split: a sensor without the SIEM extras, and their errors.

Owns the import hygiene of the sensor path (``replay`` loads no Jinja2, pySigma or
Elasticsearch client, so a sensor host needs neither and starts fast) and the one-line
error naming the extra when a command needs one that is missing. Missing packages are
simulated in a subprocess by ``sys.modules[name] = None``, Python's own marker for
"cannot be imported"; tests/test_wheel.py checks the same against a real install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "pcaps" / "policy.yaml"
ROGUE = ROOT / "pcaps" / "rogue_ra.pcap"
SIEM_MODULES = ("jinja2", "sigma", "elasticsearch")

_RUN = """
import json, sys
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None
from detectors.cli import main
rc = main(json.loads(sys.argv[2]))
print(json.dumps({"rc": rc, "loaded": [m for m in json.loads(sys.argv[3]) if m in sys.modules
                                        and sys.modules[m] is not None]}))
"""


def _run(argv: list[str], blocked: tuple[str, ...] = ()) -> tuple[dict[str, object], str]:
    args = [json.dumps(blocked), json.dumps(argv), json.dumps(SIEM_MODULES)]
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, *args],
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def test_replay_loads_no_siem_or_elasticsearch_module(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    result, stderr = _run(["replay", "--policy", str(POLICY), "-o", str(out), str(ROGUE)])
    assert result["rc"] in (0, 1), stderr
    assert out.stat().st_size > 0
    assert result["loaded"] == [], f"replay imported {result['loaded']}"


@pytest.mark.parametrize(
    ("argv", "blocked", "extra", "dist"),
    [
        (["rules", "matrix"], ("sigma",), "siem", "pySigma"),
        (["rules", "render", "-o", "/nonexistent/pack"], ("jinja2",), "siem", "Jinja2"),
        (["hunt", "--es", "http://127.0.0.1:9"], ("elasticsearch",), "siem", "elasticsearch"),
        (["ship", "/nonexistent.jsonl"], ("elasticsearch",), "es", "elasticsearch"),
        (
            ["replay", "--es", "http://127.0.0.1:9", str(ROGUE)],
            ("elasticsearch",),
            "es",
            "elasticsearch",
        ),
    ],
)
def test_a_missing_extra_is_named_in_one_line(
    argv: list[str], blocked: tuple[str, ...], extra: str, dist: str
) -> None:
    result, stderr = _run(argv, blocked)
    assert result["rc"] == 2, stderr
    assert stderr.count("\n") == 1, stderr
    assert f"needs the [{extra}] extra ({dist} is not installed)" in stderr
    assert f"pip install 'v6sentry[{extra}]'" in stderr


def test_replay_without_es_needs_no_extra(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    result, stderr = _run(["replay", "-o", str(out), str(ROGUE)], SIEM_MODULES)
    assert result["rc"] in (0, 1), stderr
