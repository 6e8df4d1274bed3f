"""Malformed family: ``ipv6.malformed``.

Owns turning the decoder's ``Malformed`` and ``FragmentAnomaly`` events into
alerts, per source and signature, counted in packet-time windows. Which
decoder layers and fragment kinds count is set in ``spec.yaml``
(``parameters``). Does not decide what is malformed: the decoder does.
Frames cut by the snaplen never reach here (the decoder counts them apart).
Per link at most ``max_alerts_per_window`` alerts per window; sources past
that (a flood of malformed packets from random addresses) are folded into
one ``burst`` alert when the window closes. A few reasons have signatures of
their own (``routing_type0``, ``unspecified_source``, ``incomplete_chain``): named
attacks a SOC triages apart from a broken stack.

Fragment floods (``fragment_flood``) are counted per link, not per source (flood
tools randomise the source): the ``fragment_flood`` reducer counts the datagrams
that never completed (the reassembler's ``timeout`` and ``evicted`` anomalies)
per link window, and hands over a window that closes past
``max_incomplete_per_window``: one alert per link and window, with the counts,
at most once per link per ``suppress_s``.

The counting is native (``native/mod.rs``, the ``malformed_sources`` reducer):
the filter, the per-source windows, the suppression and the link budget. The
events never become Python objects. Python gets an ``alert`` output for each
event that may alert (the window's counts and the event) and a ``burst``
output when a link window that folded sources closes, and writes the evidence
and alert from them: its work grows with alerts, never with events.
"""

from __future__ import annotations

from typing import Any

from detectors.detections import NS, Context, Detector
from detectors.detections.budget import Burst, link_str, raise_burst
from detectors.events import FragmentAnomaly, ip_str, mac_str
from detectors.state import Suppressor

CATEGORY = "ipv6.malformed"


FRAGMENT_PROTO = 44  # IPv6-Frag: the datagram never got past its fragments


class MalformedDetector(Detector):
    """Judges what the native reducer counted per (source, signature)."""

    subscribes = ()

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        det = self.detection(CATEGORY)
        th = ctx.thresholds[CATEGORY]
        self.window_ns = int(th["window_s"] * NS)
        self.sources = self.reducer(
            "sources",
            {
                "alert_layers": list(det.parameters.get("alert_layers", ())),
                "alert_fragment_kinds": list(det.parameters.get("alert_fragment_kinds", ())),
                "min_count": th["min_count"],
                "window_s": th["window_s"],
                "suppress_s": th["suppress_s"],
                "max_sources_tracked": th["max_sources_tracked"],
                "max_alerts_per_window": th["max_alerts_per_window"],
            },
        )
        self.flood_window_ns = int(th["fragment_window_s"] * NS)
        self.max_incomplete = int(th["max_incomplete_per_window"])
        self.flood = self.reducer(
            "fragment_flood",
            {
                "window_ns": self.flood_window_ns,
                "max_incomplete": self.max_incomplete,
                "max_links_tracked": int(th["max_links_tracked"]),
            },
        )
        # Its own table: the per-source suppression (native) is keyed by source.
        self.flood_suppress = Suppressor(
            f"{CATEGORY}.flood_suppression",
            int(th["suppress_s"] * NS),
            int(th["max_links_tracked"]),
        )
        self._tables.append(self.flood_suppress.table)
        self._suppressors.append(self.flood_suppress)

    def on_flood(self, output: Any) -> None:
        """A link window of incomplete datagrams past the threshold (``native/flood.rs``)."""
        _, link, start_ns, last_ns, counts, sources, sample, event = output
        identifier = f"{link_str(link)}|fragment_flood"
        if not self.flood_suppress.allow(identifier, last_ns):
            return
        seconds = self.flood_window_ns / NS
        total = counts["timeout"] + counts["evicted"]
        evidence: dict[str, Any] = {
            "window": {"start": start_ns / NS, "end": start_ns / NS + seconds, "seconds": seconds},
            "last_seen": last_ns / NS,
            "incomplete": {**counts, "total": total},
            "threshold": self.max_incomplete,
            "per_second": round(total / seconds, 3),
            "sources": sources,
            "sample_sources": [ip_str(a) for a in sample],
        }
        # One source: the alert names it; many (randomised): the link is the subject.
        one = sources == 1
        # The sample packet is the first fragment of the window's first lost datagram
        # (the anomaly's origin): a timeout is the clock's doing and has no packet.
        self.alert(
            CATEGORY,
            "fragment_flood",
            identifier=identifier,
            first_ns=start_ns,
            ts_ns=event.origin_ns,
            frame=event.origin_frame,
            iface=event.meta.iface,
            evidence=evidence,
            src_ip=ip_str(event.src) if one else None,
            dest_ip=ip_str(event.dst) if one else None,
            proto=FRAGMENT_PROTO,
            vlans=event.meta.vlans,
        )

    def on_reduced(self, output: Any) -> None:
        if output[0] == "flood":
            self.on_flood(output)
            return
        if output[0] == "burst":
            link, burst = Burst.from_native(output[1])
            raise_burst(self, CATEGORY, "sources", None, link, burst)
            return
        # ("alert", signature, count, reasons, frames, first_ns, last_ns, start_ns, event)
        _, sig, count, reasons, frames, first_ns, last_ns, start_ns, event = output
        meta = event.meta
        src, dst = event.src, event.dst
        is_fragment = isinstance(event, FragmentAnomaly)
        detail = f"id 0x{event.ident:08x}" if is_fragment else event.detail
        who = ip_str(src) if src is not None else mac_str(meta.src_mac) or "unknown"
        evidence: dict[str, Any] = {
            "count": count,
            "reasons": dict(sorted(reasons)),
            "detail": detail,
            "sample_frames": list(frames),
            "first_seen": first_ns / NS,
            "last_seen": last_ns / NS,
            "window": {"start": start_ns / NS, "seconds": self.window_ns / NS},
        }
        self.alert(
            CATEGORY,
            sig,
            identifier=f"{who}|{sig}",
            first_ns=first_ns,
            event=event,
            evidence=evidence,
            src_ip=ip_str(src) if src is not None else None,
            dest_ip=ip_str(dst) if dst is not None else None,
            # A Malformed event names its flow (protocol, ports or ICMP type) as far
            # as the decoder got, which ``alert`` reads from it; only the protocol is
            # passed here, as no event carries an ``ip`` header.
            proto=FRAGMENT_PROTO if is_fragment else event.proto,
        )

    def tick(self, now_ns: int) -> None:
        super().tick(now_ns)
        for output in self.sources.tick(now_ns):
            self.on_reduced(output)
        for output in self.flood.tick(now_ns):
            self.on_reduced(output)

    def flush(self, now_ns: int) -> None:
        super().flush(now_ns)
        for output in self.sources.flush(now_ns):
            self.on_reduced(output)
        for output in self.flood.flush(now_ns):
            self.on_reduced(output)
