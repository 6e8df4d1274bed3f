"""``ipv6.sweep``: many addresses of one /64, or a few in many /64s, from one source /64.

The per-packet counting is native (the ``sweep`` reducer declared in
``spec.yaml``, in ``native/``): the fused loop hands it every decoded IPv6
packet without Python. This module owns the judgement around it:
thresholds from the spec, suppression, alerts and observations, which it
builds from the rare outcomes the reducer hands back. Its work grows with
alerts and windows, never with packets.

The reducer owns two window tables, both keyed by the source /64 so that a
scanner that randomises its own address within its /64 is still one scanner:

- per (source /64, destination /64): distinct targets, the source addresses
  seen, a distinct sample of targets for the pattern classes, probe kinds;
- per source /64: distinct targets and destination /64s over everything it
  sent (wide scans), and the distinct hosts that sent anything back to it
  (the no-reply ratio that keeps servers and busy clients silent).

Answers (echo replies, SYN-ACKs, RSTs, ICMPv6 errors quoting their
destination's own packet, UDP or established TCP from a port below 1024 to an
ephemeral one) open no window in any table: they
only count their sender as a responder of the windows already open, so a busy
server's answers to its clients neither sweep nor thrash a table.

Counters are exact up to ``exact_up_to`` values and HyperLogLog sketches
after (bit-for-bit ``detectors.sketch``), so memory depends on the table caps,
never on the number of targets. A tier is checked on every new target, and
alerts the moment it is crossed, once per tier and window: the reducer hands
back the crossing once the no-reply gate passed, and this module checks
suppression and writes the alert with the window's evidence (pattern classes
of the sampled targets included).

Also owns the family's observations (``detectors.es.observations``): when a
(source /64, destination /64) window closes (rolled over, due, evicted or
flushed) with at least ``observe_min_targets`` distinct targets, one
observation of it, whether or not it alerted; at most
``max_observations_per_window`` per window of packet time, the rest counted
into one overflow observation. They let Elasticsearch add up a scanner that
stays below every tier at each of several sensors. Does not parse packets
and does not decide what the decoder counts as a packet.

Fan-in (issue 15): the reducer also counts per destination /64 across every
source (distinct targets, distinct source /64s, hosts of the /64 that
answered, a distinct sample of source addresses). ``fanin_sweep`` alerts when
a tier is crossed from at least ``fanin_min_sources`` source /64s, with the
sampled sources' /48 and /32 concentration; a closed fan-in window with
``observe_min_targets`` targets from at least half ``fanin_min_sources`` source
/64s is an observation (kind ``fanin``) for the cross-sensor hunt.
``state_thrashing`` reports a table that evicted ``thrash_ratio`` times its
cap in one window, once per table and window.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import ObservationBudget, prefix64_str, sweep_identifier
from detectors.detections.sweep.patterns import CLASSES, classify, eui64_oui
from detectors.events import Ipv6Packet, ip_str
from detectors.state import Suppressor

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.sweep"
TIERS = ("medium", "high", "critical")
SAMPLE = 10  # targets and sources listed in the evidence
HOST_SHARE = 0.9  # of a sweep's new targets found by one address: a host sweep
SOURCE_PRECISION_DROP = 2  # per-source sketches are 4x smaller: they only gate and count /64s

# The reducer's outcome tuples (``native/py.rs`` documents their fields).
Outcome = tuple[Any, ...]
Sources = list[tuple[bytes, int]]  # source address -> new targets, first seen first
Probes = list[tuple[str, int]]  # probe kind -> packets, kinds seen only


class Sweep:
    """The ``ipv6.sweep`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.window_ns = int(th["window_s"] * NS)
        self.tiers = [th["medium_targets"], th["high_targets"], th["critical_targets"]]
        self.tier_thresholds = dict(zip(TIERS, self.tiers, strict=True))  # evidence (copied)
        self.wide_prefixes = th["wide_min_prefixes"]
        self.wide_targets = th["wide_min_targets"]
        self.observe = det.ctx.observe
        self.observe_min = th["observe_min_targets"]
        self.observe_cap = int(th["max_observations_per_window"])
        self.fanin_thresholds = {"sources": th["fanin_min_sources"], "targets": self.tiers[0]}
        self.thrash_ratio = th["thrash_ratio"]
        precision = int(th["sketch_precision"])
        # Made before the suppressor, so its tables come first in the stats, as before.
        self.native = det.reducer(
            "sweep",
            {
                "window_ns": self.window_ns,
                "tiers": tuple(self.tiers),
                "wide_prefixes": self.wide_prefixes,
                "wide_targets": self.wide_targets,
                "min_no_reply": th["min_no_reply_ratio"],
                "exact_up_to": int(th["exact_up_to"]),
                "precision": precision,
                "src_precision": max(4, precision - SOURCE_PRECISION_DROP),
                "max_sources": int(th["max_sources_tracked"]),
                "max_pairs": int(th["max_pairs_tracked"]),
                # Without a listener no closed window crosses over at all.
                "observe_min": self.observe_min if self.observe is not None else None,
                "fanin_sources": th["fanin_min_sources"],
                "max_fanin": int(th["max_fanin_tracked"]),
                "thrash_ratio": self.thrash_ratio,
            },
        )
        self.budget = ObservationBudget(det.ctx, CATEGORY, self.observe_cap, self.window_ns)
        self.suppress = det.suppressor(CATEGORY, th["max_pairs_tracked"])
        # Its own interval (thrash_suppress_s) and a few keys: one per table.
        self.thrash_suppress = Suppressor(
            f"{CATEGORY}.thrash_suppression", int(th["thrash_suppress_s"] * NS), 16
        )
        det._tables.append(self.thrash_suppress.table)
        det._suppressors.append(self.thrash_suppress)

    # -- what the native reducer hands back --------------------------------------

    def close_due(self, now_ns: int) -> None:
        """Packet time reached ``now_ns``: windows a span old close."""
        self._act(self.native.tick(now_ns))

    def close_all(self, now_ns: int) -> None:
        """End of input: every window closes."""
        self._act(self.native.flush(now_ns))

    def _act(self, outcomes: list[Outcome]) -> None:
        """The reducer's outcomes, in the order it produced them."""
        for o in outcomes:
            self.on_outcome(o)

    def on_outcome(self, o: Outcome) -> None:
        """One outcome: a closed window, a tier crossed or a wide scan."""
        kind = o[0]
        if kind == "closed":
            self._pair_closed(o)
        elif kind == "tier":
            self._tier_crossed(o)
        elif kind == "wide":
            self._wide(o)
        elif kind == "fanin":
            self._fanin(o)
        elif kind == "fanclosed":
            self._fan_closed(o)
        else:
            self._thrash(o)

    # -- observations --------------------------------------------------------

    def _observed_at(self, start: int, last: int) -> int | None:
        """The packet time a closed window is observed at (its last packet), or None when
        nobody listens or the window's observation budget is spent."""
        end = last or start
        if self.observe is None or not self.budget.take(end):
            return None
        return end

    def _observe(
        self,
        kind: str,
        key: str,
        start: int,
        end: int,
        details: dict[str, Any],
        source_ip: str | None = None,
    ) -> None:
        """Write one observation of a closed window; ``details`` gets its ``window``."""
        details["window"] = {"start": start / NS, "end": end / NS, "seconds": self.window_ns / NS}
        self.det.ctx.observation(kind, key, start, end, details, source_ip)

    def _pair_closed(self, o: Outcome) -> None:
        """One observation of a closed pair window with enough targets (bounded)."""
        _, src64, dst64, estimate, exact, sources, more, packets, probes, tier, start, last = o[:12]
        ratio = o[12]
        end = self._observed_at(start, last)
        if end is None:
            return
        found = _counter(sources)
        top, top_found = found.most_common(1)[0] if found else (src64, 0)
        one_source = top_found >= HOST_SHARE * sum(found.values()) and not more
        self._observe(
            "sweep",
            sweep_identifier(src64, dst64),
            start,
            end,
            {
                "source_prefix": prefix64_str(src64),
                "source_addresses": len(found),
                "more_source_addresses": more,
                "destination_prefix": prefix64_str(dst64),
                "estimated_targets": round(estimate),
                "exact": exact,
                "no_reply_ratio": round(ratio, 4),
                "packets": packets,
                "probes": dict(sorted(probes)),
                "tier": TIERS[tier - 1] if tier else None,
            },
            # One address did (nearly) all the probing: it is named, as in host_sweep;
            # otherwise only the source /64 is, as in prefix_sweep.
            source_ip=ip_str(top) if one_source else None,
        )

    def _fan_closed(self, o: Outcome) -> None:
        """One observation of a closed fan-in window (enough targets and source /64s)."""
        _, dst64, targets, exact, sources, ratio, packets, probes, tier, start, last = o[:11]
        src_sample = o[11]  # (o[12], its sample level, is for the alert's shares)
        end = self._observed_at(start, last)
        if end is None:
            return
        self._observe(
            "fanin",
            f"{prefix64_str(dst64)}|fanin",
            start,
            end,
            {
                "destination_prefix": prefix64_str(dst64),
                "estimated_targets": round(targets),
                "source_prefixes": round(sources),
                "exact": exact,
                "no_reply_ratio": round(ratio, 4),
                "packets": packets,
                "probes": dict(sorted(probes)),
                "tier": TIERS[tier - 1] if tier else None,
                "sampled_sources": _sample(src_sample),
            },
        )

    def _tier_crossed(self, o: Outcome) -> None:
        """A pair window reached a tier with the no-reply gate passed: alert unless
        suppressed."""
        _, src64, dst64, reached, estimate, exact, ratio, responders, source_targets, win = o
        start, last, packets, sources, more, probes, sample, level, first, crossing = win
        tier = TIERS[reached - 1]
        identifier = sweep_identifier(src64, dst64)
        if not self.suppress.allow((identifier, tier), last):
            return
        # One address found nearly all the targets: a host sweep, named by it. Other
        # hosts of the same /64 talking to this /64 meanwhile do not make it a prefix sweep.
        found = _counter(sources)
        top, top_found = found.most_common(1)[0]
        one_source = top_found >= HOST_SHARE * sum(found.values())
        evidence = self._evidence(found, more, first, start, last)
        evidence.update(
            target_prefix=prefix64_str(dst64),
            tier=tier,
            tiers=dict(self.tier_thresholds),
            estimated_targets=round(estimate),
            exact=exact,
            coverage_of_64=estimate / 2**64,
            patterns=_patterns(sample, level),
            no_reply_ratio=round(ratio, 4),
            responders=round(responders),
            source_targets=round(source_targets),
            sample_targets=_sample(sample),
            probes=dict(sorted(probes)),
            packets=packets,
            correlation={"prefix": prefix64_str(dst64), "sweeps": [identifier]},
        )
        self.det.alert(
            CATEGORY,
            "host_sweep" if one_source else "prefix_sweep",
            identifier=identifier,
            first_ns=start,
            event=crossing or first,  # the packet that crossed the tier
            evidence=evidence,
            severity=tier,
            src_ip=ip_str(top),
            src_mac=None,
            dest_mac=None,
        )

    def _wide(self, o: Outcome) -> None:
        """A source /64 passed the wide-scan thresholds and the gate: alert unless
        suppressed."""
        _, src64, targets, prefixes, exact, ratio, responders, win = o
        start, last, packets, sources, more, probes, sample, level, first, crossing = win
        identifier = f"{prefix64_str(src64)}|wide"
        if not self.suppress.allow((identifier, "medium"), last):
            return
        found = _counter(sources)
        evidence = self._evidence(found, more, first, start, last)
        evidence.update(
            estimated_targets=round(targets),
            estimated_prefixes=round(prefixes),
            exact=exact,
            thresholds={"targets": self.wide_targets, "prefixes": self.wide_prefixes},
            patterns=_patterns(sample, level),
            no_reply_ratio=round(ratio, 4),
            responders=round(responders),
            sample_targets=_sample(sample),
            probes=dict(sorted(probes)),
            packets=packets,
        )
        self.det.alert(
            CATEGORY,
            "wide_scan",
            identifier=identifier,
            first_ns=start,
            event=crossing or first,  # the packet that made it a wide scan
            evidence=evidence,
            src_ip=ip_str(found.most_common(1)[0][0]),
            src_mac=None,
            dest_mac=None,
        )

    def _fanin(self, o: Outcome) -> None:
        """A destination /64 reached a tier from many source /64s with the no-reply gate
        passed: alert unless suppressed."""
        _, dst64, reached, targets, exact, sources, ratio, responders, win = o
        start, last, packets, probes, sample, level, src_sample, src_level, first, crossing = win
        tier = TIERS[reached - 1]
        identifier = f"{prefix64_str(dst64)}|fanin"
        if not self.suppress.allow((identifier, tier), last):
            return
        event = crossing or first  # the packet that crossed the tier
        self.det.alert(
            CATEGORY,
            "fanin_sweep",
            identifier=identifier,
            first_ns=start,
            event=event,
            evidence={
                "target_prefix": prefix64_str(dst64),
                "tier": tier,
                "tiers": dict(self.tier_thresholds),
                "estimated_targets": round(targets),
                "exact": exact,
                "coverage_of_64": targets / 2**64,
                "source_prefixes": round(sources),
                "thresholds": dict(self.fanin_thresholds),
                "source_concentration": concentration(src_sample, src_level),
                "sampled_sources": _sample(src_sample),
                "patterns": _patterns(sample, level),
                "no_reply_ratio": round(ratio, 4),
                "responders": round(responders),
                "sample_targets": _sample(sample),
                "probes": dict(sorted(probes)),
                "packets": packets,
                **self._times(first.meta.ts_ns, start, last),
                "correlation": {"prefix": prefix64_str(dst64), "sweeps": [identifier]},
            },
            severity=tier,
            src_ip=ip_str(event.ip.src),
            src_mac=None,
            dest_mac=None,
        )

    def _thrash(self, o: Outcome) -> None:
        """A table evicted ``thrash_ratio`` times its cap within one window: one alert per
        table (suppressed for ``thrash_suppress_s``)."""
        _, table, evictions, cap, threshold, start, ts, total, packet = o
        identifier = f"{table}|thrash"
        if not self.thrash_suppress.allow(identifier, ts):
            return
        seconds = max((ts - start) / NS, 1.0)  # a rate over at least one second
        self.det.alert(
            CATEGORY,
            "state_thrashing",
            identifier=identifier,
            first_ns=start,
            event=packet,  # the probe whose eviction crossed the threshold
            evidence={
                "table": table,
                "evictions": evictions,
                "evictions_total": total,
                "cap": cap,
                "eviction_rate": round(evictions / seconds, 3),
                # The reducer's threshold (thrash_ratio times the cap, at least one).
                "thresholds": {"thrash_ratio": self.thrash_ratio, "evictions": threshold},
                **self._times(start, start, ts),
            },
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
            **self._times(first.meta.ts_ns, start, last),
        }

    def _times(self, first_ns: int, start: int, last: int) -> dict[str, Any]:
        """An alert's ``first_seen``, ``last_seen`` and ``window`` (seconds)."""
        return {
            "first_seen": first_ns / NS,
            "last_seen": last / NS,
            "window": {"start": start / NS, "seconds": self.window_ns / NS},
        }


def _counter(sources: Sources) -> Counter[bytes]:
    """The named source addresses as a Counter, in the reducer's first-seen order (which
    breaks ``most_common`` ties, as the per-packet Counter's insertion order did)."""
    return Counter(dict(sources))


def _patterns(sample: list[bytes], level: int) -> dict[str, Any]:
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
        "sample_rate": 1.0 / (1 << level),
        "shares": {c: round(counts[c] / n, 4) for c in CLASSES if counts[c]},
        "dominant": counts.most_common(1)[0][0] if counts else None,
        "eui64_ouis": dict(sorted(ouis.items(), key=lambda kv: (-kv[1], kv[0]))[:SAMPLE]),
    }


def concentration(sample: list[bytes], level: int) -> dict[str, Any]:
    """The sampled sources' top /48s and /32s with their shares of the sample (a distinct
    sample by address hash, so the shares estimate the shares of all distinct sources)."""
    n = len(sample) or 1
    out: dict[str, Any] = {"sampled": len(sample), "sample_rate": 1.0 / (1 << level)}
    for bits in (48, 32):
        counts = Counter(_prefix_str(a, bits) for a in sample)
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        out[f"top_{bits}"] = {p: round(c / n, 4) for p, c in top}
        out[f"max_share_{bits}"] = round(top[0][1] / n, 4) if top else 0.0
    return out


def _prefix_str(addr: bytes, bits: int) -> str:
    return str(ipaddress.IPv6Network((addr[: bits // 8] + bytes(16 - bits // 8), bits)))


def _sample(sample: list[bytes]) -> list[str]:
    return [ip_str(a) for a in sorted(sample)[:SAMPLE]]
