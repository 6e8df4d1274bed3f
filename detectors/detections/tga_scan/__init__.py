"""Target-generation scan family: ``ipv6.tga_scan``.

Owns the judgement of scans whose targets come from target-generation algorithms
(6Tree, 6Gen, Entropy/IP): many /64s of one /48, several targets each. The counting
is native (the ``tga_scan`` reducer, ``native/``): per (source /64, destination
/48) window the distinct targets, /64s and answering hosts, gated there. This
module gets one outcome per window that passed the gate, checks suppression, and
names the pattern of the targets from the window's bounded distinct sample: the
interface-identifier classes of ``ipv6.sweep`` (``sweep.patterns.classify``) and the
nibble-position entropy profile (Entropy/IP's view), which tells clustered nibbles
from random. Its work grows with alerts, never with packets; it does not parse
packets.

When the reducer's full table refuses probes and evicts windows, together
``thrash_ratio`` times its cap, in one window (a flood of probes from random sources),
it says so once per window and this module writes one ``state_thrashing`` observation
(``event.dataset`` v6sentry.observation) with the counts, as ``ipv6.sweep``'s
state_thrashing alert reports its own tables; its admission by value keeps the
scanners' windows counting meanwhile.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from detectors.detections import NS, Context, Detector
from detectors.detections.budget import prefix64_str
from detectors.detections.sweep.patterns import CLASSES, classify
from detectors.events import ip_str

CATEGORY = "ipv6.tga_scan"
SAMPLE = 10  # sample targets listed in the evidence
NIBBLES = 32
SITE_NIBBLES = 12  # a /48: the nibbles every target of a window shares
TABLE = "tga_scan.windows"  # the reducer's table, as its stats name it
DOMINANT_SHARE = 0.5  # of the sample in one identifier class to name the pattern by it
# Interface-identifier classes (sweep.patterns) that name the pattern themselves.
CLASS_PATTERNS = {
    "low_byte": "dense_low_byte",
    "port_embedded": "dense_low_byte",
    "eui64": "eui64",
    "ipv4_embedded": "embedded_ipv4",
}


def prefix48_str(prefix: bytes) -> str:
    """The /48 whose first 6 bytes are ``prefix``, as text (2001:db8:aa::/48)."""
    return f"{ip_str(prefix[:6] + bytes(10))}/48"


def nibble_entropy(sample: list[bytes]) -> list[float]:
    """Shannon entropy in bits (0 to 4) of each of the 32 nibble positions over the
    addresses of ``sample`` (Entropy/IP, Foremski et al. 2016)."""
    n = len(sample)
    if not n:
        return [0.0] * NIBBLES
    out = []
    for pos in range(NIBBLES):
        byte, high = divmod(pos, 2)
        shift = 4 if high == 0 else 0
        counts = Counter((a[byte] >> shift) & 0xF for a in sample)
        h = -sum(c / n * math.log2(c / n) for c in counts.values())
        out.append(abs(round(h, 3)))
    return out


def profile_string(entropy: list[float]) -> str:
    """The profile as 8 groups of 4 digits, one per nibble: its entropy in half bits,
    rounded (0 constant, 8 uniform over 16 values), in address order."""
    digits = "".join(str(min(8, int(h * 2 + 0.5))) for h in entropy)
    return ":".join(digits[i : i + 4] for i in range(0, NIBBLES, 4))


def name_pattern(
    sample: list[bytes], entropy: list[float], varying_bits: float, clustered_max: int
) -> tuple[str, dict[str, float], list[int]]:
    """(pattern, identifier-class shares, varying positions) of a window's targets."""
    counts = Counter(classify(a[8:]) for a in sample)
    n = len(sample) or 1
    shares = {c: round(counts[c] / n, 4) for c in CLASSES if counts[c]}
    varying = [i for i, h in enumerate(entropy) if h >= varying_bits]
    below = [i for i in varying if i >= SITE_NIBBLES]
    pattern = "random"
    dominant = counts.most_common(1)[0] if counts else None
    if dominant and dominant[1] >= DOMINANT_SHARE * n and dominant[0] in CLASS_PATTERNS:
        pattern = CLASS_PATTERNS[dominant[0]]
    elif any(i >= 16 for i in below) and len(below) <= clustered_max:
        pattern = "clustered_nibbles"
    return pattern, shares, varying


class TgaScanDetector(Detector):
    """Writes the alerts of the windows the native reducer gated; see the module
    docstring."""

    subscribes = ()

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        th = ctx.thresholds[CATEGORY]
        self.window_ns = int(th["window_s"] * NS)
        self.min_targets = float(th["min_targets"])
        self.min_prefixes = float(th["min_prefixes"])
        self.min_density = float(th["min_targets_per_prefix"])
        self.varying_bits = float(th["varying_nibble_bits"])
        self.clustered_max = int(th["clustered_max_varying"])
        self.native = self.reducer(
            "tga_scan",
            {
                "window_ns": self.window_ns,
                "min_targets": self.min_targets,
                "min_prefixes": self.min_prefixes,
                "min_density": self.min_density,
                "min_no_reply": float(th["min_no_reply_ratio"]),
                "exact_up_to": int(th["exact_up_to"]),
                "precision": int(th["sketch_precision"]),
                "max_tracked": int(th["max_tracked"]),
                "thrash_ratio": float(th["thrash_ratio"]),
            },
        )
        self.thrash_ratio = float(th["thrash_ratio"])
        self.suppress = self.suppressor(CATEGORY, th["max_tracked"])

    def on_reduced(self, output: Any) -> None:
        if output[0] == "thrash":
            self._thrash(output)
            return
        (
            _,
            src64,
            dst48,
            targets,
            prefixes,
            exact,
            ratio,
            responders,
            start,
            last,
            packets,
            probes,
            sample,
            level,
            first,
            crossing,
        ) = output
        identifier = f"{prefix64_str(src64)}|{prefix48_str(dst48)}"
        if not self.suppress.allow(identifier, last):
            return
        entropy = nibble_entropy(sample)
        pattern, shares, varying = name_pattern(
            sample, entropy, self.varying_bits, self.clustered_max
        )
        evidence = {
            "source": {"prefix": prefix64_str(src64), "address": ip_str(crossing.ip.src)},
            "target_prefix": prefix48_str(dst48),
            "estimated_targets": round(targets),
            "estimated_prefixes": round(prefixes),
            "targets_per_prefix": round(targets / prefixes, 2) if prefixes else 0,
            "exact": exact,
            "no_reply_ratio": round(ratio, 4),
            "responders": round(responders),
            "pattern": pattern,
            "patterns": {
                "sampled": len(sample),
                "sample_rate": 1.0 / (1 << level),
                "shares": shares,
            },
            "entropy": {
                "profile": profile_string(entropy),
                "nibbles": entropy,
                "varying": varying,
                "varying_count": len(varying),
            },
            "sample_targets": [ip_str(a) for a in sorted(sample)[:SAMPLE]],
            "probes": dict(sorted(probes)),
            "packets": packets,
            "thresholds": {
                "targets": self.min_targets,
                "prefixes": self.min_prefixes,
                "targets_per_prefix": self.min_density,
            },
            "first_seen": first.meta.ts_ns / NS,
            "last_seen": last / NS,
            "window": {"start": start / NS, "seconds": self.window_ns / NS},
        }
        self.alert(
            CATEGORY,
            "tga_scan",
            identifier=identifier,
            first_ns=start,
            event=crossing,  # the probe that passed the gate
            evidence=evidence,
        )

    def _thrash(self, output: Any) -> None:
        """The full table refused probes and evicted windows, together ``thrash_ratio``
        times its cap, in one window: one observation (the reducer says so once per
        window)."""
        _, refused, evictions, cap, start, ts, refused_total, evictions_total, keys = output
        if self.ctx.observe is None:
            return  # the summary's table line still counts them (tga_scan.doorkeeper)
        seconds = max((ts - start) / NS, 1.0)  # a rate over at least one second
        self.ctx.observation(
            "state_thrashing",
            f"{TABLE}|thrash",
            start,
            ts,
            {
                "table": TABLE,
                "refused": refused,
                "evictions": evictions,
                "refused_total": refused_total,
                "evictions_total": evictions_total,
                "cap": cap,
                "rate": round((refused + evictions) / seconds, 3),
                "thresholds": {
                    "thrash_ratio": self.thrash_ratio,
                    "keys": keys,
                },
                "window": {"start": start / NS, "end": ts / NS, "seconds": self.window_ns / NS},
            },
        )

    def tick(self, now_ns: int) -> None:
        for output in self.native.tick(now_ns):
            self.on_reduced(output)
        super().tick(now_ns)

    def flush(self, now_ns: int) -> None:
        for output in self.native.flush(now_ns):
            self.on_reduced(output)
        super().flush(now_ns)
