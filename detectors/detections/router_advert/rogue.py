"""``ipv6.rogue_ra``: judging each local-link RA against the policy.

Owns the verdict on one RA: what no honest router sends (a source that is
not link-local, a hop limit other than 255), then who sent it (unknown,
spoofed MAC, kill-router lifetime 0), then, for a legitimate source, what it
says (SLLA vs Ethernet source, MTU, prefixes, RDNSS, DNSSL, routes,
preference and M/O flags against the policy or the learned baseline). Does
not parse packets and does not see tunnelled RAs (the family skips them).

Counting: one alert per router (link, address, MAC) and signature per
suppression interval; per link at most ``max_alerts_per_window`` alerts per
window, the rest folded into one ``burst`` alert (``LinkBudget``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from detectors.detections import NS
from detectors.detections.budget import Link, LinkBudget, link_of, link_str, seen_in
from detectors.detections.router_advert import common
from detectors.events import RouterAdvertisement, ip_str, is_link_local, mac_str
from detectors.policy import Router

if TYPE_CHECKING:
    from detectors.detections import Detector

CATEGORY = "ipv6.rogue_ra"
SOURCE_SIGNATURES = ("unknown_router", "spoofed_router_mac")  # one identifier per router
CONTENT_SIGNATURES = ("slla_mismatch", "small_mtu", "unlisted_option", "parameter_change")

RouterKey = tuple[bytes, bytes | None]  # (address, MAC)


@dataclass(slots=True)
class Baseline:
    """What a legitimate router is allowed to say: from the policy or learned."""

    name: str | None = None
    line: int | None = None
    preference: int | None = None
    managed: bool | None = None
    other: bool | None = None
    mtu: int | None = None
    prefixes: set[ipaddress.IPv6Network] | None = None  # None: not checked
    routes: set[ipaddress.IPv6Network] | None = None
    rdnss: set[bytes] | None = None
    dnssl: set[str] | None = None

    @classmethod
    def from_policy(cls, r: Router) -> Baseline:
        checked = r.checked
        return cls(
            name=r.name,
            line=r.line,
            preference=r.preference,
            managed=r.managed,
            other=r.other,
            mtu=r.mtu,
            prefixes=set(r.prefixes) if "prefixes" in checked else None,
            routes=set(r.routes) if "routes" in checked else None,
            rdnss=set(r.rdnss) if "rdnss" in checked else None,
            dnssl={common.domain(d) for d in r.dnssl} if "dnssl" in checked else None,
        )

    @classmethod
    def from_ra(cls, ev: RouterAdvertisement) -> Baseline:
        base = cls(
            preference=ev.preference,
            managed=ev.managed,
            other=ev.other,
            mtu=common.mtu(ev),
            prefixes=set(),
            routes=set(),
            rdnss=set(),
            dnssl=set(),
        )
        base.absorb(ev)
        return base

    def absorb(self, ev: RouterAdvertisement) -> None:
        """While learning, what the router advertises becomes allowed."""
        if self.prefixes is not None:
            self.prefixes.update(common.prefixes(ev))
        if self.routes is not None:
            self.routes.update(common.routes(ev))
        if self.rdnss is not None:
            self.rdnss.update(common.rdnss(ev))
        if self.dnssl is not None:
            self.dnssl.update(common.dnssl(ev))


@dataclass(slots=True)
class _Verdict:
    signature: str | None  # source signature, None = legitimate source
    baseline: Baseline | None
    policy_entry: Router | None = None


class RogueRA:
    """The ``ipv6.rogue_ra`` part of the family detector."""

    def __init__(self, det: Detector) -> None:
        self.det = det
        th = det.ctx.thresholds[CATEGORY]
        self.learn_ns = int(th["learn_window_s"] * NS)
        self.learn_max = int(th["learn_max_routers"])
        self.min_mtu = int(th["min_mtu"])
        self.hop_limit = int(th["hop_limit"])
        cap = th["max_routers_tracked"]
        self.routers = det.table("routers", cap)
        self.budget = LinkBudget(
            det, CATEGORY, "links", cap, "routers", lambda link: {
                "policy": self._policy_evidence(link, None)
            }
        )  # fmt: skip
        self.suppress = det.suppressor(CATEGORY, cap)
        self.learning = det.policy.routers is None
        self.learned: dict[Link, dict[RouterKey, Baseline]] = {}
        self.learned_count = 0
        self.first_ns: int | None = None
        self._by_address = det.policy.routers_by_address()
        self._policy_baselines = {
            (r.address, r.mac): Baseline.from_policy(r) for r in det.policy.routers or ()
        }

    # -- who sent it -------------------------------------------------------

    def _source(self, ev: RouterAdvertisement, link: Link, key: RouterKey, ts: int) -> _Verdict:
        if self.learning:
            assert self.first_ns is not None
            known = self.learned.setdefault(link, {})
            base = known.get(key)
            in_window = ts - self.first_ns < self.learn_ns
            if base is not None:
                if in_window:
                    base.absorb(ev)
                return _Verdict(None, base)
            if any(addr == key[0] for addr, _mac in known):
                return _Verdict("spoofed_router_mac", None)  # a learned router's address
            # A router that says it is no router (lifetime 0) is never learned.
            if in_window and self.learned_count < self.learn_max and ev.router_lifetime:
                known[key] = base = Baseline.from_ra(ev)
                self.learned_count += 1
                return _Verdict(None, base)
            return _Verdict("unknown_router", None)
        candidates = self._by_address.get(key[0])
        if not candidates:
            return _Verdict("unknown_router", None)
        for router in candidates:
            if router.mac is None or router.mac == key[1]:
                return _Verdict(None, self._policy_baselines[(router.address, router.mac)], router)
        return _Verdict("spoofed_router_mac", None, candidates[0])

    # -- what it says ------------------------------------------------------

    def _content(self, ev: RouterAdvertisement, base: Baseline | None) -> list[dict[str, Any]]:
        """Every content finding, each tagged with the signature it belongs to."""
        out: list[dict[str, Any]] = []
        eth, slla = ev.meta.src_mac, ev.source_lla()
        if eth is not None and slla is not None and len(slla) == 6 and slla != eth:
            out.append(
                {"signature": "slla_mismatch", "check": "source_lla", "expected": mac_str(eth),
                 "seen": mac_str(slla)}
            )  # fmt: skip
        mtu = common.mtu(ev)
        if mtu is not None and mtu < self.min_mtu:
            out.append(
                {"signature": "small_mtu", "check": "mtu", "expected": f">= {self.min_mtu}",
                 "seen": mtu}
            )  # fmt: skip
        if base is None:
            return out
        unlisted: list[tuple[str, str]] = []
        if base.prefixes is not None:
            unlisted += [("prefix", str(p)) for p in common.prefixes(ev) if p not in base.prefixes]
        if base.routes is not None:
            unlisted += [("route", str(r)) for r in common.routes(ev) if r not in base.routes]
        if base.rdnss is not None:
            unlisted += [("rdnss", ip_str(s)) for s in common.rdnss(ev) if s not in base.rdnss]
        if base.dnssl is not None:
            unlisted += [("dnssl", d) for d in common.dnssl(ev) if d not in base.dnssl]
        for check, value in dict.fromkeys(unlisted):  # dedupe, keep order
            out.append(
                {"signature": "unlisted_option", "check": check, "expected": "listed",
                 "seen": value}
            )  # fmt: skip
        params: list[tuple[str, Any, Any]] = [
            ("managed", base.managed, ev.managed),
            ("other", base.other, ev.other),
        ]
        if base.preference is not None:
            params.append(
                (
                    "preference",
                    common.PREFERENCE_NAMES[base.preference],
                    common.PREFERENCE_NAMES.get(ev.preference, str(ev.preference)),
                )
            )
        if mtu is not None and mtu >= self.min_mtu:
            params.append(("mtu", base.mtu, mtu))
        for check, want, seen in params:
            if want is not None and want != seen:
                out.append(
                    {"signature": "parameter_change", "check": check, "expected": want,
                     "seen": seen}
                )  # fmt: skip
        return out

    # -- events --------------------------------------------------------------

    def on_ra(self, ev: RouterAdvertisement) -> None:
        meta = ev.meta
        ts = meta.ts_ns
        if self.first_ns is None:
            self.first_ns = ts
        mac = ev.sender_mac()
        link = link_of(ev)
        addr = ev.ip.src
        key: RouterKey = (addr, mac)
        verdict = self._source(ev, link, key, ts)
        findings = self._content(ev, verdict.baseline)
        if not is_link_local(addr):
            findings.insert(0, {"signature": "non_link_local", "check": "source",
                                "expected": "fe80::/10", "seen": ip_str(addr)})  # fmt: skip
        if ev.ip.hop_limit != self.hop_limit:
            findings.insert(0, {"signature": "bad_hop_limit", "check": "hop_limit",
                                "expected": self.hop_limit, "seen": ev.ip.hop_limit})  # fmt: skip
        if verdict.signature is not None and ev.router_lifetime == 0:
            verdict.signature = "kill_router"
        signatures = [f["signature"] for f in findings if f["signature"] not in CONTENT_SIGNATURES]
        if verdict.signature is not None:
            signatures.append(verdict.signature)
        if signatures:  # one alert for a rogue source, the strongest reason first
            self._raise(ev, link, key, signatures[0], verdict, findings)
            return
        for sig in dict.fromkeys(f["signature"] for f in findings):
            self._raise(ev, link, key, sig, verdict, findings)

    def _raise(
        self,
        ev: RouterAdvertisement,
        link: Link,
        key: RouterKey,
        sig: str,
        verdict: _Verdict,
        findings: list[dict[str, Any]],
    ) -> None:
        ts = ev.meta.ts_ns
        seen = seen_in(self.routers, (link, key, sig), ts)
        identifier = f"{link_str(link)}|{ip_str(key[0])}|{mac_str(key[1])}"
        if sig not in SOURCE_SIGNATURES:
            identifier += f"|{sig}"
        if not self.budget.permit(self.suppress, identifier, ev, key):
            return
        router: dict[str, Any] = {"address": ip_str(key[0]), "mac": mac_str(key[1])}
        base = verdict.baseline
        if base is not None and base.name:
            router["name"] = base.name
        evidence = {
            "router": router,
            "ra": common.ra_summary(ev),
            "findings": findings,
            "count": seen.count,
            "first_seen": seen.first_ns / NS,
            "last_seen": seen.last_ns / NS,
            "policy": self._policy_evidence(link, verdict.policy_entry),
        }
        self.det.alert(
            CATEGORY,
            sig,
            ts_ns=ts,
            identifier=identifier,
            first_ns=seen.first_ns,
            event=ev,
            evidence=evidence,
        )

    def _policy_evidence(self, link: Link, entry: Router | None) -> dict[str, Any]:
        out = self.det.policy_evidence()
        if self.learning:
            assert self.first_ns is not None
            out["learn_window_s"] = self.learn_ns / NS
            out["learned_until"] = (self.first_ns + self.learn_ns) / NS
            out["learned_routers"] = sorted(
                f"{ip_str(a)} {mac_str(m)}" for a, m in self.learned.get(link, {})
            )
        if entry is not None:
            out["entry"] = {
                "name": entry.name,
                "address": ip_str(entry.address),
                "mac": mac_str(entry.mac),
                "line": entry.line,
            }
        return out
