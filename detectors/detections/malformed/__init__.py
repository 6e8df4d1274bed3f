"""Malformed family: ``ipv6.malformed``.

Owns turning the decoder's ``Malformed`` and ``FragmentAnomaly`` events into
alerts, per source and signature, counted in packet-time windows. Which
decoder layers and fragment kinds count is set in ``spec.yaml``
(``parameters``). Does not decide what is malformed: the decoder does.
Frames cut by the snaplen never reach here (the decoder counts them apart).
Per link at most ``max_alerts_per_window`` alerts per window; sources past
that (a flood of malformed packets from random addresses) are folded into
one ``burst`` alert when the window closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detectors.detections import NS, Context, Detector
from detectors.detections.budget import LinkBudget
from detectors.events import Event, FragmentAnomaly, Malformed, ip_str, mac_str

CATEGORY = "ipv6.malformed"
SAMPLE = 10
_LAYER_SIGNATURE = {"nd": "malformed_nd", "ext": "malformed_chain", "tunnel": "malformed_tunnel"}


@dataclass(slots=True)
class _Count:
    start_ns: int
    first_ns: int
    last_ns: int = 0
    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    frames: list[int] = field(default_factory=list)


class MalformedDetector(Detector):
    """Counts malformed input per (source, signature) in windows."""

    subscribes = (Malformed, FragmentAnomaly)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        det = self.detection(CATEGORY)
        th = ctx.thresholds[CATEGORY]
        self.layers = frozenset(det.parameters.get("alert_layers", ()))
        self.fragment_kinds = frozenset(det.parameters.get("alert_fragment_kinds", ()))
        self.min_count = int(th["min_count"])
        self.window_ns = int(th["window_s"] * NS)
        cap = th["max_sources_tracked"]
        self.counts = self.table("sources", cap)
        self.suppress = self.suppressor(CATEGORY, cap)
        self.budget = LinkBudget(self, CATEGORY, "links", cap, "sources")

    def on_event(self, event: Event) -> None:
        if isinstance(event, Malformed):
            if event.layer not in self.layers:
                return
            sig = _LAYER_SIGNATURE[event.layer]
            src, dst, reason = event.src, event.dst, f"{event.layer}.{event.reason}"
            detail = event.detail
        else:
            assert isinstance(event, FragmentAnomaly)
            if event.kind not in self.fragment_kinds:
                return
            sig, src, dst = "bad_fragments", event.src, event.dst
            reason, detail = f"fragment.{event.kind}", f"id 0x{event.ident:08x}"
        meta = event.meta
        ts = meta.ts_ns
        who = ip_str(src) if src is not None else mac_str(meta.src_mac) or "unknown"
        identifier = f"{who}|{sig}"
        entry = self.counts.get(identifier)
        if entry is None or ts - entry.start_ns >= self.window_ns:
            entry = _Count(start_ns=ts, first_ns=ts)
            self.counts.put(identifier, entry)
        entry.count += 1
        entry.last_ns = ts
        entry.reasons[reason] = entry.reasons.get(reason, 0) + 1
        if meta.frame and len(entry.frames) < SAMPLE:
            entry.frames.append(meta.frame)
        if entry.count < self.min_count:
            return
        if not self.budget.permit(self.suppress, identifier, event, (src or b"", meta.src_mac)):
            return
        evidence: dict[str, Any] = {
            "count": entry.count,
            "reasons": dict(sorted(entry.reasons.items())),
            "detail": detail,
            "sample_frames": list(entry.frames),
            "first_seen": entry.first_ns / NS,
            "last_seen": entry.last_ns / NS,
            "window": {"start": entry.start_ns / NS, "seconds": self.window_ns / NS},
        }
        self.alert(
            CATEGORY,
            sig,
            ts_ns=ts,
            identifier=identifier,
            first_ns=entry.first_ns,
            event=event,
            evidence=evidence,
            src_ip=ip_str(src) if src is not None else None,
            dest_ip=ip_str(dst) if dst is not None else None,
        )
