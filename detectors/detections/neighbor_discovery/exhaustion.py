"""``ipv6.ndp_exhaustion``: many unanswered solicitations from one node.

Owns pairing each address-resolution NS (multicast to the target's
solicited-node group, RFC 4861 7.2.2) with an NA for its target; targets
still unanswered after ``resolve_timeout_s`` are counted per soliciting node
in packet-time windows. Off-link packets to a target seen shortly before
(from ``Ipv6Packet`` events) name the source driving the solicitations; those
events are asked of the decoder only while some node has ``drivers_after``
solicitations outstanding. The pairing, expiry, windows and drivers are
native (the ``exhaustion`` reducer, ``native/exhaustion.rs``, which sees
every ND message and IPv6 packet in the native loop); a window comes here
only when it closes with ``min_unresolved`` targets, and this module
suppresses and writes the alert. The alert is raised when the window
closes, so it carries the window's full count (at most ``window_s`` +
``resolve_timeout_s`` after the first target). Does not parse packets; NUD
probes (unicast NS) and DAD probes (from ::) are not address resolution and
are not counted.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import link_str, sweep_identifier
from detectors.events import ip_str, mac_str

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.ndp_exhaustion"
SAMPLE = 10


class Exhaustion:
    """The ``ipv6.ndp_exhaustion`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.timeout_ns = int(th["resolve_timeout_s"] * NS)
        self.window_ns = int(th["window_s"] * NS)
        self.min_unresolved = int(th["min_unresolved"])
        self.reducer = det.reducer(
            "exhaustion",
            {
                "timeout_ns": self.timeout_ns,
                "window_ns": self.window_ns,
                "min_unresolved": self.min_unresolved,
                "drivers_after": int(th["drivers_after"]),
                "max_pending_tracked": int(th["max_pending_tracked"]),
                "max_solicitors_tracked": int(th["max_solicitors_tracked"]),
                "max_drivers_tracked": int(th["max_drivers_tracked"]),
            },
        )  # tables pending_targets, outstanding, solicitors, recent_destinations
        self.suppress = det.suppressor(CATEGORY, th["max_solicitors_tracked"])

    def on_reduced(self, out: tuple[Any, ...]) -> None:
        """A window closed with ``min_unresolved`` targets (``native/exhaustion.rs``):
        alert with its full counts."""
        (_kind, link, addr, mac, start, first, last, unresolved, prefix, hits,
         prefixes, sample, drivers, first_frame, first_dst) = out  # fmt: skip
        identifier = f"{link_str(link)}|{ip_str(addr)}|{mac_str(mac)}"
        if not self.suppress.allow(identifier, last):
            return
        net = ipaddress.IPv6Network((prefix + bytes(8), 64))
        evidence: dict[str, Any] = {
            "solicitor": {"address": ip_str(addr), "mac": mac_str(mac)},
            "prefix": str(net),
            "prefix_targets": hits,
            "other_prefixes": prefixes - 1,
            "unresolved_targets": unresolved,
            "threshold": self.min_unresolved,
            "resolve_timeout_s": self.timeout_ns / NS,
            "sample_targets": sorted(ip_str(t) for t in sample),
            "off_link_sources": [
                {"address": ip_str(a), "targets": n}
                for a, n in sorted(drivers, key=lambda kv: (-kv[1], kv[0]))[:SAMPLE]
            ],
            "first_seen": first / NS,
            "last_seen": last / NS,
            "window": {"start": start / NS, "seconds": self.window_ns / NS},
            # The ipv6.sweep alerts of the driving sources carry the same prefix and
            # identifiers, so a SIEM can join the cause and the effect.
            "correlation": {
                "prefix": str(net),
                "sweeps": sorted(
                    {sweep_identifier(a[:8], prefix) for a, _n in drivers}
                    # Drivers from several source /64s: the fan-in sweep of the prefix
                    # (ipv6.sweep fanin_sweep, issue 15) is the cause to join.
                    | ({f"{net}|fanin"} if len({a[:8] for a, _n in drivers}) > 1 else set())
                ),
            },
        }
        self.det.alert(
            CATEGORY,
            "unresolved_targets",
            identifier=identifier,
            first_ns=first,
            # No packet object reaches Python: the sample packet is the window's first
            # unanswered solicitation, which the reducer names.
            ts_ns=first,
            frame=first_frame,
            iface=link[0],
            evidence=evidence,
            src_ip=ip_str(addr),
            src_mac=mac_str(mac),
            dest_ip=ip_str(first_dst),
            proto=58,
            icmp_type=135,
            icmp_code=0,
            vlans=link[1],
        )
