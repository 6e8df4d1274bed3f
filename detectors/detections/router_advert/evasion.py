"""``ipv6.ra_guard_evasion``: ND hidden from RA-Guard by headers or fragments.

Owns the evidence and the alert. The verdict on the shape of one ND message's
header chain is native (``native/evasion.rs``, the ``evasion`` reducer): a
Fragment header (RFC 6980), Hop-by-Hop/Routing/Destination Options before the
ICMPv6 header, or a first fragment without the whole chain (RFC 7112), with the
per-source counts, suppression and the link budget. Python gets an ``evasion``
output only for an alert that passed suppression and the budget, and a
``burst`` when a link window that folded alerts closes. The decoder has already
walked the chain and reassembled the fragments; the RA inside is judged
separately by ``ipv6.rogue_ra``. Tunnelled ND is not the local link and is
skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import Burst, link_str, raise_burst
from detectors.detections.router_advert.common import EXT_NAMES
from detectors.events import NDMessage, ip_str, mac_str

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.ra_guard_evasion"
ND_NAMES = {133: "RS", 134: "RA", 135: "NS", 136: "NA", 137: "Redirect"}


class Evasion:
    """The ``ipv6.ra_guard_evasion`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        ext = [int(h) for h in det.detection(CATEGORY).parameters["ext_headers"]]
        self.reducer = det.reducer(
            "evasion",
            {
                "cap": int(th["max_sources_tracked"]),
                "ext_headers": ext,
                "suppress_ns": int(th["suppress_s"] * NS),
                "window_ns": int(th["window_s"] * NS),
                "max_alerts": int(th["max_alerts_per_window"]),
            },
        )

    def on_output(self, output: tuple[Any, ...]) -> None:
        if output[0] == "burst":
            link, burst = Burst.from_native(output)
            raise_burst(self.det, CATEGORY, "sources", None, link, burst)
            return
        # ("evasion", signature, link, (address, mac), count, first_ns, last_ns, event)
        _kind, sig, link, (addr, _mac), count, first_ns, last_ns, ev = output
        assert isinstance(ev, NDMessage)
        mac = ev.sender_mac()  # the reducer's key folds an unusual link-layer option
        identifier = f"{link_str(link)}|{ip_str(addr)}|{mac_str(mac)}|{sig}"
        frag = ev.ip.fragment
        evidence: dict[str, Any] = {
            "source": {"address": ip_str(addr), "mac": mac_str(mac)},
            "message": ND_NAMES.get(ev.icmp_type, str(ev.icmp_type)),
            "chain": [EXT_NAMES.get(h, str(h)) for h in ev.ip.chain],
            "fragment": None
            if frag is None
            else {
                "id": frag.ident,
                "fragments": frag.count,
                "atomic": frag.atomic,
                "first_chain_complete": frag.first_chain_complete,
                # Overlapping fragments (RFC 5722): the copy of each byte this reading kept.
                **({"overlap": frag.overlap} if frag.overlap is not None else {}),
            },
            "count": count,
            "first_seen": first_ns / NS,
            "last_seen": last_ns / NS,
        }
        self.det.alert(
            CATEGORY,
            sig,
            identifier=identifier,
            first_ns=first_ns,
            event=ev,
            evidence=evidence,
        )
