"""``ipv6.dad_dos``: one node defending every address others probe.

Owns pairing each Duplicate Address Detection probe (an NS from ::, RFC 4862
5.4) with answers from other MACs within ``dad_timeout_s``: an NA for the
probed address, or a probe of its own for the same address. Counts, per link
and packet-time window, the distinct addresses defended, by answering MAC and
by prober: one MAC defending many addresses, or one node denied many (tools
such as atk6-dos-new-ip6 answer each probe from a new random MAC).
Does not parse packets. The prober's own probe looped back (same MAC) is
not an answer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import Link, link_of, link_str
from detectors.events import NDMessage, NeighborAdvertisement, NeighborSolicitation, ip_str, mac_str

if TYPE_CHECKING:
    from detectors.detections import Detector
    from detectors.state import Windows

CATEGORY = "ipv6.dad_dos"
SAMPLE = 10
MAX_TARGETS = 4096


@dataclass(slots=True)
class _Probe:
    prober: bytes | None  # MAC of the node running DAD
    ts_ns: int
    answered: bool = False


@dataclass(slots=True)
class _LinkWindow:
    """Defended DAD probes on one link in one window."""

    start_ns: int
    first_ns: int
    last_ns: int = 0
    targets: dict[bytes, tuple[bytes | None, bytes | None]] = field(default_factory=dict)
    by_answerer: Counter[bytes | None] = field(default_factory=Counter)  # distinct targets
    by_prober: Counter[bytes | None] = field(default_factory=Counter)
    sources: set[bytes] = field(default_factory=set)  # IPv6 sources the answers came from
    kinds: Counter[str] = field(default_factory=Counter)
    alerted: bool = False


class DadDos:
    """The ``ipv6.dad_dos`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.timeout_ns = int(th["dad_timeout_s"] * NS)
        self.window_ns = int(th["window_s"] * NS)
        self.min_targets = int(th["min_targets"])
        self.probes = det.table("dad_probes", th["max_probes_tracked"])
        self.links: Windows[Link, _LinkWindow] = det.windows(
            "dad_links", th["max_links_tracked"], self.window_ns
        )
        self.suppress = det.suppressor(CATEGORY, th["max_links_tracked"])

    def on_ns(self, ev: NeighborSolicitation) -> None:
        if any(ev.ip.src) or len(ev.target) != 16:
            return
        key = (link_of(ev), ev.target)
        mac = ev.meta.src_mac
        probe: _Probe | None = self.probes.get(key)
        ts = ev.meta.ts_ns
        if probe is not None and ts - probe.ts_ns < self.timeout_ns and probe.prober != mac:
            self._answer(ev, key, probe, "ns_from_unspecified")
            return
        if probe is None or probe.prober != mac or ts - probe.ts_ns >= self.timeout_ns:
            self.probes.put(key, _Probe(mac, ts))

    def on_na(self, ev: NeighborAdvertisement) -> None:
        key = (link_of(ev), ev.target)
        probe: _Probe | None = self.probes.peek(key)
        if probe is None or ev.meta.ts_ns - probe.ts_ns >= self.timeout_ns:
            return
        if ev.meta.src_mac == probe.prober:
            return  # the prober announcing its new address after DAD succeeded
        self._answer(ev, key, probe, "na")

    def _answer(self, ev: NDMessage, key: tuple[Link, bytes], probe: _Probe, kind: str) -> None:
        link, target = key
        mac = ev.meta.src_mac
        ts = ev.meta.ts_ns
        w = self.links.current(link, ts, lambda t: _LinkWindow(t, t))
        w.last_ns = ts
        w.kinds[kind] += 1
        if any(ev.ip.src) and len(w.sources) < SAMPLE:
            w.sources.add(ev.ip.src)
        if target in w.targets or len(w.targets) >= MAX_TARGETS:
            return
        w.targets[target] = (probe.prober, mac)
        w.by_answerer[mac] += 1
        w.by_prober[probe.prober] += 1
        # One MAC defending many addresses, or one node denied many (the tool may
        # answer each probe from a new random MAC).
        busiest = max(w.by_answerer[mac], w.by_prober[probe.prober])
        if busiest >= self.min_targets and not w.alerted:
            w.alerted = True
            self._alert(ev, link, w)

    def _alert(self, ev: NDMessage, link: Link, w: _LinkWindow) -> None:
        identifier = f"{link_str(link)}|dad"
        if not self.suppress.allow(identifier, w.last_ns):
            return
        targets = sorted(w.targets.items())

        def top(c: Counter[bytes | None]) -> list[dict[str, Any]]:
            ranked = sorted(c.items(), key=lambda kv: (-kv[1], kv[0] or b""))
            return [{"mac": mac_str(m), "addresses": n} for m, n in ranked[:SAMPLE]]

        evidence: dict[str, Any] = {
            "defended_addresses": len(targets),
            "threshold": self.min_targets,
            "answering_macs": len(w.by_answerer),
            "top_answering_macs": top(w.by_answerer),
            "denied_probers": top(w.by_prober),
            "answering_sources": sorted(ip_str(s) for s in w.sources),
            "sample": [
                {"address": ip_str(t), "prober_mac": mac_str(p), "answering_mac": mac_str(a)}
                for t, (p, a) in targets[:SAMPLE]
            ],
            "answers": dict(sorted(w.kinds.items())),
            "dad_timeout_s": self.timeout_ns / NS,
            "first_seen": w.first_ns / NS,
            "last_seen": w.last_ns / NS,
            "window": {"start": w.start_ns / NS, "seconds": self.window_ns / NS},
        }
        self.det.alert(
            CATEGORY,
            "dad_answered",
            ts_ns=w.last_ns,
            identifier=identifier,
            first_ns=w.first_ns,
            event=ev,
            evidence=evidence,
        )
