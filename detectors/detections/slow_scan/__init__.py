"""Slow-scan family: ``ipv6.slow_scan``, low-and-slow scans counted over hours.

Owns judging what the native ``slow_scan`` reducer (``native/``) hands over: a source
/64 (``slow_scan``) or a destination /64 (``slow_fan_in``) whose distinct targets over
the sliding horizon reached ``min_targets``, past the no-reply gate and the not-a-sweep
rule, slowly (at most ``max_probe_rate`` on average), once per key and ``suppress_s``.
The reducer counts every IPv6 packet natively in bucketed HyperLogLog sketches of fixed
size per key; this module resolves the thresholds
(its own, and the ``ipv6.sweep`` ones the not-a-sweep rule follows), suppresses per
identifier and writes the evidence and the alert. Its work grows with alerts, never with
packets.

Also owns the family's one observation (``detectors.es.observations``, kind
``slow_scan_churn``): a key table whose admissions cost a resident key or were refused at
least ``churn_ratio`` times its cap within one bucket, once per table and bucket, with
the most targets an evicted key held: 2 after a random-source flood (only flood keys went),
more when long-horizon state was really lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detectors.detections import NS, Context, Detector
from detectors.detections.budget import prefix64_str
from detectors.events import ip_str
from detectors.spec import load_spec

CATEGORY = "ipv6.slow_scan"
SWEEP = "ipv6.sweep"
SWEEP_SPEC = Path(__file__).resolve().parents[1] / "sweep" / "spec.yaml"


def sweep_thresholds(ctx: Context) -> dict[str, float]:
    """``ipv6.sweep``'s window and tiers as the policy resolves them: the not-a-sweep rule
    follows the sweep family's own settings, so tuning one keeps them apart."""
    names = ("window_s", "medium_targets", "wide_min_targets", "wide_min_prefixes")
    spec = load_spec(SWEEP_SPEC).detections[SWEEP].thresholds
    tuned = ctx.policy.thresholds.get(SWEEP, {})
    return {n: float(tuned.get(n, spec[n].default)) for n in names}


class SlowScanDetector(Detector):
    """Writes the alerts of the keys the native reducer hands over."""

    subscribes = ()

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        th = ctx.thresholds[CATEGORY]
        sweep = sweep_thresholds(ctx)
        self.sweep_medium = sweep["medium_targets"]
        self.horizon_s = th["horizon_s"]
        self.bucket_s = th["bucket_s"]
        self.min_targets = th["min_targets"]
        self.min_source_prefixes = th["min_source_prefixes"]
        self.native = self.reducer(
            "slow_scan",
            {
                "horizon_ns": int(th["horizon_s"] * NS),
                "bucket_ns": int(th["bucket_s"] * NS),
                "precision": int(th["sketch_precision"]),
                "min_targets": th["min_targets"],
                "min_no_reply": th["min_no_reply_ratio"],
                "min_source_prefixes": th["min_source_prefixes"],
                "max_probe_rate": th["max_probe_rate"],
                "suppress_ns": int(th["suppress_s"] * NS),
                "max_sources": int(th["max_sources_tracked"]),
                "max_destinations": int(th["max_destinations_tracked"]),
                "churn_ratio": th["churn_ratio"],
                "sweep_window_ns": int(sweep["window_s"] * NS),
                "sweep_medium": sweep["medium_targets"],
                "wide_targets": sweep["wide_min_targets"],
                "wide_prefixes": sweep["wide_min_prefixes"],
            },
        )
        # Keys evicted and readmitted keep their suppression here.
        cap = th["max_sources_tracked"] + th["max_destinations_tracked"]
        self.suppress = self.suppressor(CATEGORY, cap)

    def on_reduced(self, output: Any) -> None:
        if output[0] == "churn":
            self._churn(output)
            return
        (
            kind,
            prefix,
            targets,
            responders,
            ratio,
            source_prefixes,
            first_ns,
            last_ns,
            probes,
            histogram,
            peak_window,
            recent,
            bytes_per_key,
            packet,
        ) = output
        source = kind == "source"
        signature = "slow_scan" if source else "slow_fan_in"
        identifier = f"{prefix64_str(prefix)}|{signature}"
        if not self.suppress.allow(identifier, last_ns):
            return
        evidence: dict[str, Any] = {
            "estimated_targets": round(targets),
            "estimated_responders": round(responders),
            "no_reply_ratio": round(ratio, 4),
            "first_seen": first_ns / NS,
            "last_seen": last_ns / NS,
            "horizon": {"seconds": self.horizon_s, "probes": probes},
            "buckets": {
                "seconds": self.bucket_s,
                "active": sum(1 for n in histogram if n),
                # Oldest bucket first, the current one last.
                "probes": histogram,
            },
            "peak_window_targets": round(peak_window),
            "thresholds": {
                "min_targets": self.min_targets,
                "sweep_medium_targets": self.sweep_medium,
            },
            "memory": {"bytes_per_key": bytes_per_key},
        }
        if source:
            evidence["source_prefix"] = prefix64_str(prefix)
            evidence["recent_targets"] = [ip_str(a) for a in recent]
        else:
            evidence["target_prefix"] = prefix64_str(prefix)
            evidence["estimated_source_prefixes"] = round(source_prefixes)
            evidence["recent_sources"] = [ip_str(a) for a in recent]
            evidence["thresholds"]["min_source_prefixes"] = self.min_source_prefixes
        self.alert(
            CATEGORY,
            signature,
            identifier=identifier,
            first_ns=first_ns,
            event=packet,  # the probe that crossed min_targets
            evidence=evidence,
        )

    def _churn(self, output: Any) -> None:
        """One observation of a table's churn in one bucket (the reducer reports each
        table and bucket once, and again when the most targets a refused newcomer had
        shown doubles)."""
        _, table, start_ns, ts_ns, evicted, rejected, most, size, cap, total, refused = output[:11]
        lost = output[11]
        self.ctx.observation(
            "slow_scan_churn",
            f"{table}|churn",
            start_ns,
            ts_ns,
            {
                "table": table,
                "evictions": evicted,
                "rejected": rejected,
                "max_evicted_targets": most,
                # A newcomer's targets when refused: many while the main ways are worth
                # more is a lock-out of new sources.
                "max_rejected_targets": lost,
                "size": size,
                "cap": cap,
                "total_evictions": total,
                "total_rejected": refused,
                "window": {"start": start_ns / NS, "end": ts_ns / NS, "seconds": self.bucket_s},
            },
        )
