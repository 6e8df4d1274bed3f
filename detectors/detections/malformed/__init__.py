"""Malformed family: ``ipv6.malformed``.

Owns turning the decoder's ``Malformed`` and ``FragmentAnomaly`` events into
alerts, per source and signature, counted in packet-time windows. Which
decoder layers and fragment kinds count is set in ``spec.yaml``
(``parameters``). Does not decide what is malformed: the decoder does.
Frames cut by the snaplen never reach here (the decoder counts them apart).
Per link at most ``max_alerts_per_window`` alerts per window; sources past
that (a flood of malformed packets from random addresses) are folded into
one ``burst`` alert when the window closes.

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
from detectors.detections.budget import Burst, raise_burst
from detectors.events import FragmentAnomaly, ip_str, mac_str

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

    def on_reduced(self, output: Any) -> None:
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

    def flush(self, now_ns: int) -> None:
        super().flush(now_ns)
        for output in self.sources.flush(now_ns):
            self.on_reduced(output)
