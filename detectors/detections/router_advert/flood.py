"""``ipv6.ra_flood``: too many RAs, routers or options on one link.

Owns the verdict and the alert. The counting is native (``native/flood.rs``, the
``flood`` reducer): per-link packet-time windows over every local-link RA, across
all sources, because flood tools randomise the MAC and address of every packet.
A closed window reaches Python only when it is past a threshold, as a ``flood``
output with the window's full counts; Python alerts at most once per link and
signature per suppression interval. Does not judge who sent the RAs (that is
``ipv6.rogue_ra``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import Link, link_str
from detectors.events import RouterAdvertisement, ip_str, mac_str

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.ra_flood"


class Flood:
    """The ``ipv6.ra_flood`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.window_ns = int(th["window_s"] * NS)
        self.max_ras = int(th["max_ras_per_window"])
        self.max_routers = int(th["max_routers_per_window"])
        self.max_options = int(th["max_options"])
        cap = th["max_links_tracked"]
        self.reducer = det.reducer(
            "flood",
            {
                "cap": int(cap),
                "window_ns": self.window_ns,
                "max_ras": self.max_ras,
                "max_routers": self.max_routers,
                "max_options": self.max_options,
            },
        )
        self.suppress = det.suppressor(CATEGORY, cap)

    def on_window(self, output: tuple[Any, ...]) -> None:
        """A closed window past a threshold: ``("flood", link, start_ns, first_ns,
        last_ns, ras, distinct_routers, routers_overflow, sample_routers, max_options,
        big, sample, big_sample)``."""
        (_kind, link, start_ns, first_ns, last_ns, ras, distinct, overflow, routers,
         max_options, big, sample, big_sample) = output  # fmt: skip
        seconds = self.window_ns / NS
        common = {
            "window": {"start": start_ns / NS, "end": start_ns / NS + seconds,
                       "seconds": seconds},
            "first_seen": first_ns / NS,
            "last_seen": last_ns / NS,
            "ras": ras,
            "ras_per_second": round(ras / seconds, 3),
            "distinct_routers": distinct,
            "distinct_routers_capped": overflow,
            "sample_routers": [f"{ip_str(a)} {mac_str(m)}" for a, m in routers],
            "max_options": max_options,
        }  # fmt: skip
        one_source = distinct == 1
        window = (start_ns, last_ns, one_source)
        if ras > self.max_ras:
            self._alert(link, window, "rate", {**common, "threshold": self.max_ras}, sample)
        if distinct > self.max_routers:
            evidence = {**common, "threshold": self.max_routers}
            self._alert(link, window, "many_routers", evidence, sample)
        if big:
            evidence = {**common, "ras_over_threshold": big, "threshold": self.max_options}
            self._alert(link, window, "option_count", evidence, big_sample)

    def _alert(
        self,
        link: Link,
        window: tuple[int, int, bool],
        sig: str,
        evidence: dict[str, Any],
        sample: RouterAdvertisement | None,
    ) -> None:
        start_ns, last_ns, one_source = window
        identifier = f"{link_str(link)}|{sig}"
        if sample is None or not self.suppress.allow(identifier, last_ns):
            return
        self.det.alert(
            CATEGORY,
            sig,
            identifier=identifier,
            first_ns=start_ns,
            event=sample,
            evidence=evidence,
            **({} if one_source else {"src_mac": None}),
        )
