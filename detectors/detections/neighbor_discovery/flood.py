"""``ipv6.ndp_flood``: NS, NA or new-sender floods on one link.

Owns per-link counting of local-link NS and NA in packet-time windows,
across all sources (flood tools randomise MAC and address per packet), and
of source MACs and addresses never seen before in ND. Alerts when a window
closes, with its full counts, at most once per link and signature per
suppression interval. Does not judge individual messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import Link, link_of, link_str
from detectors.events import NDMessage, NeighborAdvertisement, NeighborSolicitation, mac_str

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.ndp_flood"
SAMPLE = 10


@dataclass(slots=True)
class _Window:
    start_ns: int
    last_ns: int = 0
    ns: int = 0
    na: int = 0
    new_macs: int = 0
    new_addresses: int = 0
    sample_macs: list[bytes] = field(default_factory=list)
    sample: dict[str, NDMessage] = field(default_factory=dict)  # signature -> first message


class Flood:
    """The ``ipv6.ndp_flood`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.window_ns = int(th["window_s"] * NS)
        self.max_ns = int(th["max_ns_per_window"])
        self.max_na = int(th["max_na_per_window"])
        self.max_new = int(th["max_new_sources_per_window"])
        self.known = det.table("known_sources", th["max_sources_tracked"])
        self.links = det.windows(
            "flood_links", th["max_links_tracked"], self.window_ns, self._close
        )
        self.suppress = det.suppressor(CATEGORY, th["max_links_tracked"])

    def on_nd(self, ev: NDMessage) -> None:
        ts = ev.meta.ts_ns
        link = link_of(ev)
        w = self.links.current(link, ts, _Window)
        w.last_ns = ts
        if isinstance(ev, NeighborSolicitation):
            w.ns += 1
            w.sample.setdefault("ns_flood", ev)
        elif isinstance(ev, NeighborAdvertisement):
            w.na += 1
            w.sample.setdefault("na_flood", ev)
        else:
            return  # RS, RA and Redirect senders are not NS/NA flood sources
        mac = ev.meta.src_mac
        if mac is not None and self.known.get((link, mac)) is None:
            self.known.put((link, mac), True)
            w.new_macs += 1
            w.sample.setdefault("new_sources", ev)
            if len(w.sample_macs) < SAMPLE:
                w.sample_macs.append(mac)
        src = ev.ip.src
        if any(src) and self.known.get((link, src)) is None:
            self.known.put((link, src), True)
            w.new_addresses += 1
            w.sample.setdefault("new_sources", ev)

    def _close(self, link: Link, w: _Window) -> None:
        seconds = self.window_ns / NS
        counts = {
            "window": {"start": w.start_ns / NS, "end": w.start_ns / NS + seconds,
                       "seconds": seconds},
            "last_seen": w.last_ns / NS,
            "neighbor_solicitations": w.ns,
            "neighbor_advertisements": w.na,
            "new_source_macs": w.new_macs,
            "new_source_addresses": w.new_addresses,
            "sample_new_macs": [mac_str(m) for m in w.sample_macs],
        }  # fmt: skip
        if w.ns > self.max_ns:
            self._alert(link, w, "ns_flood", {**counts, "threshold": self.max_ns,
                                              "per_second": round(w.ns / seconds, 3)})  # fmt: skip
        if w.na > self.max_na:
            self._alert(link, w, "na_flood", {**counts, "threshold": self.max_na,
                                              "per_second": round(w.na / seconds, 3)})  # fmt: skip
        if max(w.new_macs, w.new_addresses) > self.max_new:
            self._alert(link, w, "new_sources", {**counts, "threshold": self.max_new})

    def _alert(self, link: Link, w: _Window, sig: str, evidence: dict[str, Any]) -> None:
        identifier = f"{link_str(link)}|{sig}"
        sample = w.sample.get(sig)
        if sample is None or not self.suppress.allow(identifier, w.last_ns):
            return
        evidence["first_seen"] = sample.meta.ts_ns / NS
        self.det.alert(
            CATEGORY,
            sig,
            ts_ns=w.last_ns,
            identifier=identifier,
            first_ns=w.start_ns,
            event=sample,
            evidence=evidence,
            src_ip=None,
            src_mac=None,
            dest_ip=None,
            dest_mac=None,
        )
