"""Bad inputs and a misbehaving world: v6sentry loses no alert and ends without a traceback.

Owns the tests of issue 13 section 7 and its output-error points: a fake
Elasticsearch that answers HTTP 200 with replies that do not confirm the
documents (each malformed shape spools exactly the unconfirmed ones, and
``ship --resend`` to the same node keeps them), output errors (``/dev/full``,
an unwritable path, a closed standard output) exit 2 in one line, SIGTERM and
SIGINT flush and summarise, ``-r`` and capture directories, and the pcapng
interface cap. The fake node is the point of these tests (a real node never
answers like this); the real node's shipping tests are in ``test_ship.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from detectors.ship.spool import Spool

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "pcaps"
POLICY = PCAPS / "policy.yaml"
FLOOD = PCAPS / "ra_flood_random.pcap"  # 13 alerts with pcaps/policy.yaml
SHIP_SUMMARY = re.compile(
    r"indexed (\d+), duplicates (\d+), retried (\d+), spooled (\d+), resent (\d+), "
    r"failed (\d+), unconfirmed (\d+)"
)

Reply = Callable[[list[str]], bytes]  # the ids sent in a bulk request -> the reply body


def v6sentry(
    *args: str, stdin: bytes | None = None, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("V6SENTRY_ES_")}
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        [*command(), *args],
        input=stdin.decode() if stdin is not None else None,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        **kwargs,
    )


def command() -> list[str]:
    """``python -m detectors`` from the repository root: the package of this checkout,
    whichever checkout the installed ``v6sentry`` script points at."""
    return [sys.executable, "-m", "detectors"]


class FakeNode:
    """An HTTP server on 127.0.0.1 that passes the client's product check, accepts
    the index template and answers every bulk request with ``reply(ids)``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.bulk_requests = 0
        node = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if "_bulk" in self.path:
                    node.bulk_requests += 1
                    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
                    ids = [line["create"]["_id"] for line in lines[0::2]]
                    body = node.reply(ids)
                elif self.command == "GET" and "_index_template" in self.path:
                    body = b'{"index_templates": []}'
                else:
                    body = b'{"acknowledged": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: pytest shows stderr of failing tests

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeNode:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _items(ids: list[str], status: int = 201) -> list[dict[str, Any]]:
    return [{"create": {"_index": "x", "_id": i, "status": status}} for i in ids]


def _dump(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# name -> (reply, how many of the documents of a request it confirms)
MALFORMED: dict[str, tuple[Reply, Callable[[int], int]]] = {
    "empty object": (lambda ids: b"{}", lambda n: 0),
    "empty items": (lambda ids: b'{"items": []}', lambda n: 0),
    "items not a list": (lambda ids: b'{"errors": false, "items": {}}', lambda n: 0),
    "not json": (lambda ids: b"<html>502 Bad Gateway</html>", lambda n: 0),
    "json list": (lambda ids: b"[]", lambda n: 0),
    "fewer items": (lambda ids: _dump({"items": _items(ids[: len(ids) // 2])}), lambda n: n // 2),
    "items without status": (
        lambda ids: _dump({"items": [{"create": {"_id": i}} for i in ids]}),
        lambda n: 0,
    ),
    "items of another action": (
        lambda ids: _dump({"items": [{"index": {"_id": i, "status": 201}} for i in ids]}),
        lambda n: 0,
    ),
    "items for other ids": (lambda ids: _dump({"items": _items(ids[::-1])}), lambda n: n % 2),
    "fewer items without ids": (
        lambda ids: _dump({"items": [{"create": {"status": 201}}] * (len(ids) - 1)}),
        lambda n: 0,
    ),
}


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_unconfirmed_bulk_items_are_spooled(shape: str, tmp_path: Path) -> None:
    reply, confirmed = MALFORMED[shape]
    spool = tmp_path / "spool"
    out = tmp_path / "alerts.jsonl"
    with FakeNode(reply) as node:
        es = ["--es", node.url, "--es-timeout", "5", "--spool", str(spool)]
        proc = v6sentry("replay", "--policy", str(POLICY), *es, "-o", str(out), str(FLOOD))
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        alerts = len(out.read_text().splitlines())
        assert alerts == 13
        ok = confirmed(alerts)
        counts = [int(n) for n in SHIP_SUMMARY.findall(proc.stderr)[-1]]
        indexed, spooled, unconfirmed = counts[0], counts[3], counts[6]
        assert (indexed, spooled, unconfirmed) == (ok, alerts - ok, alerts - ok)
        assert Spool(spool).pending() == alerts - ok
        assert re.search(
            rf"warning: Elasticsearch's bulk reply did not confirm {alerts - ok} of {alerts} "
            r"document\(s\): .+; they are kept in the spool",
            proc.stderr,
        )
        spooled_ids = {json.loads(line)["id"] for seg in spool.glob("seg-*") for line in seg.open()}
        assert len(spooled_ids) == alerts - ok

        resend = v6sentry("ship", "--resend", *es)
        assert resend.returncode == 1, resend.stderr  # some documents still wait
        assert "Traceback" not in resend.stderr
        assert "did not confirm" in resend.stderr
        # The confirmed part of the resent segment is indexed; the rest stays spooled.
        assert Spool(spool).pending() == alerts - ok
        assert node.bulk_requests == 2


# -- output errors: exit 2, one line ------------------------------------------------------


def _one_error_line(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("v6sentry: error: ") and needle in lines[0], proc.stderr


def test_output_errors_are_one_error_line(tmp_path: Path) -> None:
    replay = ("replay", "--policy", str(POLICY), str(FLOOD))
    _one_error_line(v6sentry(*replay, "-o", str(tmp_path)), f"{tmp_path}: cannot write alerts")
    _one_error_line(
        v6sentry(*replay, "-o", "/dev/full"),
        "/dev/full: cannot write alerts: No space left on device",
    )
    with open("/dev/full", "w") as full:
        proc = v6sentry(*replay, stdout=full)
    _one_error_line(proc, "standard output: cannot write alerts: No space left on device")
    events = ["replay", "-q", "--policy", str(POLICY), "--events", "/dev/full"]
    events.append(str(PCAPS / "sweep_lowbyte.pcap"))
    _one_error_line(
        v6sentry(*events, stdout=subprocess.DEVNULL),
        "/dev/full: cannot write observations: No space left on device",
    )


def test_closed_stdout_is_one_error_line() -> None:
    proc = subprocess.run(
        [
            "sh",
            "-c",
            'exec "$@" >&-',
            "sh",
            *command(),
            "replay",
            "--policy",
            str(POLICY),
            str(FLOOD),
        ],
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "v6sentry: error: standard output is closed: cannot write alerts (use -o FILE)"
    )


# -- SIGTERM and SIGINT: flush, summary, documented exit code -----------------------------


def _pcap_records(path: Path) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The global header and (record header, data) pairs of a little-endian pcap."""
    raw = path.read_bytes()
    assert raw[:4] == b"\xd4\xc3\xb2\xa1"
    records, offset = [], 24
    while offset < len(raw):
        header = raw[offset : offset + 16]
        caplen = struct.unpack("<I", header[8:12])[0]
        records.append((header, raw[offset + 16 : offset + 16 + caplen]))
        offset += 16 + caplen
    return raw[:24], records


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_flushes_alerts_and_prints_the_summary(
    sig: signal.Signals, code: int, tmp_path: Path
) -> None:
    """A capture streamed on standard input that never ends; the signal stops it."""
    header, records = _pcap_records(PCAPS / "rogue_ra.pcap")
    out, stats = tmp_path / "alerts.jsonl", tmp_path / "stats.json"
    args = ["replay", "--policy", str(POLICY), "-o", str(out), "--stats-json", str(stats), "-"]
    proc = subprocess.Popen(
        [*command(), *args],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stderr is not None
    written = 0
    stop = threading.Event()

    def feed() -> None:
        nonlocal written
        assert proc.stdin is not None
        try:
            proc.stdin.write(header)
            seconds = 1_700_000_000
            while not stop.is_set():
                chunk = bytearray()
                for rec_header, data in records:
                    seconds += 1  # packet time moves on: copies are new packets
                    chunk += struct.pack("<II", seconds, 0) + rec_header[8:] + data
                proc.stdin.write(bytes(chunk))
                written += len(records)
        except (BrokenPipeError, ValueError, OSError):
            pass  # the process stopped reading: that is the point

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    deadline = time.monotonic() + 60
    while written < 50_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    try:
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == code, stderr
    finally:
        stop.set()
        proc.kill()
        feeder.join(timeout=10)
    assert "Traceback" not in stderr
    name = signal.Signals(sig).name
    assert re.search(rf"warning: -: stopped by {name} after \d+ packets", stderr), stderr
    assert re.search(r"v6sentry: -: \d+ packets, \d+ bytes in", stderr), stderr
    report = json.loads(stats.read_text())
    assert report["interrupted"] == name
    [run] = report["runs"]
    assert 0 < run["packets"] < written
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert alerts and len(alerts) == sum(run["alerts"].values())


# -- -r and directories -------------------------------------------------------------------


def test_read_option_and_directories(tmp_path: Path) -> None:
    captures = tmp_path / "captures"
    captures.mkdir()
    # Natural order: cap2 before cap10, whatever the bytes say; hidden files are not read.
    shutil.copy(PCAPS / "rogue_ra.pcap", captures / "cap10.pcap")
    shutil.copy(FLOOD, captures / "cap2.pcap")
    shutil.copy(PCAPS / "benign_ra.pcap", captures / ".partial.pcap")
    (captures / "sub").mkdir()
    policy = ("--policy", str(POLICY))
    by_dir = v6sentry("replay", *policy, "-r", str(captures))
    assert by_dir.returncode == 0, by_dir.stderr
    summaries = re.findall(r"v6sentry: (\S+): \d+ packets", by_dir.stderr)
    assert summaries == [str(captures / "cap2.pcap"), str(captures / "cap10.pcap")]
    one_by_one = [
        v6sentry("replay", *policy, str(captures / name)).stdout
        for name in ("cap2.pcap", "cap10.pcap")
    ]
    assert by_dir.stdout == "".join(one_by_one)
    assert v6sentry("replay", *policy, str(captures)).stdout == by_dir.stdout
    # -r FILE is the positional capture; several -r, then positional ones.
    both = v6sentry("replay", *policy, "-r", str(PCAPS / "rogue_ra.pcap"), str(FLOOD))
    assert both.returncode == 0, both.stderr
    assert re.findall(r"v6sentry: (\S+): \d+ packets", both.stderr) == [
        str(PCAPS / "rogue_ra.pcap"),
        str(FLOOD),
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_error_line(
        v6sentry("replay", "--policy", str(POLICY), str(empty)),
        f"{empty}: directory holds no capture files",
    )
    (captures / "notes.txt").write_text("not a capture\n")
    _one_error_line(v6sentry("replay", "-r", str(captures)), "notes.txt")


# -- pcapng interface cap ------------------------------------------------------------------

SHB = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
IDB_ETHERNET = struct.pack("<IIHHII", 1, 20, 1, 0, 65535, 20)


def _epb(iface: int, ts_us: int, data: bytes) -> bytes:
    padded = data + b"\0" * (-len(data) % 4)
    size = 32 + len(padded)
    head = struct.pack(
        "<IIIIIII", 6, size, iface, ts_us >> 32, ts_us & 0xFFFFFFFF, len(data), len(data)
    )
    return head + padded + struct.pack("<I", size)


def _many_interfaces(path: Path, interfaces: int) -> tuple[int, int]:
    """A pcapng describing ``interfaces`` Ethernet interfaces, with rogue_ra.pcap's
    frames on interface 0 and again on the last interface; returns (on 0, on last)."""
    _, records = _pcap_records(PCAPS / "rogue_ra.pcap")
    frames = [data for _, data in records]
    ts = 1_700_000_000_000_000
    with path.open("wb") as fh:
        fh.write(SHB + IDB_ETHERNET * interfaces)
        for n, data in enumerate(frames):
            fh.write(_epb(0, ts + n, data))
        for n, data in enumerate(frames):
            fh.write(_epb(interfaces - 1, ts + len(frames) + n, data))
    return len(frames), len(frames)


_PEAK = """
import resource, sys
from detectors.capture import open_capture
with open_capture(sys.argv[1], max_interfaces=int(sys.argv[2])) as reader:
    records = sum(1 for _ in reader.records())
    print(records, len(reader.interfaces), reader.interfaces_over_cap, reader.records_skipped)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _read_peak(path: Path, cap: int) -> tuple[list[int], int]:
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path), str(cap)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    counts, peak_kb = proc.stdout.splitlines()
    return [int(n) for n in counts.split()], int(peak_kb)


def test_interface_cap_keeps_memory_flat_counts_and_warns(tmp_path: Path) -> None:
    many, few = tmp_path / "many.pcapng", tmp_path / "few.pcapng"
    on_first, on_last = _many_interfaces(many, 300_000)
    _many_interfaces(few, 8)
    cap = 8
    counts, peak_many = _read_peak(many, cap)
    # Interface 0 is kept; the last is past the cap: its packets are counted and skipped.
    assert counts == [on_first, cap, 300_000 - cap, on_last]
    _, peak_few = _read_peak(few, cap)
    # 300,000 kept interfaces cost ~90 MB; capped, the run is as big as with 8 (KiB).
    assert peak_many - peak_few < 16 * 1024, (peak_many, peak_few)
    counts, _ = _read_peak(few, cap)
    assert counts == [on_first + on_last, 8, 0, 0]

    policy = tmp_path / "policy.yaml"
    site = POLICY.read_text()
    assert "thresholds: {}" in site
    policy.write_text(
        site.replace("thresholds: {}", f"thresholds:\n  decoder:\n    max_interfaces: {cap}")
    )
    out = tmp_path / "alerts.jsonl"
    proc = v6sentry("replay", "--policy", str(policy), "-o", str(out), str(many))
    assert proc.returncode == 0, proc.stderr
    warning = (
        f"v6sentry: warning: {many}: more than {cap} interfaces: {300_000 - cap} interface "
        f"description(s) past the cap were counted, not kept, and {on_last} packet(s) on them "
        "were skipped (thresholds.decoder.max_interfaces)"
    )
    assert proc.stderr.count(warning) == 1, proc.stderr
    assert f": {on_first} packets," in proc.stderr
    assert len(out.read_text().splitlines()) == 2  # rogue_ra's two alerts, from interface 0
    assert v6sentry("replay", "--strict", "--policy", str(policy), str(many)).returncode == 2
