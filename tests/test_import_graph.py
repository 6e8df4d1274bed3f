"""The import graph of the Elasticsearch side: ``ship``, ``hunt`` and ``rules`` apart.

Owns the layout rule of issue 13: the connection, index names, both index templates and
the observation document live in ``detectors.es``, and ``ship`` (delivering), ``hunt``
(querying) and ``rules`` (rendering, pushing) each use it without importing one another;
``es`` imports none of them. Each package is imported with all its modules in a fresh
interpreter and ``sys.modules`` is checked, since an earlier import in this process
would hide an edge. Also that ``replay`` still runs without the Elasticsearch client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROGUE = ROOT / "pcaps" / "rogue_ra.pcap"

# Imports the package and every module in it (not ``__main__``, which runs a command),
# then prints the loaded modules under the given prefixes.
_IMPORT_ALL = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(package.__path__, sys.argv[1] + "."):
    if not info.name.endswith(".__main__"):
        importlib.import_module(info.name)
print(json.dumps(sorted(m for m in sys.modules
                        if any(m == p or m.startswith(p + ".") for p in json.loads(sys.argv[2])))))
"""

_REPLAY = """
import json, sys
from detectors.cli import main
rc = main(json.loads(sys.argv[1]))
clients = ("elasticsearch", "elastic_transport")
loaded = [m for m in sys.modules if m.split(".")[0] in clients]
print(json.dumps({"rc": rc, "elasticsearch": loaded}))
"""


def _python(code: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()[-1]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("detectors.ship", ("detectors.hunt", "detectors.rules")),
        ("detectors.hunt", ("detectors.ship", "detectors.rules")),
        ("detectors.rules", ("detectors.hunt", "detectors.ship")),
        ("detectors.es", ("detectors.ship", "detectors.hunt", "detectors.rules")),
    ],
)
def test_package_does_not_import(package: str, forbidden: tuple[str, ...]) -> None:
    loaded = json.loads(_python(_IMPORT_ALL, package, json.dumps(forbidden)))
    assert loaded == [], f"importing {package} loaded {loaded}"


def test_every_package_actually_loads_es() -> None:
    # Without this the test above would pass for a package that imported nothing at all.
    for package in ("detectors.ship", "detectors.hunt", "detectors.rules"):
        loaded = json.loads(_python(_IMPORT_ALL, package, json.dumps(["detectors.es"])))
        assert "detectors.es.connect" in loaded, f"{package} does not use detectors.es"


def test_replay_imports_no_elasticsearch(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    events = tmp_path / "events.jsonl"
    argv = ["replay", "-o", str(out), "--events", str(events), str(ROGUE)]
    result = json.loads(_python(_REPLAY, json.dumps(argv)))
    assert result["rc"] in (0, 1)
    assert out.stat().st_size > 0
    assert result["elasticsearch"] == [], f"replay imported {result['elasticsearch']}"
