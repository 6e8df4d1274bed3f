"""Per-link alert budgets and the small counting pieces the families share.

Owns one rule: on one link, at most ``max_alerts_per_window`` individual alerts
per ``window_s`` of packet time for one detection (both thresholds from that
detection's spec); whatever is past the cap is counted and raised once, when
the window closes, as the detection's ``burst`` alert. This is what keeps a
flood that randomises its MAC and address on every packet from producing an
alert per packet.

Also owns ``ObservationBudget`` (at most so many sub-threshold observations per window
for one category, the rest counted in one overflow observation), ``Seen``
(first/last/count of one offender) and the /64 and sweep
identifiers the sweep and exhaustion detections share, and ``raise_burst``, the
one writer of burst alerts: families whose counting is native get the same
budget from ``native/src/reduce/budget.rs`` and hand its ``Burst`` here. Does not decide what
is an offence: the family asks ``permit`` before each individual alert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from detectors.detections import NS, Context, Detector
from detectors.events import Event, ip_str, mac_str
from detectors.state import BoundedTable, Suppressor

Link = tuple[int, tuple[int, ...]]  # (interface, VLAN tags): one broadcast domain
Offender = tuple[bytes, bytes | None]  # (IPv6 address, MAC)
MAX_KEYS = 65536  # distinct offenders remembered per window, even inside one window
SAMPLE = 10  # offenders listed in a summary's evidence


def prefix64_str(prefix: bytes) -> str:
    """The /64 whose first 8 bytes are ``prefix``, as text (2001:db8:1::/64)."""
    return f"{ip_str(prefix[:8] + bytes(8))}/64"


def sweep_identifier(src64: bytes, dst64: bytes) -> str:
    """The identifier of a sweep by a source /64 of a destination /64.

    ``ipv6.sweep`` alerts use it, and ``ipv6.ndp_exhaustion`` lists it for
    the off-link sources driving a router's solicitations, so the two alerts
    reference each other."""
    return f"{prefix64_str(src64)}|{prefix64_str(dst64)}"


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
        category: str,
        name: str,
        cap: float,
        noun: str,
        extra: Callable[[Link], dict[str, Any]] | None = None,
    ) -> None:
        """``noun`` names the offenders in the burst evidence (``distinct_<noun>``);
        ``extra`` adds the family's own fields for the link."""
        self.detector = detector
        self.category = category
        self.noun = noun
        self.extra = extra
        self.window_ns = int(detector.threshold(category, "window_s") * NS)
        self.max_alerts = int(detector.threshold(category, "max_alerts_per_window"))
        # Evicted or due, a link still reports what it folded.
        self.links = detector.windows(name, cap, self.window_ns, self._burst)

    def permit(self, suppress: Suppressor, identifier: str, event: Event, key: Offender) -> bool:
        """May the individual alert for ``identifier`` be raised now?

        A suppressed identifier costs no budget; past the budget the event is
        folded into the burst; otherwise the identifier is suppressed from now.
        """
        ts = event.meta.ts_ns
        if suppress.active(identifier, ts) or not self.admit(event, key):
            return False
        return suppress.allow(identifier, ts)

    def admit(self, event: Event, key: Offender) -> bool:
        """True: raise the individual alert now. False: counted for the summary."""
        ts = event.meta.ts_ns
        window = self.links.current(link_of(event), ts, Overflow)
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

    def _burst(self, link: Link, window: Overflow) -> None:
        if window.sample is None:
            return
        offenders = window.offenders()
        raise_burst(
            self.detector,
            self.category,
            self.noun,
            self.extra,
            link,
            Burst(
                start_ns=window.start_ns,
                window_ns=self.window_ns,
                alerts=window.alerts,
                count=window.count,
                distinct=len(offenders),
                sample_offenders=offenders[:SAMPLE],
                first_ns=window.first_ns,
                last_ns=window.last_ns,
                sample=window.sample,
            ),
        )
        window.sample = None


@dataclass(frozen=True, slots=True)
class Burst:
    """A closed link window that folded alerts: from ``LinkBudget`` or from a native
    reducer's budget (``native/src/reduce/budget.rs``, whose ``("burst", link, ...)``
    output ``Burst.from_native`` reads)."""

    start_ns: int
    window_ns: int
    alerts: int
    count: int
    distinct: int
    sample_offenders: list[Offender]
    first_ns: int
    last_ns: int
    sample: Event

    @staticmethod
    def from_native(output: tuple[Any, ...]) -> tuple[Link, Burst]:
        """``("burst", link, start_ns, window_ns, alerts, count, distinct,
        sample_offenders, first_ns, last_ns, sample_event)`` -> (link, burst)."""
        _kind, link, start, span, alerts, count, distinct, sample_keys, first, last, ev = output
        return link, Burst(start, span, alerts, count, distinct, sample_keys, first, last, ev)


def raise_burst(
    detector: Detector,
    category: str,
    noun: str,
    extra: Callable[[Link], dict[str, Any]] | None,
    link: Link,
    burst: Burst,
) -> None:
    """The detection's ``burst`` alert for one link window; ``noun`` names the offenders
    in the evidence (``distinct_<noun>``), ``extra`` adds the family's own fields."""
    evidence = {
        "count": burst.count,
        f"distinct_{noun}": burst.distinct,
        "window": {
            "start": burst.start_ns / NS,
            "end": (burst.start_ns + burst.window_ns) / NS,
            "seconds": burst.window_ns / NS,
        },
        "first_seen": burst.first_ns / NS,
        "last_seen": burst.last_ns / NS,
        "individual_alerts": burst.alerts,
        f"sample_{noun}": [f"{ip_str(a)} {mac_str(m)}" for a, m in burst.sample_offenders],
    }
    if extra is not None:
        evidence.update(extra(link))
    detector.alert(
        category,
        "burst",
        identifier=f"{link_str(link)}|burst",
        first_ns=burst.start_ns,
        event=burst.sample,
        evidence=evidence,
        src_mac=None,
    )


@dataclass
class ObservationBudget:
    """At most ``cap`` observations per ``window_ns`` of packet time for ``category``.
    Past the cap an observation is counted, not written; when the window closes, the
    count goes out as one ``overflow`` observation, so nothing is dropped unrecorded
    (the sweep's per-source and fan-in windows, the DNS backscatter originators)."""

    ctx: Context
    category: str
    cap: int
    window_ns: int
    start: int | None = None  # packet time the window opened
    used: int = 0
    dropped: int = 0

    def take(self, end: int) -> bool:
        """One observation at packet time ``end``: False past the cap (counted)."""
        self.close(end)
        if self.start is None:
            self.start = end
        if self.used >= self.cap:
            self.dropped += 1
            return False
        self.used += 1
        return True

    def close(self, now_ns: int, final: bool = False) -> None:
        """End the window once ``now_ns`` is past it (or at the end of input, ``final``),
        writing the overflow observation if any were over the cap."""
        start = self.start
        if start is None or (not final and now_ns - start < self.window_ns):
            return
        if self.dropped and self.ctx.observe is not None:
            end = min(max(now_ns, start), start + self.window_ns)
            self.ctx.observation(
                "overflow",
                f"{self.category}|overflow",
                start,
                end,
                {
                    "dropped": self.dropped,
                    "emitted": self.used,
                    "cap": self.cap,
                    "window": {"start": start / NS, "seconds": self.window_ns / NS},
                },
            )
        self.start, self.used, self.dropped = None, 0, 0
