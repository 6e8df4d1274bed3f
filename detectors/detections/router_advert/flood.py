"""``ipv6.ra_flood``: too many RAs, routers or options on one link.

Owns per-link counting of local-link RAs in packet-time windows, across all
sources, because flood tools randomise the MAC and address of every packet.
Alerts when a window closes, with the window's full counts, at most once per
link and signature per suppression interval. Does not judge who sent the RAs
(that is ``ipv6.rogue_ra``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import MAX_KEYS, Link, link_of, link_str
from detectors.events import RouterAdvertisement, ip_str, mac_str

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.ra_flood"
SAMPLE = 10


@dataclass(slots=True)
class _Window:
    start_ns: int
    first_ns: int
    last_ns: int = 0
    ras: int = 0
    routers: set[tuple[bytes, bytes | None]] = field(default_factory=set)
    routers_overflow: bool = False  # more distinct routers than MAX_KEYS
    big: int = 0  # RAs with more than max_options options
    max_options: int = 0
    sample: RouterAdvertisement | None = None
    big_sample: RouterAdvertisement | None = None


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
        self.links = det.windows("flood_links", cap, self.window_ns, self._close)
        self.suppress = det.suppressor(CATEGORY, cap)

    def on_ra(self, ev: RouterAdvertisement) -> None:
        ts = ev.meta.ts_ns
        w = self.links.current(link_of(ev), ts, lambda t: _Window(t, t))
        w.ras += 1
        w.last_ns = ts
        if w.sample is None:
            w.sample = ev
        if len(w.routers) < MAX_KEYS:
            w.routers.add((ev.ip.src, ev.sender_mac()))
        else:
            w.routers_overflow = True
        n = len(ev.options)
        w.max_options = max(w.max_options, n)
        if n > self.max_options:
            w.big += 1
            if w.big_sample is None:
                w.big_sample = ev

    def _close(self, link: Link, w: _Window) -> None:
        routers = sorted(w.routers, key=lambda k: (k[0], k[1] or b""))
        seconds = self.window_ns / NS
        common = {
            "window": {"start": w.start_ns / NS, "end": w.start_ns / NS + seconds,
                       "seconds": seconds},
            "first_seen": w.first_ns / NS,
            "last_seen": w.last_ns / NS,
            "ras": w.ras,
            "ras_per_second": round(w.ras / seconds, 3),
            "distinct_routers": len(routers),
            "distinct_routers_capped": w.routers_overflow,
            "sample_routers": [f"{ip_str(a)} {mac_str(m)}" for a, m in routers[:SAMPLE]],
            "max_options": w.max_options,
        }  # fmt: skip
        if w.ras > self.max_ras:
            self._alert(link, w, "rate", {**common, "threshold": self.max_ras}, w.sample)
        if len(routers) > self.max_routers:
            self._alert(
                link, w, "many_routers", {**common, "threshold": self.max_routers}, w.sample
            )
        if w.big:
            evidence = {**common, "ras_over_threshold": w.big, "threshold": self.max_options}
            self._alert(link, w, "option_count", evidence, w.big_sample)

    def _alert(
        self,
        link: Link,
        w: _Window,
        sig: str,
        evidence: dict[str, Any],
        sample: RouterAdvertisement | None,
    ) -> None:
        identifier = f"{link_str(link)}|{sig}"
        if sample is None or not self.suppress.allow(identifier, w.last_ns):
            return
        one_source = len(w.routers) == 1
        self.det.alert(
            CATEGORY,
            sig,
            ts_ns=w.last_ns,
            identifier=identifier,
            first_ns=w.start_ns,
            event=sample,
            evidence=evidence,
            **({} if one_source else {"src_ip": None, "src_mac": None}),
        )
