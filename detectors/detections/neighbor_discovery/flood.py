"""``ipv6.ndp_flood``: NS, NA or new-sender floods on one link.

Owns the verdict on per-link counts of local-link NS and NA in packet-time
windows, across all sources (flood tools randomise MAC and address per
packet), and of source MACs and addresses never seen before in ND. The
counting is native (the ``flood`` reducer, ``native/flood.rs``): every
message is counted there, and only a window that closes past a threshold
comes here, with its counts and the first message of each signature it
crossed. Alerts with the full counts, at most once per link and signature
per suppression interval. Does not judge individual messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import Link, link_str
from detectors.events import NDMessage, mac_str

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
        self.reducer = det.reducer(
            "flood",
            {
                "window_ns": self.window_ns,
                "max_ns": self.max_ns,
                "max_na": self.max_na,
                "max_new": self.max_new,
                "max_sources_tracked": int(th["max_sources_tracked"]),
                "max_links_tracked": int(th["max_links_tracked"]),
            },
        )  # tables known_sources, flood_links
        self.suppress = det.suppressor(CATEGORY, th["max_links_tracked"])

    def on_reduced(self, out: tuple[Any, ...]) -> None:
        """A closed window past a threshold (``native/flood.rs``)."""
        _kind, link, start, last, ns, na, new_macs, new_addresses, macs, sample = out
        self._close(link, _Window(start, last, ns, na, new_macs, new_addresses, macs, sample))

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
            identifier=identifier,
            first_ns=w.start_ns,
            event=sample,
            evidence=evidence,
            src_mac=None,
            dest_mac=None,
        )
