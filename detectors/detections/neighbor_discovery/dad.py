"""``ipv6.dad_dos``: one node defending every address others probe.

Owns pairing each Duplicate Address Detection probe (an NS from ::, RFC 4862
5.4) with answers from other MACs within ``dad_timeout_s``: an NA for the
probed address, or a probe of its own for the same address. Counts, per link
and packet-time window, the distinct addresses defended, by answering MAC and
by prober: one MAC defending many addresses, or one node denied many (tools
such as atk6-dos-new-ip6 answer each probe from a new random MAC).
Does not parse packets. The prober's own probe looped back (same MAC) is
not an answer. The pairing and counting are native (the ``dad`` reducer,
``native/dad.rs``): a window comes here once, when it crosses
``min_targets``, with its samples already cut; suppression and the alert
are here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import link_str
from detectors.events import ip_str, mac_str

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.dad_dos"


class DadDos:
    """The ``ipv6.dad_dos`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.timeout_ns = int(th["dad_timeout_s"] * NS)
        self.window_ns = int(th["window_s"] * NS)
        self.min_targets = int(th["min_targets"])
        self.reducer = det.reducer(
            "dad",
            {
                "timeout_ns": self.timeout_ns,
                "window_ns": self.window_ns,
                "min_targets": self.min_targets,
                "max_probes_tracked": int(th["max_probes_tracked"]),
                "max_links_tracked": int(th["max_links_tracked"]),
            },
        )  # tables dad_probes, dad_links
        self.suppress = det.suppressor(CATEGORY, th["max_links_tracked"])

    def on_reduced(self, out: tuple[Any, ...]) -> None:
        """A window that just crossed ``min_targets`` (``native/dad.rs``)."""
        (_kind, link, ev, start, first, last, defended, sample,
         answering, top_answering, denied, sources, answers) = out  # fmt: skip
        identifier = f"{link_str(link)}|dad"
        if not self.suppress.allow(identifier, last):
            return

        def top(ranked: list[tuple[bytes | None, int]]) -> list[dict[str, Any]]:
            return [{"mac": mac_str(m), "addresses": n} for m, n in ranked]

        evidence: dict[str, Any] = {
            "defended_addresses": defended,
            "threshold": self.min_targets,
            "answering_macs": answering,
            "top_answering_macs": top(top_answering),
            "denied_probers": top(denied),
            "answering_sources": sorted(ip_str(s) for s in sources),
            "sample": [
                {"address": ip_str(t), "prober_mac": mac_str(p), "answering_mac": mac_str(a)}
                for t, p, a in sample
            ],
            "answers": dict(answers),
            "dad_timeout_s": self.timeout_ns / NS,
            "first_seen": first / NS,
            "last_seen": last / NS,
            "window": {"start": start / NS, "seconds": self.window_ns / NS},
        }
        self.det.alert(
            CATEGORY,
            "dad_answered",
            identifier=identifier,
            first_ns=first,
            event=ev,
            evidence=evidence,
        )
