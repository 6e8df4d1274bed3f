"""MLD family: ``ipv6.mld_abuse`` (RFC 2710, RFC 3810, RFC 4286).

Owns the evidence and the alerts of the family. Every local-link MLD and
Multicast Router Discovery message is judged and counted natively
(``native/mod.rs``, the ``mld`` reducer): who may query (policy routers, or
queriers learned in the router learning window ``ipv6.rogue_ra.learn_window_s``),
the querier election by lowest address, the record count of MLDv2 reports, and
per-link windows over reports and Dones. Python gets an ``alert`` output per
querier or record-count alert that passed suppression and the link budget, a
``burst`` per link window that folded alerts, and a ``flood`` per closed report
window past a threshold; its work grows with those, never with packets. Does
not parse packets; MLD inside a tunnel is not this link's and is left alone.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from detectors.detections import NS, Context, Detector
from detectors.detections.budget import Burst, Link, link_str, raise_burst
from detectors.events import MldMessage, ip_str, is_link_local, mac_str
from detectors.policy import LEARN_WINDOW, Policy
from detectors.spec import load_spec

CATEGORY = "ipv6.mld_abuse"
TYPE_NAMES = {
    130: "query",
    131: "report_v1",
    132: "done",
    143: "report_v2",
    151: "mrd_advertisement",
    153: "mrd_termination",
}

# The learned queriers of a link as the reducer reports them: (learning start, keys).
Learned = tuple[int, list[tuple[bytes, bytes | None]]] | None


@cache
def _router_learning_defaults() -> dict[str, float]:
    """The router learning thresholds' defaults, from the RA family's spec that owns them."""
    spec = load_spec(Path(__file__).resolve().parent.parent / "router_advert" / "spec.yaml")
    category, _name = LEARN_WINDOW
    return {n: float(t.default) for n, t in spec.detections[category].thresholds.items()}


def _router_learning(policy: Policy, name: str) -> float:
    """``ipv6.rogue_ra.<name>`` as the policy sets it, else its default: queriers are
    learned as routers are, in the same window and up to the same count."""
    category, _name = LEARN_WINDOW
    value = policy.thresholds.get(category, {}).get(name)
    return float(value if value is not None else _router_learning_defaults()[name])


def _message(ev: MldMessage) -> dict[str, Any]:
    """What the evidence says of one MLD message."""
    out: dict[str, Any] = {
        "type": TYPE_NAMES.get(ev.icmp_type, str(ev.icmp_type)),
        "version": ev.version,
        "hop_limit": ev.ip.hop_limit,
        "router_alert": ev.router_alert,
        "max_delay": ev.max_delay,
    }
    if ev.icmp_type in (130, 131, 132):
        out["group"] = ip_str(ev.group)
    if ev.icmp_type == 130 and ev.version == 2:
        out.update(s_flag=ev.s_flag, qrv=ev.qrv, qqic=ev.qqic, sources=ev.num_sources)
    return out


class MldDetector(Detector):
    """Writes the evidence of what the native reducer judged; see the module docstring."""

    subscribes = ()

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        th = ctx.thresholds[CATEGORY]
        self.learn_ns = int(_router_learning(self.policy, LEARN_WINDOW[1]) * NS)
        self.flood_window_ns = int(th["flood_window_s"] * NS)
        self.max_groups = int(th["max_groups_per_window"])
        self.max_reporters = int(th["max_reporters_per_window"])
        self.max_dones = int(th["max_dones_per_window"])
        self.max_records = int(th["max_records"])
        routers = self.policy.routers
        self.mld = self.reducer(
            "mld",
            {
                "cap": int(th["max_tracked"]),
                # Learned queriers are bounded like learned routers: a query flood in the
                # learning window cannot whitelist itself.
                "learn_ns": self.learn_ns,
                "learn_max": int(_router_learning(self.policy, "learn_max_routers")),
                "suppress_ns": int(th["suppress_s"] * NS),
                "budget_window_ns": int(th["window_s"] * NS),
                "max_alerts": int(th["max_alerts_per_window"]),
                "window_ns": self.flood_window_ns,
                "max_groups": self.max_groups,
                "max_reporters": self.max_reporters,
                "max_dones": self.max_dones,
                "max_records": self.max_records,
                "routers": None if routers is None else [(r.address, r.mac) for r in routers],
            },
        )
        self.flood_suppress = self.suppressor(CATEGORY, th["max_tracked"])

    def on_reduced(self, output: Any) -> None:
        kind = output[0]
        if kind == "flood":
            self._flood(output)
        elif kind == "burst":
            _kind, raw, learned = output
            link, burst = Burst.from_native(raw)
            raise_burst(
                self,
                CATEGORY,
                "queriers",
                lambda _link: {"policy": self._policy_evidence(learned)},
                link,
                burst,
            )
        else:
            self._alert(output)

    def _alert(self, output: tuple[Any, ...]) -> None:
        (_kind, sig, link, (addr, mac), count, first_ns, last_ns, ev, *extra) = output
        assert isinstance(ev, MldMessage)
        identifier = f"{link_str(link)}|{ip_str(addr)}|{mac_str(mac)}|{sig}"
        evidence: dict[str, Any] = {
            "mld": _message(ev),
            "count": count,
            "first_seen": first_ns / NS,
            "last_seen": last_ns / NS,
        }
        if sig == "record_count":
            declared, fit, sources = extra
            evidence["reporter"] = {"address": ip_str(addr), "mac": mac_str(mac)}
            evidence["report"] = {
                "records_declared": declared,
                "records_fit": fit,
                "sources": sources,
            }
            evidence["threshold"] = self.max_records
        else:
            elected, learned = extra
            evidence["querier"] = {
                "address": ip_str(addr),
                "mac": mac_str(mac),
                "link_local": is_link_local(addr),
            }
            if elected is not None:
                evidence["elected_querier"] = ip_str(elected)
            evidence["policy"] = self._policy_evidence(learned)
        self.alert(
            CATEGORY,
            sig,
            identifier=identifier,
            first_ns=first_ns,
            event=ev,
            evidence=evidence,
        )

    def _flood(self, output: tuple[Any, ...]) -> None:
        (_kind, link, start_ns, first_ns, last_ns, reports, groups, groups_capped,
         sample_groups, reporters, reporters_capped, sample_reporters, dones,
         dones_listened, emptied, sample_emptied, report_sample, done_sample) = output  # fmt: skip
        seconds = self.flood_window_ns / NS
        common: dict[str, Any] = {
            "window": {"start": start_ns / NS, "end": start_ns / NS + seconds,
                       "seconds": seconds},
            "first_seen": first_ns / NS,
            "last_seen": last_ns / NS,
            "reports": reports,
            "dones": dones,
        }  # fmt: skip
        if groups > self.max_groups or reporters > self.max_reporters:
            evidence = {
                **common,
                "groups": groups,
                "groups_capped": groups_capped,
                "sample_groups": [ip_str(g) for g in sample_groups],
                "reporters": reporters,
                "reporters_capped": reporters_capped,
                "sample_reporters": [f"{ip_str(a)} {mac_str(m)}" for a, m in sample_reporters],
                "threshold": self.max_groups if groups > self.max_groups else self.max_reporters,
            }
            self._window_alert(link, "report_flood", start_ns, last_ns, evidence, report_sample)
        if dones > self.max_dones:
            evidence = {
                **common,
                "dones_for_listened_groups": dones_listened,
                "emptied_groups": emptied,
                "sample_emptied_groups": [ip_str(g) for g in sample_emptied],
                "threshold": self.max_dones,
            }
            self._window_alert(link, "done_flood", start_ns, last_ns, evidence, done_sample)

    def _window_alert(
        self,
        link: Link,
        sig: str,
        start_ns: int,
        last_ns: int,
        evidence: dict[str, Any],
        sample: MldMessage | None,
    ) -> None:
        identifier = f"{link_str(link)}|{sig}"
        if sample is None or not self.flood_suppress.allow(identifier, last_ns):
            return
        self.alert(
            CATEGORY,
            sig,
            identifier=identifier,
            first_ns=start_ns,
            event=sample,
            evidence=evidence,
            src_mac=None,
        )

    def _policy_evidence(self, learned: Learned) -> dict[str, Any]:
        out = self.policy_evidence()
        if learned is not None:
            first_ns, keys = learned
            out["learn_window_s"] = self.learn_ns / NS
            out["learned_until"] = (first_ns + self.learn_ns) / NS
            out["learned_queriers"] = sorted(f"{ip_str(a)} {mac_str(m)}" for a, m in keys)
        return out

    def tick(self, now_ns: int) -> None:
        for output in self.mld.tick(now_ns):
            self.on_reduced(output)
        super().tick(now_ns)

    def flush(self, now_ns: int) -> None:
        for output in self.mld.flush(now_ns):
            self.on_reduced(output)
        super().flush(now_ns)
