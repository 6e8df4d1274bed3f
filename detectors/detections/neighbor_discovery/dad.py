"""``ipv6.dad_dos``: one node defending every address others probe.

Owns pairing each Duplicate Address Detection probe (an NS from ::, RFC 4862
5.4) with answers from other MACs within ``dad_timeout_s``: an NA for the
probed address, or a probe of its own for the same address. Counts, per
answering MAC, the distinct addresses it defended in packet-time windows.
Does not parse packets. The prober's own probe looped back (same MAC) is
not an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import Link, link_of, link_str
from detectors.events import NDMessage, NeighborAdvertisement, NeighborSolicitation, ip_str, mac_str

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.dad_dos"
SAMPLE = 10
MAX_TARGETS = 4096


@dataclass(slots=True)
class _Probe:
    prober: bytes | None  # MAC of the node running DAD
    ts_ns: int
    answered: bool = False


@dataclass(slots=True)
class _Answerer:
    start_ns: int
    first_ns: int
    last_ns: int = 0
    targets: dict[bytes, bytes | None] = field(default_factory=dict)  # address -> prober MAC
    sources: set[bytes] = field(default_factory=set)  # IPv6 sources the answers came from
    kinds: dict[str, int] = field(default_factory=dict)
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
        self.answerers = det.table("dad_answerers", th["max_answerers_tracked"])
        self.suppress = det.suppressor(CATEGORY, th["max_answerers_tracked"])

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
        who = (link, mac)
        a: _Answerer | None = self.answerers.get(who)
        if a is None or ts - a.start_ns >= self.window_ns:
            a = _Answerer(ts, ts)
            self.answerers.put(who, a)
        a.last_ns = ts
        a.kinds[kind] = a.kinds.get(kind, 0) + 1
        if any(ev.ip.src) and len(a.sources) < SAMPLE:
            a.sources.add(ev.ip.src)
        if target not in a.targets and len(a.targets) < MAX_TARGETS:
            a.targets[target] = probe.prober
        if len(a.targets) >= self.min_targets and not a.alerted:
            a.alerted = True
            self._alert(ev, link, mac, a)

    def _alert(self, ev: NDMessage, link: Link, mac: bytes | None, a: _Answerer) -> None:
        identifier = f"{link_str(link)}|{mac_str(mac)}"
        if not self.suppress.allow(identifier, a.last_ns):
            return
        targets = sorted(a.targets.items())
        evidence: dict[str, Any] = {
            "answering_mac": mac_str(mac),
            "answering_sources": sorted(ip_str(s) for s in a.sources),
            "defended_addresses": len(targets),
            "threshold": self.min_targets,
            "sample": [
                {"address": ip_str(t), "prober_mac": mac_str(p)} for t, p in targets[:SAMPLE]
            ],
            "answers": dict(sorted(a.kinds.items())),
            "dad_timeout_s": self.timeout_ns / NS,
            "first_seen": a.first_ns / NS,
            "last_seen": a.last_ns / NS,
            "window": {"start": a.start_ns / NS, "seconds": self.window_ns / NS},
        }
        self.det.alert(
            CATEGORY,
            "dad_answered",
            ts_ns=a.last_ns,
            identifier=identifier,
            first_ns=a.first_ns,
            event=ev,
            evidence=evidence,
        )
