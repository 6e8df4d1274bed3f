"""Router Advertisement family: ``ipv6.rogue_ra``, ``ipv6.ra_guard_evasion``, ``ipv6.ra_flood``.

Owns routing the family's events to its three detections, one module each:
``rogue`` (is this RA allowed by the policy), ``evasion`` (is this ND message
hidden from RA-Guard by extension headers or fragments) and ``flood`` (too
many RAs, routers or options per link). Thresholds come from ``spec.yaml``.
Does not parse packets. ND inside a tunnel (Teredo qualification, for
example) is tunnel signalling, not the local link, and is left alone.
"""

from __future__ import annotations

from detectors.detections import Context, Detector
from detectors.detections.router_advert.evasion import Evasion
from detectors.detections.router_advert.flood import Flood
from detectors.detections.router_advert.rogue import RogueRA
from detectors.events import Event, NDMessage, RouterAdvertisement


class RouterAdvertDetector(Detector):
    """Dispatches local-link ND to the family's detections; see the module docstring."""

    subscribes = (NDMessage,)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.rogue = RogueRA(self)
        self.evasion = Evasion(self)
        self.flood = Flood(self)

    def on_event(self, event: Event) -> None:
        assert isinstance(event, NDMessage)
        if event.ip.tunnels:
            return
        self.evasion.on_nd(event)
        if isinstance(event, RouterAdvertisement):
            self.rogue.on_ra(event)
            self.flood.on_ra(event)
