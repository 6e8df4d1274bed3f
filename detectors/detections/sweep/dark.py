"""``ipv6.dark_prefix``: any packet to a prefix the policy lists as dark.

Owns matching destinations against ``prefixes.dark`` and alerting on the
first packet per source /64 and dark prefix, suppressed for ``suppress_s``;
per link the ``LinkBudget`` caps alerts per window and folds the rest into a
burst alert. Does not parse packets or read the policy file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from detectors.detections.budget import LinkBudget, prefix64_str
from detectors.events import Ipv6Packet

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.dark_prefix"


class DarkPrefix:
    """The ``ipv6.dark_prefix`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        # (network as an int, prefix length, text): one shift and compare per entry.
        self.dark = [(int(net.network_address), net.prefixlen, str(net)) for net in det.policy.dark]
        self.suppress = det.suppressor(CATEGORY, th["max_sources_tracked"])
        self.budget = LinkBudget(det, CATEGORY, "dark_links", 4096, "sources")

    @property
    def active(self) -> bool:
        return bool(self.dark)

    def on_packet(self, ev: Ipv6Packet) -> None:
        dst = int.from_bytes(ev.ip.dst, "big")
        for net, plen, text in self.dark:
            if dst >> (128 - plen) == net >> (128 - plen):
                self._hit(ev, text)
                return

    def _hit(self, ev: Ipv6Packet, prefix: str) -> None:
        src = ev.ip.src
        identifier = f"{prefix64_str(src[:8])}|{prefix}"
        if not self.budget.permit(self.suppress, identifier, ev, (src, ev.meta.src_mac)):
            return
        self.det.alert(
            CATEGORY,
            "dark_prefix",
            identifier=identifier,
            first_ns=ev.meta.ts_ns,
            event=ev,
            evidence={
                "dark_prefix": prefix,
                "source_prefix": prefix64_str(src[:8]),
                "policy": self.det.policy_evidence(),
            },
            src_port=ev.sport,
            dest_port=ev.dport,
        )
