"""The site policy (``--policy FILE``): loading, validation, lookups.

Owns the policy contract: which keys exist, what type and form each value must
have, and errors that name the file, the line, the key path and the problem in
one line (``site.yaml:7: routers[0].mac: ...``). It also owns the empty policy
used when no file is given (routers are then learned), and what a run says
about the policy it used: a learning run is weaker (a rogue router heard in
the learning window is trusted), so every run says so (``learning_notice``,
``Policy.summary``) instead of leaving it to the alerts' evidence.

It does not judge traffic and holds no runtime state: detections read the
resulting ``Policy`` and decide for themselves what a packet means. Threshold
names and ranges belong to the detection specs; this module only checks
overrides against them when the caller passes them in.

The YAML is composed into nodes (``yaml.compose``, safe loader) rather than
loaded straight to Python, so every value keeps its line and the YAML 1.1
implicit types stay visible: ``mtu: "1500"`` is a string and an error, ``true``
is not an integer.

``tuning:`` (Suricata's threshold.config, Zeek's Notice policy) is validated here
into ``Tuning`` entries: a detection or signature disabled, or its alerts
suppressed by source or destination prefix or MAC, each with a reason and an
optional expiry date. An expired entry is kept (so it can be reported) but is
not active. Applying the entries to alerts is the engine's job.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import yaml

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

TOP_KEYS = ("routers", "prefixes", "tunnels", "thresholds", "tuning", "dhcpv6_servers", "dns")
TUNING_KEYS = ("detection", "sid", "enabled", "suppress", "expires", "reason")
SUPPRESS_KEYS = ("src", "dst")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ROUTER_KEYS = (
    "address",
    "mac",
    "name",
    "prefixes",
    "rdnss",
    "dnssl",
    "routes",
    "mtu",
    "preference",
    "managed",
    "other",
)
# Keys whose presence makes the RA detection compare what the router advertises;
# an absent key means "not checked", an empty list means "must advertise none".
CHECKED_KEYS = ("prefixes", "rdnss", "dnssl", "routes", "mtu", "preference", "managed", "other")
PREFERENCES = {"low": -1, "medium": 0, "high": 1}  # RFC 4191 section 2.1
# A legitimate DHCPv6 server (``dhcpv6_servers``); ``dns``/``domains`` absent = not
# checked, an empty list = it must hand out none.
DHCPV6_SERVER_KEYS = ("address", "mac", "duid", "name", "dns", "domains")
PREFIX_KEYS = ("monitored", "dark")
TUNNEL_KEYS = ("allowed",)
# Our DNS (``dns``): the authoritative servers the sensor watches and the ip6.arpa
# zones they serve (the DNS family: backscatter and reverse-zone walking).
DNS_KEYS = ("authoritative", "zones")

# --policy in replay's and live's --help: what running without one means.
POLICY_HELP = (
    "site policy YAML (default: none: routers are then learned from the traffic's first "
    "learn_window_s, 600 s unless overridden, and every run warns so on stderr)"
)
# The threshold that bounds router learning (the RA family's spec owns its default).
LEARN_WINDOW = ("ipv6.rogue_ra", "learn_window_s")

MTU_RANGE = (1280, 65535)  # RFC 8200 minimum link MTU .. largest non-jumbo packet
MAX_DEPTH = 32  # far deeper than the schema; bounds the (recursive) YAML composer

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _MERGE = (
    _TAG + t for t in ("str", "int", "float", "bool", "null", "merge")
)
_MAC = re.compile(r"[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}")
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_PLAIN_KEY = re.compile(r"[\w.-]+")
_CONSTRUCT = yaml.constructor.SafeConstructor()


class PolicyError(Exception):
    """A policy that cannot be used. ``str()`` is one line: ``file:line: key.path: problem``."""


class ThresholdLike(Protocol):
    """What validation needs to know about one tunable (``spec.Threshold`` fits)."""

    @property
    def minimum(self) -> float | None: ...

    @property
    def maximum(self) -> float | None: ...

    @property
    def integer(self) -> bool: ...


KnownThresholds: TypeAlias = Mapping[str, Mapping[str, ThresholdLike]]
# sid -> category of every signature the specs define, for validating ``tuning``.
KnownSignatures: TypeAlias = Mapping[int, str]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a suppression: a prefix (an address is a /32 or /128) or a MAC."""

    text: str  # normalised: the network in ipaddress form, or a lower-case MAC with colons
    net: IPNetwork | None
    mac: str | None

    def hits(self, ip: str | None, mac: str | None) -> bool:
        """Whether an alert's address and MAC for this side fall under it."""
        if self.mac is not None:
            return mac is not None and mac.lower().replace("-", ":") == self.mac
        if ip is None or self.net is None:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return addr.version == self.net.version and addr in self.net


@dataclass(frozen=True, slots=True)
class Tuning:
    """One ``tuning:`` entry: disable (``enabled: false``) or suppress by src/dst.

    Exactly one of ``detection`` (a category) and ``sid`` is set. ``src``/``dst``
    are None for a disabling entry; a suppression has at least one (both must hit).
    """

    index: int  # position in the tuning list, for ``tuning[i]``
    line: int
    detection: str | None
    sid: int | None
    enabled: bool  # False: every alert of the target is dropped (and counted)
    src: Endpoint | None
    dst: Endpoint | None
    expires: datetime.date | None  # the last day it applies (UTC); None: no expiry
    reason: str
    expired: bool = False  # expires is before the day the policy was loaded

    @property
    def target(self) -> str:
        return f"sid {self.sid}" if self.sid is not None else str(self.detection)

    @property
    def action(self) -> str:
        if not self.enabled:
            return "disabled"
        sides = [f"{k} {e.text}" for k, e in (("src", self.src), ("dst", self.dst)) if e]
        return "suppress " + " ".join(sides)

    @property
    def label(self) -> str:
        """``tuning[0] (line 4): sid 1000101 disabled``, for summaries and comments."""
        return f"tuning[{self.index}] (line {self.line}): {self.target} {self.action}"

    def applies_to(self, category: str, sid: int) -> bool:
        return self.sid == sid if self.sid is not None else self.detection == category

    def hits(
        self,
        src_ip: str | None,
        dest_ip: str | None,
        src_mac: str | None,
        dest_mac: str | None,
    ) -> bool:
        """Whether an alert of the target with these endpoints is dropped by this entry."""
        if not self.enabled:
            return True
        if self.src is not None and not self.src.hits(src_ip, src_mac):
            return False
        return self.dst is None or self.dst.hits(dest_ip, dest_mac)

    def describe(self) -> dict[str, Any]:
        """The entry as ``--stats-json``, ``policy show`` and ``explain`` print it."""
        out: dict[str, Any] = {"entry": f"tuning[{self.index}]", "line": self.line}
        if self.sid is not None:
            out["sid"] = self.sid
        else:
            out["detection"] = self.detection
        if not self.enabled:
            out["enabled"] = False
        else:
            out["suppress"] = {k: e.text for k, e in (("src", self.src), ("dst", self.dst)) if e}
        out["expires"] = self.expires.isoformat() if self.expires else None
        out["reason"] = self.reason
        out["expired"] = self.expired
        return out


@dataclass(frozen=True, slots=True)
class Router:
    """A legitimate router on the link, as the policy file states it."""

    address: bytes  # 16-byte packed link-local IPv6 address
    mac: bytes | None  # 6 bytes; None = any MAC
    name: str | None
    prefixes: tuple[ipaddress.IPv6Network, ...]
    rdnss: tuple[bytes, ...]  # 16-byte packed IPv6 addresses
    dnssl: tuple[str, ...]
    routes: tuple[ipaddress.IPv6Network, ...]
    mtu: int | None
    line: int  # 1-based line of the entry in the policy file, for evidence
    preference: int | None = None  # -1 low, 0 medium, 1 high (RFC 4191)
    managed: bool | None = None  # the RA's M flag
    other: bool | None = None  # the RA's O flag
    checked: frozenset[str] = frozenset()  # CHECKED_KEYS present in the entry


@dataclass(frozen=True, slots=True)
class Dhcpv6Server:
    """A legitimate DHCPv6 server on the link (``dhcpv6_servers``)."""

    address: bytes  # 16-byte packed IPv6 source of its Advertise/Reply
    mac: bytes  # 6 bytes
    line: int  # 1-based line of the entry in the policy file, for evidence
    duid: bytes | None = None  # its Server Identifier; None = not checked
    name: str | None = None
    dns: tuple[bytes, ...] | None = None  # DNS servers it may hand out; None = not checked
    domains: tuple[str, ...] | None = None  # search domains it may hand out (lower-case)


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy. ``routers``: None = learn them, ``()`` = no router is legitimate."""

    source: str  # "file:<path>" or "learned"
    path: str | None
    routers: tuple[Router, ...] | None
    monitored: tuple[ipaddress.IPv6Network, ...] = ()
    dark: tuple[ipaddress.IPv6Network, ...] = ()
    tunnels_allowed: tuple[IPNetwork, ...] = ()
    # category -> threshold name -> value, as written (int stays int)
    thresholds: dict[str, dict[str, float | int]] = field(default_factory=dict)
    sha256: str = ""  # of the file's bytes; "" for the empty (learned) policy
    tuning: tuple[Tuning, ...] = ()  # every entry, expired ones included (see ``active_tuning``)
    # None = learn the DHCPv6 servers as routers are learned; () = no server is legitimate.
    dhcpv6_servers: tuple[Dhcpv6Server, ...] | None = None
    # ``dns``: our authoritative servers (packed, 4 or 16 bytes; empty = every DNS
    # server the sensor sees) and the ip6.arpa zones they serve (lower-case, no dot).
    dns_authoritative: tuple[bytes, ...] = ()
    dns_zones: tuple[str, ...] = ()

    @property
    def active_tuning(self) -> tuple[Tuning, ...]:
        """The tuning entries in force: those not expired."""
        return tuple(t for t in self.tuning if not t.expired)

    def tuning_warnings(self) -> list[str]:
        """One line per expired tuning entry, for stderr: it is not applied."""
        return [
            f"{self.path}:{t.line}: tuning[{t.index}]: {t.target} {t.action} expired on "
            f"{t.expires} ({t.reason}); not applied: renew 'expires' or remove the entry"
            for t in self.tuning
            if t.expired
        ]

    @property
    def learns_dhcpv6_servers(self) -> bool:
        """True when the policy names no DHCPv6 servers and they are to be learned."""
        return self.dhcpv6_servers is None

    @property
    def learns_routers(self) -> bool:
        """True when the policy names no routers and they are to be learned."""
        return self.routers is None

    def learning_notice(self, learn_window_s: float | None) -> str | None:
        """One line for stderr when routers are learned (why, how long, what to do), or None.

        ``learn_window_s`` is the resolved ``LEARN_WINDOW`` threshold (None: not known).
        """
        if not self.learns_routers:
            return None
        why = "no --policy given" if self.path is None else f"{self.path} has no 'routers' key"
        window = (
            f"the first {_fmt(learn_window_s)} s of traffic"
            if learn_window_s is not None
            else "the learning window"
        )
        # MLD queriers are judged against the same routers; DHCPv6 servers are learned
        # in the same window unless the policy lists them.
        also = "MLD queriers" + ("" if self.dhcpv6_servers is not None else " and DHCPv6 servers")
        return (
            f"routers are learned, not checked against a policy ({why}): any router that "
            f"advertises in {window} is trusted, a rogue one included ({also} are learned "
            "the same way); list the legitimate routers under 'routers:' in a --policy FILE"
        )

    def summary(self, learn_window_s: float | None) -> dict[str, Any]:
        """What the run's summary (``--stats-json``, live stats) says about the policy."""
        return {
            "file": self.path,
            "sha256": self.sha256 or None,
            "routers": "learned" if self.learns_routers else "listed",
            "listed_routers": len(self.routers or ()),
            "learn_window_s": learn_window_s if self.learns_routers else None,
            "notice": self.learning_notice(learn_window_s),
        }

    def routers_by_address(self) -> dict[bytes, list[Router]]:
        """Policy routers keyed by packed address (``load_policy`` allows one per address)."""
        out: dict[bytes, list[Router]] = {}
        for router in self.routers or ():
            out.setdefault(router.address, []).append(router)
        return out

    def routers_at(self, address: bytes) -> tuple[Router, ...]:
        """The policy routers with this packed address, in file order."""
        return tuple(r for r in self.routers or () if r.address == address)

    def router_keys(self) -> frozenset[tuple[bytes, bytes | None]]:
        """Every policy router as ``(packed address, mac or None)``."""
        return frozenset((r.address, r.mac) for r in self.routers or ())


def policy_line(summary: Mapping[str, Any]) -> str:
    """A ``Policy.summary`` in a few words, for the replay summary and the live log."""
    where = summary["file"] or "none"
    if summary["routers"] == "learned":
        window = summary["learn_window_s"]
        during = f" from the first {window:g} s of traffic" if window is not None else ""
        return f"policy {where}: routers learned{during}, not listed (see --policy)"
    n = summary["listed_routers"]
    return f"policy {where}: {n} router{'' if n == 1 else 's'} listed"


def empty_policy() -> Policy:
    """No policy file: routers are learned, nothing else is configured."""
    return Policy(source="learned", path=None, routers=None)


def load_policy(
    path: str,
    known_thresholds: KnownThresholds | None = None,
    known_signatures: KnownSignatures | None = None,
    today: datetime.date | None = None,
) -> Policy:
    """Load and validate a policy file; raises ``PolicyError`` naming file, line and key.

    ``known_thresholds`` maps each category to its tunables (anything with ``minimum``,
    ``maximum`` and ``integer``); when given, overrides must name one of them and fit its
    range, and ``tuning`` detections must be one of its categories. When None,
    ``thresholds`` is only checked to be a mapping of mappings of numbers.
    ``known_signatures`` (sid -> category), when given, is what ``tuning`` sids must be.
    ``today`` (default: the UTC date now) decides which tuning entries have expired.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc.strerror or exc}") from exc
    root = _compose(path, raw)
    ck = _Checker(path)
    top = {} if root is None or _is_null(root) else ck.mapping(root, "", TOP_KEYS)

    routers: tuple[Router, ...] | None = None
    if "routers" in top:
        routers = _routers(ck, top["routers"])
    dhcpv6_servers: tuple[Dhcpv6Server, ...] | None = None
    if "dhcpv6_servers" in top:
        dhcpv6_servers = _dhcpv6_servers(ck, top["dhcpv6_servers"])
    prefixes = ck.mapping(top["prefixes"], "prefixes", PREFIX_KEYS) if "prefixes" in top else {}
    dns_authoritative, dns_zones = _dns(ck, top["dns"]) if "dns" in top else ((), ())
    tunnels = ck.mapping(top["tunnels"], "tunnels", TUNNEL_KEYS) if "tunnels" in top else {}
    monitored = ck.located_prefixes(prefixes.get("monitored"), "prefixes.monitored")
    dark = ck.located_prefixes(prefixes.get("dark"), "prefixes.dark")
    _monitored_not_dark(path, monitored, dark)
    return Policy(
        source=f"file:{path}",
        path=path,
        routers=routers,
        monitored=tuple(p.net for p in monitored),
        dark=tuple(p.net for p in dark),
        tunnels_allowed=ck.endpoints(tunnels.get("allowed"), "tunnels.allowed"),
        thresholds=_thresholds(ck, top["thresholds"], known_thresholds)
        if "thresholds" in top
        else {},
        sha256=hashlib.sha256(raw).hexdigest(),
        tuning=_tuning(
            ck,
            top["tuning"],
            known_thresholds,
            known_signatures,
            today or datetime.datetime.now(datetime.UTC).date(),
        )
        if "tuning" in top
        else (),
        dhcpv6_servers=dhcpv6_servers,
        dns_authoritative=dns_authoritative,
        dns_zones=dns_zones,
    )


# -- reading the YAML --------------------------------------------------------


def _compose(path: str, raw: bytes) -> yaml.Node | None:
    """The document's root node (None for an empty file); syntax errors carry their line."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise PolicyError(f"{path}:{line}: policy is not UTF-8 text ({exc.reason})") from None
    try:
        depth = 0  # the parser is iterative; check nesting before the recursive composer runs
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else 1
                    raise PolicyError(
                        f"{path}:{line}: YAML: nested more than {MAX_DEPTH} levels deep"
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = "; ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise PolicyError(_one_line(f"{path}:{line}: YAML syntax error: {problem}")) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, int(exc.position)) + 1
        problem = f"character #x{int(exc.character):04X} is not allowed in YAML ({exc.reason})"
        raise PolicyError(f"{path}:{line}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(_one_line(f"{path}:1: YAML syntax error: {exc}")) from None


def _one_line(message: str) -> str:
    return message.replace("\r", "\\r").replace("\n", "\\n")


def _is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _describe(node: yaml.Node) -> str:
    """What a node is, for 'expected X, got Y'."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    value = str(node.value)
    kinds = {
        _STR: f"a string ({value!r})",
        _INT: f"an integer ({value})",
        _FLOAT: f"a number with a fraction ({value})",
        _BOOL: f"a boolean ({value})",
        _NULL: "nothing",
    }
    return kinds.get(node.tag, f"a {node.tag} value ({value!r})")


def _join(where: str, key: str) -> str:
    shown = key if _PLAIN_KEY.fullmatch(key) else repr(key)
    return f"{where}.{shown}" if where else shown


def _shown(node: yaml.Node, value: float | int) -> str:
    """A number as written, with its value when YAML read it differently (``01500`` is octal)."""
    written = str(node.value)
    return written if written == str(value) else f"{written} (= {value})"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**63 else repr(x)


@dataclass(frozen=True, slots=True)
class _Located:
    """A validated prefix with where it was written."""

    net: ipaddress.IPv6Network
    where: str  # key path, e.g. prefixes.dark[0]
    line: int


class _Checker:
    """Typed accessors over composed nodes; every failure names file, line and key path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._flat: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}

    def fail(self, node: yaml.Node, where: str, problem: str) -> PolicyError:
        return PolicyError(
            _one_line(f"{self.path}:{_line(node)}: {where or '(top level)'}: {problem}")
        )

    def expected(self, node: yaml.Node, where: str, what: str, hint: str = "") -> PolicyError:
        extra = f" ({hint})" if hint and _is_null(node) else ""
        if isinstance(node, yaml.MappingNode) and len(node.value) == 1:
            key, value = node.value[0]
            if _is_null(value) and str(getattr(key, "value", "")).endswith(":"):
                # `- 2001:db8::` is YAML for {"2001:db8:": null}
                extra = " (quote values that end in ':', e.g. '2001:db8::/64')"
        return self.fail(node, where, f"expected {what}, got {_describe(node)}{extra}")

    # -- structure ---------------------------------------------------------

    def mapping(
        self, node: yaml.Node, where: str, allowed: tuple[str, ...] | None
    ) -> dict[str, yaml.Node]:
        """Key -> value node. Unknown and duplicate keys are errors; ``<<`` merges apply."""
        if not isinstance(node, yaml.MappingNode):
            raise self.expected(node, where, "a mapping", "write {} for none")
        out: dict[str, yaml.Node] = {}
        for key, (key_node, value_node) in self._flatten(node, where, frozenset()).items():
            if allowed is not None and key not in allowed:
                listed = ", ".join(allowed) or "none"
                raise self.fail(key_node, _join(where, key), f"unknown key (allowed: {listed})")
            out[key] = value_node
        return out

    def _flatten(
        self, node: yaml.MappingNode, where: str, active: frozenset[int]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping's own keys, then keys merged in with ``<<`` that it does not set itself."""
        cached = self._flat.get(id(node))
        if cached is not None:
            return cached
        own: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        sources: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE:
                sources.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                raise self.fail(key_node, where, f"keys must be strings, got {_describe(key_node)}")
            key = str(key_node.value)
            if key in own:
                first = _line(own[key][0])
                raise self.fail(
                    key_node, _join(where, key), f"duplicate key (first on line {first})"
                )
            own[key] = (key_node, value_node)
        merged = dict(own)
        for value_node in sources:
            at = f"{where}.<<" if where else "<<"
            items = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for src in items:
                if not isinstance(src, yaml.MappingNode):
                    raise self.expected(src, at, "a mapping or a list of mappings to merge")
                if id(src) in active or src is node:
                    raise self.fail(src, at, "a mapping cannot merge itself")
                for key, pair in self._flatten(src, where, active | {id(node)}).items():
                    merged.setdefault(key, pair)
        self._flat[id(node)] = merged
        return merged

    def sequence(
        self, node: yaml.Node, where: str, hint: str = "write [] for none"
    ) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.expected(node, where, "a list", hint)
        return list(node.value)

    # -- scalars -----------------------------------------------------------

    def string(self, node: yaml.Node, where: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
            raise self.expected(node, where, "a string")
        return str(node.value)

    def text(self, node: yaml.Node, where: str, what: str) -> str:
        """The written text of an address-like scalar.

        Plain scalars are taken as written whatever YAML 1.1 resolved them to, so an
        unquoted ``12:34:56:00:01:01`` (a base-60 integer to YAML) is still a MAC.
        """
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            raise self.expected(node, where, what)
        return str(node.value)

    def integer(self, node: yaml.Node, where: str) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT:
            raise self.expected(node, where, "an integer")
        return _CONSTRUCT.construct_yaml_int(node)

    def boolean(self, node: yaml.Node, where: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
            raise self.expected(node, where, "true or false")
        return bool(_CONSTRUCT.construct_yaml_bool(node))

    def number(self, node: yaml.Node, where: str) -> float | int:
        if isinstance(node, yaml.ScalarNode) and node.tag == _INT:
            return _CONSTRUCT.construct_yaml_int(node)
        if isinstance(node, yaml.ScalarNode) and node.tag == _FLOAT:
            value = _CONSTRUCT.construct_yaml_float(node)
            if not math.isfinite(value):
                raise self.fail(node, where, f"expected a finite number, got {node.value}")
            return value
        raise self.expected(node, where, "a number")

    # -- addresses ---------------------------------------------------------

    def _no_zone(self, node: yaml.Node, where: str, text: str) -> None:
        if "%" in text:
            raise self.fail(
                node, where, f"{text!r} has a zone index (%...); write the address without it"
            )

    def ipv6_address(self, node: yaml.Node, where: str) -> ipaddress.IPv6Address:
        text = self.text(node, where, "an IPv6 address")
        self._no_zone(node, where, text)
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            raise self.fail(node, where, f"{text!r} is not an IPv6 address") from None

    def network(self, node: yaml.Node, where: str, text: str, what: str) -> IPNetwork:
        self._no_zone(node, where, text)
        try:
            return ipaddress.ip_network(text, strict=True)
        except ValueError:
            pass
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise self.fail(node, where, f"{text!r} is not {what}") from None
        raise self.fail(
            node, where, f"{text!r} has host bits set (the network is {loose}; write that)"
        )

    def ipv6_prefix(self, node: yaml.Node, where: str) -> ipaddress.IPv6Network:
        text = self.text(node, where, "an IPv6 prefix")
        if "/" not in text:
            raise self.fail(
                node, where, f"{text!r} is not an IPv6 prefix (no /length, e.g. 2001:db8:1::/64)"
            )
        net = self.network(node, where, text, "an IPv6 prefix")
        if not isinstance(net, ipaddress.IPv6Network):
            raise self.fail(node, where, f"{text!r} is an IPv4 prefix; expected an IPv6 prefix")
        return net

    def ipv6_prefixes(
        self, node: yaml.Node | None, where: str
    ) -> tuple[ipaddress.IPv6Network, ...]:
        if node is None:
            return ()
        items = self.sequence(node, where)
        return tuple(self.ipv6_prefix(n, f"{where}[{i}]") for i, n in enumerate(items))

    def located_prefixes(self, node: yaml.Node | None, where: str) -> list[_Located]:
        """``ipv6_prefixes`` with each entry's key path and line, for errors across lists."""
        if node is None:
            return []
        out: list[_Located] = []
        for i, item in enumerate(self.sequence(node, where)):
            at = f"{where}[{i}]"
            out.append(_Located(self.ipv6_prefix(item, at), at, _line(item)))
        return out

    def endpoints(self, node: yaml.Node | None, where: str) -> tuple[IPNetwork, ...]:
        """IPv4 or IPv6 addresses or prefixes; an address becomes a /32 or /128."""
        if node is None:
            return ()
        out: list[IPNetwork] = []
        for i, item in enumerate(self.sequence(node, where)):
            at = f"{where}[{i}]"
            text = self.text(item, at, "an IPv4 or IPv6 address or prefix")
            out.append(self.network(item, at, text, "an IPv4 or IPv6 address or prefix"))
        return tuple(out)

    def mac(self, node: yaml.Node, where: str) -> bytes:
        text = self.text(node, where, "a MAC address")
        if not _MAC.fullmatch(text):
            raise self.fail(
                node,
                where,
                f"{text!r} is not a MAC address (expected six hex octets like 02:00:00:00:01:01)",
            )
        mac = bytes.fromhex(text.replace(":", "").replace("-", ""))
        if mac[0] & 1:
            raise self.fail(
                node, where, f"{text!r} is a multicast MAC address; a router's MAC is unicast"
            )
        return mac

    def domain(self, node: yaml.Node, where: str) -> str:
        name = self.string(node, where)
        labels = (name[:-1] if name.endswith(".") else name).split(".")
        ok = 0 < len(name) <= 254 and all(
            0 < len(label) <= 63
            and set(label) <= _LABEL_CHARS
            and not label.startswith("-")
            and not label.endswith("-")
            for label in labels
        )
        if not ok:
            raise self.fail(
                node, where, f"{name!r} is not a domain name (ASCII labels like corp.example)"
            )
        return name


# -- sections ------------------------------------------------------------------


def _routers(ck: _Checker, node: yaml.Node) -> tuple[Router, ...]:
    hint = "write [] for no legitimate router, or remove the key to learn routers"
    routers = tuple(
        _router(ck, item, f"routers[{i}]")
        for i, item in enumerate(ck.sequence(node, "routers", hint))
    )
    # One entry per address: the RA detection and the ND detection each look a policy
    # router up by its address, and two entries (another MAC, or one with a MAC and one
    # without) would let them pick different ones: an RA accepted from a MAC that the ND
    # side then reports as a spoofed router address (sid 1000221).
    first: dict[bytes, int] = {}
    for i, router in enumerate(routers):
        j = first.setdefault(router.address, i)
        if j == i:
            continue
        other = routers[j]
        if router.mac == other.mac:
            macs = "same mac" if router.mac is not None else "both without mac"
        else:
            macs = f"mac {_mac_text(other.mac)} there, {_mac_text(router.mac)} here"
        raise PolicyError(
            f"{ck.path}:{router.line}: routers[{i}]: duplicate router address "
            f"{ipaddress.IPv6Address(router.address)}: already routers[{j}] "
            f"(line {other.line}; {macs}); list each router address once, with its one MAC"
        )
    return routers


def _dhcpv6_servers(ck: _Checker, node: yaml.Node) -> tuple[Dhcpv6Server, ...]:
    hint = "write [] for no legitimate DHCPv6 server, or remove the key to learn them"
    servers = tuple(
        _dhcpv6_server(ck, item, f"dhcpv6_servers[{i}]")
        for i, item in enumerate(ck.sequence(node, "dhcpv6_servers", hint))
    )
    # One entry per (address, MAC): the reducer looks a server up by both.
    first: dict[tuple[bytes, bytes], int] = {}
    for i, server in enumerate(servers):
        j = first.setdefault((server.address, server.mac), i)
        if j != i:
            raise PolicyError(
                f"{ck.path}:{server.line}: dhcpv6_servers[{i}]: duplicate DHCPv6 server "
                f"{ipaddress.IPv6Address(server.address)} {_mac_text(server.mac)}: already "
                f"dhcpv6_servers[{j}] (line {servers[j].line}); list each server once"
            )
    return servers


def _dhcpv6_server(ck: _Checker, node: yaml.Node, where: str) -> Dhcpv6Server:
    keys = ck.mapping(node, where, DHCPV6_SERVER_KEYS)
    for required in ("address", "mac"):
        if required not in keys:
            raise ck.fail(node, where, f"missing required key '{required}'")

    def at(key: str) -> str:
        return f"{where}.{key}"

    address = ck.ipv6_address(keys["address"], at("address"))
    if address.is_multicast or address.is_unspecified:
        raise ck.fail(
            keys["address"],
            at("address"),
            f"'{address}' cannot be a DHCPv6 server's source address (unicast; RFC 8415 18.3)",
        )
    duid: bytes | None = None
    if "duid" in keys:
        text = ck.text(keys["duid"], at("duid"), "a DUID (hex octets)")
        digits = text.replace(":", "").replace("-", "")
        ok = len(digits) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in digits)
        if not ok or not 2 <= len(digits) // 2 <= 130:
            raise ck.fail(
                keys["duid"],
                at("duid"),
                f"{text!r} is not a DUID (2 to 130 hex octets like 00:03:00:01:02:00:00:00:02:01;"
                " RFC 8415 11)",
            )
        duid = bytes.fromhex(digits)
    dns: tuple[bytes, ...] | None = None
    if "dns" in keys:
        servers = []
        for i, n in enumerate(ck.sequence(keys["dns"], at("dns"))):
            w = f"{at('dns')}[{i}]"
            server = ck.ipv6_address(n, w)
            if server.is_multicast or server.is_unspecified:
                raise ck.fail(n, w, f"'{server}' cannot be a DNS server address")
            servers.append(server.packed)
        dns = tuple(servers)
    domains: tuple[str, ...] | None = None
    if "domains" in keys:
        domains = tuple(
            ck.domain(n, f"{at('domains')}[{i}]").rstrip(".").lower()
            for i, n in enumerate(ck.sequence(keys["domains"], at("domains")))
        )
    name: str | None = None
    if "name" in keys:
        name = ck.string(keys["name"], at("name"))
        if not name.strip():
            raise ck.fail(keys["name"], at("name"), "empty name; omit the key instead")
    return Dhcpv6Server(
        address=address.packed,
        mac=ck.mac(keys["mac"], at("mac")),
        line=_line(node),
        duid=duid,
        name=name,
        dns=dns,
        domains=domains,
    )


def _mac_text(mac: bytes | None) -> str:
    return "none" if mac is None else ":".join(f"{b:02x}" for b in mac)


def _monitored_not_dark(path: str, monitored: list[_Located], dark: list[_Located]) -> None:
    """A prefix both monitored (hosts live there) and dark (no host does) is a contradiction.

    Reported at the later of the two entries, naming the earlier one's line; the first
    such pair in file order, so the message does not depend on list order in memory.
    """
    pairs: list[tuple[_Located, _Located]] = []
    for m in monitored:
        for d in dark:
            if m.net.overlaps(d.net):
                earlier, later = sorted((m, d), key=lambda p: (p.line, p.where))
                pairs.append((later, earlier))
    if not pairs:
        return
    later, earlier = min(pairs, key=lambda p: (p[0].line, p[0].where, p[1].line, p[1].where))
    if later.net == earlier.net:
        relation = "is the same prefix as"
    elif later.net.subnet_of(earlier.net):
        relation = "is inside"
    else:
        relation = "contains"
    raise PolicyError(
        f"{path}:{later.line}: {later.where}: {later.net} {relation} {earlier.where} "
        f"{earlier.net} (line {earlier.line}); a prefix cannot be both monitored and dark"
    )


def _router(ck: _Checker, node: yaml.Node, where: str) -> Router:
    keys = ck.mapping(node, where, ROUTER_KEYS)
    if "address" not in keys:
        raise ck.fail(node, where, "missing required key 'address'")

    def at(key: str) -> str:
        return f"{where}.{key}"

    def items(key: str) -> list[tuple[str, yaml.Node]]:
        if key not in keys:
            return []
        return [(f"{at(key)}[{i}]", n) for i, n in enumerate(ck.sequence(keys[key], at(key)))]

    address = ck.ipv6_address(keys["address"], at("address"))
    if not address.is_link_local:
        raise ck.fail(
            keys["address"],
            at("address"),
            f"'{address}' is not link-local (RAs come from link-local addresses, "
            "fe80::/10; RFC 4861 4.2)",
        )
    rdnss: list[bytes] = []
    for w, n in items("rdnss"):
        server = ck.ipv6_address(n, w)
        if server.is_multicast or server.is_unspecified:
            raise ck.fail(n, w, f"'{server}' cannot be a DNS server address")
        rdnss.append(server.packed)
    mtu: int | None = None
    if "mtu" in keys:
        mtu = ck.integer(keys["mtu"], at("mtu"))
        lo, hi = MTU_RANGE
        if not lo <= mtu <= hi:
            shown = _shown(keys["mtu"], mtu)
            raise ck.fail(
                keys["mtu"], at("mtu"), f"{shown} is outside the allowed range {lo}..{hi}"
            )
    name: str | None = None
    if "name" in keys:
        name = ck.string(keys["name"], at("name"))
        if not name.strip():
            raise ck.fail(keys["name"], at("name"), "empty name; omit the key instead")
    preference: int | None = None
    if "preference" in keys:
        word = ck.string(keys["preference"], at("preference"))
        if word not in PREFERENCES:
            raise ck.fail(
                keys["preference"],
                at("preference"),
                f"{word!r} is not a router preference (low, medium or high; RFC 4191)",
            )
        preference = PREFERENCES[word]
    return Router(
        address=address.packed,
        mac=ck.mac(keys["mac"], at("mac")) if "mac" in keys else None,
        name=name,
        prefixes=ck.ipv6_prefixes(keys.get("prefixes"), at("prefixes")),
        rdnss=tuple(rdnss),
        dnssl=tuple(ck.domain(n, w) for w, n in items("dnssl")),
        routes=ck.ipv6_prefixes(keys.get("routes"), at("routes")),
        mtu=mtu,
        line=_line(node),
        preference=preference,
        managed=ck.boolean(keys["managed"], at("managed")) if "managed" in keys else None,
        other=ck.boolean(keys["other"], at("other")) if "other" in keys else None,
        checked=frozenset(k for k in CHECKED_KEYS if k in keys),
    )


def _thresholds(
    ck: _Checker, node: yaml.Node, known: KnownThresholds | None
) -> dict[str, dict[str, float | int]]:
    out: dict[str, dict[str, float | int]] = {}
    categories = tuple(sorted(known)) if known is not None else None
    for category, cat_node in ck.mapping(node, "thresholds", categories).items():
        where = _join("thresholds", category)
        specs = known[category] if known is not None else None
        names = tuple(sorted(specs)) if specs is not None else None
        values: dict[str, float | int] = {}
        for name, value_node in ck.mapping(cat_node, where, names).items():
            at = _join(where, name)
            value = ck.number(value_node, at)
            if specs is not None:
                _check_range(ck, value_node, at, value, specs[name])
            values[name] = value
        out[category] = values
    return out


def _check_range(
    ck: _Checker, node: yaml.Node, where: str, value: float | int, spec: ThresholdLike
) -> None:
    if spec.integer and not isinstance(value, int):
        raise ck.fail(node, where, f"expected an integer, got {_describe(node)}")
    lo, hi = spec.minimum, spec.maximum
    if (lo is None or value >= lo) and (hi is None or value <= hi):
        return
    if hi is None:
        allowed = f">= {_fmt(lo or 0)}"
    elif lo is None:
        allowed = f"<= {_fmt(hi)}"
    else:
        allowed = f"{_fmt(lo)}..{_fmt(hi)}"
    raise ck.fail(node, where, f"{_shown(node, value)} is outside the allowed range {allowed}")


def _tuning(
    ck: _Checker,
    node: yaml.Node,
    known: KnownThresholds | None,
    sids: KnownSignatures | None,
    today: datetime.date,
) -> tuple[Tuning, ...]:
    categories = sorted(c for c in known if c != "decoder") if known is not None else None
    return tuple(
        _tuning_entry(ck, item, i, categories, sids, today)
        for i, item in enumerate(ck.sequence(node, "tuning"))
    )


def _tuning_entry(
    ck: _Checker,
    node: yaml.Node,
    index: int,
    categories: list[str] | None,
    sids: KnownSignatures | None,
    today: datetime.date,
) -> Tuning:
    where = f"tuning[{index}]"
    keys = ck.mapping(node, where, TUNING_KEYS)

    def at(key: str) -> str:
        return f"{where}.{key}"

    if ("detection" in keys) == ("sid" in keys):
        raise ck.fail(node, where, "give exactly one of 'detection' (a category) or 'sid'")
    detection: str | None = None
    sid: int | None = None
    if "detection" in keys:
        detection = ck.string(keys["detection"], at("detection"))
        if categories is not None and detection not in categories:
            raise ck.fail(
                keys["detection"],
                at("detection"),
                f"{detection!r} is not a detection (known: {', '.join(categories)})",
            )
    else:
        sid = ck.integer(keys["sid"], at("sid"))
        if sids is not None and sid not in sids:
            raise ck.fail(
                keys["sid"],
                at("sid"),
                f"{sid} is not a v6sentry signature (see `v6sentry rules matrix` for the sids)",
            )
    if ("enabled" in keys) == ("suppress" in keys):
        raise ck.fail(
            node, where, "give exactly one of 'enabled: false' (disable) or 'suppress' (src/dst)"
        )
    src = dst = None
    if "enabled" in keys:
        if ck.boolean(keys["enabled"], at("enabled")):
            raise ck.fail(
                keys["enabled"],
                at("enabled"),
                "enabled: true is the default; write false to disable, or remove the entry",
            )
    else:
        sides = ck.mapping(keys["suppress"], at("suppress"), SUPPRESS_KEYS)
        if not sides:
            raise ck.fail(keys["suppress"], at("suppress"), "give 'src', 'dst' or both")
        src = _endpoint(ck, sides["src"], at("suppress.src")) if "src" in sides else None
        dst = _endpoint(ck, sides["dst"], at("suppress.dst")) if "dst" in sides else None
    if "reason" not in keys:
        raise ck.fail(node, where, "missing required key 'reason' (why the alerts may go)")
    reason = " ".join(ck.string(keys["reason"], at("reason")).split())
    if not reason:
        raise ck.fail(keys["reason"], at("reason"), "empty reason; say why the alerts may go")
    expires: datetime.date | None = None
    if "expires" in keys:
        text = ck.text(keys["expires"], at("expires"), "a date (YYYY-MM-DD)")
        try:
            if not _DATE.fullmatch(text):
                raise ValueError
            expires = datetime.date.fromisoformat(text)
        except ValueError:
            raise ck.fail(
                keys["expires"], at("expires"), f"{text!r} is not a date (YYYY-MM-DD)"
            ) from None
    return Tuning(
        index=index,
        line=_line(node),
        detection=detection,
        sid=sid,
        enabled="enabled" not in keys,
        src=src,
        dst=dst,
        expires=expires,
        reason=reason,
        expired=expires is not None and expires < today,
    )


def _endpoint(ck: _Checker, node: yaml.Node, where: str) -> Endpoint:
    """A MAC (multicast allowed: a destination may be one) or an address or prefix."""
    what = "an IPv6 or IPv4 prefix or address, or a MAC address"
    text = ck.text(node, where, what)
    if _MAC.fullmatch(text):
        return Endpoint(text.lower().replace("-", ":"), None, text.lower().replace("-", ":"))
    net = ck.network(node, where, text, what)
    return Endpoint(str(net), net, None)


def ip6_arpa_zone(name: str) -> tuple[bytes, int] | None:
    """The nibble prefix an ip6.arpa zone name stands for: (16 packed bytes, nibble
    count), or None when the name is not ``<hex nibbles>.ip6.arpa`` (RFC 3596 2.5)."""
    name = name.lower().rstrip(".")
    if name == "ip6.arpa":
        return bytes(16), 0
    if not name.endswith(".ip6.arpa"):
        return None
    labels = name[: -len(".ip6.arpa")].split(".")
    if len(labels) > 32 or any(len(x) != 1 or x not in "0123456789abcdef" for x in labels):
        return None
    digits = "".join(reversed(labels))
    return bytes.fromhex(digits.ljust(32, "0")), len(digits)


def _dns(ck: _Checker, node: yaml.Node) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    keys = ck.mapping(node, "dns", DNS_KEYS)
    servers: list[bytes] = []
    if "authoritative" in keys:
        for i, n in enumerate(ck.sequence(keys["authoritative"], "dns.authoritative")):
            where = f"dns.authoritative[{i}]"
            text = ck.text(n, where, "an IPv6 or IPv4 address")
            ck._no_zone(n, where, text)
            try:
                addr = ipaddress.ip_address(text)
            except ValueError:
                raise ck.fail(n, where, f"{text!r} is not an IP address") from None
            if addr.is_multicast or addr.is_unspecified:
                raise ck.fail(n, where, f"'{addr}' cannot be a DNS server address")
            if addr.packed in servers:
                raise ck.fail(n, where, f"duplicate address '{addr}'; list each server once")
            servers.append(addr.packed)
    zones: list[str] = []
    if "zones" in keys:
        for i, n in enumerate(ck.sequence(keys["zones"], "dns.zones")):
            where = f"dns.zones[{i}]"
            name = ck.string(n, where).lower().rstrip(".")
            parsed = ip6_arpa_zone(name)
            if parsed is None or parsed[1] >= 32:
                raise ck.fail(
                    n,
                    where,
                    f"{name!r} is not an ip6.arpa zone (reversed hex nibbles, fewer than 32, "
                    "like 8.b.d.0.1.0.0.2.ip6.arpa for 2001:db8::/32; RFC 3596 2.5)",
                )
            if name in zones:
                raise ck.fail(n, where, f"duplicate zone '{name}'; list each zone once")
            zones.append(name)
    return tuple(servers), tuple(zones)
