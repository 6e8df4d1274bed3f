"""``ipv6.ndp_exhaustion``: many unanswered solicitations from one node.

Owns pairing each address-resolution NS (multicast to the target's
solicited-node group, RFC 4861 7.2.2) with an NA for its target; targets
still unanswered after ``resolve_timeout_s`` are counted per soliciting node
in packet-time windows. Off-link packets to a target seen shortly before
(from ``Ipv6Packet`` events) name the source driving the solicitations; those
events are asked of the decoder only while some node has ``drivers_after``
solicitations outstanding, because building one per packet would cost
ordinary traffic most of replay's speed. The
alert is raised when the window closes, so it carries the window's full
count (at most ``window_s`` + ``resolve_timeout_s`` after the first target).
Does not parse packets; NUD probes (unicast NS) and DAD probes (from ::) are
not address resolution and are not counted.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import Link, link_of, link_str, sweep_identifier
from detectors.events import (
    Ipv6Packet,
    NeighborAdvertisement,
    NeighborSolicitation,
    ip_str,
    is_link_local,
    mac_str,
)

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.ndp_exhaustion"
SAMPLE = 10
MAX_TARGETS = 65536  # distinct targets remembered per solicitor window
SOLICITED_NODE = bytes.fromhex("ff0200000000000000000001ff")  # ff02::1:ff00:0/104

Solicitor = tuple[Link, bytes, bytes | None]  # link, address, MAC


@dataclass(slots=True)
class _Pending:
    solicitor: Solicitor
    first_ns: int
    solicits: int = 1


@dataclass(slots=True)
class _Window:
    start_ns: int
    first_ns: int
    last_ns: int = 0
    targets: set[bytes] = field(default_factory=set)
    prefixes: Counter[bytes] = field(default_factory=Counter)  # first 8 bytes: the /64
    drivers: Counter[bytes] = field(default_factory=Counter)


class Exhaustion:
    """The ``ipv6.ndp_exhaustion`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.timeout_ns = int(th["resolve_timeout_s"] * NS)
        self.window_ns = int(th["window_s"] * NS)
        self.min_unresolved = int(th["min_unresolved"])
        self.pending = det.table("pending_targets", th["max_pending_tracked"], self._dropped)
        self.arm_at = int(th["drivers_after"])
        self.outstanding = det.table(
            "outstanding", th["max_solicitors_tracked"], lambda who, _n: self._set_armed(who, False)
        )
        self.armed: set[Solicitor] = set()
        # Evicted or due, a solicitor still reports its window; a window closes only
        # once its last targets had resolve_timeout_s to be answered.
        self.windows = det.windows(
            "solicitors",
            th["max_solicitors_tracked"],
            self.window_ns,
            self._close,
            grace_ns=self.timeout_ns,
        )
        self.drivers = det.table("recent_destinations", th["max_drivers_tracked"])
        self.suppress = det.suppressor(CATEGORY, th["max_solicitors_tracked"])

    def on_packet(self, ev: Ipv6Packet) -> None:
        """Remember who recently sent to each destination from off-link."""
        ip = ev.ip
        if ip.tunnels or is_link_local(ip.src) or ip.dst[0] == 0xFF:
            return
        if ev.icmp_type is not None and 133 <= ev.icmp_type <= 137:
            return
        self.drivers.put(ip.dst, ip.src)

    def on_ns(self, ev: NeighborSolicitation) -> None:
        ip = ev.ip
        if ip.dst[:13] != SOLICITED_NODE or not any(ip.src) or len(ev.target) != 16:
            return  # NUD (unicast) or DAD (from ::): not address resolution
        key = (link_of(ev), ev.target)
        pending: _Pending | None = self.pending.peek(key)
        if pending is not None:  # a retransmission keeps the first time
            pending.solicits += 1
        else:
            who = (key[0], ip.src, ev.sender_mac())
            self.pending.put(key, _Pending(who, ev.meta.ts_ns))
            self._outstanding(who, +1)

    def on_na(self, ev: NeighborAdvertisement) -> None:
        done = self.pending.pop((link_of(ev), ev.target))
        if done is not None:
            self._outstanding(done.solicitor, -1)

    def _dropped(self, _key: Any, p: _Pending) -> None:
        self._outstanding(p.solicitor, -1)

    def _outstanding(self, who: Solicitor, delta: int) -> None:
        """Count a node's open solicitations; ask for packet events while any is busy."""
        n = (self.outstanding.peek(who) or 0) + delta
        if n > 0:
            self.outstanding.put(who, n)
        else:
            self.outstanding.pop(who)
        self._set_armed(who, n >= self.arm_at)

    def _set_armed(self, who: Solicitor, busy: bool) -> None:
        was_armed = bool(self.armed)
        if busy:
            self.armed.add(who)
        else:
            self.armed.discard(who)
        if bool(self.armed) != was_armed:
            self.det.ctx.demand_packets(CATEGORY, bool(self.armed))

    def expire(self, now_ns: int) -> None:
        """Targets unanswered for ``resolve_timeout_s`` are unresolved (before windows close)."""
        deadline = now_ns - self.timeout_ns
        expired = self.pending.pop_oldest_while(lambda _k, p: p.first_ns <= deadline)
        for (_link, target), p in expired:
            self._outstanding(p.solicitor, -1)
            self._unresolved(p.solicitor, target, p.first_ns)

    def drain(self, now_ns: int) -> None:
        """End of input, before the windows close.

        A target still pending counts if it was solicited again: its first
        solicitation already went a full retransmit interval unanswered.
        """
        self.expire(now_ns)
        self.windows.close_due(now_ns)
        for (_link, target), p in self.pending.items():
            self._outstanding(p.solicitor, -1)
            if p.solicits >= 2:
                self._unresolved(p.solicitor, target, p.first_ns)
        self.pending.clear()

    def _unresolved(self, who: Solicitor, target: bytes, ts: int) -> None:
        w = self.windows.current(who, ts, lambda t: _Window(t, t))
        if target in w.targets or len(w.targets) >= MAX_TARGETS:
            return
        w.targets.add(target)
        w.last_ns = ts
        w.prefixes[target[:8]] += 1
        driver = self.drivers.peek(target)
        if driver is not None and (driver in w.drivers or len(w.drivers) < SAMPLE * 10):
            w.drivers[driver] += 1

    def _close(self, who: Solicitor, w: _Window) -> None:
        """A window ends: alert with its full counts if it crossed the threshold."""
        if len(w.targets) < self.min_unresolved:
            return
        link, addr, mac = who
        identifier = f"{link_str(link)}|{ip_str(addr)}|{mac_str(mac)}"
        if not self.suppress.allow(identifier, w.last_ns):
            return
        prefix, hits = w.prefixes.most_common(1)[0]
        net = ipaddress.IPv6Network((prefix + bytes(8), 64))
        evidence: dict[str, Any] = {
            "solicitor": {"address": ip_str(addr), "mac": mac_str(mac)},
            "prefix": str(net),
            "prefix_targets": hits,
            "other_prefixes": len(w.prefixes) - 1,
            "unresolved_targets": len(w.targets),
            "threshold": self.min_unresolved,
            "resolve_timeout_s": self.timeout_ns / NS,
            "sample_targets": sorted(ip_str(t) for t in sorted(w.targets)[:SAMPLE]),
            "off_link_sources": [
                {"address": ip_str(a), "targets": n}
                for a, n in sorted(w.drivers.items(), key=lambda kv: (-kv[1], kv[0]))[:SAMPLE]
            ],
            "first_seen": w.first_ns / NS,
            "last_seen": w.last_ns / NS,
            "window": {"start": w.start_ns / NS, "seconds": self.window_ns / NS},
            # The ipv6.sweep alerts of the driving sources carry the same prefix and
            # identifiers, so a SIEM can join the cause and the effect.
            "correlation": {
                "prefix": str(net),
                "sweeps": sorted({sweep_identifier(a[:8], prefix) for a in w.drivers}),
            },
        }
        self.det.alert(
            CATEGORY,
            "unresolved_targets",
            ts_ns=w.last_ns,
            identifier=identifier,
            first_ns=w.first_ns,
            evidence=evidence,
            src_ip=ip_str(addr),
            src_mac=mac_str(mac),
            dest_ip=None,
            vlans=link[1],
        )
