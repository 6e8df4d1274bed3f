"""``ipv6.ra_guard_evasion``: ND hidden from RA-Guard by headers or fragments.

Owns the verdict on the shape of one ND message's header chain: a Fragment
header (RFC 6980), Hop-by-Hop/Routing/Destination Options before the ICMPv6
header, or a first fragment without the whole chain (RFC 7112). The decoder
has already walked the chain and reassembled the fragments; the RA inside is
judged separately by ``ipv6.rogue_ra``. Tunnelled ND is not the local link
and is skipped by the family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import LinkBudget, link_of, link_str, seen_in
from detectors.detections.router_advert.common import EXT_NAMES
from detectors.events import NDMessage, ip_str, mac_str

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.ra_guard_evasion"
ND_NAMES = {133: "RS", 134: "RA", 135: "NS", 136: "NA", 137: "Redirect"}
NH_FRAGMENT = 44

SourceKey = tuple[bytes, bytes | None]


class Evasion:
    """The ``ipv6.ra_guard_evasion`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.ext = frozenset(int(h) for h in det.detection(CATEGORY).parameters["ext_headers"])
        cap = th["max_sources_tracked"]
        self.sources = det.table("evasion_sources", cap)
        self.suppress = det.suppressor(CATEGORY, cap)
        self.budget = LinkBudget(det, CATEGORY, "evasion_links", cap, "sources")

    def _signature(self, ev: NDMessage) -> str | None:
        ip = ev.ip
        frag = ip.fragment
        if frag is not None and not frag.first_chain_complete:
            return "incomplete_chain"
        if frag is not None or NH_FRAGMENT in ip.chain:
            return "nd_fragment"
        if any(h in self.ext for h in ip.chain):
            return "ext_headers"
        return None

    def on_nd(self, ev: NDMessage) -> None:
        if not ev.ip.chain:
            return  # the common case: ICMPv6 right after the IPv6 header
        sig = self._signature(ev)
        if sig is None:
            return
        meta = ev.meta
        ts = meta.ts_ns
        link = link_of(ev)
        mac = ev.sender_mac()
        key: SourceKey = (ev.ip.src, mac)
        seen = seen_in(self.sources, (link, key, sig), ts)
        identifier = f"{link_str(link)}|{ip_str(key[0])}|{mac_str(mac)}|{sig}"
        if not self.budget.permit(self.suppress, identifier, ev, key):
            return
        frag = ev.ip.fragment
        evidence: dict[str, Any] = {
            "source": {"address": ip_str(key[0]), "mac": mac_str(mac)},
            "message": ND_NAMES.get(ev.icmp_type, str(ev.icmp_type)),
            "chain": [EXT_NAMES.get(h, str(h)) for h in ev.ip.chain],
            "fragment": None
            if frag is None
            else {
                "id": frag.ident,
                "fragments": frag.count,
                "atomic": frag.atomic,
                "first_chain_complete": frag.first_chain_complete,
            },
            "count": seen.count,
            "first_seen": seen.first_ns / NS,
            "last_seen": seen.last_ns / NS,
        }
        self.det.alert(
            CATEGORY,
            sig,
            ts_ns=ts,
            identifier=identifier,
            first_ns=seen.first_ns,
            event=ev,
            evidence=evidence,
        )
