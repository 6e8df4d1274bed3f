"""First-hop family: ``ipv6.redirect_spoof``, ``ipv6.smurf``, ``ipv6.ptb_attack``.

Owns writing the evidence and the alerts of the family's native reducer
(``native/``, kind ``first_hop``): every local-link Redirect, every IPv6 packet
(multicast sources, echo requests to a group, echo replies per victim) and every
ICMPv6 Packet Too Big is judged and counted in Rust, against one shared view of
each link (routers, on-link prefixes, ND bindings, host MACs, flows seen), which
also holds the "spoofed remote source" check: an off-link source must arrive from
a router's MAC. The family subscribes to no Python event; its Python work grows
with alerts and closed windows, never with packets. Does not parse packets, and
leaves traffic inside tunnels alone (it is not the local link).

The policy's routers (address and MAC) and prefixes (the routers' and
``prefixes.monitored``) go to the reducer as plain settings; without routers in the
policy, routers and on-link prefixes are learned from RAs heard in the learning
window, as the RA family learns them.
"""

from __future__ import annotations

from typing import Any

from detectors.detections import NS, Context, Detector
from detectors.detections.budget import Burst, link_str, raise_burst
from detectors.events import (
    IcmpError,
    Ipv6Packet,
    Redirect,
    RedirectedHeaderOption,
    ip_str,
    mac_str,
)

REDIRECT, SMURF, PTB = "ipv6.redirect_spoof", "ipv6.smurf", "ipv6.ptb_attack"


def _text(value: Any) -> Any:
    """A raw finding value as evidence: 16 bytes an address, 6 a MAC."""
    if isinstance(value, bytes):
        return ip_str(value) if len(value) == 16 else mac_str(value)
    return value


def _finding(raw: tuple[str, str, Any, Any]) -> dict[str, Any]:
    sig, check, expected, seen = raw
    if check == "mtu":
        expected = f">= {expected}"
    return {"signature": sig, "check": check, "expected": _text(expected), "seen": _text(seen)}


class FirstHopDetector(Detector):
    """Routes the native reducer's outputs to alerts; see the module docstring."""

    subscribes = ()

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        rd, sm, pt = (ctx.thresholds[c] for c in (REDIRECT, SMURF, PTB))
        self.learn_ns = int(rd["learn_window_s"] * NS)
        routers = self.policy.routers
        prefixes = [
            (n.network_address.packed, n.prefixlen)
            for n in (*(p for r in routers or () for p in r.prefixes), *self.policy.monitored)
        ]
        cap = int(rd["max_sources_tracked"])

        def gate(th: dict[str, float]) -> dict[str, int]:
            return {
                "cap": cap,
                "suppress_ns": int(th["suppress_s"] * NS),
                "window_ns": int(th["window_s"] * NS),
                "max_alerts": int(th["max_alerts_per_window"]),
            }

        self.reducer_ = self.reducer(
            "first_hop",
            {
                "routers": None if routers is None else [(r.address, r.mac) for r in routers],
                "prefixes": prefixes,
                "learn_ns": self.learn_ns,
                "learn_max": int(rd["learn_max_routers"]),
                "max_links": int(rd["max_links_tracked"]),
                "max_bindings": int(rd["max_bindings_tracked"]),
                "max_flows": int(rd["max_flows_tracked"]),
                "hop_limit": int(rd["hop_limit"]),
                "min_mtu": int(pt["min_mtu"]),
                "storm_ns": int(sm["storm_window_s"] * NS),
                "max_replies": int(sm["max_replies_per_window"]),
                "flood_ns": int(pt["flood_window_s"] * NS),
                "max_ptb": int(pt["max_ptb_per_window"]),
                "max_victims": int(sm["max_victims_tracked"]),
                "max_targets": int(pt["max_targets_tracked"]),
                "redirect": gate(rd),
                "smurf": gate(sm),
                "ptb": gate(pt),
            },
        )

    # -- outputs --------------------------------------------------------------------

    def on_reduced(self, output: Any) -> None:
        if output[0] == "burst":
            _kind, category, raw, learned = output
            link, burst = Burst.from_native(raw)
            raise_burst(
                self,
                category,
                "sources",
                lambda _link: {"policy": self._policy(learned)},
                link,
                burst,
            )
            return
        _kind, category, sig, link, (addr, mac), ev, findings, spoof, window, learned = output
        identifier = f"{link_str(link)}|{ip_str(addr)}|{mac_str(mac) or '-'}|{sig}"
        evidence: dict[str, Any] = {"source": {"address": ip_str(addr), "mac": mac_str(mac)}}
        if findings:
            # Every reason this packet was judged for, strongest first, once each.
            evidence["why"] = list(dict.fromkeys(f[0] for f in findings))
            evidence["findings"] = [_finding(f) for f in findings]
        if spoof is not None:
            address, smac, host = spoof
            evidence["spoofed_source"] = {
                "address": ip_str(address),
                "mac": mac_str(smac),
                "host_address": ip_str(host),
                "reason": "off-link source sent from the MAC of a host of the link, not a router's",
            }
        if isinstance(ev, Redirect):
            evidence["redirect"] = self._redirect(ev)
        elif isinstance(ev, IcmpError):
            evidence["ptb"] = self._ptb(ev)
        elif isinstance(ev, Ipv6Packet) and ev.icmp_type == 128:
            evidence["echo"] = {"group": ip_str(ev.ip.dst)}
        first_ns = ev.meta.ts_ns
        if window is not None:
            count, start_ns, window_ns, threshold, senders, more = window
            first_ns = start_ns
            evidence.pop("source")
            evidence.update(
                count=count,
                threshold=threshold,
                window={
                    "start": start_ns / NS,
                    "end": (start_ns + window_ns) / NS,
                    "seconds": window_ns / NS,
                },
            )
            if category == SMURF:
                evidence["victim"] = {
                    "address": ip_str(addr),
                    "replies": count,
                    "responders": len(senders),
                    "responders_capped": more,
                    "sample_responders": [ip_str(s) for s in senders[:10]],
                }
            else:
                evidence["ptb"].update(
                    senders=len(senders),
                    senders_capped=more,
                    sample_senders=[ip_str(s) for s in senders[:10]],
                )
        evidence["policy"] = self._policy(learned)
        self.alert(
            category, sig, identifier=identifier, first_ns=first_ns, event=ev, evidence=evidence
        )

    @staticmethod
    def _redirect(ev: Redirect) -> dict[str, Any]:
        """The host redirected, the destination, the new first hop and its MAC."""
        out: dict[str, Any] = {
            "host": ip_str(ev.ip.dst),
            "destination": ip_str(ev.destination),
            "target": ip_str(ev.target),
            "target_mac": mac_str(ev.target_lla()),
            "hop_limit": ev.ip.hop_limit,
        }
        for opt in ev.options:
            if isinstance(opt, RedirectedHeaderOption) and opt.src is not None:
                out["quoted_src"] = ip_str(opt.src)
                if opt.dst is not None:
                    out["quoted_dst"] = ip_str(opt.dst)
                break
        return out

    @staticmethod
    def _ptb(ev: IcmpError) -> dict[str, Any]:
        """The target told to shrink, the MTU, and the packet it quotes."""
        out: dict[str, Any] = {"target": ip_str(ev.ip.dst), "mtu": ev.param}
        if ev.quoted_src is not None and ev.quoted_dst is not None:
            out.update(
                quoted_src=ip_str(ev.quoted_src),
                quoted_dst=ip_str(ev.quoted_dst),
                quoted_proto=ev.quoted_next,
            )
            for key, value in (
                ("quoted_sport", ev.quoted_sport),
                ("quoted_dport", ev.quoted_dport),
                ("quoted_icmp_type", ev.quoted_icmp_type),
            ):
                if value is not None:
                    out[key] = value
        return out

    def _policy(self, learned: Any) -> dict[str, Any]:
        out = self.policy_evidence()
        if learned is not None:
            first_ns, keys = learned
            out["learn_window_s"] = self.learn_ns / NS
            out["learned_until"] = (first_ns + self.learn_ns) / NS
            out["learned_routers"] = sorted(f"{ip_str(a)} {mac_str(m)}" for a, m in keys)
        return out

    # -- windows ----------------------------------------------------------------------

    def tick(self, now_ns: int) -> None:
        for output in self.reducer_.tick(now_ns):
            self.on_reduced(output)
        super().tick(now_ns)

    def flush(self, now_ns: int) -> None:
        for output in self.reducer_.flush(now_ns):
            self.on_reduced(output)
        super().flush(now_ns)
