"""Router Advertisement family: ``ipv6.rogue_ra``, ``ipv6.ra_guard_evasion``, ``ipv6.ra_flood``.

Owns routing the family's native outputs to its three detections, one module
each: ``rogue`` (is this RA allowed by the policy), ``evasion`` (is this ND
message hidden from RA-Guard by extension headers or fragments) and ``flood``
(too many RAs, routers or options per link). Thresholds come from
``spec.yaml``. Every local-link ND message is judged and counted natively
(``native/``, one reducer per detection, declared under ``reducers:`` in the
spec); the family subscribes to no Python event, and its Python work grows with
alerts and closed windows, never with packets. Does not parse packets. ND
inside a tunnel (Teredo qualification, for example) is tunnel signalling, not
the local link, and is left alone.
"""

from __future__ import annotations

from typing import Any

from detectors.detections import Context, Detector
from detectors.detections.router_advert.evasion import Evasion
from detectors.detections.router_advert.flood import Flood
from detectors.detections.router_advert.rogue import RogueRA


class RouterAdvertDetector(Detector):
    """Routes the family's native outputs to its detections; see the module docstring."""

    subscribes = ()

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # The pipeline calls reducers in the order they were made, and an ND message was
        # judged for evasion before its RA was judged for rogue (their alerts for one
        # packet keep that order); the tables keep the order the stats always listed.
        first = len(self._tables)
        self.evasion = Evasion(self)
        middle = len(self._tables)
        self.rogue = RogueRA(self)
        end = len(self._tables)
        self._tables[first:end] = self._tables[middle:end] + self._tables[first:middle]
        self.flood = Flood(self)

    def on_reduced(self, output: Any) -> None:
        kind = output[0]
        if kind == "flood":
            self.flood.on_window(output)
        elif kind in ("evasion", "burst"):  # rogue's bursts come as "rogue_burst"
            self.evasion.on_output(output)
        else:
            self.rogue.on_output(output)

    def tick(self, now_ns: int) -> None:
        # The windows close in the order they were made: rogue's link budget, evasion's,
        # then the flood windows (as the Python windows did).
        for reducer in (self.rogue.reducer, self.evasion.reducer, self.flood.reducer):
            for output in reducer.tick(now_ns):
                self.on_reduced(output)
        super().tick(now_ns)

    def flush(self, now_ns: int) -> None:
        for reducer in (self.rogue.reducer, self.evasion.reducer, self.flood.reducer):
            for output in reducer.flush(now_ns):
                self.on_reduced(output)
        super().flush(now_ns)
