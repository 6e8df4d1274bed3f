"""Detection families and the ``Detector`` base class they share.

Owns the detector contract and discovery by convention: every sub-package
of ``detectors.detections`` is one family, holding a ``spec.yaml`` and one
``Detector`` subclass. Adding a family touches no central list. This module
does not decode packets and does not write alerts; the engine wires both.

The shape every detector follows (Zeek's SumStats plus Notice): observe
events, count in packet-time windows in bounded tables, then raise an alert
with an identifier, suppressed per identifier. Never one alert per packet.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from detectors._native import NativeReducer
from detectors.alerts import Alert, alert_id
from detectors.es.observations import Observation
from detectors.events import Event, TunnelLayer, ip_str, mac_str
from detectors.policy import Policy
from detectors.spec import DetectionSpec, FamilySpec, SpecError, load_spec, revisions
from detectors.state import BoundedTable, NativeTable, Suppressor, TableStats, W, Windows

NS = 1_000_000_000

# Evidence the base class writes for every family (``tunnel_evidence``, ``policy_evidence``);
# each family declares the rest in its spec's ``evidence:``.
BASE_EVIDENCE: dict[str, str] = {
    "tunnel.type": "keyword",
    "tunnel.outer_src": "address",
    "tunnel.outer_dst": "address",
    "tunnel.outer_sport": "number",
    "tunnel.outer_dport": "number",
    "tunnel.teredo.bubble": "boolean",
    "tunnel.teredo.server": "address",
    "tunnel.teredo.client_ip": "address",
    "tunnel.teredo.client_port": "number",
    "policy.source": "keyword",
    "policy.file": "keyword",
    "policy.sha256": "keyword",
}


@dataclass(slots=True)
class Context:
    """What the engine gives a detector: its spec, the policy, resolved thresholds."""

    spec: FamilySpec
    policy: Policy
    thresholds: dict[str, dict[str, float]]  # category -> name -> value (defaults + policy)
    emit: Callable[[Alert], None]
    capture: Callable[[], str | None]  # name of the capture being read, for alerts
    # The name of a record's interface index (pcapng name, live interface), for alerts.
    iface: Callable[[int], str | None]
    # Sub-threshold observations (``detectors.es.observations``); None when nobody listens,
    # so detectors skip building them.
    observe: Callable[[Observation], None] | None = None

    def observation(
        self,
        kind: str,
        key: str,
        start_ns: int,
        end_ns: int,
        details: dict[str, Any],
        source_ip: str | None = None,
    ) -> None:
        """Write one observation seen from ``start_ns`` to ``end_ns`` (its time), if
        anyone listens: the one place observations get their capture and times."""
        if self.observe is None:
            return
        self.observe(
            Observation(
                kind=kind,
                ts_ns=end_ns,
                start_ns=start_ns,
                end_ns=end_ns,
                key=key,
                source_ip=source_ip,
                capture=self.capture(),
                details=details,
            )
        )


class Detector:
    """Base class. Subclasses set ``subscribes`` and implement ``on_event``."""

    family: ClassVar[str] = ""
    # The event kinds it handles in Python (``on_event``); a family may narrow it per
    # instance from its policy (the sweep wants packets only for dark prefixes).
    subscribes: tuple[type[Event], ...] = ()
    registry: ClassVar[dict[str, type[Detector]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        parts = cls.__module__.split(".")
        if "detections" in parts and parts.index("detections") + 1 < len(parts):
            cls.family = parts[parts.index("detections") + 1]
            Detector.registry[cls.family] = cls

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.policy = ctx.policy
        self._tables: list[TableStats] = []
        self._suppressors: list[Suppressor] = []
        self._windows: list[Windows[Any, Any]] = []
        self._reducers: list[NativeReducer] = []

    # -- for subclasses ---------------------------------------------------

    def detection(self, category: str) -> DetectionSpec:
        return self.spec.detections[category]

    def threshold(self, category: str, name: str) -> float:
        return self.ctx.thresholds[category][name]

    def table(
        self, name: str, cap: float, on_evict: Callable[[Any, Any], None] | None = None
    ) -> BoundedTable[Any, Any]:
        """A bounded table whose size and evictions show in the stats."""
        table: BoundedTable[Any, Any] = BoundedTable(f"{self.family}.{name}", int(cap), on_evict)
        self._tables.append(table)
        return table

    def windows(
        self,
        name: str,
        cap: float,
        span_ns: int,
        close: Callable[[Any, W], None] | None = None,
        grace_ns: int = 0,
    ) -> Windows[Any, W]:
        """Per-key windows in a bounded table; ``tick`` and ``flush`` close them, in
        the order they were made."""
        windows: Windows[Any, W] = Windows(
            f"{self.family}.{name}", int(cap), span_ns, close, grace_ns
        )
        self._tables.append(windows.table)
        self._windows.append(windows)
        return windows

    def reducer(self, name: str, settings: dict[str, Any]) -> NativeReducer:
        """The native reducer ``name`` the family's spec declares (``reducers:``), built
        with ``settings``. The engine hands it every decoded event of the kinds it
        observes, natively; its outputs come back through ``on_reduced``. Its bounded
        tables show in the stats here, in the order they were made."""
        spec = self.spec.reducers[name]
        reducer = NativeReducer(spec.kind, settings)
        self._reducers.append(reducer)
        for i, (table, _size, cap, _evictions) in enumerate(reducer.tables()):
            self._tables.append(NativeTable(table, cap, _table_stats(reducer, i)))
        return reducer

    def suppressor(self, category: str, cap: float) -> Suppressor:
        """Suppression per identifier for ``category``'s ``suppress_s`` threshold."""
        interval = int(self.threshold(category, "suppress_s") * NS)
        sup = Suppressor(f"{category}.suppression", interval, int(cap))
        self._tables.append(sup.table)
        self._suppressors.append(sup)
        return sup

    def alert(
        self,
        category: str,
        signature: str,
        *,
        identifier: str,
        first_ns: int,
        event: Event | None = None,
        ts_ns: int | None = None,
        frame: int | None = None,
        iface: int | None = None,
        evidence: dict[str, Any] | None = None,
        severity: str | None = None,
        **addresses: Any,
    ) -> Alert:
        """Build and emit an alert from the spec.

        ``event`` is the alert's sample packet: its time is the alert's ``timestamp``,
        its record number ``pcap_cnt``, its interface ``in_iface``, and it fills
        addresses, ports, ICMP type, MACs and VLANs (``addresses`` override them).
        Only a detection without a packet object passes ``ts_ns``, ``frame`` and
        ``iface`` of its sample packet instead, never both: one packet, named once.

        ``severity`` overrides the spec's for this alert (severity tiers, allowed
        tunnels)."""
        det = self.detection(category)
        sig = det.signatures[signature]
        fields: dict[str, Any] = {}
        if event is not None:
            if ts_ns is not None or frame is not None or iface is not None:
                raise ValueError(f"{category}: an alert names its sample packet once")
            meta = event.meta
            ts_ns, frame, iface = meta.ts_ns, meta.frame, meta.iface
            fields.update(
                src_mac=mac_str(meta.src_mac),
                dest_mac=mac_str(meta.dst_mac),
                vlans=meta.vlans,
            )
            ip = getattr(event, "ip", None)
            if ip is not None:
                fields.update(src_ip=ip_str(ip.src), dest_ip=ip_str(ip.dst), proto=ip.upper)
            for name, key in (("sport", "src_port"), ("dport", "dest_port")):
                port = getattr(event, name, None)
                if port is not None:
                    fields[key] = port
            icmp_type = getattr(event, "icmp_type", None)
            if icmp_type is not None:
                # Ipv6Packet calls the code icmp_code, NDMessage code.
                code = getattr(event, "icmp_code", None)
                fields.update(
                    icmp_type=icmp_type,
                    icmp_code=code if code is not None else getattr(event, "code", 0),
                )
            tunnels = ip.tunnels if ip is not None else getattr(event, "tunnels", ())
            if tunnels:
                evidence = {**(evidence or {}), "tunnel": tunnel_evidence(tunnels)}
        if ts_ns is None:
            raise ValueError(f"{category}: an alert needs its sample packet (event or ts_ns)")
        fields.update(addresses)
        alert = Alert(
            ts_ns=ts_ns,
            category=category,
            signature=f"V6SENTRY {sig.text}",
            signature_id=sig.sid,
            rev=sig.rev,
            severity=severity or det.severity,
            detection_id=det.id,
            title=det.title,
            techniques=det.techniques,
            tactics=det.tactics,
            identifier=identifier,
            # A tier escalation (medium, then high) is a new alert with the same
            # identifier and start: the severity keeps their ids, and so documents, apart.
            id=alert_id(
                det.id,
                sig.sid,
                identifier if severity is None else f"{identifier}|{severity}",
                first_ns,
            ),
            capture=self.ctx.capture(),
            # Record numbers count from 1; 0 means the source numbers none.
            frame=frame or None,
            in_iface=self.ctx.iface(iface) if iface is not None else None,
            evidence=evidence or {},
            **fields,
        )
        self.ctx.emit(alert)
        return alert

    def policy_evidence(self) -> dict[str, Any]:
        """The ``policy`` part of the evidence: where the verdict's baseline came from."""
        pol = self.policy
        out: dict[str, Any] = {"source": pol.source}
        if pol.path:
            out["file"] = pol.path
            out["sha256"] = pol.sha256
        return out

    # -- called by the engine ---------------------------------------------

    def on_event(self, event: Event) -> None:
        raise NotImplementedError

    def on_reduced(self, output: Any) -> None:
        """One output of one of this family's native reducers (``reducer``)."""
        raise NotImplementedError

    def native_reducers(self) -> list[NativeReducer]:
        return list(self._reducers)

    def tick(self, now_ns: int) -> None:
        """Packet time advanced (at most once per second): close due windows."""
        for windows in self._windows:
            windows.close_due(now_ns)

    def flush(self, now_ns: int) -> None:
        """End of input: close every open window."""
        for windows in self._windows:
            windows.close_all()

    def tables(self) -> list[TableStats]:
        return list(self._tables)

    def suppressed(self) -> int:
        return sum(s.suppressed for s in self._suppressors) + sum(
            r.suppressed() for r in self._reducers
        )


def _table_stats(reducer: NativeReducer, index: int) -> Callable[[], tuple[int, int, int]]:
    """``(size, cap, evictions)`` of one of a native reducer's tables, read on demand."""

    def stats() -> tuple[int, int, int]:
        _name, size, cap, evictions = reducer.tables()[index]
        return size, cap, evictions

    return stats


def tunnel_evidence(tunnels: tuple[TunnelLayer, ...]) -> list[dict[str, Any]]:
    """Evidence for the tunnels a packet came through, outermost first."""
    out = []
    for t in tunnels:
        item: dict[str, Any] = {
            "type": t.kind,
            "outer_src": ip_str(t.outer_src),
            "outer_dst": ip_str(t.outer_dst),
        }
        if t.outer_sport is not None:
            item["outer_sport"] = t.outer_sport
            item["outer_dport"] = t.outer_dport
        if t.teredo is not None:
            td = t.teredo
            item["teredo"] = {
                "bubble": td.bubble,
                "server": ip_str(td.server) if td.server else None,
                "client_ip": ip_str(td.client_ip) if td.client_ip else None,
                "client_port": td.client_port,
            }
        out.append(item)
    return out


# Extra folders of families, separated by os.pathsep: each sub-folder holding a spec.yaml
# is one more family, found exactly as the built-in ones are. For tests (a toy family in a
# temporary folder, run through the `v6sentry` command in a subprocess); the built-in
# families need nothing set.
EXTRA_ENV = "V6SENTRY_EXTRA_DETECTIONS"


def family_dirs(extra: Sequence[Path] = ()) -> list[Path]:
    """The folders families are found in: this package's, then ``extra`` and EXTRA_ENV's."""
    dirs = [Path(__file__).parent]
    from_env = [Path(p) for p in os.environ.get(EXTRA_ENV, "").split(os.pathsep) if p]
    for d in [*extra, *from_env]:
        if not d.is_dir():
            raise SpecError(f"{d}: extra detections folder ({EXTRA_ENV}) is not a directory")
        d = d.resolve()
        if d not in dirs:
            dirs.append(d)
    return dirs


def discover(
    extra: Sequence[Path] = (),
) -> tuple[dict[str, FamilySpec], dict[str, type[Detector]]]:
    """Import every family package; return their specs and detector classes.

    ``extra`` (and the EXTRA_ENV variable) add folders whose sub-packages are families too:
    they join this package's ``__path__``, so they import as ``detectors.detections.<name>``
    like the built-in ones."""
    specs: dict[str, FamilySpec] = {}
    found: dict[str, Path] = {}
    revs = revisions()  # read the rule lock once for every family
    for here in family_dirs(extra):
        if str(here) not in __path__:
            __path__.append(str(here))
        for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda m: m.name):
            if not info.ispkg:
                continue
            if info.name in found:
                raise SpecError(
                    f"{here / info.name}: family {info.name} is already in {found[info.name]}"
                )
            found[info.name] = here
            spec_path = here / info.name / "spec.yaml"
            if not spec_path.is_file():
                raise SpecError(f"{here / info.name}: detection family has no spec.yaml")
            importlib.import_module(f"{__name__}.{info.name}")
            if info.name not in Detector.registry:
                raise SpecError(f"{here / info.name}: no Detector subclass defined in the package")
            spec = load_spec(spec_path, revs)
            if spec.family != info.name:
                raise SpecError(f"{spec_path}: family '{spec.family}' must equal the folder name")
            specs[info.name] = spec
    owners: list[tuple[int, int, str]] = []
    for name, spec in specs.items():
        first, last = spec.sids
        for lo, hi, other in owners:
            if first <= hi and lo <= last:
                raise SpecError(f"{spec.path}: sids {first}-{last} overlap {other}'s {lo}-{hi}")
        owners.append((first, last, name))
    evidence_fields(specs)
    categories: dict[str, str] = {}
    for name, spec in specs.items():
        for cat in spec.detections:
            if cat in categories:
                raise SpecError(f"category {cat} defined by both {categories[cat]} and {name}")
            categories[cat] = name
    return specs, {name: Detector.registry[name] for name in specs}


def evidence_fields(specs: dict[str, FamilySpec]) -> dict[str, str]:
    """Every evidence field and its type: the base class's and every family's.

    One Elasticsearch index holds every family's alerts, so a field has one type across
    families, and a field cannot also be the parent object of another."""
    fields = dict(BASE_EVIDENCE)
    owner = dict.fromkeys(BASE_EVIDENCE, "detectors/detections/__init__.py (BASE_EVIDENCE)")
    for spec in specs.values():
        for path, kind in spec.evidence.items():
            if path in fields and fields[path] != kind:
                raise SpecError(
                    f"{spec.path}: evidence.{path}: {kind}, but {owner[path]} declares it "
                    f"{fields[path]} (one index: one type per field; use mixed)"
                )
            fields[path] = kind
            owner.setdefault(path, spec.path)
    for path in fields:
        parts = path.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in fields:
                raise SpecError(
                    f"{owner[path]}: evidence.{path}: its parent {parent} is declared "
                    f"a {fields[parent]} field by {owner[parent]}"
                )
    return fields
