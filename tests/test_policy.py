"""The policy contract: accepted keys, errors with file, key and line.

Owns ``detectors.policy``'s behaviour: the README's example loads verbatim;
every kind of bad input is a one-line error naming the file, the exact line
and the key path; ``routers`` absent means learn, ``routers: []`` means none;
thresholds are checked against the specs when given, and only for shape when
not; the hash is of the file's bytes. Does not test how detections use it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from detectors.detections import discover
from detectors.engine import known_thresholds
from detectors.policy import (
    ROUTER_KEYS,
    KnownThresholds,
    Policy,
    PolicyError,
    Router,
    ThresholdLike,
    empty_policy,
    load_policy,
    policy_line,
)

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

FULL_ROUTER = """\
routers:
  - address: FE80::1
    mac: 02-00-00-00-01-0A
    name: core-1
    prefixes: ["2001:db8:1::/64", "2001:db8:2::/64"]
    rdnss: ["2001:db8:1::53", "fe80::53"]
    dnssl: [corp.example, lab.corp.example.]
    routes: ["::/0", "2001:db8:ff00::/40"]
    mtu: 1500
  - address: fe80::3
    mac: "02:00:00:00:01:0b"
  - address: fe80::2
"""


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def write(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "site.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def error(path: str, known: KnownThresholds | None = None) -> str:
    with pytest.raises(PolicyError) as info:
        load_policy(path, known)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    return message


@dataclass(frozen=True)
class Tunable:
    minimum: float | None
    maximum: float | None
    integer: bool


KNOWN: dict[str, dict[str, ThresholdLike]] = {
    "ipv6.rogue_ra": {
        "learn_window_s": Tunable(0, 86400, False),
        "learn_max_routers": Tunable(1, 1024, True),
    },
    "ipv6.sweep": {"min_targets": Tunable(2, None, True), "ratio": Tunable(None, 1, False)},
    "ipv6.empty": {},
}


# -- what loads ------------------------------------------------------------


def test_contract_example_loads(tmp_path: Path) -> None:
    path = write(tmp_path, CONTRACT)
    policy = load_policy(path)
    assert policy.source == f"file:{path}" and policy.path == path
    assert policy.routers == (
        Router(
            address=ip6("fe80::1"),
            mac=bytes.fromhex("020000000101"),
            name=None,
            prefixes=(ipaddress.IPv6Network("2001:db8:1::/64"),),
            rdnss=(ip6("2001:db8:1::53"),),
            dnssl=(),
            routes=(),
            mtu=None,
            line=2,
            checked=frozenset({"prefixes", "rdnss"}),
        ),
    )
    assert policy.monitored == (ipaddress.IPv6Network("2001:db8:1::/64"),)
    assert policy.dark == () and policy.tunnels_allowed == () and policy.thresholds == {}
    assert not policy.learns_routers


def test_contract_example_loads_with_the_real_specs(tmp_path: Path) -> None:
    specs, _ = discover()
    assert load_policy(write(tmp_path, CONTRACT), known_thresholds(specs)).routers


def test_readme_shows_the_same_contract() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert CONTRACT in readme


def test_sha256_is_of_the_file_bytes(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, CONTRACT))
    assert policy.sha256 == hashlib.sha256(CONTRACT.encode()).hexdigest()
    # Same meaning, different bytes: a different hash (it identifies the file, not the policy).
    other = load_policy(write(tmp_path, CONTRACT.replace("# known tunnel endpoints", "")))
    assert other.sha256 != policy.sha256 and other.routers == policy.routers
    assert empty_policy().sha256 == ""
    assert load_policy(write(tmp_path, "")).sha256 == hashlib.sha256(b"").hexdigest()


def test_every_router_key(tmp_path: Path) -> None:
    assert ROUTER_KEYS[:8] == (
        "address",
        "mac",
        "name",
        "prefixes",
        "rdnss",
        "dnssl",
        "routes",
        "mtu",
    )
    policy = load_policy(write(tmp_path, FULL_ROUTER))
    assert policy.routers is not None
    first, second, third = policy.routers
    assert first.address == ip6("fe80::1") and first.mac == bytes.fromhex("02000000010a")
    assert first.name == "core-1" and first.mtu == 1500 and first.line == 2
    assert [str(p) for p in first.prefixes] == ["2001:db8:1::/64", "2001:db8:2::/64"]
    assert first.rdnss == (ip6("2001:db8:1::53"), ip6("fe80::53"))
    assert first.dnssl == ("corp.example", "lab.corp.example.")
    assert [str(p) for p in first.routes] == ["::/0", "2001:db8:ff00::/40"]
    assert second.mac == bytes.fromhex("02000000010b") and second.line == 10
    assert third.mac is None and third.name is None and third.line == 12
    # Lookups.
    assert policy.routers_by_address() == {
        ip6("fe80::1"): [first],
        ip6("fe80::3"): [second],
        ip6("fe80::2"): [third],
    }
    assert policy.routers_at(ip6("fe80::1")) == (first,)
    assert policy.routers_at(ip6("fe80::9")) == ()
    assert policy.router_keys() == {
        (ip6("fe80::1"), bytes.fromhex("02000000010a")),
        (ip6("fe80::3"), bytes.fromhex("02000000010b")),
        (ip6("fe80::2"), None),
    }


def test_unquoted_mac_that_yaml_reads_as_a_number(tmp_path: Path) -> None:
    # YAML 1.1 reads 12:34:56:00:01:01 as a base-60 integer; it is still a MAC here.
    text = "routers:\n  - address: fe80::1\n    mac: 12:34:56:00:01:01\n"
    policy = load_policy(write(tmp_path, text))
    assert policy.routers is not None
    assert policy.routers[0].mac == bytes.fromhex("123456000101")


def test_tunnel_endpoints_accept_ipv4_and_ipv6(tmp_path: Path) -> None:
    text = "tunnels:\n  allowed: [192.0.2.1, 198.51.100.0/24, '2001:db8::/32', '2001:db8::1']\n"
    policy = load_policy(write(tmp_path, text))
    assert [str(n) for n in policy.tunnels_allowed] == [
        "192.0.2.1/32",
        "198.51.100.0/24",
        "2001:db8::/32",
        "2001:db8::1/128",
    ]


def test_anchors_aliases_and_merge_keys(tmp_path: Path) -> None:
    text = """\
prefixes:
  monitored: &lan ["2001:db8:1::/64"]
  dark: ["2001:db8:dead::/48"]
routers:
  - &r1
    address: fe80::1
    mac: "02:00:00:00:01:01"
    prefixes: *lan
    mtu: 1500
  - <<: *r1
    address: fe80::2
    mac: "02:00:00:00:01:02"
"""
    policy = load_policy(write(tmp_path, text))
    assert policy.routers is not None
    r1, r2 = policy.routers
    assert r2.address == ip6("fe80::2") and r2.prefixes == r1.prefixes == policy.monitored
    assert r2.mtu == 1500 and r2.mac == bytes.fromhex("020000000102") and r2.line == 10
    assert [str(p) for p in policy.dark] == ["2001:db8:dead::/48"]


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, b"\xef\xbb\xbf" + CONTRACT.encode()))
    assert policy.routers is not None and len(policy.routers) == 1


# -- learned versus explicit routers ---------------------------------------


def test_learned_versus_no_routers(tmp_path: Path) -> None:
    empty = empty_policy()
    assert empty == Policy(source="learned", path=None, routers=None)
    assert empty.learns_routers and empty.routers_by_address() == {}
    assert empty.router_keys() == frozenset() and empty.thresholds == {}
    assert load_policy(write(tmp_path, "prefixes: {monitored: []}\n")).routers is None
    assert load_policy(write(tmp_path, "routers: []\n")).routers == ()
    assert not load_policy(write(tmp_path, "routers: []\n")).learns_routers


def test_learning_is_said_in_the_notice_and_summary(tmp_path: Path) -> None:
    empty = empty_policy()
    notice = empty.learning_notice(600.0)
    assert notice is not None and "(no --policy given)" in notice and "first 600 s" in notice
    assert "--policy FILE" in notice
    assert "(MLD queriers and DHCPv6 servers are learned the same way)" in notice
    # Listed DHCPv6 servers are no longer learned: the notice stops naming them.
    servers = write(
        tmp_path, 'dhcpv6_servers:\n  - {address: "fe80::1", mac: "02:00:00:00:01:01"}\n'
    )
    dhcp_listed = load_policy(servers).learning_notice(600.0)
    assert dhcp_listed is not None and "(MLD queriers are learned the same way)" in dhcp_listed
    assert empty.summary(600.0) == {
        "file": None,
        "sha256": None,
        "routers": "learned",
        "listed_routers": 0,
        "learn_window_s": 600.0,
        "notice": notice,
    }
    assert policy_line(empty.summary(600.0)) == (
        "policy none: routers learned from the first 600 s of traffic, not listed (see --policy)"
    )
    no_routers = load_policy(write(tmp_path, "prefixes: {monitored: []}\n"))
    said = no_routers.learning_notice(None)
    assert said is not None and f"({no_routers.path} has no 'routers' key)" in said
    assert "in the learning window" in said
    listed = load_policy(write(tmp_path, CONTRACT))
    assert listed.learning_notice(600.0) is None
    summary = listed.summary(600.0)
    assert summary["routers"] == "listed" and summary["listed_routers"] == 1
    assert summary["learn_window_s"] is None and summary["sha256"] == listed.sha256
    assert policy_line(summary) == f"policy {listed.path}: 1 router listed"
    # routers: [] trusts no router at all: nothing is learned, nothing to warn about.
    assert load_policy(write(tmp_path, "routers: []\n")).learning_notice(600.0) is None


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "~\n"])
def test_empty_file_is_all_defaults(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    policy = load_policy(path)
    assert policy.routers is None and policy.monitored == () and policy.thresholds == {}
    assert policy.source == f"file:{path}"


# -- errors: file, line, key path ------------------------------------------

ROUTER = "routers:\n  - address: fe80::1\n"  # router key lines start at 3

ERRORS: list[tuple[str, str, int, str]] = [
    # unknown keys, at every level
    ("unknown top-level key", "prefix:\n  monitored: []\n", 1, "prefix: unknown key (allowed: "),
    (
        "unknown router key",
        "routers:\n  - mac: '02:00:00:00:01:01'\n    adress: fe80::1\n",
        3,
        "routers[0].adress: unknown key (allowed: address, mac, name, prefixes, rdnss, dnssl, "
        "routes, mtu, preference, managed, other)",
    ),
    ("unknown prefixes key", "prefixes:\n  monitored: []\n  drak: []\n", 3, "prefixes.drak:"),
    ("unknown tunnels key", "tunnels:\n  alowed: []\n", 2, "tunnels.alowed: unknown key"),
    ("non-string key", "routers: []\n1: x\n", 2, "(top level): keys must be strings"),
    # wrong types
    ("top level a list", "- a\n- b\n", 1, "(top level): expected a mapping, got a list"),
    ("top level a string", "hello\n", 1, "(top level): expected a mapping"),
    ("routers a mapping", "routers: {}\n", 1, "routers: expected a list, got a mapping"),
    ("routers empty", "routers:\n", 1, "routers: expected a list, got nothing (write []"),
    ("router a string", "routers:\n  - fe80::1\n", 2, "routers[0]: expected a mapping"),
    ("prefixes a list", "prefixes: []\n", 1, "prefixes: expected a mapping, got a list"),
    ("dark a string", "prefixes:\n  dark: '2001:db8::/32'\n", 2, "prefixes.dark: expected a list"),
    ("dark empty", "prefixes:\n  dark:\n", 2, "prefixes.dark: expected a list, got nothing"),
    ("tunnels a list", "tunnels: []\n", 1, "tunnels: expected a mapping"),
    ("thresholds a list", "thresholds: []\n", 1, "thresholds: expected a mapping"),
    ("mtu a string", ROUTER + "    mtu: '1500'\n", 3, "mtu: expected an integer, got a string"),
    ("mtu a float", ROUTER + "    mtu: 1500.0\n", 3, "routers[0].mtu: expected an integer"),
    ("mtu a boolean", ROUTER + "    mtu: true\n", 3, "expected an integer, got a boolean"),
    ("name an integer", ROUTER + "    name: 7\n", 3, "routers[0].name: expected a string"),
    ("name empty", ROUTER + "    name: ''\n", 3, "routers[0].name: empty name"),
    ("address a list", "routers:\n  - address: [fe80::1]\n", 2, "expected an IPv6 address"),
    ("address missing value", "routers:\n  - address:\n", 2, "got nothing"),
    ("rdnss a string", ROUTER + "    rdnss: '2001:db8::53'\n", 3, "rdnss: expected a list"),
    # bad values
    ("missing address", "routers:\n  - mac: '02:00:00:00:01:01'\n", 2, "missing required key"),
    ("bad address", "routers:\n  - address: fe80::zz\n", 2, "'fe80::zz' is not an IPv6 address"),
    (
        "global router address",
        "routers:\n  - address: 2001:db8::1\n",
        2,
        "routers[0].address: '2001:db8::1' is not link-local (RAs come from link-local",
    ),
    ("zone index", "routers:\n  - address: fe80::1%eth0\n", 2, "has a zone index"),
    (
        "short MAC",
        "\n\n" + ROUTER + "\n\n    mac: '02:00:00:00:01'\n",
        7,
        "routers[0].mac: '02:00:00:00:01' is not a MAC address (expected six hex octets like "
        "02:00:00:00:01:01)",
    ),
    ("mixed MAC separators", ROUTER + "    mac: '02:00-00:00:01:01'\n", 3, "is not a MAC"),
    ("multicast MAC", ROUTER + "    mac: '33:33:00:00:00:01'\n", 3, "is a multicast MAC"),
    (
        "mtu too small",
        ROUTER + "    mtu: 1000\n",
        3,
        "1000 is outside the allowed range 1280..65535",
    ),
    ("mtu too large", ROUTER + "    mtu: 65536\n", 3, "outside the allowed range"),
    (
        "router prefix with host bits",
        ROUTER + "    prefixes: ['2001:db8:1::1/64']\n",
        3,
        "routers[0].prefixes[0]: '2001:db8:1::1/64' has host bits set (the network is "
        "2001:db8:1::/64",
    ),
    ("route not a prefix", ROUTER + "    routes: ['default']\n", 3, "routes[0]: 'default' is not"),
    ("rdnss multicast", ROUTER + "    rdnss: ['ff02::1']\n", 3, "rdnss[0]: 'ff02::1' cannot be"),
    ("rdnss bad", ROUTER + "    rdnss: ['2001:db8::53', '53']\n", 3, "rdnss[1]: '53' is not an"),
    ("dnssl bad", ROUTER + "    dnssl: ['bad domain']\n", 3, "dnssl[0]: 'bad domain' is not a"),
    ("dnssl empty label", ROUTER + "    dnssl: ['a..b']\n", 3, "is not a domain name"),
    ("dnssl hyphen", ROUTER + "    dnssl: ['-a.example']\n", 3, "is not a domain name"),
    (
        "dark IPv4",
        "prefixes:\n  dark: ['192.0.2.0/24']\n",
        2,
        "prefixes.dark[0]: '192.0.2.0/24' is an IPv4 prefix; expected an IPv6 prefix",
    ),
    (
        "monitored unquoted ending in ::",
        "prefixes:\n  monitored:\n    - 2001:db8:1::/64\n    - 2001:db8:2::\n",
        4,
        "prefixes.monitored[1]: expected an IPv6 prefix, got a mapping (quote values that end",
    ),
    (
        "monitored without length (quoted)",
        "prefixes:\n  monitored:\n    - 2001:db8:1::/64\n    - '2001:db8:2::'\n",
        4,
        "prefixes.monitored[1]: '2001:db8:2::' is not an IPv6 prefix (no /length",
    ),
    ("monitored host bits", "prefixes:\n  monitored: ['2001:db8::1/32']\n", 2, "host bits set"),
    (
        "tunnel not an address",
        "tunnels:\n  allowed: ['not-an-address']\n",
        2,
        "tunnels.allowed[0]: 'not-an-address' is not an IPv4 or IPv6 address or prefix",
    ),
    ("tunnel host bits", "tunnels:\n  allowed: [192.0.2.1/24]\n", 2, "192.0.2.0/24"),
    # duplicates
    ("duplicate top-level key", "routers: []\nrouters: []\n", 2, "routers: duplicate key (first"),
    ("duplicate router key", ROUTER + "    address: fe80::2\n", 3, "routers[0].address: duplicate"),
    (
        "duplicate router",
        "routers:\n  - address: fe80::1\n    mac: 02:00:00:00:01:01\n"
        "  - address: FE80:0::1\n    mac: 02-00-00-00-01-01\n",
        4,
        "routers[1]: duplicate router address fe80::1: already routers[0] (line 2; same mac)",
    ),
    (
        "duplicate router without mac",
        ROUTER + "  - address: fe80::1\n",
        3,
        "routers[1]: duplicate router address fe80::1: already routers[0] (line 2; both "
        "without mac)",
    ),
    (
        "router address with two macs",
        "routers:\n  - address: fe80::1\n    mac: 02:00:00:00:01:01\n"
        "  - address: fe80::2\n"
        "  - address: fe80::1\n    mac: 02:00:00:00:01:09\n",
        5,
        "routers[2]: duplicate router address fe80::1: already routers[0] (line 2; mac "
        "02:00:00:00:01:01 there, 02:00:00:00:01:09 here); list each router address once",
    ),
    (
        "router address with and without a mac",
        ROUTER + "  - address: fe80::1\n    mac: 02:00:00:00:01:01\n",
        3,
        "already routers[0] (line 2; mac none there, 02:00:00:00:01:01 here)",
    ),
    # monitored and dark are disjoint
    (
        "monitored inside dark",
        "prefixes:\n  monitored: ['2001:db8:1::/64']\n  dark:\n    - '2001:db8:f::/48'\n"
        "    - '2001:db8::/32'\n",
        5,
        "prefixes.dark[1]: 2001:db8::/32 contains prefixes.monitored[0] 2001:db8:1::/64 "
        "(line 2); a prefix cannot be both monitored and dark",
    ),
    (
        "dark inside monitored",
        "prefixes:\n  dark: ['2001:db8:dead::/48']\n  monitored:\n    - '2001:db8:1::/64'\n"
        "    - '2001:db8::/32'\n",
        5,
        "prefixes.monitored[1]: 2001:db8::/32 contains prefixes.dark[0] 2001:db8:dead::/48 "
        "(line 2); a prefix cannot be both",
    ),
    (
        "dark inside monitored, dark written later",
        "prefixes:\n  monitored: ['2001:db8::/32']\n  dark: ['2001:db8:dead::/48']\n",
        3,
        "prefixes.dark[0]: 2001:db8:dead::/48 is inside prefixes.monitored[0] 2001:db8::/32 "
        "(line 2)",
    ),
    (
        "same prefix monitored and dark",
        "prefixes:\n  monitored: ['2001:db8:1::/64']\n  dark: ['2001:db8:1::/64']\n",
        3,
        "prefixes.dark[0]: 2001:db8:1::/64 is the same prefix as prefixes.monitored[0]",
    ),
    # merge keys
    ("merge a scalar", "routers:\n  - <<: fe80::1\n", 2, "routers[0].<<: expected a mapping"),
    # YAML itself
    ("unclosed flow list", "routers: [\n", 2, "YAML syntax error"),
    ("bad indentation", "routers:\n  - address: fe80::1\n bad: 1\n", 3, "YAML syntax error"),
    ("tab indentation", "routers:\n\t- address: fe80::1\n", 2, "YAML syntax error"),
    ("two documents", "routers: []\n---\nrouters: []\n", 2, "expected a single document"),
    ("undefined alias", "routers: []\nprefixes: *nope\n", 2, "YAML syntax error"),
    ("control character", "routers: []\nprefixes: {}\n# \x07\n", 3, "#x0007 is not allowed"),
    ("deep nesting", "routers:\n  - address: " + "[" * 40 + "\n", 2, "nested more than"),
]


@pytest.mark.parametrize(
    ("text", "line", "needle"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_errors_name_file_key_and_line(tmp_path: Path, text: str, line: int, needle: str) -> None:
    path = write(tmp_path, text)
    message = error(path)
    assert message.startswith(f"{path}:{line}: "), message
    assert needle in message, message


def test_disjoint_monitored_and_dark_prefixes_load(tmp_path: Path) -> None:
    text = (
        "prefixes:\n"
        "  monitored: ['2001:db8:1::/64', '2001:db8:2::/64']\n"
        "  dark: ['2001:db8:3::/64']\n"
    )
    policy = load_policy(write(tmp_path, text))
    assert [str(p) for p in policy.monitored] == ["2001:db8:1::/64", "2001:db8:2::/64"]
    assert [str(p) for p in policy.dark] == ["2001:db8:3::/64"]


def test_first_overlap_in_file_order_is_reported(tmp_path: Path) -> None:
    # Two overlaps: the one whose later entry comes first in the file is named.
    text = (
        "prefixes:\n"
        "  dark:\n"
        "    - '2001:db8:2::/48'\n"
        "    - '2001:db8:1::/48'\n"
        "  monitored:\n"
        "    - '2001:db8:1::/64'\n"
        "    - '2001:db8:2::/64'\n"
    )
    path = write(tmp_path, text)
    assert error(path) == (
        f"{path}:6: prefixes.monitored[0]: 2001:db8:1::/64 is inside prefixes.dark[1] "
        "2001:db8:1::/48 (line 4); a prefix cannot be both monitored and dark"
    )


def test_error_values_stay_on_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'routers:\n  - address: "fe80::zz\\nx"\n')
    assert error(path) == f"{path}:2: routers[0].address: 'fe80::zz\\nx' is not an IPv6 address"


def test_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, b"routers: []\nprefixes:\n  dark: ['\xff']\n")
    assert error(path).startswith(f"{path}:3: policy is not UTF-8 text")


def test_missing_or_unreadable_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    assert error(missing) == f"{missing}: cannot read policy: No such file or directory"
    assert error(str(tmp_path)).startswith(f"{tmp_path}: cannot read policy: ")


def test_recursive_merge_is_an_error_not_a_hang(tmp_path: Path) -> None:
    path = write(tmp_path, "routers:\n  - &r\n    address: fe80::1\n    <<: *r\n")
    assert "cannot merge itself" in error(path)


def test_long_bad_domain_fails_fast(tmp_path: Path) -> None:
    # A backtracking regex took minutes on this; the check must stay linear.
    path = write(tmp_path, ROUTER + "    dnssl: ['" + "a" * 200 + "!']\n")
    started = time.monotonic()
    assert "is not a domain name" in error(path)
    assert time.monotonic() - started < 1.0


# -- thresholds --------------------------------------------------------------


def test_thresholds_without_specs_are_shape_checked_only(tmp_path: Path) -> None:
    text = "thresholds:\n  ipv6.anything:\n    x: 1\n    y: 0.5\n  decoder: {}\n"
    policy = load_policy(write(tmp_path, text))
    assert policy.thresholds == {"ipv6.anything": {"x": 1, "y": 0.5}, "decoder": {}}
    assert isinstance(policy.thresholds["ipv6.anything"]["x"], int)
    for bad, line, needle in (
        ("thresholds:\n  ipv6.a: 5\n", 2, "thresholds.ipv6.a: expected a mapping, got an integer"),
        ("thresholds:\n  ipv6.a:\n    x: '5'\n", 3, "ipv6.a.x: expected a number, got a string"),
        ("thresholds:\n  ipv6.a:\n    x: yes\n", 3, "expected a number, got a boolean"),
        ("thresholds:\n  ipv6.a:\n    x: [1]\n", 3, "expected a number, got a list"),
        ("thresholds:\n  ipv6.a:\n    x: .inf\n", 3, "expected a finite number"),
        ("thresholds:\n  ipv6.a:\n    x: 1\n    x: 2\n", 4, "ipv6.a.x: duplicate key"),
    ):
        path = write(tmp_path, bad)
        message = error(path)
        assert message.startswith(f"{path}:{line}: ") and needle in message, message


def test_thresholds_against_specs(tmp_path: Path) -> None:
    text = (
        "thresholds:\n"
        "  ipv6.rogue_ra:\n"
        "    learn_window_s: 30\n"
        "    learn_max_routers: 4\n"
        "  ipv6.sweep: {min_targets: 1000000, ratio: 0.25}\n"
    )
    policy = load_policy(write(tmp_path, text), KNOWN)
    assert policy.thresholds == {
        "ipv6.rogue_ra": {"learn_window_s": 30, "learn_max_routers": 4},
        "ipv6.sweep": {"min_targets": 1000000, "ratio": 0.25},
    }
    assert load_policy(write(tmp_path, "thresholds:\n  ipv6.rogue_ra: {}\n"), KNOWN).thresholds == {
        "ipv6.rogue_ra": {}
    }


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (
            "thresholds:\n  ipv6.nope:\n    x: 1\n",
            2,
            "thresholds.ipv6.nope: unknown key (allowed: ipv6.empty, ipv6.rogue_ra, ipv6.sweep)",
        ),
        (
            "thresholds:\n  ipv6.rogue_ra:\n    learn_window: 1\n",
            3,
            "thresholds.ipv6.rogue_ra.learn_window: unknown key (allowed: learn_max_routers, "
            "learn_window_s)",
        ),
        ("thresholds:\n  ipv6.empty:\n    x: 1\n", 3, "ipv6.empty.x: unknown key (allowed: none)"),
        (
            "thresholds:\n  ipv6.rogue_ra:\n    learn_window_s: soon\n",
            3,
            "learn_window_s: expected a number, got a string ('soon')",
        ),
        (
            "thresholds:\n  ipv6.rogue_ra:\n    learn_window_s: -1\n",
            3,
            "learn_window_s: -1 is outside the allowed range 0..86400",
        ),
        (
            "thresholds:\n  ipv6.rogue_ra:\n\n    learn_window_s: 86400.5\n",
            4,
            "86400.5 is outside the allowed range 0..86400",
        ),
        (
            "thresholds:\n  ipv6.rogue_ra:\n    learn_max_routers: 1.5\n",
            3,
            "learn_max_routers: expected an integer, got a number with a fraction (1.5)",
        ),
        (
            "thresholds:\n  ipv6.rogue_ra:\n    learn_max_routers: 16.0\n",
            3,
            "expected an integer",
        ),
        (
            "thresholds:\n  ipv6.rogue_ra:\n    learn_max_routers: true\n",
            3,
            "expected a number, got a boolean",
        ),
        (
            "thresholds:\n  ipv6.rogue_ra:\n    learn_max_routers: .nan\n",
            3,
            "expected a finite number",
        ),
        ("thresholds:\n  ipv6.sweep: {min_targets: 1}\n", 2, "1 is outside the allowed range >= 2"),
        (
            "thresholds:\n  ipv6.sweep:\n    ratio: 1.5\n",
            3,
            "1.5 is outside the allowed range <= 1",
        ),
        (
            "thresholds:\n  ipv6.sweep:\n    min_targets: 01\n",
            3,
            "01 (= 1) is outside the allowed range >= 2",
        ),
    ],
)
def test_threshold_errors_against_specs(tmp_path: Path, text: str, line: int, needle: str) -> None:
    path = write(tmp_path, text)
    message = error(path, KNOWN)
    assert message.startswith(f"{path}:{line}: "), message
    assert needle in message, message


def test_thresholds_against_the_real_specs(tmp_path: Path) -> None:
    specs, _ = discover()
    known = known_thresholds(specs)
    ok = load_policy(
        write(tmp_path, "thresholds:\n  ipv6.rogue_ra:\n    learn_window_s: 30\n"), known
    )
    assert ok.thresholds == {"ipv6.rogue_ra": {"learn_window_s": 30}}
    for text, line, needle in (
        ("thresholds:\n  ipv6.nope:\n    x: 1\n", 2, "ipv6.nope: unknown key"),
        ("thresholds:\n  decoder:\n    max_ext_headers: 0\n", 3, "outside the allowed range"),
    ):
        path = write(tmp_path, text)
        message = error(path, known)
        assert message.startswith(f"{path}:{line}: ") and needle in message, message


# -- RA parameters the rogue-RA detection compares (issue 3) -------------------


def test_router_preference_and_flags(tmp_path: Path) -> None:
    text = """routers:
  - address: fe80::1
    preference: high
    managed: true
    other: false
    prefixes: []
  - address: fe80::2
"""
    policy = load_policy(write(tmp_path, text))
    assert policy.routers is not None
    r1, r2 = policy.routers
    assert (r1.preference, r1.managed, r1.other) == (1, True, False)
    assert r1.checked == frozenset({"preference", "managed", "other", "prefixes"})
    assert (r2.preference, r2.managed, r2.other, r2.checked) == (None, None, None, frozenset())


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "    preference: urgent",
            "routers[0].preference: 'urgent' is not a router preference (low, medium or high; "
            "RFC 4191)",
        ),
        ("    preference: 1", "routers[0].preference: expected a string, got an integer (1)"),
        ("    managed: 1", "routers[0].managed: expected true or false, got an integer (1)"),
        ('    other: "yes"', "routers[0].other: expected true or false, got a string ('yes')"),
    ],
)
def test_router_preference_and_flag_errors(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, f"routers:\n  - address: fe80::1\n{line}\n")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(err.value) == f"{path}:3: {message}"


# -- dhcpv6_servers ----------------------------------------------------------------------

DHCPV6_EXAMPLE = """\
dhcpv6_servers:
  - address: fe80::1
    mac: "02:00:00:00:01:01"
    duid: "00:02:00:00:ab:12:01:02:03:04:05"   # optional: its Server Identifier
    name: dnsmasq-r1                           # optional
    dns: ["2001:db8:1::53"]                    # optional: the DNS servers it may hand out
    domains: [lab.example]                     # optional: the search domains it may hand out
"""


def test_readme_shows_the_dhcpv6_servers_example(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert DHCPV6_EXAMPLE in readme
    policy = load_policy(write(tmp_path, DHCPV6_EXAMPLE))
    assert policy.dhcpv6_servers is not None and not policy.learns_dhcpv6_servers
    (server,) = policy.dhcpv6_servers
    assert server.address == ip6("fe80::1") and server.mac == bytes.fromhex("020000000101")
    assert server.duid == bytes.fromhex("00020000ab120102030405")
    assert server.dns == (ip6("2001:db8:1::53"),) and server.domains == ("lab.example",)
    assert server.name == "dnsmasq-r1" and server.line == 2
    # Routers and DHCPv6 servers are learned independently.
    assert policy.learns_routers


def test_dhcpv6_servers_absent_learned_empty_none_unchecked(tmp_path: Path) -> None:
    assert empty_policy().learns_dhcpv6_servers
    assert load_policy(write(tmp_path, "routers: []\n")).dhcpv6_servers is None
    assert load_policy(write(tmp_path, "dhcpv6_servers: []\n")).dhcpv6_servers == ()
    text = "dhcpv6_servers:\n  - address: 2001:db8:1::547\n    mac: 02:00:00:00:05:47\n"
    (server,) = load_policy(write(tmp_path, text)).dhcpv6_servers or ()
    assert server.duid is None and server.dns is None and server.domains is None
    # An unquoted DUID YAML would read as a base-60 integer is taken as written.
    text += "    duid: 00:01:00:01:22:33:44:55\n"
    (server,) = load_policy(write(tmp_path, text)).dhcpv6_servers or ()
    assert server.duid == bytes.fromhex("0001000122334455")


D6 = 'dhcpv6_servers:\n  - address: fe80::1\n    mac: "02:00:00:00:01:01"\n'  # keys at line 3

DHCPV6_ERRORS: list[tuple[str, str, int, str]] = [
    ("not-a-list", "dhcpv6_servers: {}\n", 1, "dhcpv6_servers"),
    ("no-mac", "dhcpv6_servers:\n  - address: fe80::1\n", 2, "missing required key 'mac'"),
    ("no-address", "dhcpv6_servers:\n  - mac: 02:00:00:00:01:01\n", 2, "'address'"),
    ("unknown-key", D6 + "    routes: []\n", 4, "dhcpv6_servers[0].routes: unknown key"),
    ("bad-duid", D6 + "    duid: xyz\n", 4, "dhcpv6_servers[0].duid: 'xyz' is not a DUID"),
    ("short-duid", D6 + "    duid: '01'\n", 4, "is not a DUID"),
    ("multicast", "dhcpv6_servers:\n  - address: ff02::1:2\n    mac: 02:00:00:00:01:01\n", 2,
     "dhcpv6_servers[0].address: 'ff02::1:2' cannot be a DHCPv6 server"),
    ("bad-mac", "dhcpv6_servers:\n  - address: fe80::1\n    mac: nope\n", 3,
     "dhcpv6_servers[0].mac"),
    ("bad-dns", D6 + "    dns: [ff02::1]\n", 4, "dhcpv6_servers[0].dns[0]"),
    ("bad-domain", D6 + "    domains: ['a b']\n", 4, "dhcpv6_servers[0].domains[0]"),
    ("empty-name", D6 + "    name: ' '\n", 4, "dhcpv6_servers[0].name: empty name"),
    ("duplicate", D6 + D6.split("\n", 1)[1], 4, "duplicate DHCPv6 server fe80::1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [e[1:] for e in DHCPV6_ERRORS],
    ids=[e[0] for e in DHCPV6_ERRORS],
)
def test_dhcpv6_server_errors_name_file_key_and_line(
    tmp_path: Path, text: str, line: int, needle: str
) -> None:
    path = write(tmp_path, text)
    message = error(path)
    assert message.startswith(f"{path}:{line}: "), message
    assert needle in message, message


# -- dns (issue 15) ----------------------------------------------------------------------

DNS_EXAMPLE = """\
dns:
  authoritative: ["2001:db8:1::53", "192.0.2.53"]
  zones: [1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa]   # 2001:db8:1::/48
"""


def test_readme_shows_the_dns_example(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert DNS_EXAMPLE in readme
    policy = load_policy(write(tmp_path, DNS_EXAMPLE))
    assert policy.dns_authoritative == (ip6("2001:db8:1::53"), bytes([192, 0, 2, 53]))
    assert policy.dns_zones == ("1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",)
    assert load_policy(write(tmp_path, "routers: []\n")).dns_zones == ()


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("dns: []\n", 1, "dns: expected a mapping"),
        ("dns:\n  servers: []\n", 2, "dns.servers: unknown key (allowed: authoritative, zones)"),
        ("dns:\n  authoritative: [nope]\n", 2, "dns.authoritative[0]: 'nope' is not an IP"),
        ("dns:\n  authoritative: ['ff02::1']\n", 2, "cannot be a DNS server address"),
        ("dns:\n  zones: [example.com]\n", 2, "dns.zones[0]: 'example.com' is not an ip6.arpa"),
        ("dns:\n  zones:\n    - 8.ip6.arpa\n    - 8.ip6.arpa\n", 4, "duplicate zone"),
    ],
)
def test_dns_errors_name_file_key_and_line(
    tmp_path: Path, text: str, line: int, needle: str
) -> None:
    path = write(tmp_path, text)
    message = error(path)
    assert message.startswith(f"{path}:{line}: "), message
    assert needle in message, message
