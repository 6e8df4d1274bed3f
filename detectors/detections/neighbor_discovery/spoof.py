"""``ipv6.ndp_spoof``: neighbour-cache poisoning and ND no on-link node sends.

Owns the address-to-MAC bindings of the link, learned the way a neighbour
cache learns them (NA target link-layer option or Ethernet source, NS and
RA source link-layer options; policy routers fixed to their policy MAC), and
the verdict when an NA contradicts one: a router's address claimed from
another MAC, an override moving an established binding, a binding flapping.
Also the per-message checks RFC 4861 puts on every ND message: hop limit 255
and a source link-layer option equal to the Ethernet source. RAs are judged
by the Router Advertisement family, not here. Does not parse packets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import LinkBudget, link_of, link_str, seen_in
from detectors.events import (
    NDMessage,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterAdvertisement,
    ip_str,
    mac_str,
)

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.ndp_spoof"
MAX_HISTORY = 16  # MACs remembered per binding for the evidence


@dataclass(slots=True)
class _Binding:
    mac: bytes
    confirmed_ns: int  # last time this MAC was (re)asserted
    router: bool = False
    static: bool = False  # from the policy: never moved by traffic
    changes: list[int] = field(default_factory=list)  # change times within the window
    macs: list[bytes] = field(default_factory=list)  # distinct MACs seen, oldest first


class Spoof:
    """The ``ipv6.ndp_spoof`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.ttl_ns = int(th["binding_ttl_s"] * NS)
        self.flap = int(th["flap_changes"])
        self.window_ns = int(th["window_s"] * NS)
        self.hop_limit = int(th["hop_limit"])
        cap = th["max_bindings_tracked"]
        self.bindings = det.table("bindings", cap)
        self.seen = det.table("spoof_sources", cap)
        self.suppress = det.suppressor(CATEGORY, cap)
        self.budget = LinkBudget(det, CATEGORY, "spoof_links", cap, "sources")
        # Policy routers, on every link: the address is theirs on any interface.
        self.policy_routers: dict[bytes, bytes] = {
            r.address: r.mac for r in det.policy.routers or () if r.mac is not None
        }
        self.learn_routers = det.policy.routers is None

    # -- per-message checks ------------------------------------------------

    def on_nd(self, ev: NDMessage) -> None:
        """Hop limit and SLLA checks for NS, NA, RS and Redirect."""
        if isinstance(ev, RouterAdvertisement):
            self._learn_router(ev)
            return
        if ev.ip.hop_limit != self.hop_limit:
            found = {"check": "hop_limit", "expected": self.hop_limit, "seen": ev.ip.hop_limit}
            self._raise(ev, "bad_hop_limit", ev.ip.src, found)
        eth, slla = ev.meta.src_mac, ev.source_lla()
        if eth is not None and slla is not None and len(slla) == 6 and slla != eth:
            found = {"check": "source_lla", "expected": mac_str(eth), "seen": mac_str(slla)}
            self._raise(ev, "slla_mismatch", ev.ip.src, found)
        if isinstance(ev, NeighborSolicitation) and any(ev.ip.src):
            mac = slla if slla is not None and len(slla) == 6 else None
            if mac is not None:
                self._bind(ev, ev.ip.src, mac, override=False)
        elif isinstance(ev, NeighborAdvertisement) and len(ev.target) == 16:
            mac = self._na_mac(ev)
            if mac is not None:
                self._bind(ev, ev.target, mac, override=ev.override)

    @staticmethod
    def _na_mac(ev: NeighborAdvertisement) -> bytes | None:
        tlla = ev.target_lla()
        if tlla is None:
            return ev.meta.src_mac
        return tlla if len(tlla) == 6 else None

    def _learn_router(self, ev: RouterAdvertisement) -> None:
        """Without a policy, the first MAC heard advertising an address owns it."""
        if not self.learn_routers or ev.router_lifetime == 0:
            return
        mac = ev.source_lla() or ev.meta.src_mac
        if mac is None or len(mac) != 6:
            return
        key = (link_of(ev), ev.ip.src)
        b = self.bindings.get(key)
        if b is None:
            self.bindings.put(key, _Binding(mac, ev.meta.ts_ns, router=True, macs=[mac]))
        elif b.mac == mac:
            b.router = True

    # -- bindings --------------------------------------------------------------

    def _bind(self, ev: NDMessage, addr: bytes, mac: bytes, override: bool) -> None:
        ts = ev.meta.ts_ns
        link = link_of(ev)
        router_mac = self.policy_routers.get(addr)
        if router_mac is not None and router_mac != mac and isinstance(ev, NeighborAdvertisement):
            self._conflict(ev, "router_address_claim", addr, router_mac, mac, None)
            return
        key = (link, addr)
        b: _Binding | None = self.bindings.get(key)
        if b is None:
            self.bindings.put(key, _Binding(mac, ts, macs=[mac]))
            return
        if b.mac == mac:
            b.confirmed_ns = ts
            return
        if not isinstance(ev, NeighborAdvertisement):
            return  # an NS alone does not move a binding we report on
        if b.router:
            self._conflict(ev, "router_address_claim", addr, b.mac, mac, b)
            return
        established = ts - b.confirmed_ns < self.ttl_ns
        b.changes = [t for t in b.changes if ts - t < self.window_ns] + [ts]
        if mac not in b.macs and len(b.macs) < MAX_HISTORY:
            b.macs.append(mac)
        old = b.mac
        b.mac, b.confirmed_ns = mac, ts
        if len(b.changes) >= self.flap:
            self._conflict(ev, "flapping", addr, old, mac, b)
        elif override and established:
            self._conflict(ev, "override_conflict", addr, old, mac, b)

    def _conflict(
        self,
        ev: NeighborAdvertisement,
        sig: str,
        addr: bytes,
        old: bytes,
        new: bytes,
        b: _Binding | None,
    ) -> None:
        detail: dict[str, Any] = {
            "address": ip_str(addr),
            "old_mac": mac_str(old),
            "new_mac": mac_str(new),
            "na_flags": {"router": ev.router, "solicited": ev.solicited, "override": ev.override},
        }
        if b is not None:
            detail["changes_in_window"] = len(b.changes)
            detail["macs_seen"] = [mac_str(m) for m in b.macs]
            detail["old_binding_confirmed"] = b.confirmed_ns / NS
        if sig == "router_address_claim":
            detail["router_from"] = "policy" if b is None else "learned from RAs"
        self._raise(ev, sig, addr, detail, new)

    # -- alerts ----------------------------------------------------------------

    def _raise(
        self,
        ev: NDMessage,
        sig: str,
        addr: bytes,
        detail: dict[str, Any],
        mac: bytes | None = None,
    ) -> None:
        ts = ev.meta.ts_ns
        link = link_of(ev)
        mac = mac if mac is not None else ev.meta.src_mac
        # A flapping address is one problem whichever MAC holds it right now.
        who = None if sig == "flapping" else mac
        ident = f"{link_str(link)}|{ip_str(addr)}|{mac_str(who)}|{sig}"
        seen = seen_in(self.seen, ident, ts)
        if not self.budget.permit(self.suppress, ident, ev, (addr, mac)):
            return
        evidence = {
            **detail,
            "message": type(ev).__name__,
            "count": seen.count,
            "first_seen": seen.first_ns / NS,
            "last_seen": seen.last_ns / NS,
        }
        self.det.alert(
            CATEGORY, sig, ts_ns=ts, identifier=ident, first_ns=seen.first_ns, event=ev,
            evidence=evidence,
        )  # fmt: skip
