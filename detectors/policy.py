"""The site policy (``--policy FILE``): loading, validation, lookups.

Owns the policy contract: which keys exist, what their values must be, and
errors that name the file, the key path and its line. Detections read the
resulting ``Policy``; this module judges no traffic. The YAML is composed
into nodes (not loaded straight to Python) so every value keeps its line.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+$")

TOP_KEYS = ("routers", "prefixes", "tunnels", "thresholds")
ROUTER_KEYS = ("address", "mac", "name", "prefixes", "rdnss", "dnssl", "routes", "mtu")
PREFIX_KEYS = ("monitored", "dark")
TUNNEL_KEYS = ("allowed",)


class PolicyError(Exception):
    """One line: ``file:line: key.path: problem``."""


class ThresholdLike(Protocol):
    """What policy validation needs to know about a tunable."""

    @property
    def minimum(self) -> float | None: ...
    @property
    def maximum(self) -> float | None: ...
    @property
    def integer(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Router:
    """A legitimate router on the link."""

    address: bytes  # packed link-local IPv6
    mac: bytes | None
    name: str | None
    prefixes: tuple[ipaddress.IPv6Network, ...]
    rdnss: tuple[bytes, ...]
    dnssl: tuple[str, ...]
    routes: tuple[ipaddress.IPv6Network, ...]
    mtu: int | None
    line: int


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy. ``routers is None`` means: learn them."""

    source: str  # "file:<path>" or "learned"
    path: str | None
    routers: tuple[Router, ...] | None
    monitored: tuple[ipaddress.IPv6Network, ...] = ()
    dark: tuple[ipaddress.IPv6Network, ...] = ()
    tunnels_allowed: tuple[IPNetwork, ...] = ()
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    sha256: str = ""

    def routers_by_address(self) -> dict[bytes, list[Router]]:
        out: dict[bytes, list[Router]] = {}
        for router in self.routers or ():
            out.setdefault(router.address, []).append(router)
        return out


def empty_policy() -> Policy:
    """No policy file: routers are learned, nothing else is configured."""
    return Policy(source="learned", path=None, routers=None)


class _Loader:
    """Validates composed YAML nodes, raising errors that carry file and line."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, where: str, problem: str) -> PolicyError:
        line = node.start_mark.line + 1 if node is not None else 1
        return PolicyError(f"{self.path}:{line}: {where}: {problem}")

    def mapping(
        self, node: yaml.Node, where: str, allowed: tuple[str, ...] | None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, f"expected a mapping, got {_kind(node)}")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                raise self.fail(key_node, where, "keys must be plain strings")
            path = f"{where}.{key}" if where else key
            if key in out:
                raise self.fail(key_node, path, "duplicate key")
            if allowed is not None and key not in allowed:
                raise self.fail(key_node, path, f"unknown key (allowed: {', '.join(allowed)})")
            out[key] = (key_node, value_node)
        return out

    def sequence(self, node: yaml.Node, where: str) -> list[yaml.Node]:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, where, f"expected a list, got {_kind(node)}")
        return list(node.value)

    def string(self, node: yaml.Node, where: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            raise self.fail(node, where, f"expected a string, got {_kind(node)}")
        return str(node.value)

    def integer(self, node: yaml.Node, where: str) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:int":
            raise self.fail(node, where, f"expected an integer, got {_kind(node)}")
        return int(yaml.safe_load(yaml.serialize(node)))

    def number(self, node: yaml.Node, where: str) -> float:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
        ):
            raise self.fail(node, where, f"expected a number, got {_kind(node)}")
        return float(yaml.safe_load(yaml.serialize(node)))

    def ipv6(self, node: yaml.Node, where: str) -> ipaddress.IPv6Address:
        text = self.string(node, where)
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            raise self.fail(node, where, f"'{text}' is not an IPv6 address") from None

    def network(self, node: yaml.Node, where: str, v6_only: bool = True) -> IPNetwork:
        text = self.string(node, where)
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            if "host bits set" in str(exc):
                raise self.fail(
                    node,
                    where,
                    f"'{text}' has host bits set (write the network address, e.g. 2001:db8:1::/64)",
                ) from None
            try:
                net = ipaddress.ip_network(ipaddress.ip_address(text))
            except ValueError:
                kind = "IPv6 prefix" if v6_only else "address or prefix"
                raise self.fail(node, where, f"'{text}' is not an {kind}") from None
        if v6_only and net.version != 6:
            raise self.fail(node, where, f"'{text}' is not an IPv6 prefix")
        return net

    def networks(self, node: yaml.Node, where: str, v6_only: bool = True) -> tuple[Any, ...]:
        return tuple(
            self.network(item, f"{where}[{i}]", v6_only)
            for i, item in enumerate(self.sequence(node, where))
        )

    def mac(self, node: yaml.Node, where: str) -> bytes:
        text = self.string(node, where)
        if not _MAC.match(text):
            raise self.fail(
                node,
                where,
                f"'{text}' is not a MAC address (expected six hex octets like 02:00:00:00:01:01)",
            )
        return bytes.fromhex(text.replace(":", "").replace("-", ""))


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.rsplit(":", 1)[-1]
    return f"{tag} {node.value!r}" if tag != "null" else "nothing"


def _router(ld: _Loader, node: yaml.Node, where: str) -> Router:
    keys = ld.mapping(node, where, ROUTER_KEYS)
    if "address" not in keys:
        raise ld.fail(node, where, "missing key 'address'")

    def get(key: str, parse: Callable[[yaml.Node, str], Any], default: Any) -> Any:
        return parse(keys[key][1], f"{where}.{key}") if key in keys else default

    address = ld.ipv6(keys["address"][1], f"{where}.address")
    if not address.is_link_local:
        raise ld.fail(
            keys["address"][1],
            f"{where}.address",
            f"'{address}' is not link-local (RAs come from fe80::/10, RFC 4861 4.2)",
        )
    rdnss = (
        tuple(
            ld.ipv6(n, f"{where}.rdnss[{i}]").packed
            for i, n in enumerate(ld.sequence(keys["rdnss"][1], f"{where}.rdnss"))
        )
        if "rdnss" in keys
        else ()
    )
    dnssl: list[str] = []
    if "dnssl" in keys:
        for i, n in enumerate(ld.sequence(keys["dnssl"][1], f"{where}.dnssl")):
            name = ld.string(n, f"{where}.dnssl[{i}]")
            if not _DOMAIN.match(name):
                raise ld.fail(n, f"{where}.dnssl[{i}]", f"'{name}' is not a domain name")
            dnssl.append(name)
    mtu = get("mtu", ld.integer, None)
    if mtu is not None and not 1280 <= mtu <= 65535:
        raise ld.fail(keys["mtu"][1], f"{where}.mtu", f"{mtu} outside 1280..65535")
    name = get("name", ld.string, None)
    return Router(
        address=address.packed,
        mac=get("mac", ld.mac, None),
        name=name,
        prefixes=get("prefixes", ld.networks, ()),
        rdnss=rdnss,
        dnssl=tuple(dnssl),
        routes=get("routes", ld.networks, ()),
        mtu=mtu,
        line=node.start_mark.line + 1,
    )


def _thresholds(
    ld: _Loader,
    node: yaml.Node,
    known: Mapping[str, Mapping[str, ThresholdLike]] | None,
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    allowed = tuple(sorted(known)) if known is not None else None
    for cat, (_, value) in ld.mapping(node, "thresholds", allowed).items():
        where = f"thresholds.{cat}"
        names = tuple(sorted(known[cat])) if known is not None else None
        values: dict[str, float] = {}
        for name, (_, vnode) in ld.mapping(value, where, names).items():
            w = f"{where}.{name}"
            number = ld.number(vnode, w)
            if known is not None:
                spec = known[cat][name]
                if spec.integer and number != int(number):
                    raise ld.fail(vnode, w, f"{number} must be a whole number")
                lo, hi = spec.minimum, spec.maximum
                if (lo is not None and number < lo) or (hi is not None and number > hi):
                    raise ld.fail(vnode, w, f"{number:g} outside the allowed range {lo}..{hi}")
            values[name] = number
        out[cat] = values
    return out


def load_policy(
    path: str, known_thresholds: Mapping[str, Mapping[str, ThresholdLike]] | None = None
) -> Policy:
    """Load and validate a policy file; raises ``PolicyError`` naming file, key and line."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc.strerror}") from exc
    try:
        root = yaml.compose(raw.decode("utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: policy is not UTF-8 text ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{path}:{line}: YAML syntax error: {problem}") from exc
    ld = _Loader(path)
    top = ld.mapping(root, "", TOP_KEYS) if root is not None else {}
    routers: tuple[Router, ...] | None = None
    if "routers" in top:
        routers = tuple(
            _router(ld, n, f"routers[{i}]")
            for i, n in enumerate(ld.sequence(top["routers"][1], "routers"))
        )
        seen: dict[tuple[bytes, bytes | None], int] = {}
        for i, r in enumerate(routers):
            if (r.address, r.mac) in seen:
                raise PolicyError(
                    f"{path}:{r.line}: routers[{i}]: same address and mac as "
                    f"routers[{seen[(r.address, r.mac)]}]"
                )
            seen[(r.address, r.mac)] = i
    prefixes = ld.mapping(top["prefixes"][1], "prefixes", PREFIX_KEYS) if "prefixes" in top else {}
    tunnels = ld.mapping(top["tunnels"][1], "tunnels", TUNNEL_KEYS) if "tunnels" in top else {}
    return Policy(
        source=f"file:{path}",
        path=path,
        routers=routers,
        monitored=ld.networks(prefixes["monitored"][1], "prefixes.monitored")
        if "monitored" in prefixes
        else (),
        dark=ld.networks(prefixes["dark"][1], "prefixes.dark") if "dark" in prefixes else (),
        tunnels_allowed=ld.networks(tunnels["allowed"][1], "tunnels.allowed", v6_only=False)
        if "allowed" in tunnels
        else (),
        thresholds=_thresholds(ld, top["thresholds"][1], known_thresholds)
        if "thresholds" in top
        else {},
        sha256=hashlib.sha256(raw).hexdigest(),
    )
