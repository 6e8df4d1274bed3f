"""The policy contract: accepted keys, errors with file, key and line.

Owns ``detectors.policy``'s behaviour: the README's example loads verbatim;
every kind of bad input is an error naming the file, the key path and the
right line; ``routers`` absent means learn, ``routers: []`` means none;
thresholds are checked against the specs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from detectors.detections import discover
from detectors.engine import known_thresholds
from detectors.policy import PolicyError, empty_policy, load_policy

CONTRACT = """\
routers:            # legitimate routers per link
  - address: fe80::1
    mac: "02:00:00:00:01:01"
    prefixes: ["2001:db8:1::/64"]
    rdnss: ["2001:db8:1::53"]
prefixes:
  monitored: ["2001:db8:1::/64"]
  dark: []          # prefixes where no host lives: any packet to them is a scan
tunnels:
  allowed: []       # known tunnel endpoints
thresholds: {}      # per-detection overrides of spec values
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_contract_example_loads(tmp_path: Path) -> None:
    path = write(tmp_path, CONTRACT)
    policy = load_policy(path)
    assert policy.routers is not None and len(policy.routers) == 1
    router = policy.routers[0]
    assert router.address == bytes.fromhex("fe800000000000000000000000000001")
    assert router.mac == bytes.fromhex("020000000101") and router.line == 2
    assert str(policy.monitored[0]) == "2001:db8:1::/64" and policy.dark == ()
    assert policy.sha256 == hashlib.sha256(CONTRACT.encode()).hexdigest()
    assert policy.source == f"file:{path}"


def test_readme_shows_the_same_contract() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert CONTRACT in readme


def test_learned_versus_no_routers(tmp_path: Path) -> None:
    assert empty_policy().routers is None and empty_policy().source == "learned"
    assert load_policy(write(tmp_path, "prefixes: {monitored: []}\n")).routers is None
    assert load_policy(write(tmp_path, "routers: []\n")).routers == ()
    assert load_policy(write(tmp_path, "")).routers is None  # empty file: all defaults


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("routers:\n  - address: fe80::1\n    mack: x\n", 3, "routers[0].mack: unknown key"),
        ("prefix:\n  monitored: []\n", 1, "prefix: unknown key"),
        ("routers:\n  - address: fe80::zz\n", 2, "'fe80::zz' is not an IPv6 address"),
        ("routers:\n  - address: 2001:db8::1\n", 2, "is not link-local"),
        ("routers:\n  - address: fe80::1\n    mac: '02:00:00:00:01'\n", 3, "is not a MAC"),
        ("routers:\n  - mac: '02:00:00:00:01:01'\n", 2, "missing key 'address'"),
        ("routers:\n  - address: fe80::1\n    mtu: '1500'\n", 3, "expected an integer"),
        ("routers:\n  - address: fe80::1\n    mtu: 1000\n", 3, "outside 1280..65535"),
        (
            "routers:\n  - address: fe80::1\n    prefixes: ['2001:db8:1::1/64']\n",
            3,
            "host bits set",
        ),
        ("routers:\n  - address: fe80::1\n    dnssl: ['bad domain']\n", 3, "not a domain"),
        ("prefixes:\n  dark: ['192.0.2.0/24']\n", 2, "not an IPv6 prefix"),
        ("tunnels:\n  allowed: ['not-an-address']\n", 2, "not an address or prefix"),
        ("routers: {}\n", 1, "routers: expected a list"),
        ("routers: []\nrouters: []\n", 2, "duplicate key"),
        ("routers:\n  - address: fe80::1\n  - address: fe80::1\n", 3, "same address and mac"),
        ("routers: [\n", 2, "YAML syntax error"),
        ("- a\n- b\n", 1, "expected a mapping"),
    ],
)
def test_errors_name_file_key_and_line(tmp_path: Path, text: str, line: int, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert needle in message, message
    assert "\n" not in message


def test_tunnel_endpoints_accept_ipv4_and_ipv6(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "tunnels:\n  allowed: [192.0.2.1, '2001:db8::/32']\n"))
    assert [str(n) for n in policy.tunnels_allowed] == ["192.0.2.1/32", "2001:db8::/32"]


def test_thresholds_are_checked_against_the_specs(tmp_path: Path) -> None:
    specs, _ = discover()
    known = known_thresholds(specs)
    ok = load_policy(
        write(tmp_path, "thresholds:\n  ipv6.rogue_ra:\n    learn_window_s: 30\n"), known
    )
    assert ok.thresholds == {"ipv6.rogue_ra": {"learn_window_s": 30.0}}
    for text, line, needle in (
        ("thresholds:\n  ipv6.nope:\n    x: 1\n", 2, "ipv6.nope: unknown key"),
        ("thresholds:\n  ipv6.rogue_ra:\n    nope: 1\n", 3, "nope: unknown key"),
        ("thresholds:\n  ipv6.rogue_ra:\n    learn_window_s: -1\n", 3, "outside"),
        ("thresholds:\n  ipv6.rogue_ra:\n    learn_window_s: soon\n", 3, "expected a number"),
        ("thresholds:\n  ipv6.rogue_ra:\n    learn_max_routers: 1.5\n", 3, "whole number"),
        ("thresholds:\n  decoder:\n    max_ext_headers: 0\n", 3, "outside"),
    ):
        path = write(tmp_path, text)
        with pytest.raises(PolicyError, match=rf"^{path}:{line}: .*{needle}"):
            load_policy(path, known)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nope\.yaml: cannot read policy"):
        load_policy(str(tmp_path / "nope.yaml"))
