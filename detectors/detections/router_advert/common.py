"""Helpers the Router Advertisement family's three detections share.

Owns how an RA is summarised in evidence and how its content is compared
(prefixes, routes, DNS names). Does not judge or alert.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from detectors.events import (
    DNSSLOption,
    MTUOption,
    PrefixInformationOption,
    RDNSSOption,
    RouteInformationOption,
    RouterAdvertisement,
    ip_str,
    mac_str,
)

PREFERENCE_NAMES = {-1: "low", 0: "medium", 1: "high", 2: "reserved"}
EXT_NAMES = {0: "hop-by-hop", 43: "routing", 44: "fragment", 51: "ah", 60: "destination-options"}


def net(prefix: bytes, length: int) -> ipaddress.IPv6Network:
    """The network a PIO/RIO names; host bits set by a sloppy sender are ignored."""
    return ipaddress.IPv6Network((int.from_bytes(prefix, "big"), min(length, 128)), strict=False)


def domain(name: str) -> str:
    return name.rstrip(".").lower()


def prefixes(ev: RouterAdvertisement) -> list[ipaddress.IPv6Network]:
    return [
        net(o.prefix, o.prefix_len) for o in ev.options if isinstance(o, PrefixInformationOption)
    ]


def routes(ev: RouterAdvertisement) -> list[ipaddress.IPv6Network]:
    return [
        net(o.prefix, o.prefix_len) for o in ev.options if isinstance(o, RouteInformationOption)
    ]


def rdnss(ev: RouterAdvertisement) -> list[bytes]:
    return [s for o in ev.options if isinstance(o, RDNSSOption) for s in o.servers]


def dnssl(ev: RouterAdvertisement) -> list[str]:
    return [domain(d) for o in ev.options if isinstance(o, DNSSLOption) for d in o.domains]


def mtu(ev: RouterAdvertisement) -> int | None:
    return next((o.mtu for o in ev.options if isinstance(o, MTUOption)), None)


def ra_summary(ev: RouterAdvertisement) -> dict[str, Any]:
    """What the RA said, for evidence; bounded because options are bounded by the MTU."""
    return {
        "router_lifetime": ev.router_lifetime,
        "preference": PREFERENCE_NAMES.get(ev.preference, str(ev.preference)),
        "managed": ev.managed,
        "other": ev.other,
        "hop_limit": ev.ip.hop_limit,
        "prefixes": [str(p) for p in prefixes(ev)],
        "routes": [str(r) for r in routes(ev)],
        "rdnss": [ip_str(s) for s in rdnss(ev)],
        "dnssl": dnssl(ev),
        "mtu": mtu(ev),
        "source_lla": mac_str(ev.source_lla()),
        "options": len(ev.options),
    }
