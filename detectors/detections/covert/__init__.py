"""Covert channel family: ``ipv6.covert_channel``.

Owns judging what the native ``covert_channel`` reducer (``native/mod.rs``) counted:
bytes hidden in Hop-by-Hop and Destination Options per (source, destination) pair
(``options_payload``), and Flow Labels that vary inside one TCP or UDP flow
(``flow_label_channel``). The reducer sees every ``ExtOptions`` event (the decoder
builds one only for a packet whose options carry something) and every IPv6 packet,
counts in packet-time windows, suppresses per pair and hands over one output per
alert; this writes the evidence and the alert. Its work grows with alerts, never
with packets.

Does not decide what is hidden: the decoder (``native/src/decode/ext_options.rs``)
does, option by option.
"""

from __future__ import annotations

from typing import Any

from detectors.detections import NS, Context, Detector
from detectors.events import ip_str

CATEGORY = "ipv6.covert_channel"
LABEL_BITS = 20  # RFC 6437: the Flow Label's width


def printable(sample: bytes) -> str:
    """The sample as text, with anything not printable ASCII as a dot (like hexdump)."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in sample)


class CovertDetector(Detector):
    """Writes the alerts of the pairs and flows the native reducer hands over."""

    subscribes = ()

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        th = ctx.thresholds[CATEGORY]
        self.window_ns = int(th["window_s"] * NS)
        self.channel = self.reducer(
            "channel",
            {
                "min_bytes": int(th["min_bytes"]),
                "min_labels": int(th["min_labels"]),
                "window_ns": self.window_ns,
                "suppress_ns": int(th["suppress_s"] * NS),
                "max_pairs_tracked": int(th["max_pairs_tracked"]),
                "max_flows_tracked": int(th["max_flows_tracked"]),
                "label_cache": int(th["label_cache"]),
            },
        )

    def on_reduced(self, output: Any) -> None:
        if output[0] == "options":
            self._options(output)
        else:
            self._flow_label(output)

    def _options(self, output: Any) -> None:
        (
            _,
            event,
            start_ns,
            first_ns,
            last_ns,
            packets,
            total,
            kinds,
            unknown,
            padding_only,
            headers,
            sample,
        ) = output
        src, dst = ip_str(event.ip.src), ip_str(event.ip.dst)
        evidence: dict[str, Any] = {
            "bytes": total,
            "bytes_by_kind": dict(sorted(kinds.items())),
            "packets": packets,
            "unknown_options": unknown,
            "padding_only_headers": padding_only,
            "headers": headers,
            "sample_hex": sample.hex(),
            "sample_text": printable(sample),
            "first_seen": first_ns / NS,
            "last_seen": last_ns / NS,
            "window": {"start": start_ns / NS, "seconds": self.window_ns / NS},
        }
        self.alert(
            CATEGORY,
            "options_payload",
            identifier=f"{src}|{dst}|options",
            first_ns=first_ns,
            event=event,
            evidence=evidence,
        )

    def _flow_label(self, output: Any) -> None:
        _, event, start_ns, first_ns, last_ns, packets, changes, distinct, labels = output
        src, dst = ip_str(event.ip.src), ip_str(event.ip.dst)
        evidence: dict[str, Any] = {
            "flow": {"proto": event.ip.upper, "sport": event.sport, "dport": event.dport},
            "packets": packets,
            "labels": {
                "distinct": distinct,
                "changes": changes,
                "sample": [f"0x{label:05x}" for label in labels],
                # Each change can carry a new 20-bit label; what was counted, not more.
                "bits_carried": changes * LABEL_BITS,
            },
            "first_seen": first_ns / NS,
            "last_seen": last_ns / NS,
            "window": {"start": start_ns / NS, "seconds": self.window_ns / NS},
        }
        self.alert(
            CATEGORY,
            "flow_label_channel",
            identifier=f"{src}|{dst}|flow_label",
            first_ns=first_ns,
            event=event,
            evidence=evidence,
        )

    def tick(self, now_ns: int) -> None:
        super().tick(now_ns)
        for output in self.channel.tick(now_ns):
            self.on_reduced(output)

    def flush(self, now_ns: int) -> None:
        super().flush(now_ns)
        for output in self.channel.flush(now_ns):
            self.on_reduced(output)
