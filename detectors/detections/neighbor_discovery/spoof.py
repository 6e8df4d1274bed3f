"""``ipv6.ndp_spoof``: neighbour-cache poisoning and ND no on-link node sends.

Owns the address-to-MAC bindings of the link, learned the way a neighbour
cache learns them (NA target link-layer option or Ethernet source, NS and
RA source link-layer options; policy routers fixed to their policy MAC), and
the verdict when an NA contradicts one: a router's address claimed from
another MAC, an override moving an established binding, a binding flapping.
Also the per-message checks RFC 4861 puts on every ND message: hop limit 255
and a source link-layer option equal to the Ethernet source. RAs are judged
by the Router Advertisement family, not here. Does not parse packets.

The bindings, the checks, the per-offender counts, the link budget and the
suppression are native (the ``spoof`` reducer, ``native/spoof.rs``: every ND
message is judged there); a verdict comes here only when the budget and the
suppression let it through, and each link window that folded verdicts comes
as one ``burst``. This module writes the alerts' identifiers and evidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import Burst, link_of, link_str, raise_burst
from detectors.events import NDMessage, NeighborAdvertisement, ip_str, mac_str

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.ndp_spoof"


class Spoof:
    """The ``ipv6.ndp_spoof`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.hop_limit = int(th["hop_limit"])
        cap = int(th["max_bindings_tracked"])
        # Policy routers, on every link: the address is theirs on any interface.
        routers = [(r.address, r.mac) for r in det.policy.routers or () if r.mac is not None]
        self.reducer = det.reducer(
            "spoof",
            {
                "ttl_ns": int(th["binding_ttl_s"] * NS),
                "flap_changes": int(th["flap_changes"]),
                "window_ns": int(th["window_s"] * NS),
                "hop_limit": self.hop_limit,
                "max_bindings_tracked": cap,
                "suppress_ns": int(th["suppress_s"] * NS),
                "max_alerts_per_window": int(th["max_alerts_per_window"]),
                "policy_routers": routers,
                "learn_routers": det.policy.routers is None,
            },
        )  # tables bindings, spoof_sources, ipv6.ndp_spoof.suppression, spoof_links

    def on_reduced(self, out: tuple[Any, ...]) -> None:
        """A verdict the budget let through, or a link's burst (``native/spoof.rs``)."""
        if out[0] == "burst":
            link, burst = Burst.from_native(out)
            raise_burst(self.det, CATEGORY, "sources", None, link, burst)
            return
        _kind, sig, ev, addr, mac, count, first, last, conflict = out
        if sig == "bad_hop_limit":
            detail: dict[str, Any] = {
                "check": "hop_limit", "expected": self.hop_limit, "seen": ev.ip.hop_limit,
            }  # fmt: skip
        elif sig == "slla_mismatch":
            detail = {
                "check": "source_lla",
                "expected": mac_str(ev.meta.src_mac),
                "seen": mac_str(ev.source_lla()),
            }
        else:
            detail = self._conflict(ev, sig, addr, mac, conflict)
        self._alert(ev, sig, addr, mac, detail, count, first, last)

    @staticmethod
    def _conflict(
        ev: NeighborAdvertisement,
        sig: str,
        addr: bytes,
        new: bytes,
        conflict: tuple[bytes, tuple[int, list[bytes], int] | None],
    ) -> dict[str, Any]:
        old, binding = conflict
        detail: dict[str, Any] = {
            "address": ip_str(addr),
            "old_mac": mac_str(old),
            "new_mac": mac_str(new),
            "na_flags": {"router": ev.router, "solicited": ev.solicited, "override": ev.override},
        }
        if binding is not None:
            changes, macs, confirmed_ns = binding
            detail["changes_in_window"] = changes
            detail["macs_seen"] = [mac_str(m) for m in macs]
            detail["old_binding_confirmed"] = confirmed_ns / NS
        if sig == "router_address_claim":
            detail["router_from"] = "policy" if binding is None else "learned from RAs"
        return detail

    def _alert(
        self,
        ev: NDMessage,
        sig: str,
        addr: bytes,
        mac: bytes | None,
        detail: dict[str, Any],
        count: int,
        first_ns: int,
        last_ns: int,
    ) -> None:
        # A flapping address is one problem whichever MAC holds it right now.
        who = None if sig == "flapping" else mac
        ident = f"{link_str(link_of(ev))}|{ip_str(addr)}|{mac_str(who)}|{sig}"
        evidence = {
            **detail,
            "message": type(ev).__name__,
            "count": count,
            "first_seen": first_ns / NS,
            "last_seen": last_ns / NS,
        }
        self.det.alert(
            CATEGORY, sig, identifier=ident, first_ns=first_ns, event=ev,
            evidence=evidence,
        )  # fmt: skip
