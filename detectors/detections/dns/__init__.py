"""DNS family: ``ipv6.dns_backscatter`` and ``ipv6.rdns_walk``.

Owns the verdicts' Python half: the classification of a backscatter originator from its
PTR answer name (Fukuda and Heidemann's heuristics: content provider, well-known
service, router interface, potential abuse), the alerts (potential abuse only; an
originator in the policy's monitored prefixes is ``own_host``, high severity), the
observations of the benign classes (``detectors.es.observations``, bounded per window,
grouped across sensors by ``v6sentry hunt``), and the walk and zone-transfer alerts.
Every DNS message (``DnsMessage``, decoded in ``native/src/decode/dns.rs``) is counted
natively (``native/``); the family subscribes to no Python event, so its Python work
grows with outputs, never with packets. Does not parse packets.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from detectors.detections import NS, Context, Detector
from detectors.detections.budget import ObservationBudget
from detectors.events import ip_str
from detectors.policy import ip6_arpa_zone

BACKSCATTER = "ipv6.dns_backscatter"
WALK = "ipv6.rdns_walk"

POTENTIAL_ABUSE = "potential_abuse"
CONTENT_PROVIDER = "content_provider"
WELL_KNOWN_SERVICE = "well_known_service"
ROUTER_INTERFACE = "router_interface"

# Fukuda and Heidemann (IMC 2015 section 3.3, IMC 2018 section 3.2) classify an
# originator by keywords in its reverse name. These are their classes; the keywords
# are the common ones (the papers' lists are per data set).
_CDN = (
    "akamai",
    "akamaitechnologies",
    "cloudfront",
    "fastly",
    "edgecast",
    "cdn",
    "cdn77",
    "cloudflare",
    "googleusercontent",
    "1e100",
    "google",
    "facebook",
    "fbcdn",
    "amazonaws",
    "azure",
    "msedge",
    "llnw",
    "limelight",
    "yahoo",
    "apple",
    "netflix",
    "cache",
)
_SERVICE = re.compile(
    r"^(mail|mx|smtp|mta|relay|ns|dns|resolver|ntp|time|www|web|imap|pop|pop3|"
    r"ftp|vpn|proxy|mailout|mailin|out|in)(\d+)?$"
)
_ROUTER_LABEL = re.compile(
    r"^(ae|xe|ge|te|et|hu|be|gi|fa|so|pos|eth|lo|bundle|po|hundredgige|tengige)-?\d"
)
_ROUTER_WORD = re.compile(r"^(core|gw|rtr|router|cr|ar|br|er|pe|bb|border|edge|agg)(\d+)?$")


def classify(name: str | None) -> str:
    """The originator's class from its PTR name (None: no name seen, or NXDOMAIN)."""
    if not name:
        return POTENTIAL_ABUSE
    labels = name.lower().rstrip(".").split(".")
    words = [w for label in labels for w in re.split(r"[-_]", label) if w]
    if any(w in _CDN for w in words) or any(k in name for k in ("cdn", "akamai", "cloudfront")):
        return CONTENT_PROVIDER
    host = labels[0]
    if any(_ROUTER_LABEL.match(label) for label in labels[:2]) or any(
        _ROUTER_WORD.match(w) for label in labels[:3] for w in re.split(r"[-_]", label)
    ):
        return ROUTER_INTERFACE
    if _SERVICE.match(host) or any(_SERVICE.match(w) for w in re.split(r"[-_]", host)):
        return WELL_KNOWN_SERVICE
    return POTENTIAL_ABUSE


def _packet(pkt: Any) -> dict[str, Any]:
    """An alert's sample-packet fields from a reducer's (ts, frame, src, dst, sport,
    dport, transport)."""
    ts, frame, src, dst, sport, dport, transport = pkt
    return {
        "ts_ns": ts,
        "frame": frame,
        "src_ip": ip_str(src),
        "dest_ip": ip_str(dst),
        "src_port": sport,
        "dest_port": dport,
        "proto": transport,
    }


class DnsDetector(Detector):
    """Writes the alerts and observations of the family's native reducers."""

    subscribes = ()

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        pol = self.policy
        auth = [bytes(a) for a in pol.dns_authoritative]
        bs = ctx.thresholds[BACKSCATTER]
        self.min_queriers = int(bs["min_queriers"])
        self.bs_window_ns = int(bs["window_s"] * NS)
        self.backscatter = self.reducer(
            "backscatter",
            {
                "authoritative": auth,
                "window_ns": self.bs_window_ns,
                "min_queriers": self.min_queriers,
                "max_queriers": int(bs["max_queriers_tracked"]),
                "max_originators": int(bs["max_originators_tracked"]),
            },
        )
        self.bs_suppress = self.suppressor(BACKSCATTER, bs["max_originators_tracked"])
        self.observe = ctx.observe
        self.observe_cap = int(bs["max_observations_per_window"])
        self.obs_budget = ObservationBudget(ctx, BACKSCATTER, self.observe_cap, self.bs_window_ns)
        self.zones = list(pol.dns_zones)
        zones = [ip6_arpa_zone(z) for z in self.zones]
        wk = ctx.thresholds[WALK]
        self.walk_window_ns = int(wk["window_s"] * NS)
        self.walk = self.reducer(
            "walk",
            {
                "zones": [z for z in zones if z is not None],
                "authoritative": auth,
                "window_ns": self.walk_window_ns,
                "min_names": int(wk["min_names"]),
                "max_queriers": int(wk["max_queriers_tracked"]),
            },
        )
        self.walk_suppress = self.suppressor(WALK, wk["max_queriers_tracked"])

    # -- reducer outputs ----------------------------------------------------

    def on_reduced(self, output: Any) -> None:
        kind = output[0]
        if kind == "backscatter":
            self._backscatter(output)
        elif kind == "walk":
            self._walk(output)
        elif kind == "xfr":
            self._xfr(output)

    def _reduced(self, outputs: list[Any]) -> None:
        for output in outputs:
            self.on_reduced(output)

    def tick(self, now_ns: int) -> None:
        self._reduced(self.backscatter.tick(now_ns))
        self._reduced(self.walk.tick(now_ns))
        self.obs_budget.close(now_ns)
        super().tick(now_ns)

    def flush(self, now_ns: int) -> None:
        self._reduced(self.backscatter.flush(now_ns))
        self._reduced(self.walk.flush(now_ns))
        self.obs_budget.close(now_ns, final=True)
        super().flush(now_ns)

    # -- ipv6.dns_backscatter -----------------------------------------------

    def _monitored(self, addr: bytes) -> str | None:
        ip = ipaddress.IPv6Address(addr)
        for net in self.policy.monitored:
            if ip in net:
                return str(net)
        return None

    def _backscatter(self, o: Any) -> None:
        _, origin, count, saturated, queries, sample, name, nx, start, last, _frame, pkt = o
        cls = classify(name)
        ours = self._monitored(origin)
        addr = ip_str(origin)
        evidence: dict[str, Any] = {
            "originator": {"address": addr, "name": name, "class": cls},
            "queriers": {
                "count": count,
                "saturated": saturated,
                "sample": [ip_str(q) for q in sample],
            },
            "queries": queries,
            "answers": {"nxdomain": nx},
            "first_seen": start / NS,
            "last_seen": last / NS,
            "threshold": self.min_queriers,
            "window": {"start": start / NS, "seconds": self.bs_window_ns / NS},
        }
        if ours is not None:
            evidence["originator"]["monitored_prefix"] = ours
        if cls != POTENTIAL_ABUSE:
            self._observe_backscatter(origin, cls, evidence, start, last)
            return
        sig = "own_host" if ours is not None else POTENTIAL_ABUSE
        identifier = f"{addr}|{sig}"
        if not self.bs_suppress.allow(identifier, last):
            return
        # The sample packet: the query that reached the threshold (a resolver asking
        # our authoritative); the originator is the evidence's.
        self.alert(
            BACKSCATTER,
            sig,
            identifier=identifier,
            first_ns=start,
            evidence=evidence,
            severity="high" if ours is not None else None,
            **_packet(pkt),
        )

    def _observe_backscatter(
        self, origin: bytes, cls: str, evidence: dict[str, Any], start: int, last: int
    ) -> None:
        """One observation of an originator of a benign class (bounded per window)."""
        if self.observe is None:
            return
        addr = ip_str(origin)
        if not self.bs_suppress.allow(f"{addr}|observation", last):
            return
        if not self.obs_budget.take(last):
            return
        self.ctx.observation(
            "dns_backscatter",
            f"{BACKSCATTER}|{addr}",
            start,
            last,
            {
                "originator": addr,
                "name": evidence["originator"]["name"],
                "class": cls,
                "queriers": evidence["queriers"]["count"],
                "sample_queriers": evidence["queriers"]["sample"],
                "queries": evidence["queries"],
                "threshold": self.min_queriers,
                "window": {"start": start / NS, "seconds": self.bs_window_ns / NS},
            },
            source_ip=addr,
        )

    # -- ipv6.rdns_walk -----------------------------------------------------

    def _zone(self, index: int | None) -> str | None:
        return None if index is None else self.zones[index]

    def _walk(self, o: Any) -> None:
        (_, key, queriers, more, server, zone, names, depth, nx, ok, found, start, last, _, pkt) = o
        # An IPv6 walker is counted per /64 (its addresses inside it are its own to
        # change), an IPv4 one per address.
        q = ip_str(key)
        prefix = f"{q}/64" if len(key) == 16 else None
        identifier = f"{prefix or q}|walk"
        querier: dict[str, Any] = {
            "address": ip_str(queriers[0]),
            "sample": [ip_str(a) for a in queriers],
            "sample_complete": not more,
        }
        if prefix is not None:
            querier["prefix"] = prefix
        if not self.walk_suppress.allow(identifier, last):
            return
        answered = nx + ok
        self.alert(
            WALK,
            "walk",
            identifier=identifier,
            first_ns=start,
            evidence={
                "querier": querier,
                "server": {"address": ip_str(server)},
                "zone": self._zone(zone),
                "walk": {
                    "names": names,
                    "depth": depth,
                    "nxdomain": nx,
                    "noerror": ok,
                    "nxdomain_ratio": round(nx / answered, 4) if answered else None,
                    "discovered": [ip_str(a) for a in found],
                },
                "window": {
                    "start": start / NS,
                    "end": last / NS,
                    "seconds": self.walk_window_ns / NS,
                },
                "first_seen": start / NS,
                "last_seen": last / NS,
            },
            **_packet(pkt),
        )

    def _xfr(self, o: Any) -> None:
        _, querier, server, zone, qname, qtype, transport, sport, dport, ts, frame = o
        q = ip_str(querier)
        identifier = f"{q}|zone_transfer"
        if not self.walk_suppress.allow(identifier, ts):
            return
        self.alert(
            WALK,
            "zone_transfer",
            identifier=identifier,
            first_ns=ts,
            ts_ns=ts,
            frame=frame,
            src_ip=q,
            dest_ip=ip_str(server),
            src_port=sport,
            dest_port=dport,
            proto=transport,
            evidence={
                "querier": {"address": q},
                "server": {"address": ip_str(server)},
                "zone": self._zone(zone),
                "transfer": {
                    "qname": qname,
                    "qtype": {251: "IXFR", 252: "AXFR"}.get(qtype, str(qtype)),
                    "transport": "tcp" if transport == 6 else "udp",
                },
                "first_seen": ts / NS,
                "last_seen": ts / NS,
            },
        )
