"""``ipv6.sweep``: many addresses of one /64, or a few in many /64s, from one source /64.

Owns two window tables, both keyed by the source /64 so that a scanner that
randomises its own address within its /64 is still one scanner:

- per (source /64, destination /64): distinct targets, the source addresses
  seen, a distinct sample of targets for the pattern classes, probe kinds;
- per source /64: distinct targets and destination /64s over everything it
  sent (wide scans), and the distinct hosts that sent anything back to it
  (the no-reply ratio that keeps servers and busy clients silent).

Counters are exact up to ``exact_up_to`` values and HyperLogLog sketches
after, so memory depends on the table caps, never on the number of targets.
A tier is checked on every new target (the sketch's estimate is O(1)), and
alerts the moment it is crossed, once per tier and window.

Also owns the family's observations (``detectors.observations``): when a
(source /64, destination /64) window closes (rolled over, due, evicted or
flushed) with at least ``observe_min_targets`` distinct targets, one
observation of it, whether or not it alerted; at most
``max_observations_per_window`` per window of packet time, the rest counted
into one overflow observation. They let Elasticsearch add up a scanner that
stays below every tier at each of several sensors. Does not parse packets
and does not decide what the decoder counts as a packet.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import prefix64_str, sweep_identifier
from detectors.detections.sweep.patterns import CLASSES, classify, eui64_oui
from detectors.events import Ipv6Packet, ip_str, is_link_local
from detectors.observations import Observation
from detectors.sketch import DistinctCounter, DistinctSample, hash_bytes, mix64
from detectors.state import Windows

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.sweep"
TIERS = ("medium", "high", "critical")
SAMPLE = 10  # targets and sources listed in the evidence
PATTERN_SAMPLE = 64  # distinct targets classified per window
MAX_SOURCES_NAMED = 64  # source addresses remembered per window
HOST_SHARE = 0.9  # of a sweep's new targets found by one address: a host sweep
RECENT_PAIRS = 16384  # flows remembered to skip repeated packets; cleared when full
SOURCE_PRECISION_DROP = 2  # per-source sketches are 4x smaller: they only gate and count /64s


def probe_kind(ev: Ipv6Packet) -> str:
    """What kind of probe a packet is (issue 4's list)."""
    if ev.icmp_type is not None:
        if ev.icmp_type == 128:
            return "icmpv6_echo"
        return "icmpv6_error" if ev.icmp_type < 128 else "icmpv6_other"
    if ev.tcp_flags is not None:
        return "tcp_syn" if ev.tcp_flags & 0x12 == 0x02 else "tcp_other"
    if ev.ip.upper == 17:
        return "udp"
    return "other"


@dataclass(slots=True, kw_only=True)
class _Window:
    """What both windows keep: when, which source addresses, how many packets."""

    start_ns: int
    first: Ipv6Packet
    sample: DistinctSample[bytes]  # distinct targets, for pattern classes and samples
    last_ns: int = 0
    packets: int = 0
    # Source addresses (at most MAX_SOURCES_NAMED) -> new targets each found.
    sources: Counter[bytes] = field(default_factory=Counter)
    more_sources: bool = False
    probes: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True, kw_only=True)
class _Pair(_Window):
    """One source /64's window on one destination /64."""

    targets: DistinctCounter  # interface identifiers
    tier: int = 0  # tiers alerted in this window
    source: _Source | None = None  # the source /64's window, for the no-reply ratio


@dataclass(slots=True, kw_only=True)
class _Source(_Window):
    """One source /64's window over everything it sent and got back."""

    targets: DistinctCounter  # full addresses
    prefixes: DistinctCounter  # destination /64s
    responders: DistinctCounter  # hosts that sent anything to the source /64
    swept: bool = False  # some destination /64 reached a tier: not a wide scan
    wide: bool = False  # the wide-scan alert was raised in this window


class Sweep:
    """The ``ipv6.sweep`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.window_ns = int(th["window_s"] * NS)
        self.tiers = [th["medium_targets"], th["high_targets"], th["critical_targets"]]
        self.wide_prefixes = th["wide_min_prefixes"]
        self.wide_targets = th["wide_min_targets"]
        self.min_no_reply = th["min_no_reply_ratio"]
        self.exact = int(th["exact_up_to"])
        self.precision = int(th["sketch_precision"])
        self.src_precision = max(4, self.precision - SOURCE_PRECISION_DROP)
        self.sources: Windows[bytes, _Source] = det.windows(
            "sources", th["max_sources_tracked"], self.window_ns
        )
        self.pairs: Windows[tuple[bytes, bytes], _Pair] = det.windows(
            "pairs", th["max_pairs_tracked"], self.window_ns, self._pair_closed
        )
        self.observe = det.ctx.observe
        self.observe_min = th["observe_min_targets"]
        self.observe_cap = int(th["max_observations_per_window"])
        self._budget_start: int | None = None  # packet time the observation budget opened
        self._budget_used = 0
        self._budget_dropped = 0
        self.suppress = det.suppressor(CATEGORY, th["max_pairs_tracked"])
        # (source, destination) -> its open windows: repeated packets of a flow skip
        # hashing and lookups, which is most of the traffic on a real link.
        self._recent: dict[tuple[bytes, bytes], tuple[_Pair, _Source]] = {}

    # -- per packet --------------------------------------------------------

    def on_packet(self, ev: Ipv6Packet) -> None:
        ip = ev.ip
        src, dst = ip.src, ip.dst
        if dst[0] == 0xFF or is_link_local(dst) or is_link_local(src) or src[0] == 0xFF:
            return  # multicast and link-local traffic is not addressed probing
        if ev.icmp_type is not None and 133 <= ev.icmp_type <= 137:
            return
        ts = ev.meta.ts_ns
        pair = (src, dst)
        hit = self._recent.get(pair)
        if hit is not None:
            p, s = hit
            span = self.window_ns
            if ts - p.start_ns < span and ts - s.start_ns < span:
                # A known target in the current windows: nothing new to count.
                p.last_ns = s.last_ns = ts
                p.packets += 1
                s.packets += 1
                return
        src64, dst64 = src[:8], dst[:8]
        h_src = hash_bytes(src)
        # A packet to a tracked source /64 is a reply to it, whatever it is.
        back = self.sources.table.peek(dst64)
        if back is not None:
            back.responders.add(h_src)
        if not any(src) or (ev.quoted_src is not None and ev.quoted_src == dst):
            return  # an ICMPv6 error about the destination's own packet is a reply
        h_iid = mix64(int.from_bytes(dst[8:], "big"))
        h_dst = mix64(h_iid ^ int.from_bytes(dst64, "big"))
        kind = probe_kind(ev)

        s = self.sources.current(src64, ts, lambda t: self._new_source(t, ev))
        s.last_ns = ts
        s.packets += 1
        s.probes[kind] += 1
        new = s.targets.add(h_dst)
        _name(s, src, new)
        if new:
            s.sample.add(h_dst, dst)
            s.prefixes.add(hash_bytes(dst64))

        p = self.pairs.current((src64, dst64), ts, lambda t: self._new_pair(t, ev, s))
        p.last_ns = ts
        p.packets += 1
        p.probes[kind] += 1
        new = p.targets.add(h_iid)
        _name(p, src, new)
        if new:
            p.sample.add(h_iid, dst)
            if p.tier < len(self.tiers) and p.targets.estimate() >= self.tiers[p.tier]:
                self._tier_crossed(src64, dst64, p, s)
            elif not s.wide and not s.swept:
                self._check_wide(src64, s)
        recent = self._recent
        if len(recent) >= RECENT_PAIRS:
            recent.clear()
        recent[pair] = (p, s)

    def _new_source(self, ts: int, ev: Ipv6Packet) -> _Source:
        sp = self.src_precision
        return _Source(
            start_ns=ts,
            first=ev,
            sample=DistinctSample(PATTERN_SAMPLE),
            targets=DistinctCounter(self.exact, sp),
            prefixes=DistinctCounter(self.exact, sp),
            responders=DistinctCounter(self.exact, sp),
        )

    def _new_pair(self, ts: int, ev: Ipv6Packet, s: _Source) -> _Pair:
        return _Pair(
            start_ns=ts,
            first=ev,
            sample=DistinctSample(PATTERN_SAMPLE),
            targets=DistinctCounter(self.exact, self.precision),
            source=s,
        )

    # -- observations --------------------------------------------------------

    def _pair_closed(self, key: tuple[bytes, bytes], p: _Pair) -> None:
        """One observation of a closed pair window with enough targets (bounded)."""
        if self.observe is None:
            return
        estimate = p.targets.estimate()
        if estimate < self.observe_min:
            return
        end = p.last_ns or p.start_ns
        self.close_budget(end)
        if self._budget_start is None:
            self._budget_start = end
        if self._budget_used >= self.observe_cap:
            self._budget_dropped += 1
            return
        self._budget_used += 1
        src64, dst64 = key
        top, top_found = p.sources.most_common(1)[0] if p.sources else (src64, 0)
        one_source = top_found >= HOST_SHARE * sum(p.sources.values()) and not p.more_sources
        ratio = self.no_reply_ratio(p.source) if p.source is not None else 0.0
        tier = TIERS[p.tier - 1] if p.tier else None
        self.observe(
            Observation(
                kind="sweep",
                ts_ns=end,
                start_ns=p.start_ns,
                end_ns=end,
                key=sweep_identifier(src64, dst64),
                # One address did (nearly) all the probing: it is named, as in host_sweep;
                # otherwise only the source /64 is, as in prefix_sweep.
                source_ip=ip_str(top) if one_source else None,
                capture=self.det.ctx.capture(),
                details={
                    "source_prefix": prefix64_str(src64),
                    "source_addresses": len(p.sources),
                    "more_source_addresses": p.more_sources,
                    "destination_prefix": prefix64_str(dst64),
                    "estimated_targets": round(estimate),
                    "exact": p.targets.exact,
                    "no_reply_ratio": round(ratio, 4),
                    "packets": p.packets,
                    "probes": dict(sorted(p.probes.items())),
                    "tier": tier,
                    "window": {
                        "start": p.start_ns / NS,
                        "end": end / NS,
                        "seconds": self.window_ns / NS,
                    },
                },
            )
        )

    def close_budget(self, now_ns: int, final: bool = False) -> None:
        """End the observation budget's window once ``now_ns`` is past it (or at the end of
        input, ``final``), writing one overflow observation if any were dropped."""
        start = self._budget_start
        if start is None or (not final and now_ns - start < self.window_ns):
            return
        if self._budget_dropped and self.observe is not None:
            end = min(max(now_ns, start), start + self.window_ns)
            self.observe(
                Observation(
                    kind="overflow",
                    ts_ns=end,
                    start_ns=start,
                    end_ns=end,
                    key=f"{CATEGORY}|overflow",
                    capture=self.det.ctx.capture(),
                    details={
                        "dropped": self._budget_dropped,
                        "emitted": self._budget_used,
                        "cap": self.observe_cap,
                        "window": {"start": start / NS, "seconds": self.window_ns / NS},
                    },
                )
            )
        self._budget_start, self._budget_used, self._budget_dropped = None, 0, 0

    # -- alerts ------------------------------------------------------------

    def no_reply_ratio(self, s: _Source) -> float:
        targets = s.targets.estimate()
        if targets <= 0:
            return 0.0
        return max(0.0, 1.0 - min(s.responders.estimate(), targets) / targets)

    def _tier_crossed(self, src64: bytes, dst64: bytes, p: _Pair, s: _Source) -> None:
        """Alert for every tier ``p`` reached since the last one, if the gate allows."""
        s.swept = True
        ratio = self.no_reply_ratio(s)
        if ratio < self.min_no_reply:
            return  # checked again on the next new target: replies may stop
        estimate = p.targets.estimate()
        while p.tier < len(self.tiers) and estimate >= self.tiers[p.tier]:
            p.tier += 1
        tier = TIERS[p.tier - 1]
        identifier = sweep_identifier(src64, dst64)
        if not self.suppress.allow((identifier, tier), p.last_ns):
            return
        # One address found nearly all the targets: a host sweep, named by it. Other
        # hosts of the same /64 talking to this /64 meanwhile do not make it a prefix sweep.
        top, top_found = p.sources.most_common(1)[0]
        one_source = top_found >= HOST_SHARE * sum(p.sources.values())
        evidence = self._evidence(p.sources, p.more_sources, p.first, p.start_ns, p.last_ns)
        evidence.update(
            target_prefix=prefix64_str(dst64),
            tier=tier,
            tiers={t: self.tiers[i] for i, t in enumerate(TIERS)},
            estimated_targets=round(estimate),
            exact=p.targets.exact,
            coverage_of_64=estimate / 2**64,
            patterns=_patterns(p.sample),
            no_reply_ratio=round(ratio, 4),
            responders=round(s.responders.estimate()),
            source_targets=round(s.targets.estimate()),
            sample_targets=_sample(p.sample),
            probes=dict(sorted(p.probes.items())),
            packets=p.packets,
            correlation={"prefix": prefix64_str(dst64), "sweeps": [identifier]},
        )
        self.det.alert(
            CATEGORY,
            "host_sweep" if one_source else "prefix_sweep",
            ts_ns=p.last_ns,
            identifier=identifier,
            first_ns=p.start_ns,
            event=p.first,
            evidence=evidence,
            severity=tier,
            src_ip=ip_str(top),
            dest_ip=None,
            src_mac=None,
            dest_mac=None,
        )

    def _check_wide(self, src64: bytes, s: _Source) -> None:
        targets = s.targets.estimate()
        if targets < self.wide_targets or s.prefixes.estimate() < self.wide_prefixes:
            return
        ratio = self.no_reply_ratio(s)
        if ratio < self.min_no_reply:
            return
        s.wide = True
        identifier = f"{prefix64_str(src64)}|wide"
        if not self.suppress.allow((identifier, "medium"), s.last_ns):
            return
        evidence = self._evidence(s.sources, s.more_sources, s.first, s.start_ns, s.last_ns)
        evidence.update(
            estimated_targets=round(targets),
            estimated_prefixes=round(s.prefixes.estimate()),
            exact=s.targets.exact and s.prefixes.exact,
            thresholds={"targets": self.wide_targets, "prefixes": self.wide_prefixes},
            patterns=_patterns(s.sample),
            no_reply_ratio=round(ratio, 4),
            responders=round(s.responders.estimate()),
            sample_targets=_sample(s.sample),
            probes=dict(sorted(s.probes.items())),
            packets=s.packets,
        )
        self.det.alert(
            CATEGORY,
            "wide_scan",
            ts_ns=s.last_ns,
            identifier=identifier,
            first_ns=s.start_ns,
            event=s.first,
            evidence=evidence,
            src_ip=ip_str(s.sources.most_common(1)[0][0]),
            dest_ip=None,
            src_mac=None,
            dest_mac=None,
        )

    def _evidence(
        self, sources: Counter[bytes], more: bool, first: Ipv6Packet, start: int, last: int
    ) -> dict[str, Any]:
        named = sorted(sources, key=lambda a: (-sources[a], a))
        return {
            "source": {
                "prefix": prefix64_str(named[0][:8]),
                "addresses": len(named),
                "more_addresses": more,
                "sample": [
                    {"address": ip_str(a), "new_targets": sources[a]} for a in named[:SAMPLE]
                ],
            },
            "first_seen": first.meta.ts_ns / NS,
            "last_seen": last / NS,
            "window": {"start": start / NS, "seconds": self.window_ns / NS},
        }


def _name(w: _Window, src: bytes, new: bool) -> None:
    """Count what each source address (at most MAX_SOURCES_NAMED) found new."""
    if src in w.sources or len(w.sources) < MAX_SOURCES_NAMED:
        w.sources[src] += new
    else:
        w.more_sources = True


def _patterns(sample: DistinctSample[bytes]) -> dict[str, Any]:
    """Pattern classes of the distinct sample, as shares, with the EUI-64 OUIs."""
    counts: Counter[str] = Counter()
    ouis: Counter[str] = Counter()
    for addr in sample:
        cls = classify(addr[8:])
        counts[cls] += 1
        if cls == "eui64":
            ouis[eui64_oui(addr[8:])] += 1
    n = len(sample) or 1
    return {
        "sampled": len(sample),
        "sample_rate": sample.rate(),
        "shares": {c: round(counts[c] / n, 4) for c in CLASSES if counts[c]},
        "dominant": counts.most_common(1)[0][0] if counts else None,
        "eui64_ouis": dict(sorted(ouis.items(), key=lambda kv: (-kv[1], kv[0]))[:SAMPLE]),
    }


def _sample(sample: DistinctSample[bytes]) -> list[str]:
    return [ip_str(a) for a in sorted(sample)[:SAMPLE]]
