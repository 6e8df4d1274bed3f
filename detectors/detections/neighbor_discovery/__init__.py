"""Neighbor Discovery family: ``ipv6.ndp_exhaustion``, ``ipv6.ndp_flood``,
``ipv6.ndp_spoof`` and ``ipv6.dad_dos``.

Owns routing the family's events to its four detections, one module each.
Thresholds come from ``spec.yaml``. Does not parse packets. ND inside a
tunnel is not the local link and is left alone; ``Ipv6Packet`` events only
feed the exhaustion detection's record of off-link senders.
"""

from __future__ import annotations

from detectors.detections import Context, Detector
from detectors.detections.neighbor_discovery.dad import DadDos
from detectors.detections.neighbor_discovery.exhaustion import Exhaustion
from detectors.detections.neighbor_discovery.flood import Flood
from detectors.detections.neighbor_discovery.spoof import Spoof
from detectors.events import (
    Event,
    Ipv6Packet,
    NDMessage,
    NeighborAdvertisement,
    NeighborSolicitation,
)


class NeighborDiscoveryDetector(Detector):
    """Dispatches local-link ND to the family's detections; see the module docstring."""

    subscribes = (NDMessage, Ipv6Packet)
    on_demand = (Ipv6Packet,)  # only while the exhaustion detection looks for drivers

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.exhaustion = Exhaustion(self)
        self.flood = Flood(self)
        self.spoof = Spoof(self)
        self.dad = DadDos(self)

    def on_event(self, event: Event) -> None:
        if isinstance(event, Ipv6Packet):
            # Other families may have every packet built; drivers are only wanted
            # while some node is busy soliciting (``drivers_after``).
            if self.exhaustion.armed:
                self.exhaustion.on_packet(event)
            return
        assert isinstance(event, NDMessage)
        if event.ip.tunnels:
            return
        self.flood.on_nd(event)
        self.spoof.on_nd(event)
        if isinstance(event, NeighborSolicitation):
            self.exhaustion.on_ns(event)
            self.dad.on_ns(event)
        elif isinstance(event, NeighborAdvertisement):
            self.exhaustion.on_na(event)
            self.dad.on_na(event)

    def tick(self, now_ns: int) -> None:
        self.exhaustion.expire(now_ns)
        super().tick(now_ns)

    def flush(self, now_ns: int) -> None:
        self.exhaustion.drain(now_ns)
        super().flush(now_ns)
