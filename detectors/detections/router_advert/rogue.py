"""``ipv6.rogue_ra``: judging each local-link RA against the policy.

The verdict on one RA is native (``native/rogue.rs``, the ``rogue`` reducer):
what no honest router sends (a source that is not link-local, a hop limit
other than 255), then who sent it (unknown, spoofed MAC, kill-router lifetime
0), then, for a legitimate source, what it says (SLLA vs Ethernet source, MTU,
prefixes, RDNSS, DNSSL, routes, preference and M/O flags against the policy or
the learned baseline). The policy's routers go to the reducer as plain settings;
the learned routers are reducer state. Does not parse packets and does not see
tunnelled RAs.

Counting (native too): one alert per router (link, address, MAC) and signature
per suppression interval; per link at most ``max_alerts_per_window`` alerts per
window, the rest folded into one ``burst`` alert. This module owns the evidence
and the alert: the reducer hands it a ``rogue`` output (raw findings, counts,
the learned routers of the link) for each alert that passed suppression and the
budget, and a ``rogue_burst`` for each link window that folded alerts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import Burst, link_str, raise_burst
from detectors.detections.router_advert import common
from detectors.events import RouterAdvertisement, ip_str, mac_str
from detectors.policy import Router

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.rogue_ra"
SOURCE_SIGNATURES = ("unknown_router", "spoofed_router_mac")  # one identifier per router
CONTENT_SIGNATURES = ("slla_mismatch", "small_mtu", "unlisted_option", "parameter_change")

# The learned routers of a link as the reducer reports them: (learning start, keys).
Learned = tuple[int, list[tuple[bytes, bytes | None]]] | None


def router_settings(r: Router) -> dict[str, Any]:
    """One policy router as the reducer takes it; a list of None is not checked."""
    checked = r.checked
    return {
        "address": r.address,
        "mac": r.mac,
        "name": r.name,
        "preference": r.preference,
        "managed": r.managed,
        "other": r.other,
        "mtu": r.mtu,
        "prefixes": [(n.network_address.packed, n.prefixlen) for n in r.prefixes]
        if "prefixes" in checked
        else None,
        "routes": [(n.network_address.packed, n.prefixlen) for n in r.routes]
        if "routes" in checked
        else None,
        "rdnss": list(r.rdnss) if "rdnss" in checked else None,
        "dnssl": [common.domain(d) for d in r.dnssl] if "dnssl" in checked else None,
    }


def finding(raw: tuple[str, str, Any, Any]) -> dict[str, Any]:
    """One of the reducer's raw findings ``(signature, check, expected, seen)`` as the
    evidence writes it (addresses as text, preferences by name)."""
    sig, check, expected, seen = raw
    if check == "source_lla":
        expected, seen = mac_str(expected), mac_str(seen)
    elif check in ("source", "rdnss"):
        seen = ip_str(seen)
    elif check in ("prefix", "route"):
        seen = str(common.net(*seen))
    elif check == "preference":
        expected = common.PREFERENCE_NAMES[expected]
        seen = common.PREFERENCE_NAMES.get(seen, str(seen))
    elif sig == "small_mtu":
        expected = f">= {expected}"
    return {"signature": sig, "check": check, "expected": expected, "seen": seen}


class RogueRA:
    """The ``ipv6.rogue_ra`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.learn_ns = int(th["learn_window_s"] * NS)
        self.learning = det.policy.routers is None
        self.routers = det.policy.routers or ()
        self.reducer = det.reducer(
            "rogue",
            {
                "cap": int(th["max_routers_tracked"]),
                "learn_ns": self.learn_ns,
                "learn_max": int(th["learn_max_routers"]),
                "min_mtu": int(th["min_mtu"]),
                "hop_limit": int(th["hop_limit"]),
                "suppress_ns": int(th["suppress_s"] * NS),
                "window_ns": int(th["window_s"] * NS),
                "max_alerts": int(th["max_alerts_per_window"]),
                "routers": None
                if det.policy.routers is None
                else [router_settings(r) for r in det.policy.routers],
            },
        )

    def on_output(self, output: tuple[Any, ...]) -> None:
        if output[0] == "rogue_burst":
            _kind, raw, learned = output
            link, burst = Burst.from_native(raw)
            raise_burst(
                self.det,
                CATEGORY,
                "routers",
                lambda _link: {"policy": self._policy_evidence(None, learned)},
                link,
                burst,
            )
            return
        (_kind, sig, link, (addr, _mac), count, first_ns, last_ns, ev, findings, name,
         entry, learned) = output  # fmt: skip
        assert isinstance(ev, RouterAdvertisement)
        mac = ev.sender_mac()  # the reducer's key folds an unusual link-layer option
        identifier = f"{link_str(link)}|{ip_str(addr)}|{mac_str(mac)}"
        if sig not in SOURCE_SIGNATURES:
            identifier += f"|{sig}"
        router: dict[str, Any] = {"address": ip_str(addr), "mac": mac_str(mac)}
        if name:
            router["name"] = name
        evidence = {
            "router": router,
            "ra": common.ra_summary(ev),
            "findings": [finding(f) for f in findings],
            "count": count,
            "first_seen": first_ns / NS,
            "last_seen": last_ns / NS,
            "policy": self._policy_evidence(
                None if entry is None else self.routers[entry], learned
            ),
        }
        frag = ev.ip.fragment
        if frag is not None and frag.overlap is not None:
            # Read out of overlapping fragments (RFC 5722) keeping this copy of each byte.
            evidence["overlap_reading"] = frag.overlap
        self.det.alert(
            CATEGORY,
            sig,
            identifier=identifier,
            first_ns=first_ns,
            event=ev,
            evidence=evidence,
        )

    def _policy_evidence(self, entry: Router | None, learned: Learned) -> dict[str, Any]:
        out = self.det.policy_evidence()
        if learned is not None:
            first_ns, keys = learned
            out["learn_window_s"] = self.learn_ns / NS
            out["learned_until"] = (first_ns + self.learn_ns) / NS
            out["learned_routers"] = sorted(f"{ip_str(a)} {mac_str(m)}" for a, m in keys)
        if entry is not None:
            out["entry"] = {
                "name": entry.name,
                "address": ip_str(entry.address),
                "mac": mac_str(entry.mac),
                "line": entry.line,
            }
        return out
