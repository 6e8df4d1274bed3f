"""Tunnel family: ``ipv6.tunnel_6to4``, ``ipv6.tunnel_isatap``, ``ipv6.tunnel_6in4``,
``ipv6.tunnel_teredo`` and ``ipv6.tunnel_ayiya``.

Owns classifying each decapsulation the decoder reports (``TunnelPacket``)
into a category and signature, and counting it in one packet-time window per
(category, signature, unordered outer endpoint pair). A window's alert is
raised when it closes (rolled over, due, evicted or flushed), so it carries
the window's full packet and byte counts: one alert per pair and window,
never one per packet. Per link, at most ``max_alerts_per_window`` pair alerts
per category and window; the rest fold into that category's ``burst`` alert.

The per-packet part is native (``native/mod.rs``, the ``tunnel_pairs``
reducer): classification, the pair windows, and, when a window closes, the
per-category suppression and link budget. ``TunnelPacket`` events never
become Python objects. Python gets a ``pair`` output for each closed window
that alerts (its counts and first packet) and a ``burst`` output when a link
window that folded pairs closes, and writes the evidence and alert from them:
its work grows with alerts, never with packets.

Does not parse packets: the decoder validated and decapsulated them, and
decoded the Teredo addresses. Does not look at what the inner packets do;
they reach the other families as tunnelled events.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from detectors.decoder import TEREDO_PORT
from detectors.detections import NS, Context, Detector, tunnel_evidence
from detectors.detections.budget import Burst, raise_burst
from detectors.events import TunnelPacket, ip_str
from detectors.spec import SEVERITIES

PREFIX_6TO4 = b"\x20\x02"
ISATAP_IID = (b"\x00\x00\x5e\xfe", b"\x02\x00\x5e\xfe")  # RFC 5214 6.1, u/l bit 0 or 1

Endpoint = tuple[bytes, int]  # (IPv4 or IPv6 address, UDP port or 0)
PairKey = tuple[str, str, Endpoint, Endpoint]  # category, signature, lower end, higher end


def isatap_ipv4(addr: bytes | None) -> bytes | None:
    """The IPv4 address an ISATAP interface identifier embeds, or None (the native
    ``isatap_ipv4`` classifies; this one names the claimed address in the evidence)."""
    if addr is None or addr[8:12] not in ISATAP_IID:
        return None
    return addr[12:16]


def embedded_6to4(addr: bytes | None) -> bytes | None:
    """The IPv4 address in a 2002:V4ADDR::/48 prefix, or None (the native twin counts)."""
    if addr is None or addr[:2] != PREFIX_6TO4:
        return None
    return addr[2:6]


def endpoint_str(ep: Endpoint) -> str:
    addr = ip_str(ep[0])
    if not ep[1]:
        return addr
    return f"[{addr}]:{ep[1]}" if len(ep[0]) == 16 else f"{addr}:{ep[1]}"


@dataclass(slots=True)
class _PairWindow:
    """A closed pair window, as the native reducer hands it over (its ``PairWin``)."""

    start_ns: int
    first: TunnelPacket  # the first packet: its sender is reported as the source
    last_ns: int = 0
    packets: int = 0
    wire_bytes: int = 0  # frames on the wire
    inner_bytes: int = 0
    forward: int = 0  # packets in the first packet's direction
    inner: Counter[tuple[bytes, bytes]] = field(default_factory=Counter)
    embedded: set[bytes] = field(default_factory=set)  # 6to4 / ISATAP IPv4s
    teredo: dict[str, Any] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)  # teredo: bubble/data/RS/RA


def _pair_from_native(output: tuple[Any, ...]) -> tuple[PairKey, _PairWindow]:
    """The reducer's ``pair`` output (``native/mod.rs`` ``pair_output`` documents it)."""
    (_, cat, sig, lo, hi, start, last, packets, wire, inner_bytes, forward, inner, embedded,
     teredo_keys, kinds, first) = output  # fmt: skip
    teredo: dict[str, Any] = {}
    for item in teredo_keys:  # in the order the window first set them
        if item[0] == "server":
            teredo["server"] = ip_str(item[1])
            teredo["clients"] = [
                {"address": ip_str(a) if a else None, "port": port, "cone": cone}
                for a, port, cone in item[2]
            ]
        elif item[0] == "origin":
            teredo.update(origin_ip=ip_str(item[1]), origin_port=item[2])
        else:
            teredo["auth"] = True
    w = _PairWindow(
        start_ns=start,
        first=first,
        last_ns=last,
        packets=packets,
        wire_bytes=wire,
        inner_bytes=inner_bytes,
        forward=forward,
        inner=Counter({(s, d): n for s, d, n in inner}),
        embedded=set(embedded),
        teredo=teredo,
        kinds=Counter(dict(kinds)),
    )
    return (cat, sig, tuple(lo), tuple(hi)), w


class TunnelDetector(Detector):
    """Judges the native reducer's closed tunnel windows; see the module docstring."""

    subscribes = ()

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.span_ns: dict[str, int] = {}
        categories = []
        for cat in self.spec.detections:
            th = ctx.thresholds[cat]
            self.span_ns[cat] = int(th["window_s"] * NS)
            categories.append(
                {
                    "category": cat,
                    "window_s": th["window_s"],
                    "suppress_s": th["suppress_s"],
                    "max_pairs_tracked": th["max_pairs_tracked"],
                    "max_alerts_per_window": th["max_alerts_per_window"],
                }
            )
        self.pairs = self.reducer("pairs", {"categories": categories})

    def on_reduced(self, output: Any) -> None:
        if output[0] == "pair":
            key, w = _pair_from_native(output)
            self._alert(key, w)
        else:  # ("burst", category, budget burst)
            link, burst = Burst.from_native(output[2])
            raise_burst(self, output[1], "endpoints", None, link, burst)

    def tick(self, now_ns: int) -> None:
        super().tick(now_ns)
        for output in self.pairs.tick(now_ns):
            self.on_reduced(output)

    def flush(self, now_ns: int) -> None:
        super().flush(now_ns)
        for output in self.pairs.flush(now_ns):
            self.on_reduced(output)

    def _alert(self, key: PairKey, w: _PairWindow) -> None:
        """The alert of a closed window the reducer let through (not suppressed, within
        the link budget)."""
        cat, sig, lo, hi = key
        first = w.first
        identifier = f"{endpoint_str(lo)}|{endpoint_str(hi)}"
        layer = first.layer
        det = self.detection(cat)
        severity = self.detection(cat).parameters.get(f"{sig}_severity", det.severity)
        allowed = self._allowed(layer.outer_src, layer.outer_dst)
        if allowed:
            severity = SEVERITIES[max(0, SEVERITIES.index(severity) - 1)]
        window_ns = self.span_ns[cat]
        evidence: dict[str, Any] = {
            "endpoints": [endpoint_str(lo), endpoint_str(hi)],
            "packets": w.packets,
            "bytes": w.wire_bytes,
            "inner_bytes": w.inner_bytes,
            "packets_from_source": w.forward,
            "packets_to_source": w.packets - w.forward,
            "first_seen": first.meta.ts_ns / NS,
            "last_seen": w.last_ns / NS,
            "window": {"start": w.start_ns / NS, "seconds": window_ns / NS},
            "inner_pairs": [
                {"src": ip_str(s), "dst": ip_str(d), "packets": n}
                for (s, d), n in sorted(w.inner.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "tunnel": tunnel_evidence((layer,)),
            "depth": first.depth,
        }
        if w.embedded:
            evidence["embedded_ipv4"] = sorted(ip_str(v) for v in w.embedded)
        if sig == "spoofed_ipv4":
            claimed = isatap_ipv4(first.inner_src)
            evidence["spoof"] = {
                "outer_src": ip_str(layer.outer_src),
                "embedded_ipv4": ip_str(claimed) if claimed else None,
            }
        if w.teredo or w.kinds:
            evidence["teredo"] = _teredo_evidence(w, lo, hi)
        evidence["allowed"] = allowed
        if allowed:
            evidence["policy"] = self.policy_evidence()
        self.alert(
            cat,
            sig,
            identifier=identifier,
            first_ns=first.meta.ts_ns,
            event=first,
            evidence=evidence,
            severity=severity,
            src_ip=ip_str(layer.outer_src),
            dest_ip=ip_str(layer.outer_dst),
            src_port=layer.outer_sport,
            dest_port=layer.outer_dport,
            proto=17 if layer.outer_sport is not None else 41,
        )

    def _allowed(self, *addresses: bytes) -> list[str]:
        """The ``tunnels.allowed`` entries that hold either outer endpoint."""
        out = []
        for net in self.policy.tunnels_allowed:
            for addr in addresses:
                ip = ipaddress.ip_address(addr)
                if ip.version == net.version and ip in net:
                    out.append(str(net))
                    break
        return out


def _teredo_kind(ev: TunnelPacket) -> str:
    td = ev.layer.teredo
    if td is not None and td.bubble:
        return "bubbles"
    return {133: "router_solicitations", 134: "router_advertisements"}.get(
        ev.inner_icmp_type or 0, "data"
    )


def _teredo_evidence(w: _PairWindow, lo: Endpoint, hi: Endpoint) -> dict[str, Any]:
    """Server and mapped client addresses: from the 2001::/32 addresses seen (each
    Teredo client's own), else from the endpoint on port 3544 (the server) and the
    origin indication the server returns (the client's mapped address, RFC 4380
    5.1.1)."""
    out = dict(w.teredo)
    if "server" not in out:
        on_port = [ep for ep in (lo, hi) if ep[1] == TEREDO_PORT]
        if len(on_port) == 1:
            out["server"] = ip_str(on_port[0][0])
            out["server_from"] = "port_3544"
    else:
        out["server_from"] = "teredo_address"
    if "clients" not in out and "origin_ip" in out:
        out["clients"] = [{"address": out["origin_ip"], "port": out["origin_port"], "cone": None}]
    out["clients"] = sorted(out.get("clients", []), key=lambda c: (c["address"] or "", c["port"]))
    out["messages"] = dict(sorted(w.kinds.items()))
    return out
