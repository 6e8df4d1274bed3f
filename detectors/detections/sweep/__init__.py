"""Sweep family: ``ipv6.sweep`` and ``ipv6.dark_prefix``.

Owns routing every decoded IPv6 packet (native or tunnelled) to the
family's two detections, one module each; thresholds come from
``spec.yaml``; closing the sweep's observation budget on packet time and at
the end of input. Does not parse packets.
"""

from __future__ import annotations

from typing import Any

from detectors.detections import Context, Detector
from detectors.detections.sweep.dark import DarkPrefix
from detectors.detections.sweep.sweep import Sweep
from detectors.events import Event, Ipv6Packet


class SweepDetector(Detector):
    """Judges the sweep reducer's outcomes; dispatches IPv6 packets to the dark-prefix
    detection when the policy names dark prefixes."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.sweep = Sweep(self)
        self.dark = DarkPrefix(self)
        # Packets reach Python only for dark prefixes; the sweep counts natively.
        self.subscribes = (Ipv6Packet,) if self.dark.active else ()

    def on_event(self, event: Event) -> None:
        assert isinstance(event, Ipv6Packet)
        self.dark.on_packet(event)

    def on_reduced(self, output: Any) -> None:
        self.sweep.on_outcome(output)

    def tick(self, now_ns: int) -> None:
        # The sweep's (native) windows were made first, so they close first, as the base
        # class closes tables in the order they were made.
        self.sweep.close_due(now_ns)
        super().tick(now_ns)
        self.sweep.budget.close(now_ns)

    def flush(self, now_ns: int) -> None:
        self.sweep.close_all(now_ns)  # closes every pair window: their observations come first
        super().flush(now_ns)
        self.sweep.budget.close(now_ns, final=True)
