"""DHCPv6 family: ``ipv6.rogue_dhcpv6`` and ``ipv6.dhcpv6_starvation``.

Owns the verdicts' Python half: the evidence and the alerts for what the family's
native reducers (``native/``, declared under ``reducers:`` in the spec) hand over.
Every local-link DHCPv6 message (``Dhcpv6Message``, decoded in
``native/src/decode/dhcpv6.rs``) is judged and counted natively: ``rogue`` checks
each Advertise and Reply against the policy's ``dhcpv6_servers`` (or, without that
key, the servers learned in ``ipv6.rogue_ra``'s ``learn_window_s``, as routers are
learned) and hands over alerts past its suppression and link budget, and bursts;
``starvation`` hands over per-link windows past a threshold. The family subscribes
to no Python event, so its Python work grows with alerts and windows, never with
packets. Does not parse packets; DHCPv6 inside a tunnel is left alone.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from detectors.detections import NS, Context, Detector
from detectors.detections.budget import Burst, link_str, raise_burst
from detectors.events import Dhcpv6Message, ip_str, mac_str
from detectors.policy import LEARN_WINDOW, Dhcpv6Server
from detectors.spec import load_spec

ROGUE = "ipv6.rogue_dhcpv6"
STARVATION = "ipv6.dhcpv6_starvation"
SAMPLE = 10

# The learned servers of a link as the reducer reports them: (learning start, keys).
Learned = tuple[int, list[tuple[bytes, bytes | None]]] | None


@functools.cache
def _learn_window_default() -> float:
    """``ipv6.rogue_ra``'s ``learn_window_s`` default: servers are learned as routers."""
    category, name = LEARN_WINDOW
    spec = load_spec(Path(__file__).parent.parent / "router_advert" / "spec.yaml")
    return float(spec.detections[category].thresholds[name].default)


def learn_window_s(det: Detector) -> float:
    category, name = LEARN_WINDOW
    return float(det.policy.thresholds.get(category, {}).get(name, _learn_window_default()))


def server_settings(s: Dhcpv6Server) -> dict[str, Any]:
    """One policy server as the reducer takes it; None is not checked."""
    return {
        "address": s.address,
        "mac": s.mac,
        "duid": s.duid,
        "dns": None if s.dns is None else list(s.dns),
        "domains": None if s.domains is None else list(s.domains),
    }


def duid_str(duid: bytes | None) -> str | None:
    return None if duid is None else duid.hex(":")


def handed_out(m: Dhcpv6Message) -> dict[str, Any]:
    """What a server message gives its client."""
    out: dict[str, Any] = {
        "addresses": [ip_str(a) for a in m.addresses],
        "prefixes": [f"{ip_str(p)}/{n}" for p, n in m.prefixes],
        "dns": [ip_str(a) for a in m.dns_servers],
        "domains": list(m.domains),
    }
    if m.status_code is not None:
        out["status_code"] = m.status_code
    return out


class Dhcpv6Detector(Detector):
    """Writes the alerts of the family's native reducers; see the module docstring."""

    subscribes = ()

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        rogue = ctx.thresholds[ROGUE]
        self.learn_ns = int(learn_window_s(self) * NS)
        self.servers = self.policy.dhcpv6_servers or ()
        self.rogue = self.reducer(
            "rogue",
            {
                "servers": None
                if self.policy.dhcpv6_servers is None
                else [server_settings(s) for s in self.policy.dhcpv6_servers],
                "learn_ns": self.learn_ns,
                "learn_max": int(rogue["learn_max_servers"]),
                "suppress_ns": int(rogue["suppress_s"] * NS),
                "window_ns": int(rogue["window_s"] * NS),
                "max_alerts": int(rogue["max_alerts_per_window"]),
                "max_servers_tracked": int(rogue["max_servers_tracked"]),
                "max_links_tracked": int(rogue["max_links_tracked"]),
            },
        )
        st = ctx.thresholds[STARVATION]
        self.window_ns = int(st["window_s"] * NS)
        self.max_clients = int(st["max_clients_per_window"])
        self.max_requests = int(st["max_requests_per_window"])
        self.max_incomplete = int(st["max_incomplete_per_window"])
        self.starvation = self.reducer(
            "starvation",
            {
                "window_ns": self.window_ns,
                "max_clients": self.max_clients,
                "max_requests": self.max_requests,
                "max_incomplete": self.max_incomplete,
                "max_pending": int(st["max_pending_tracked"]),
                "max_links_tracked": int(st["max_links_tracked"]),
            },
        )
        self.suppress = self.suppressor(STARVATION, st["max_links_tracked"])

    # -- reducer outputs ----------------------------------------------------

    def on_reduced(self, output: Any) -> None:
        kind = output[0]
        if kind == "rogue":
            self._rogue(output)
        elif kind == "rogue_burst":
            link, burst = Burst.from_native(output[1])
            raise_burst(self, ROGUE, "servers", None, link, burst)
        else:
            self._starvation(output)

    def _reduced(self, outputs: list[Any]) -> None:
        for output in outputs:
            self.on_reduced(output)

    def tick(self, now_ns: int) -> None:
        self._reduced(self.rogue.tick(now_ns))
        self._reduced(self.starvation.tick(now_ns))
        super().tick(now_ns)

    def flush(self, now_ns: int) -> None:
        self._reduced(self.rogue.flush(now_ns))
        self._reduced(self.starvation.flush(now_ns))
        super().flush(now_ns)

    # -- ipv6.rogue_dhcpv6 -----------------------------------------------------

    def _rogue(self, output: tuple[Any, ...]) -> None:
        (_kind, sig, link, (addr, mac), count, first_ns, last_ns, ev, findings, entry,
         learned, clients, sample) = output  # fmt: skip
        assert isinstance(ev, Dhcpv6Message)
        server: dict[str, Any] = {"address": ip_str(addr), "mac": mac_str(mac)}
        if ev.server_id is not None:
            server["duid"] = duid_str(ev.server_id)
        policy_entry = None if entry is None else self.servers[entry]
        if policy_entry is not None and policy_entry.name:
            server["name"] = policy_entry.name
        identifier = f"{link_str(link)}|{ip_str(addr)}|{mac_str(mac)}"
        if sig != "unknown_server":
            identifier += f"|{sig}"
        message: dict[str, Any] = {
            "type": ev.type_name,
            "transaction_id": ev.transaction_id,
        }
        if ev.client_id is not None:
            message["client_duid"] = duid_str(ev.client_id)
        evidence = {
            "server": server,
            "dhcpv6": message,
            "handed_out": handed_out(ev),
            "findings": [self._finding(check, seen, policy_entry) for check, seen in findings],
            "clients": {
                "count": clients,
                "sample_duids": [duid_str(c) for c in sample],
            },
            "count": count,
            "first_seen": first_ns / NS,
            "last_seen": last_ns / NS,
            "policy": self._policy_evidence(policy_entry, learned),
        }
        self.alert(
            ROGUE,
            sig,
            identifier=identifier,
            first_ns=first_ns,
            event=ev,
            evidence=evidence,
        )

    def _finding(self, check: str, seen: Any, entry: Dhcpv6Server | None) -> dict[str, Any]:
        out: dict[str, Any] = {"check": check}
        if check == "source":
            out["expected"] = "a dhcpv6_servers entry" if self.servers else "a learned server"
        elif check == "duid":
            out["expected"] = duid_str(entry.duid) if entry is not None else "the learned DUID"
            out["seen"] = duid_str(seen)
        elif check == "dns":
            out["expected"] = (
                [ip_str(a) for a in entry.dns or ()] if entry is not None else "learned"
            )
            out["seen"] = ip_str(seen)
        else:
            out["expected"] = list(entry.domains or ()) if entry is not None else "learned"
            out["seen"] = seen
        return out

    def _policy_evidence(self, entry: Dhcpv6Server | None, learned: Learned) -> dict[str, Any]:
        out = self.policy_evidence()
        if learned is not None:
            first_ns, keys = learned
            out["learn_window_s"] = self.learn_ns / NS
            out["learned_until"] = (first_ns + self.learn_ns) / NS
            out["learned_servers"] = sorted(f"{ip_str(a)} {mac_str(m)}" for a, m in keys)
        if entry is not None:
            out["entry"] = {
                "name": entry.name,
                "address": ip_str(entry.address),
                "mac": mac_str(entry.mac),
                "line": entry.line,
            }
        return out

    # -- ipv6.dhcpv6_starvation ------------------------------------------------

    def _starvation(self, output: tuple[Any, ...]) -> None:
        (_kind, link, start, last, solicits, duids, macs, sample_macs, advertises, requests,
         replies, incomplete, sample) = output  # fmt: skip
        seconds = self.window_ns / NS
        counts: dict[str, Any] = {
            "window": {"start": start / NS, "end": start / NS + seconds, "seconds": seconds},
            "last_seen": last / NS,
            "solicits": solicits,
            "distinct_client_duids": duids,
            "distinct_client_macs": macs,
            "sample_client_macs": [mac_str(m) for m in sample_macs],
            "advertises": advertises,
            "requests": requests,
            "replies": replies,
            "incomplete_transactions": incomplete,
        }
        if max(duids, macs) > self.max_clients:
            self._flood(link, start, last, sample, "solicit_flood",
                        {**counts, "threshold": self.max_clients,
                         "per_second": round(max(duids, macs) / seconds, 3)})  # fmt: skip
        if requests > self.max_requests or incomplete > self.max_incomplete:
            threshold = self.max_requests if requests > self.max_requests else self.max_incomplete
            self._flood(link, start, last, sample, "request_churn",
                        {**counts, "threshold": threshold,
                         "per_second": round(requests / seconds, 3)})  # fmt: skip

    def _flood(
        self,
        link: Any,
        start: int,
        last: int,
        samples: dict[str, Dhcpv6Message],
        sig: str,
        evidence: dict[str, Any],
    ) -> None:
        identifier = f"{link_str(link)}|{sig}"
        ev = samples.get(sig)
        if ev is None or not self.suppress.allow(identifier, last):
            return
        evidence["first_seen"] = ev.meta.ts_ns / NS
        self.alert(
            STARVATION,
            sig,
            identifier=identifier,
            first_ns=start,
            event=ev,
            evidence=evidence,
            src_mac=None,
            dest_mac=None,
        )
