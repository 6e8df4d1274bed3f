"""``live --workers N`` counts one link as one stream: the merge against replay.

Owns checking the split of ``native/src/merge.rs`` without a network: every
regression capture is spread over N workers the way the kernel's
``PACKET_FANOUT_HASH`` spreads a link (by a symmetric hash of the outer
addresses, so a flow and all fragments of a datagram stay on one worker), each
worker's ``Forwarding`` decodes its share, and one counting Engine merges the
batches. Its alerts must equal replay's, byte for byte, ids included: a scan or
a flood split over workers is still one scan, counted whole. The batches are
interleaved unevenly (workers fall behind one another), as on a real link.
The live test with real workers on a veth pair is in ``test_live.py``.
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path
from typing import Any

import dpkt
import pytest

from detectors.alerts import Alert, AlertWriter
from detectors.capture import open_capture
from detectors.detections import discover
from detectors.engine import Engine, Forwarding, known_thresholds
from detectors.policy import Policy, empty_policy, load_policy
from tests.golden import PCAPS, manifest

SPECS, CLASSES = discover()


def _policy(entry: dict[str, Any]) -> Policy:
    if not entry.get("policy"):
        return empty_policy()
    return load_policy(str(PCAPS / entry["policy"]), known_thresholds(SPECS))


def _flow_worker(linktype: int, data: bytes, n: int) -> int:
    """The worker the kernel's symmetric flow hash would pick: by the outer IP
    addresses, the same both ways (dpkt reads them; this is the kernel's view, not a
    decoder for detection). Frames it cannot read go to worker 0, as the kernel sends
    non-IP frames to one socket."""
    try:
        if linktype == 1:
            eth = dpkt.ethernet.Ethernet(data)
            ip = eth.data
        elif linktype in (101, 228, 229):
            ip = dpkt.ip6.IP6(data) if data[:1] and data[0] >> 4 == 6 else dpkt.ip.IP(data)
        else:
            return 0
        src, dst = bytes(ip.src), bytes(ip.dst)
    except (dpkt.UnpackError, AttributeError, IndexError, ValueError, TypeError):
        return 0
    key = b"".join(sorted((src, dst)))
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big") % n


def _alerts_text(alerts: list[Alert]) -> list[str]:
    out = io.StringIO()
    writer = AlertWriter(out, "eve", "merge")
    for alert in alerts:
        writer(alert)
    return out.getvalue().splitlines()


def _replay(path: Path, policy: Policy) -> list[str]:
    alerts: list[Alert] = []
    engine = Engine(policy, alerts.append, SPECS, CLASSES)
    engine.capture_name = str(path)
    with open_capture(str(path)) as reader:
        engine.run_capture(reader)
    engine.finish()
    return _alerts_text(alerts)


def _split(path: Path, policy: Policy, n: int) -> tuple[list[str], list[int]]:
    """Replay ``path`` through ``n`` forwarding workers and one merging Engine; the
    alerts, and how many frames each worker got."""
    alerts: list[Alert] = []
    engine = Engine(policy, alerts.append, SPECS, CLASSES)
    engine.capture_name = str(path)
    engine.merge_workers(n)
    workers = [
        Forwarding(policy, functools.partial(engine.feed, k), SPECS, CLASSES) for k in range(n)
    ]
    with open_capture(str(path)) as reader:
        records = list(reader.records())
    shares = [0] * n
    pending: list[list[tuple[Any, ...]]] = [[] for _ in range(n)]
    for i, (ts, iface, linktype, data, wire_len) in enumerate(records):
        k = _flow_worker(linktype, data, n)
        shares[k] += 1
        pending[k].append((ts, iface, linktype, data, wire_len, i + 1))
        # Worker k hands over a batch every 7 + 5k of its frames: the workers run at
        # different paces, and the merge must wait for the slowest.
        if len(pending[k]) >= 7 + 5 * k:
            workers[k].run(pending[k])
            pending[k] = []
            engine.run_merged()
    for k in range(n):
        workers[k].run(pending[k])
        workers[k].finish()
        engine.end_worker(k)
        engine.run_merged()
    assert engine.queued() == 0
    engine.finish()
    return _alerts_text(alerts), shares


@pytest.mark.parametrize("n", [2, 3])
def test_every_capture_split_over_workers_alerts_as_replay(n: int) -> None:
    problems: list[str] = []
    split_flows = 0
    for entry in manifest():
        path = PCAPS / entry["file"]
        policy = _policy(entry)
        want = _replay(path, policy)
        got, shares = _split(path, policy, n)
        name = entry.get("name", entry["file"])
        split_flows += sum(1 for s in shares if s) > 1
        if got != want:
            missing = [line[:160] for line in want if line not in got]
            extra = [line[:160] for line in got if line not in want]
            problems.append(
                f"{name} over {n} workers {shares}: {len(got)} alerts, replay {len(want)}; "
                f"missing {missing[:2]}, unexpected {extra[:2]}"
                + ("; same alerts, other order" if not missing and not extra else "")
            )
    assert not problems, "\n".join(problems)
    # The split is real: most captures had their frames spread over several workers.
    assert split_flows >= len(manifest()) // 2, split_flows


def test_a_sweep_split_over_workers_is_one_scan() -> None:
    """A sweep from one source whose probes the flow hash spreads over both workers (each
    target is its own flow) is counted whole: one alert with every target counted, the
    same as replay, not two halves below the threshold."""
    entry = next(e for e in manifest() if e["file"] == "sweep_lowbyte.pcap")
    path = PCAPS / entry["file"]
    policy = _policy(entry)
    got, shares = _split(path, policy, 2)
    assert min(shares) > 0, shares
    assert got == _replay(path, policy)
    assert any('"category":"ipv6.sweep"' in line for line in got), got[:3]


def test_a_damaged_batch_is_an_error_not_a_crash() -> None:
    engine = Engine(empty_policy(), lambda _a: None, SPECS, CLASSES)
    engine.merge_workers(1)
    engine.feed(0, b"\x05\x01\x02", 1, 10)  # an ND message cut after three bytes
    with pytest.raises(ValueError, match="worker 0: damaged event batch"):
        engine.run_merged()
