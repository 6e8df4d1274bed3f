"""The attack-heavy benchmark capture and what v6sentry raises on it.

Owns: ``pcaps/attack_heavy.py`` writes byte-identical files for the same N and
regenerates its cache only when stale; an independent decode (tshark) finds every
kind of traffic the generator declares, in its declared share, with the random
fields random; ``v6sentry replay`` on a small capture raises the categories each
attack stands for. Never a timing: ``make bench-compare`` reports speed.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from detectors.cli import main
from pcaps import attack_heavy

ROOT = Path(__file__).resolve().parents[1]
PACKETS = 20_000  # 2 s of packet time: every flood passes its 10 s threshold already


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("attack-heavy") / "attack-heavy.pcap"
    return path, attack_heavy.generate(path, PACKETS)


def test_generator_is_deterministic(tmp_path: Path) -> None:
    one, two = tmp_path / "one.pcap", tmp_path / "two.pcap"
    counts = attack_heavy.generate(one, 5000)
    assert attack_heavy.generate(two, 5000) == counts
    assert one.read_bytes() == two.read_bytes()
    assert sum(counts.values()) == 5000


def test_cache_is_reused_until_stale(tmp_path: Path) -> None:
    path, meta = attack_heavy.cached(3000, tmp_path)
    assert not meta["cached"] and meta["key"] == attack_heavy.source_key(3000)
    data = path.read_bytes()
    again, meta = attack_heavy.cached(3000, tmp_path)
    assert again == path and meta["cached"]
    manifest = path.with_suffix(".json")
    stale = json.loads(manifest.read_text(encoding="utf-8"))
    stale["key"] = "an older generator"
    manifest.write_text(json.dumps(stale), encoding="utf-8")
    path.write_bytes(b"stale")
    _, meta = attack_heavy.cached(3000, tmp_path)
    assert not meta["cached"] and path.read_bytes() == data


def _tshark(path: Path) -> list[dict[str, str]]:
    fields = ["eth.src", "ip.proto", "udp.srcport", "udp.dstport", "ipv6.src", "ipv6.dst",
              "icmpv6.type", "ipv6.fraghdr.ident"]  # fmt: skip
    proc = subprocess.run(
        # No reassembly: each fragment is counted as the frame it is.
        ["tshark", "-r", str(path), "-o", "ipv6.defragment:FALSE", "-T", "fields",
         "-E", "separator=\t", "-E", "occurrence=f", *(a for f in fields for a in ("-e", f))],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return [dict(zip(fields, line.split("\t"), strict=True)) for line in proc.stdout.splitlines()]


def _in(addr: str, net: str) -> bool:
    return addr != "" and ipaddress.IPv6Address(addr) in ipaddress.IPv6Network(net)


def _kind(f: dict[str, str]) -> str:
    """Which kind of traffic a frame is, from the decode alone."""
    if f["ip.proto"] == "41":
        return "tunnel_6in4"
    if "3544" in (f["udp.srcport"], f["udp.dstport"]):
        return "tunnel_teredo"
    if f["ipv6.fraghdr.ident"]:
        return "fragments"
    icmp = f["icmpv6.type"]
    if icmp == "135":
        return "ns_flood"
    if icmp == "136":
        return "na_flood"
    if icmp == "134" and f["ipv6.src"] != "fe80::1":  # R1's own RAs are ordinary
        return "ra_flood"
    if icmp == "128" and f["ipv6.src"] == "2001:db8:bad:1::1":
        return "sweep_low_byte"
    if icmp == "128" and _in(f["ipv6.src"], "2001:db8:bad::/64"):
        return "sweep_random_source"
    return "ordinary"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark missing (make apt)")
def test_capture_holds_every_kind_in_its_share(capture: tuple[Path, dict[str, int]]) -> None:
    path, declared = capture
    frames = _tshark(path)
    assert len(frames) == PACKETS
    kinds = collections.Counter(_kind(f) for f in frames)
    assert dict(kinds) == declared  # tshark's reading agrees with the generator's tally
    for kind, share in attack_heavy.SHARES.items():
        assert abs(100 * kinds[kind] / PACKETS - share) < 1.0, (kind, kinds[kind])

    by_kind: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
    for f in frames:
        by_kind[_kind(f)].append(f)

    def distinct(kind: str, key: str) -> float:
        return len({f[key] for f in by_kind[kind]}) / len(by_kind[kind])

    # thc-ipv6 floods: (almost) every packet from a new MAC and address.
    for kind in ("ns_flood", "na_flood", "ra_flood"):
        assert distinct(kind, "eth.src") > 0.99 and distinct(kind, "ipv6.src") > 0.99, kind
    assert distinct("ns_flood", "ipv6.dst") > 0.99  # a solicited-node group per target
    assert all(f["ipv6.src"].startswith("fe80::") for f in by_kind["ra_flood"])
    assert distinct("sweep_random_source", "ipv6.src") > 0.99
    assert all(_in(f["ipv6.dst"], "2001:db8:1::/64") for f in by_kind["sweep_random_source"])
    low = [f["ipv6.dst"] for f in by_kind["sweep_low_byte"]]
    assert low[:3] == ["2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3"]
    assert len(set(low)) == len(low)
    # Documentation, link-local and multicast addresses only; Teredo addresses (2001::/32)
    # embed the documentation IPv4 addresses of their server and client.
    for f in frames:
        for addr in (f["ipv6.src"], f["ipv6.dst"]):
            assert addr == "" or any(
                _in(addr, net) for net in ("2001:db8::/32", "2001::/32", "fe80::/64", "ff02::/16")
            ), addr


def _replay(path: Path, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    alerts, stats = tmp / "alerts.jsonl", tmp / "stats.json"
    code = main(["replay", "-q", "--policy", str(ROOT / "pcaps" / "policy.yaml"),
                 "-o", str(alerts), "--stats-json", str(stats), str(path)])  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in alerts.read_text(encoding="utf-8").splitlines()]
    return records, json.loads(stats.read_text(encoding="utf-8"))["runs"][0]


def test_replay_raises_each_attacks_category(
    capture: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    path, declared = capture
    alerts, run = _replay(path, tmp_path)
    sids = collections.Counter(a["alert"]["signature_id"] for a in alerts)
    categories = {a["alert"]["category"] for a in alerts}
    assert categories == {
        "ipv6.ndp_flood",  # NS and NA floods
        "ipv6.rogue_ra",  # each flooded RA comes from a router the policy does not list
        "ipv6.ra_flood",  # and there are too many of them, from too many routers
        "ipv6.sweep",  # both sweeps
        "ipv6.malformed",  # the overlapping fragments
        "ipv6.tunnel_6in4",
        "ipv6.tunnel_teredo",
    }
    assert {1000211, 1000212, 1000213} <= set(sids)  # NS flood, NA flood, new sources
    assert {1000131, 1000132} <= set(sids)  # RA rate and many routers
    sweeps = {a["v6sentry"]["source"]["prefix"]: a["alert"]["signature_id"]
              for a in alerts if a["alert"]["category"] == "ipv6.sweep"}  # fmt: skip
    # The low-byte sweep is one source address; the random-source one many of one /64.
    assert sweeps == {"2001:db8:bad:1::/64": 1000401, "2001:db8:bad::/64": 1000402}
    assert sids[1000903] == 8  # overlapping fragments, one alert per attacker
    assert sids[1000321] == 4  # one per 6in4 tunnel user
    assert run["packets"] == PACKETS
    assert run["fragments"] == declared["fragments"]
    assert run["fragment_anomalies"].get("overlap", 0) > 0
    assert run["tunnels"] == {"6in4": declared["tunnel_6in4"], "teredo": declared["tunnel_teredo"]}
