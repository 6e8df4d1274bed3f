"""Neighbor Discovery family: ``ipv6.ndp_exhaustion``, ``ipv6.ndp_flood``,
``ipv6.ndp_spoof`` and ``ipv6.dad_dos``.

Owns routing the family's work to its four detections, one module each.
Thresholds come from ``spec.yaml``. Does not parse packets. The family's
per-message work is native (one reducer per detection, ``native/``, declared
under ``reducers:`` in the spec): every local-link ND message and, for the
exhaustion detection's off-link drivers, every IPv6 packet is counted there,
so no event reaches this family in Python; only the reducers' outputs (a
window past a threshold, a verdict past the budget and suppression, a burst)
come back through ``on_reduced``. ND inside a tunnel is not the local link
and is left alone.
"""

from __future__ import annotations

from typing import Any

from detectors.detections import Context, Detector
from detectors.detections.neighbor_discovery.dad import DadDos
from detectors.detections.neighbor_discovery.exhaustion import Exhaustion
from detectors.detections.neighbor_discovery.flood import Flood
from detectors.detections.neighbor_discovery.spoof import Spoof


class NeighborDiscoveryDetector(Detector):
    """Dispatches the native reducers' outputs to the family's detections."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.exhaustion = Exhaustion(self)
        self.flood = Flood(self)
        self.spoof = Spoof(self)
        self.dad = DadDos(self)
        self._outputs = {
            "exhaustion": self.exhaustion.on_reduced,
            "flood": self.flood.on_reduced,
            "spoof": self.spoof.on_reduced,
            "burst": self.spoof.on_reduced,  # the spoofing budget's (the only one here)
            "dad": self.dad.on_reduced,
        }

    def on_reduced(self, output: Any) -> None:
        self._outputs[output[0]](output)

    def _reduced(self, outputs: list[Any]) -> None:
        for output in outputs:
            self.on_reduced(output)

    def tick(self, now_ns: int) -> None:
        # The windows close in the order the detections made them: the exhaustion's
        # (after its expiry), the flood's, the spoofing budget's, the DAD's.
        self._reduced(self.exhaustion.reducer.tick(now_ns))
        self._reduced(self.flood.reducer.tick(now_ns))
        self._reduced(self.spoof.reducer.tick(now_ns))
        self._reduced(self.dad.reducer.tick(now_ns))

    def flush(self, now_ns: int) -> None:
        self._reduced(self.exhaustion.reducer.flush(now_ns))
        self._reduced(self.flood.reducer.flush(now_ns))
        self._reduced(self.spoof.reducer.flush(now_ns))
        self._reduced(self.dad.reducer.flush(now_ns))
