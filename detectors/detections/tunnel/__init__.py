"""Tunnel family: ``ipv6.tunnel_6to4``, ``ipv6.tunnel_isatap``, ``ipv6.tunnel_6in4``,
``ipv6.tunnel_teredo`` and ``ipv6.tunnel_ayiya``.

Owns classifying each decapsulation the decoder reports (``TunnelPacket``)
into a category and signature, and counting it in one packet-time window per
(category, signature, unordered outer endpoint pair). A window's alert is
raised when it closes (rolled over, due, evicted or flushed), so it carries
the window's full packet and byte counts: one alert per pair and window,
never one per packet. Per link, at most ``max_alerts_per_window`` pair alerts
per category and window; the rest fold into that category's ``burst`` alert.

Does not parse packets: the decoder validated and decapsulated them, and
decoded the Teredo addresses. Does not look at what the inner packets do;
they reach the other families as tunnelled events.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from detectors.detections import NS, Context, Detector, tunnel_evidence
from detectors.detections.budget import LinkBudget
from detectors.events import Event, TunnelPacket, ip_str, mac_str
from detectors.spec import SEVERITIES
from detectors.state import Suppressor, Windows

TEREDO_PORT = 3544
RELAY_ANYCAST = ipaddress.IPv4Network("192.88.99.0/24")
PREFIX_6TO4 = b"\x20\x02"
ISATAP_IID = (b"\x00\x00\x5e\xfe", b"\x02\x00\x5e\xfe")  # RFC 5214 6.1, u/l bit 0 or 1
SAMPLE = 10

Endpoint = tuple[bytes, int]  # (IPv4 or IPv6 address, UDP port or 0)
PairKey = tuple[str, str, Endpoint, Endpoint]  # category, signature, lower end, higher end


def isatap_ipv4(addr: bytes | None) -> bytes | None:
    """The IPv4 address an ISATAP interface identifier embeds, or None."""
    if addr is None or addr[8:12] not in ISATAP_IID:
        return None
    return addr[12:16]


def embedded_6to4(addr: bytes | None) -> bytes | None:
    """The IPv4 address in a 2002:V4ADDR::/48 prefix, or None."""
    if addr is None or addr[:2] != PREFIX_6TO4:
        return None
    return addr[2:6]


def classify(ev: TunnelPacket) -> tuple[str, str] | None:
    """(category, signature) of one decapsulation; None for kinds not reported."""
    layer = ev.layer
    if layer.kind == "6in4":
        if any(
            len(a) == 4 and ipaddress.IPv4Address(a) in RELAY_ANYCAST
            for a in (layer.outer_src, layer.outer_dst)
        ):
            return "ipv6.tunnel_6to4", "relay_anycast"
        if embedded_6to4(ev.inner_src) or embedded_6to4(ev.inner_dst):
            return "ipv6.tunnel_6to4", "prefix_2002"
        src_v4 = isatap_ipv4(ev.inner_src)
        if src_v4 is not None:
            spoofed = src_v4 != layer.outer_src
            return "ipv6.tunnel_isatap", "spoofed_ipv4" if spoofed else "isatap"
        if isatap_ipv4(ev.inner_dst) is not None:
            return "ipv6.tunnel_isatap", "isatap"
        return "ipv6.tunnel_6in4", "6in4"
    if layer.kind == "teredo":
        if TEREDO_PORT not in (layer.outer_sport, layer.outer_dport):
            return "ipv6.tunnel_teredo", "off_port"
        if ev.inner_icmp_type in (133, 134):
            return "ipv6.tunnel_teredo", "qualification"
        td = layer.teredo
        return "ipv6.tunnel_teredo", "bubble" if td is not None and td.bubble else "data"
    if layer.kind == "ayiya":
        return "ipv6.tunnel_ayiya", "ayiya"
    return None  # 6in6 and 4in6 stay inside IPv6: not hidden from IPv6 monitoring


def endpoint_str(ep: Endpoint) -> str:
    addr = ip_str(ep[0])
    if not ep[1]:
        return addr
    return f"[{addr}]:{ep[1]}" if len(ep[0]) == 16 else f"{addr}:{ep[1]}"


@dataclass(slots=True)
class _PairWindow:
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


class TunnelDetector(Detector):
    """Counts tunnels per endpoint pair and window; see the module docstring."""

    subscribes = (TunnelPacket,)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.windows_by_cat: dict[str, Windows[PairKey, _PairWindow]] = {}
        self.budgets: dict[str, LinkBudget] = {}
        self.suppressors: dict[str, Suppressor] = {}
        for cat in self.spec.detections:
            th = ctx.thresholds[cat]
            self.windows_by_cat[cat] = self.windows(
                f"{cat.removeprefix('ipv6.')}.pairs",
                th["max_pairs_tracked"],
                int(th["window_s"] * NS),
                self._close,
            )
            self.suppressors[cat] = self.suppressor(cat, th["max_pairs_tracked"])
            self.budgets[cat] = LinkBudget(
                self, cat, f"{cat.removeprefix('ipv6.')}.links", 4096, "endpoints"
            )

    def on_event(self, event: Event) -> None:
        assert isinstance(event, TunnelPacket)
        kind = classify(event)
        if kind is None:
            return
        cat, sig = kind
        layer = event.layer
        a: Endpoint = (layer.outer_src, layer.outer_sport or 0)
        b: Endpoint = (layer.outer_dst, layer.outer_dport or 0)
        lo, hi = (a, b) if a <= b else (b, a)
        key: PairKey = (cat, sig, lo, hi)
        ts = event.meta.ts_ns
        w = self.windows_by_cat[cat].current(key, ts, lambda t: _PairWindow(t, event))
        w.last_ns = ts
        w.packets += 1
        w.wire_bytes += event.meta.wire_len
        w.inner_bytes += event.inner_len
        if layer.outer_src == w.first.layer.outer_src:
            w.forward += 1
        if event.inner_src is not None and event.inner_dst is not None:
            pair = (event.inner_src, event.inner_dst)
            if pair in w.inner or len(w.inner) < SAMPLE:
                w.inner[pair] += 1
        for addr in (event.inner_src, event.inner_dst):
            v4 = embedded_6to4(addr) or isatap_ipv4(addr)
            if v4 is not None and len(w.embedded) < SAMPLE:
                w.embedded.add(v4)
        td = layer.teredo
        if td is not None:
            w.kinds[_teredo_kind(event)] += 1
            if td.server is not None:
                w.teredo.setdefault("server", ip_str(td.server))
                clients = w.teredo.setdefault("clients", [])
                client = {
                    "address": ip_str(td.client_ip) if td.client_ip else None,
                    "port": td.client_port,
                    "cone": td.cone,
                }
                if client not in clients and len(clients) < SAMPLE:
                    clients.append(client)
            if td.origin_ip is not None and "origin_ip" not in w.teredo:
                w.teredo.update(origin_ip=ip_str(td.origin_ip), origin_port=td.origin_port)
            if td.auth:
                w.teredo["auth"] = True

    def _close(self, key: PairKey, w: _PairWindow) -> None:
        cat, sig, lo, hi = key
        first = w.first
        identifier = f"{endpoint_str(lo)}|{endpoint_str(hi)}"
        if self.suppressors[cat].active((sig, identifier), w.start_ns):
            return
        if not self.budgets[cat].admit(first, (first.layer.outer_src, None)):
            return
        self.suppressors[cat].allow((sig, identifier), w.last_ns)
        layer = first.layer
        det = self.detection(cat)
        severity = self.detection(cat).parameters.get(f"{sig}_severity", det.severity)
        allowed = self._allowed(layer.outer_src, layer.outer_dst)
        if allowed:
            severity = SEVERITIES[max(0, SEVERITIES.index(severity) - 1)]
        window_ns = self.windows_by_cat[cat].span_ns
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
            ts_ns=w.last_ns,
            identifier=identifier,
            first_ns=first.meta.ts_ns,
            evidence=evidence,
            severity=severity,
            src_ip=ip_str(layer.outer_src),
            dest_ip=ip_str(layer.outer_dst),
            src_port=layer.outer_sport,
            dest_port=layer.outer_dport,
            proto=17 if layer.outer_sport is not None else 41,
            src_mac=mac_str(first.meta.src_mac),
            dest_mac=mac_str(first.meta.dst_mac),
            vlans=first.meta.vlans,
            frame=first.meta.frame or None,
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
