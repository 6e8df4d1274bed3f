"""Router Advertisement family: ``ipv6.rogue_ra``.

Owns judging RAs seen on the local link against the policy's routers (or the
routers learned in the opening window when there is no policy). Does not
parse packets: it reads ``RouterAdvertisement`` events. RAs inside a tunnel
(Teredo qualification, for example) are tunnel signalling, not the local
link, and are left alone.

Counting: one alert per rogue router (link, address, MAC) and suppression
interval; per link at most ``max_alerts_per_window`` individual alerts per
window, the rest folded into one ``burst`` alert when the window closes, so a
flood with random sources cannot produce an alert per packet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detectors.detections import NS, Context, Detector
from detectors.events import (
    Event,
    MTUOption,
    PrefixInformationOption,
    RDNSSOption,
    RouterAdvertisement,
    ip_str,
    mac_str,
)
from detectors.policy import Router
from detectors.state import BoundedTable

CATEGORY = "ipv6.rogue_ra"
SAMPLE = 10  # routers listed in a burst alert's evidence

Link = tuple[int, tuple[int, ...]]  # (interface, VLAN tags)


@dataclass(slots=True)
class _RouterSeen:
    first_ns: int
    last_ns: int
    count: int = 0


@dataclass(slots=True)
class _LinkWindow:
    start_ns: int
    alerts: int = 0
    overflow: int = 0  # RAs from routers past the per-window alert cap
    overflow_routers: set[tuple[bytes, bytes | None]] = field(default_factory=set)
    first_overflow_ns: int = 0
    last_overflow_ns: int = 0
    sample_event: RouterAdvertisement | None = None


def _ra_summary(ev: RouterAdvertisement) -> dict[str, Any]:
    prefixes = [
        f"{ip_str(o.prefix)}/{o.prefix_len}"
        for o in ev.options
        if isinstance(o, PrefixInformationOption)
    ]
    rdnss = [ip_str(s) for o in ev.options if isinstance(o, RDNSSOption) for s in o.servers]
    mtu = next((o.mtu for o in ev.options if isinstance(o, MTUOption)), None)
    return {
        "router_lifetime": ev.router_lifetime,
        "preference": ev.preference,
        "managed": ev.managed,
        "other": ev.other,
        "hop_limit": ev.ip.hop_limit,
        "prefixes": prefixes,
        "rdnss": rdnss,
        "mtu": mtu,
        "source_lla": mac_str(ev.source_lla()),
    }


def _router_entry(router: Router) -> dict[str, Any]:
    return {
        "name": router.name,
        "address": ip_str(router.address),
        "mac": mac_str(router.mac),
        "line": router.line,
    }


class RouterAdvertDetector(Detector):
    """Judges every local-link RA; see the module docstring."""

    subscribes = (RouterAdvertisement,)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        th = ctx.thresholds[CATEGORY]
        self.learn_ns = int(th["learn_window_s"] * NS)
        self.learn_max = int(th["learn_max_routers"])
        self.window_ns = int(th["window_s"] * NS)
        self.max_alerts = int(th["max_alerts_per_window"])
        cap = th["max_routers_tracked"]
        self.routers: BoundedTable[tuple[Link, bytes, bytes | None], _RouterSeen] = self.table(
            "routers", cap
        )
        # An evicted link window still reports what it folded into a burst.
        self.links: BoundedTable[Link, _LinkWindow] = self.table("links", cap, self._close)
        self.suppress = self.suppressor(CATEGORY, cap)
        self.learned: dict[Link, set[tuple[bytes, bytes | None]]] = {}
        self.learned_count = 0
        self.learning = ctx.policy.routers is None
        self.first_ns: int | None = None
        self.ignored_tunnelled = 0
        self._by_address = ctx.policy.routers_by_address()

    # -- verdict -------------------------------------------------------------

    def _learn(self, link: Link, key: tuple[bytes, bytes | None], ts: int) -> bool:
        """In the learning window, remember the router. True if it was learned."""
        assert self.first_ns is not None
        if ts - self.first_ns >= self.learn_ns:
            return False
        known = self.learned.setdefault(link, set())
        if key in known:
            return True
        if self.learned_count >= self.learn_max:
            return False
        known.add(key)
        self.learned_count += 1
        return True

    def _verdict(
        self, link: Link, addr: bytes, mac: bytes | None, ts: int
    ) -> tuple[str, Router | None] | None:
        """None if legitimate, else (signature key, the policy entry involved)."""
        if self.learning:
            if self._learn(link, (addr, mac), ts) or (addr, mac) in self.learned.get(link, ()):
                return None
            return "unknown_router", None
        candidates = self._by_address.get(addr)
        if not candidates:
            return "unknown_router", None
        for router in candidates:
            if router.mac is None or router.mac == mac:
                return None
        return "spoofed_router_mac", candidates[0]

    # -- events --------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        assert isinstance(event, RouterAdvertisement)
        if event.ip.tunnels:
            self.ignored_tunnelled += 1
            return
        meta = event.meta
        ts = meta.ts_ns
        if self.first_ns is None:
            self.first_ns = ts
        mac = meta.src_mac if meta.src_mac is not None else event.source_lla()
        link: Link = (meta.iface, meta.vlans)
        addr = event.ip.src
        verdict = self._verdict(link, addr, mac, ts)
        if verdict is None:
            return
        sig, entry = verdict
        key = (link, addr, mac)
        seen = self.routers.setdefault(key, lambda: _RouterSeen(ts, ts))
        seen.count += 1
        seen.last_ns = ts
        identifier = f"{meta.iface}|{'.'.join(map(str, meta.vlans))}|{ip_str(addr)}|{mac_str(mac)}"
        if self.suppress.active(identifier, ts):
            return
        window = self._window(link, ts)
        if window.alerts >= self.max_alerts:
            window.overflow += 1
            if len(window.overflow_routers) < 65536:  # bounded even within one window
                window.overflow_routers.add((addr, mac or b""))
            if window.sample_event is None:
                window.sample_event = event
                window.first_overflow_ns = ts
            window.last_overflow_ns = ts
            return
        if not self.suppress.allow(identifier, ts):
            return
        window.alerts += 1
        evidence = {
            "router": {"address": ip_str(addr), "mac": mac_str(mac)},
            "ra": _ra_summary(event),
            "count": seen.count,
            "first_seen": seen.first_ns / NS,
            "last_seen": seen.last_ns / NS,
            "policy": self._policy_evidence(link, entry),
        }
        self.alert(
            CATEGORY,
            sig,
            ts_ns=ts,
            identifier=identifier,
            first_ns=seen.first_ns,
            event=event,
            evidence=evidence,
        )

    def _policy_evidence(self, link: Link, entry: Router | None) -> dict[str, Any]:
        out = self.policy_evidence()
        if self.learning:
            assert self.first_ns is not None
            out["learn_window_s"] = self.learn_ns / NS
            out["learned_until"] = (self.first_ns + self.learn_ns) / NS
            out["learned_routers"] = sorted(
                f"{ip_str(a)} {mac_str(m)}" for a, m in self.learned.get(link, ())
            )
        if entry is not None:
            out["entry"] = _router_entry(entry)
        return out

    # -- windows -------------------------------------------------------------

    def _window(self, link: Link, ts: int) -> _LinkWindow:
        window = self.links.get(link)
        if window is None or ts - window.start_ns >= self.window_ns:
            if window is not None:
                self._close(link, window)
            window = _LinkWindow(ts)
            self.links.put(link, window)
        return window

    def _close(self, link: Link, window: _LinkWindow) -> None:
        ev = window.sample_event
        if ev is None:
            return
        routers = sorted(window.overflow_routers)
        evidence = {
            "count": window.overflow,
            "distinct_routers": len(routers),
            "window": {
                "start": window.start_ns / NS,
                "end": (window.start_ns + self.window_ns) / NS,
                "seconds": self.window_ns / NS,
            },
            "first_seen": window.first_overflow_ns / NS,
            "last_seen": window.last_overflow_ns / NS,
            "individual_alerts": window.alerts,
            "sample_routers": [f"{ip_str(a)} {mac_str(m or None)}" for a, m in routers[:SAMPLE]],
            "policy": self._policy_evidence(link, None),
        }
        self.alert(
            CATEGORY,
            "burst",
            ts_ns=window.last_overflow_ns,
            identifier=f"{link[0]}|{'.'.join(map(str, link[1]))}|burst",
            first_ns=window.start_ns,
            event=ev,
            evidence=evidence,
            src_ip=None,
            src_mac=None,
        )
        window.sample_event = None

    def tick(self, now_ns: int) -> None:
        for link, window in self.links.items():
            if now_ns - window.start_ns >= self.window_ns:
                self._close(link, window)
                self.links.pop(link)

    def flush(self, now_ns: int) -> None:
        for link, window in self.links.items():
            self._close(link, window)
        self.links.clear()
