"""Running a rendered pack through the real Suricata binary.

Owns the throw-away ``suricata.yaml`` a pack is checked and replayed with (the
distribution's ``/etc/suricata/suricata.yaml`` as a site runs it, plus the
pack's variables include, EVE alert output into a temporary directory and no
live capture), ``test_config`` (``suricata -T``: every error and warning line)
and ``replay`` (``suricata -r``: the EVE alert records of one capture).

It does not render packs (``pack.py``), judge whether alerts agree with
v6sentry's (the tests do), or touch anything outside its temporary
directories: no live capture, no ``/var/log/suricata``, no rule updates.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from detectors.rules.suricata import CLASSIFICATION_FILE, RULES_FILE, THRESHOLD_FILE, VARS_FILE

SYSTEM_CONF = Path("/etc/suricata/suricata.yaml")
CLASSIFICATION = Path("/etc/suricata/classification.config")
REFERENCE = Path("/etc/suricata/reference.config")
# Suricata prints these with -v in full ("Warning: detect-flowbits: ..."); without -v the
# console abbreviates levels ("W:"), so -v is always passed and both forms are accepted.
_PROBLEM = re.compile(r"^(?:Emergency|Alert|Critical|Error|Warning|E|W|C|A):\s")
TIMEOUT_S = 120


class SuricataError(Exception):
    """Suricata is missing, or a run failed; ``str()`` holds its output."""


def binary() -> str:
    """The ``suricata`` executable, or ``SuricataError`` saying how to install it."""
    path = shutil.which("suricata")
    if path is None:
        raise SuricataError(
            "suricata is not installed (make apt installs Suricata 7 from bookworm-backports)"
        )
    return path


def pack_files(pack_dir: Path) -> tuple[Path, Path, Path]:
    """The rules file, the variables include and the classtypes of a pack written by
    ``write_pack``."""
    suricata = pack_dir / "suricata"
    rules, variables = suricata / RULES_FILE, suricata / VARS_FILE
    classification = suricata / CLASSIFICATION_FILE
    for path in (rules, variables, classification):
        if not path.is_file():
            raise SuricataError(f"{path}: no such file (write the pack first)")
    return rules, variables, classification


def write_config(pack_dir: Path, workdir: Path, *, stats: bool = False) -> Path:
    """A ``suricata.yaml`` in ``workdir`` for the pack in ``pack_dir``; returns its path.

    ``stats`` turns Suricata's counters on and adds them (totals only) to
    ``eve.json``: Suricata writes a last ``stats`` record when the run ends,
    which the benchmark (``tests/bench_compare.py``) reads for the packet count.

    Suricata replaces a whole top-level node when a later file defines it again,
    so this file overrides only what a test run needs (outputs, logging, the
    classification files) and the pack's include adds its variables by dotted
    keys, which merge into the site's ``vars`` instead of replacing them.
    """
    _, variables, classtypes = pack_files(pack_dir)
    threshold = pack_dir / "suricata" / THRESHOLD_FILE
    # The site's classtypes plus the pack's, as suricata-update merges them.
    system = CLASSIFICATION.read_text(encoding="utf-8") if CLASSIFICATION.is_file() else ""
    merged = workdir / "classification.config"
    merged.write_text(
        system.rstrip("\n") + "\n" + classtypes.read_text(encoding="utf-8"), encoding="utf-8"
    )
    includes = [str(SYSTEM_CONF)] if SYSTEM_CONF.is_file() else []
    includes.append(str(variables.resolve()))
    lines = [
        "%YAML 1.1",
        "---",
        "include:",
        *(f"  - {json.dumps(p)}" for p in includes),
        f"default-log-dir: {json.dumps(str(workdir))}",
        f"classification-file: {json.dumps(str(merged))}",
        f"reference-config-file: {json.dumps(str(REFERENCE))}",
        # The pack's tuning suppressions (a pack from before tuning has no such file).
        *(
            [f"threshold-file: {json.dumps(str(threshold.resolve()))}"]
            if threshold.is_file()
            else []
        ),
        # Generated captures carry correct checksums; real mirror ports often do not
        # (offload), and v6sentry does not check them either.
        "pcap-file.checksum-checks: no",
        f"stats.enabled: {'yes' if stats else 'no'}",
        "outputs:",
        "  - eve-log:",
        "      enabled: yes",
        "      filetype: regular",
        "      filename: eve.json",
        "      pcap-file: true",
        # Community ID v1 on every record: tests compare it with v6sentry's.
        "      community-id: true",
        "      types:",
        *(
            ["        - stats:", "            totals: yes", "            threads: no"]
            if stats
            else []
        ),
        "        - alert:",
        "            metadata: yes",
        "logging:",
        "  default-log-level: info",
        "  outputs:",
        "    - console:",
        "        enabled: yes",
        "    - file:",
        "        enabled: yes",
        "        level: info",
        "        filename: suricata.log",
    ]
    conf = workdir / "suricata.yaml"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return conf


def _run(args: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            args,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SuricataError(f"{' '.join(args)}: no result after {TIMEOUT_S} s") from exc


def problems(output: str) -> list[str]:
    """Every error and warning line of Suricata's console output."""
    return [line for line in output.splitlines() if _PROBLEM.match(line)]


def test_config(pack_dir: Path) -> list[str]:
    """``suricata -T`` on the pack: every error and warning line (empty means clean)."""
    rules, _, _ = pack_files(pack_dir)
    suricata = binary()
    with tempfile.TemporaryDirectory(prefix="v6sentry-suricata-") as tmp:
        work = Path(tmp)
        conf = write_config(pack_dir, work)
        args = [suricata, "-T", "-v", "-c", str(conf), "-S", str(rules.resolve()), "-l", tmp]
        proc = _run(args, work)
    found = problems(proc.stdout + proc.stderr)
    if proc.returncode != 0 and not found:
        found.append(f"suricata -T exited {proc.returncode}: {proc.stderr.strip()}")
    return found


def replay(pack_dir: Path, pcap: Path) -> list[dict[str, Any]]:
    """The EVE alert records Suricata writes for ``pcap`` with the pack loaded.

    A ``.gz`` capture is decompressed into the temporary directory first (Suricata
    reads pcap and pcapng, not gzip). A capture Suricata cannot read at all (a link
    type it does not support) raises ``SuricataError`` with its messages.
    """
    rules, _, _ = pack_files(pack_dir)
    suricata = binary()
    with tempfile.TemporaryDirectory(prefix="v6sentry-suricata-") as tmp:
        work = Path(tmp)
        conf = write_config(pack_dir, work)
        source = pcap.resolve()
        if source.suffix == ".gz":
            plain = work / source.stem
            with gzip.open(source, "rb") as fin, plain.open("wb") as fout:
                shutil.copyfileobj(fin, fout)
            source = plain
        args = [
            suricata, "-v", "-c", str(conf), "-S", str(rules.resolve()), "-l", tmp,
            "-k", "none", "-r", str(source),
        ]  # fmt: skip
        # No --runmode single: with it, a capture Suricata cannot open spins ~60 s.
        proc = _run(args, work)
        output = proc.stdout + proc.stderr
        # A file Suricata cannot open is logged, not fatal: "Failed to init pcap file".
        if proc.returncode != 0 or "Failed to init pcap file" in output:
            raise SuricataError(f"suricata -r {pcap.name} failed:\n" + "\n".join(problems(output)))
        eve = work / "eve.json"
        if not eve.exists():
            return []
        records = [json.loads(line) for line in eve.read_text(encoding="utf-8").splitlines()]
    return [r for r in records if r.get("event_type") == "alert"]
