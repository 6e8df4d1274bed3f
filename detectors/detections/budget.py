"""Per-link alert budgets and the small counting pieces the families share.

Owns one rule: on one link, at most ``max_alerts`` individual alerts per
packet-time window for one detection; whatever is past the cap is counted and
handed back once, when the window closes, so the family can raise a single
summary ("burst") alert. This is what keeps a flood that randomises its MAC
and address on every packet from producing an alert per packet.

Also owns ``Seen`` (first/last/count of one offender) and ``close_due``,
the window-expiry loop the families run on every tick. Does not build
alerts: the family formats the summary itself from ``burst_evidence``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.events import Event, ip_str, mac_str
from detectors.state import BoundedTable

if TYPE_CHECKING:
    from detectors.detections import Detector

Link = tuple[int, tuple[int, ...]]  # (interface, VLAN tags): one broadcast domain
Offender = tuple[bytes, bytes | None]  # (IPv6 address, MAC)
MAX_KEYS = 65536  # distinct offenders remembered per window, even inside one window
SAMPLE = 10  # offenders listed in a summary's evidence
NS = 1_000_000_000  # exact int division: x / 1e9 rounds differently


def link_of(event: Event) -> Link:
    return (event.meta.iface, event.meta.vlans)


def link_str(link: Link) -> str:
    """The link as it appears in identifiers: ``iface|vlan.vlan``."""
    return f"{link[0]}|{'.'.join(map(str, link[1]))}"


@dataclass(slots=True)
class Seen:
    """One offender's counts for the evidence: first and last seen, how many."""

    first_ns: int
    last_ns: int
    count: int = 0

    def touch(self, ts_ns: int) -> Seen:
        self.count += 1
        self.last_ns = ts_ns
        return self


def seen_in(table: BoundedTable[Any, Seen], key: Any, ts_ns: int) -> Seen:
    """Count one more sighting of ``key`` in ``table``."""
    return table.setdefault(key, lambda: Seen(ts_ns, ts_ns)).touch(ts_ns)


def close_due(
    table: BoundedTable[Any, Any],
    now_ns: int,
    span_ns: int,
    close: Callable[[Any, Any], None],
    start: Callable[[Any], int] = lambda w: int(w.start_ns),
) -> None:
    """Close and drop every window in ``table`` that began ``span_ns`` or more ago."""
    for key, window in table.items():
        if now_ns - start(window) >= span_ns:
            table.pop(key)
            close(key, window)


def close_all(table: BoundedTable[Any, Any], close: Callable[[Any, Any], None]) -> None:
    """End of input: close every window."""
    for key, window in table.items():
        close(key, window)
    table.clear()


@dataclass(slots=True)
class Overflow:
    """What one link's window folded instead of alerting individually."""

    start_ns: int
    alerts: int = 0  # individual alerts already raised in this window
    count: int = 0  # events past the cap
    keys: set[Offender] = field(default_factory=set)
    first_ns: int = 0
    last_ns: int = 0
    sample: Event | None = None

    def offenders(self) -> list[Offender]:
        """The folded offenders in a stable order (a MAC of None sorts first)."""
        return sorted(self.keys, key=lambda k: (k[0], k[1] or b""))


class LinkBudget:
    """Caps individual alerts per link and window; see the module docstring."""

    def __init__(
        self,
        detector: Detector,
        name: str,
        window_ns: int,
        max_alerts: int,
        cap: float,
        on_close: Callable[[Link, Overflow], None],
    ) -> None:
        self.window_ns = window_ns
        self.max_alerts = max_alerts
        self.on_close = on_close
        # An evicted link still reports what it folded.
        self.links = detector.table(name, cap, self._evicted)

    def admit(self, event: Event, key: Offender) -> bool:
        """True: raise the individual alert now. False: counted for the summary."""
        link = link_of(event)
        ts = event.meta.ts_ns
        window: Overflow | None = self.links.get(link)
        if window is None or ts - window.start_ns >= self.window_ns:
            if window is not None:
                self._close(link, window)
            window = Overflow(ts)
            self.links.put(link, window)
        if window.alerts < self.max_alerts:
            window.alerts += 1
            return True
        window.count += 1
        if len(window.keys) < MAX_KEYS:
            window.keys.add(key)
        if window.sample is None:
            window.sample = event
            window.first_ns = ts
        window.last_ns = ts
        return False

    def window_evidence(self, window: Overflow) -> dict[str, Any]:
        return {
            "start": window.start_ns / NS,
            "end": (window.start_ns + self.window_ns) / NS,
            "seconds": self.window_ns / NS,
        }

    def burst_evidence(self, window: Overflow, noun: str) -> dict[str, Any]:
        """What a summary alert says: counts, window, and a sample of ``noun``s."""
        offenders = window.offenders()
        return {
            "count": window.count,
            f"distinct_{noun}": len(offenders),
            "window": self.window_evidence(window),
            "first_seen": window.first_ns / NS,
            "last_seen": window.last_ns / NS,
            "individual_alerts": window.alerts,
            f"sample_{noun}": [f"{ip_str(a)} {mac_str(m)}" for a, m in offenders[:SAMPLE]],
        }

    def _close(self, link: Link, window: Overflow) -> None:
        if window.sample is not None:
            self.on_close(link, window)
            window.sample = None

    def _evicted(self, link: Any, window: Any) -> None:
        self._close(link, window)

    def tick(self, now_ns: int) -> None:
        close_due(self.links, now_ns, self.window_ns, self._close)

    def flush(self) -> None:
        close_all(self.links, self._close)
