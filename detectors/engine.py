"""The engine: feeds decoder events to detections on packet time.

Owns wiring: discovering detection families, resolving their thresholds
(spec defaults, then policy overrides), building the native decoder and the
fused native loop (``detectors._native.Pipeline``) with only the event kinds
someone subscribed to, dispatching the events that reach Python by type,
running the packet-time ticks that close windows and expire fragments (the
native loop stops at each tick so that order is kept), and collecting
the statistics the summary prints, applying the policy's tuning entries to
alerts at emission (dropped alerts are counted per entry), and the
observation callback (sub-threshold facts, ``detectors.es.observations``) kept
apart from the alert sink: observations never count as alerts. It does not
read files (``capture``), parse bytes (``decoder``) or judge traffic
(``detections``).

Capture files go through ``run_capture`` and live rings through ``run_ring``:
records are read and decoded natively and only events reach Python. Other
packet sources (tests) hand ``run`` record tuples. Live capture also calls
``advance`` from a timer so quiet links still close windows.

``live --workers N`` splits this in two (``native/src/merge.rs``): each worker
process runs a ``Forwarding`` (read its ring, decode, pack the events this
engine uses) and sends the batches; the one counting ``Engine`` takes them with
``feed`` and counts them in packet order with ``run_merged``, so a scan whose
flows the kernel spread over the workers is still one scan.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

from detectors._native import DEFAULT_MAX_INTERFACES, Forwarder, Pipeline
from detectors.alerts import Alert
from detectors.decoder import Decoder, DecoderLimits, ReassemblyLimits
from detectors.detections import NS, Context, Detector, discover
from detectors.es.observations import Observation
from detectors.events import (
    Dhcpv6Message,
    DnsMessage,
    Event,
    ExtOptions,
    FragmentAnomaly,
    IcmpError,
    Ipv6Packet,
    Malformed,
    MldMessage,
    NDMessage,
    TunnelPacket,
)
from detectors.policy import LEARN_WINDOW, Policy, Tuning
from detectors.spec import FamilySpec, Threshold

if TYPE_CHECKING:
    from detectors._native import LiveRing
    from detectors.capture import CaptureReader

TICK_NS = NS  # windows are checked at most once per second of packet time
# Items per batch from the native loop: big enough to amortise the call, small enough
# to keep the list in cache. Ticks end a batch early.
BATCH = 4096
WATERMARK_END = 2**63 - 1  # a worker that ended: it never holds the others back


# Decoder bounds, overridable as ``thresholds: {decoder: {...}}`` in the policy.
# name: (default, meaning, unit, minimum, maximum)
_LIMITS = DecoderLimits()
DECODER_THRESHOLDS: dict[str, Threshold] = {
    name: Threshold(name, default, meaning, unit, lo, hi, True)
    for name, (default, meaning, unit, lo, hi) in {
        # Defaults are DecoderLimits' own, so the two cannot disagree.
        "max_ext_headers": (
            _LIMITS.max_ext_headers,
            "Longest extension-header chain walked",
            "headers",
            1,
            64,
        ),
        "max_vlan_tags": (_LIMITS.max_vlan_tags, "Most VLAN tags unwrapped", "tags", 1, 16),
        "max_tunnel_depth": (
            _LIMITS.max_tunnel_depth,
            "Most nested tunnels decapsulated",
            "tunnels",
            1,
            8,
        ),
        "frag_timeout_s": (
            _LIMITS.reassembly.timeout_ns // NS,
            "Reassembly timeout (RFC 8200)",
            "seconds",
            1,
            600,
        ),
        "frag_max_datagrams": (
            _LIMITS.reassembly.max_datagrams,
            "Datagrams reassembled at once",
            "datagrams",
            1,
            10**6,
        ),
        "frag_max_bytes": (
            _LIMITS.reassembly.max_bytes,
            "Bytes held for reassembly",
            "bytes",
            2**16,
            2**31,
        ),
        "frag_max_fragments": (
            _LIMITS.reassembly.max_fragments,
            "Fragments per datagram",
            "fragments",
            2,
            8192,
        ),
        "max_ext_options": (
            _LIMITS.max_ext_options,
            "Most options walked in one Hop-by-Hop or Destination Options header "
            "(padding included); past it the packet is malformed (too_many_options)",
            "options",
            2,
            1024,
        ),
        "max_interfaces": (
            DEFAULT_MAX_INTERFACES,
            "Interfaces kept per pcapng capture; past it, interface descriptions are counted "
            "and the packets on them skipped, with one warning",
            "interfaces",
            1,
            2**20,
        ),
    }.items()
}


def learn_window_s(policy: Policy, specs: Mapping[str, FamilySpec]) -> float | None:
    """The router learning window in force: the policy's override, else the spec default
    (None if no family declares ``LEARN_WINDOW``)."""
    category, name = LEARN_WINDOW
    spec = known_thresholds(specs).get(category, {}).get(name)
    if spec is None:
        return None
    return float(policy.thresholds.get(category, {}).get(name, spec.default))


def known_thresholds(specs: Mapping[str, FamilySpec]) -> dict[str, dict[str, Threshold]]:
    """Every tunable, by category, for validating the policy's ``thresholds``."""
    known: dict[str, dict[str, Threshold]] = {"decoder": dict(DECODER_THRESHOLDS)}
    for spec in specs.values():
        for cat, det in spec.detections.items():
            known[cat] = dict(det.thresholds)
    return known


def known_signatures(specs: Mapping[str, FamilySpec]) -> dict[int, str]:
    """Every signature's sid and its category, for validating the policy's ``tuning``."""
    return {
        sig.sid: cat
        for spec in specs.values()
        for cat, det in spec.detections.items()
        for sig in det.signatures.values()
    }


def max_interfaces(policy: Policy) -> int:
    """The capture reader's interface cap under ``policy`` (thresholds.decoder)."""
    default = DECODER_THRESHOLDS["max_interfaces"].default
    return int(policy.thresholds.get("decoder", {}).get("max_interfaces", default))


def decoder_limits(overrides: Mapping[str, float]) -> DecoderLimits:
    values = {n: int(overrides.get(n, t.default)) for n, t in DECODER_THRESHOLDS.items()}
    return DecoderLimits(
        max_ext_headers=values["max_ext_headers"],
        max_vlan_tags=values["max_vlan_tags"],
        max_tunnel_depth=values["max_tunnel_depth"],
        reassembly=ReassemblyLimits(
            timeout_ns=values["frag_timeout_s"] * NS,
            max_datagrams=values["frag_max_datagrams"],
            max_bytes=values["frag_max_bytes"],
            max_fragments=values["frag_max_fragments"],
        ),
        max_ext_options=values["max_ext_options"],
    )


def _no_name(index: int) -> str | None:
    return None


@dataclass(slots=True)
class EngineStats:
    """Alert counts by category and severity."""

    alerts: dict[str, int] = field(default_factory=dict)
    by_severity: dict[str, int] = field(default_factory=dict)
    observations: dict[str, int] = field(default_factory=dict)  # by kind, plus "dropped"


class Engine:
    """One detection pipeline. Not thread-safe; one per packet stream."""

    def __init__(
        self,
        policy: Policy,
        sink: Callable[[Alert], None],
        specs: Mapping[str, FamilySpec] | None = None,
        classes: Mapping[str, type[Detector]] | None = None,
        observe: Callable[[Observation], None] | None = None,
    ) -> None:
        if specs is None or classes is None:
            specs, classes = discover()
        self.policy = policy
        self.sink = sink
        self.observe = observe
        self.stats = EngineStats()
        self.capture_name: str | None = None
        # Interface index -> name for alerts' in_iface: the reader's pcapng names on
        # replay, the command line's interfaces live. Unset: no name.
        self.interface_name: Callable[[int], str | None] = _no_name
        self.detectors: list[Detector] = []
        # Tuning (the policy's ``tuning:``) is applied here, at emission: Python's work
        # is per alert, not per packet. Entries by sid and by category, in file order.
        self._tuning = policy.active_tuning
        self._tuned_by_sid: dict[int, tuple[Tuning, ...]] = {}
        self._tuned_by_category: dict[str, tuple[Tuning, ...]] = {}
        for t in self._tuning:
            if t.sid is not None:
                self._tuned_by_sid[t.sid] = (*self._tuned_by_sid.get(t.sid, ()), t)
            else:
                key = str(t.detection)
                self._tuned_by_category[key] = (*self._tuned_by_category.get(key, ()), t)
        self.tuned = [0] * len(policy.tuning)  # alerts dropped, by tuning entry index
        self._learn_window_s = learn_window_s(policy, specs)
        # The detectors call back through a weak proxy: with bound methods the engine and
        # its detectors would form a cycle, freed by the cyclic GC on whichever thread
        # runs it, and the native pipeline (unsendable) cannot be freed off its thread:
        # it would leak with a warning (a parallel `verify`, the live sensor's threads).
        me = weakref.proxy(self)
        for name in sorted(specs):
            spec = specs[name]
            thresholds = {
                cat: {
                    n: float(policy.thresholds.get(cat, {}).get(n, t.default))
                    for n, t in det.thresholds.items()
                }
                for cat, det in spec.detections.items()
            }
            ctx = Context(
                spec,
                policy,
                thresholds,
                lambda alert: me._emit(alert),
                lambda: me.capture_name,
                lambda index: me.interface_name(index),
                (lambda obs: me._observe(obs)) if observe is not None else None,
            )
            self.detectors.append(classes[name](ctx))
        self.decoder = Decoder(decoder_limits(policy.thresholds.get("decoder", {})))
        self._pipeline = Pipeline(self.decoder, TICK_NS)
        for owner, det in enumerate(self.detectors):
            for reducer in det.native_reducers():
                self._pipeline.add_reducer(owner, reducer)
        # Which decoded kinds become Python objects (a Python detector subscribes), and
        # which the decoder builds at all (for Python or for a native reducer).
        python = [
            any(issubclass(cls, t) for d in self.detectors for t in d.subscribes)
            for cls in (
                Ipv6Packet,
                TunnelPacket,
                NDMessage,
                Malformed,
                FragmentAnomaly,
                MldMessage,
                Dhcpv6Message,
                ExtOptions,
                IcmpError,
                DnsMessage,
            )
        ]
        native = self._pipeline.native_kinds()
        self._pipeline.set_python_kinds(*python)
        self.kinds: tuple[bool, ...] = tuple(p or n for p, n in zip(python, native, strict=True))
        self.decoder.want_packets = self.kinds[0]
        self.decoder.want_tunnels = self.kinds[1]
        self.decoder.want_mld = self.kinds[5]
        self.decoder.want_dhcpv6 = self.kinds[6]
        self.decoder.want_ext_options = self.kinds[7]
        self.decoder.want_icmp_errors = self.kinds[8]
        self.decoder.want_dns = self.kinds[9]
        self._dispatch: dict[type[Event], list[Callable[[Event], None]]] = {}

    # -- alerts ------------------------------------------------------------

    def _emit(self, alert: Alert) -> None:
        if self._tuning:
            entry = self._tuned(alert)
            if entry is not None:
                # Dropped, never silently: counted per entry for the summary.
                self.tuned[entry.index] += 1
                return
        stats = self.stats
        stats.alerts[alert.category] = stats.alerts.get(alert.category, 0) + 1
        stats.by_severity[alert.severity] = stats.by_severity.get(alert.severity, 0) + 1
        self.sink(alert)

    def _tuned(self, alert: Alert) -> Tuning | None:
        """The first tuning entry (in file order) that drops this alert, or None."""
        entries = self._tuned_by_sid.get(alert.signature_id, ()) + self._tuned_by_category.get(
            alert.category, ()
        )
        for t in sorted(entries, key=lambda e: e.index) if len(entries) > 1 else entries:
            if t.hits(alert.src_ip, alert.dest_ip, alert.src_mac, alert.dest_mac):
                return t
        return None

    def tuning_summary(self) -> dict[str, Any]:
        """What the tuning entries dropped: total and per entry (expired ones with 0)."""
        entries = [{**t.describe(), "suppressed": self.tuned[t.index]} for t in self.policy.tuning]
        return {"suppressed": sum(self.tuned), "entries": entries}

    def _observe(self, obs: Observation) -> None:
        # A separate callback from alerts: observations never count as alerts, and
        # never reach the alert sink or the --fail-on exit code.
        stats = self.stats.observations
        stats[obs.kind] = stats.get(obs.kind, 0) + 1
        if obs.kind == "overflow":
            stats["dropped"] = stats.get("dropped", 0) + int(obs.details.get("dropped", 0))
        assert self.observe is not None
        self.observe(obs)

    # -- dispatch ------------------------------------------------------------

    def _handlers(self, etype: type[Event]) -> list[Callable[[Event], None]]:
        handlers = self._dispatch.get(etype)
        if handlers is None:
            handlers = [
                d.on_event
                for d in self.detectors
                if any(issubclass(etype, t) for t in d.subscribes)
            ]
            self._dispatch[etype] = handlers
        return handlers

    def _deliver(self, items: list[Any]) -> None:
        """Events go to their subscribers; ``(owner, output)`` pairs from the native
        reducers go to the detector that owns the reducer."""
        detectors = self.detectors
        for item in items:
            if type(item) is tuple:
                detectors[item[0]].on_reduced(item[1])
                continue
            for handler in self._handlers(type(item)):
                handler(item)

    @property
    def now_ns(self) -> int:
        """Packet time: the latest timestamp seen (the native loop keeps the clock)."""
        return self._pipeline.now_ns

    def run_capture(self, reader: CaptureReader, stop: Callable[[], bool] | None = None) -> bool:
        """Read, decode and dispatch a whole capture; records never reach Python.

        ``stop`` is asked between batches (a signal handler sets what it reads): when
        it says yes, reading ends there, with every record read so far dispatched.
        Returns False when ``stop`` ended the capture early, True at its end."""
        pipeline, deliver = self._pipeline, self._deliver
        pipeline.restart()
        done = False
        while not done:
            items, tick, done = pipeline.run_capture(reader, BATCH)
            if items:
                deliver(items)
            if tick is not None:
                self.advance(tick)
            if not done and stop is not None and stop():
                return False
        return True

    def pump_start(self) -> None:
        """A live run starts: record numbers count from 1 again."""
        self._pipeline.restart()

    def run_ring(self, ring: LiveRing, timeout_ms: int = 0) -> tuple[int, int]:
        """Read, decode and dispatch one block of a live ring natively (waiting up to
        ``timeout_ms`` for it); returns the frames and bytes taken from the ring.
        Raises the ring's OSError (ENETDOWN when the link went down)."""
        pipeline, deliver = self._pipeline, self._deliver
        frames = nbytes = 0
        more = True
        while more:
            items, tick, n, b, more = pipeline.run_ring(ring, timeout_ms, BATCH)
            frames, nbytes, timeout_ms = frames + n, nbytes + b, 0
            if items:
                deliver(items)
            if tick is not None:
                self.advance(tick)
        return frames, nbytes

    def run(self, records: Iterable[tuple[int, int, int, bytes, int]]) -> None:
        """Decode and dispatch every record ``(ts_ns, iface, linktype, data, wire_len)``."""
        pipeline, deliver = self._pipeline, self._deliver
        pipeline.restart()
        it = iter(records)
        while chunk := list(islice(it, BATCH)):
            i = 0
            while i < len(chunk):
                items, tick, i = pipeline.run_records(chunk, i, BATCH)
                if items:
                    deliver(items)
                if tick is not None:
                    self.advance(tick)

    # -- live --workers: events decoded by worker processes ---------------------------

    def merge_workers(self, n: int, previous: Engine | None = None) -> None:
        """Count the events of ``n`` workers' ``Forwarding``; with ``previous`` (a
        reload replaced it), take over what its queues still hold."""
        self._pipeline.set_sources(n)
        if previous is not None:
            self._pipeline.adopt_sources(previous._pipeline)

    def feed(self, k: int, blob: bytes, items: int, watermark: int) -> None:
        """Queue worker ``k``'s batch; ``watermark``: it has sent every frame up to then."""
        self._pipeline.feed(k, blob, items, watermark)

    def end_worker(self, k: int) -> None:
        """Worker ``k`` sends nothing more (it ended, or died)."""
        self._pipeline.end_source(k)

    def queued(self, k: int | None = None) -> int:
        """Items queued from worker ``k`` (from all of them when None)."""
        return self._pipeline.queued(k)

    def run_merged(self) -> None:
        """Count every queued item that no worker can still precede, in packet order;
        when nothing is left queued, move packet time to the workers' lowest watermark
        (an idle worker's is its wall clock), so quiet links close windows."""
        pipeline, deliver = self._pipeline, self._deliver
        waiting = False
        while not waiting:
            items, tick, waiting = pipeline.run_merged(BATCH)
            if items:
                deliver(items)
            if tick is not None:
                self.advance(tick)
        if pipeline.queued() == 0:
            watermark = pipeline.watermark()
            if watermark < WATERMARK_END:
                self.advance(watermark)

    def advance(self, now_ns: int) -> None:
        """Move packet time forward; close due windows. Time never runs backwards."""
        if not self._pipeline.advance(now_ns):
            return
        self._deliver(self._pipeline.expire(now_ns))
        for det in self.detectors:
            det.tick(now_ns)

    def finish(self) -> None:
        """End of input: flush every open window."""
        for det in self.detectors:
            det.flush(self.now_ns)

    # -- statistics ------------------------------------------------------------

    def table_stats(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for det in self.detectors:
            for table in det.tables():
                out[table.name] = {
                    "size": len(table),
                    "cap": table.cap,
                    "evictions": table.evictions,
                }
        reasm = self.decoder.reassembler
        out["decoder.reassembly"] = {
            "size": len(reasm),
            "cap": reasm.limits.max_datagrams,
            "evictions": self.decoder.stats.fragment_anomalies.get("evicted", 0),
        }
        return out

    def summary(self) -> dict[str, Any]:
        """Counters for the stderr summary and ``--stats-json``."""
        ds = self.decoder.stats
        return {
            "packets": ds.packets,
            "bytes": ds.bytes,
            "ipv6": ds.ipv6,
            "ipv4": ds.ipv4,
            "nd": ds.nd,
            "other": ds.other,
            "malformed": ds.malformed,
            "malformed_reasons": dict(sorted(ds.malformed_reasons.items())),
            "snapped": ds.snapped,
            "unsupported_link": ds.unsupported_link,
            "link_types": {str(k): v for k, v in sorted(ds.link_types.items())},
            "fragments": ds.fragments,
            "reassembled": ds.reassembled,
            "fragments_pending": self.decoder.reassembler.pending(),
            "fragment_anomalies": dict(sorted(ds.fragment_anomalies.items())),
            "ipv4_fragments_skipped": ds.ipv4_fragments_skipped,
            "dns_tcp": {
                "partial": ds.dns_tcp_partial,
                "continuation": ds.dns_tcp_continuation,
                "evicted": ds.dns_tcp_evicted,
            },
            "tunnels": dict(sorted(ds.tunnels.items())),
            "alerts": dict(sorted(self.stats.alerts.items())),
            "alerts_by_severity": dict(sorted(self.stats.by_severity.items())),
            "observations": dict(sorted(self.stats.observations.items())),
            "suppressed": sum(d.suppressed() for d in self.detectors),
            "tables": self.table_stats(),
            "policy": self.policy_summary(),
            "tuning": self.tuning_summary(),
        }

    def policy_summary(self) -> dict[str, Any]:
        """``Policy.summary`` with this engine's router learning window."""
        return self.policy.summary(self._learn_window_s)


class Pump(Protocol):
    """What the live loop drives: the Engine, or a worker's ``Forwarding``."""

    def pump_start(self) -> None: ...
    def run_ring(self, ring: LiveRing, timeout_ms: int = 0) -> tuple[int, int]: ...
    def advance(self, now_ns: int) -> None: ...
    def finish(self) -> None: ...
    def table_stats(self) -> dict[str, dict[str, int]]: ...


class Forwarding:
    """A ``live --workers`` worker's stand-in for the Engine: it reads and decodes its
    share of the link natively and hands each batch of packed events to ``send``
    (``blob, items, watermark``) for the counting Engine's ``feed``. It has the
    Engine's faces that the live loop uses: ``pump_start``, ``run_ring``, ``advance``,
    ``finish`` and ``table_stats``."""

    def __init__(
        self,
        policy: Policy,
        send: Callable[[bytes, int, int], None],
        specs: Mapping[str, FamilySpec] | None = None,
        classes: Mapping[str, type[Detector]] | None = None,
    ) -> None:
        # The event kinds the counting Engine uses follow from the same policy (a dark
        # prefix makes the sweep family read every IPv6 packet).
        kinds = Engine(policy, lambda _alert: None, specs, classes).kinds
        self.decoder = Decoder(decoder_limits(policy.thresholds.get("decoder", {})))
        self.decoder.want_packets, self.decoder.want_tunnels = kinds[0], kinds[1]
        self.decoder.want_mld = kinds[5]
        self.decoder.want_dhcpv6 = kinds[6]
        self.decoder.want_ext_options = kinds[7]
        self.decoder.want_icmp_errors = kinds[8]
        self.decoder.want_dns = kinds[9]
        self._forwarder = Forwarder(self.decoder, TICK_NS, kinds)
        self.send = send

    @property
    def now_ns(self) -> int:
        return self._forwarder.now_ns

    def pump_start(self) -> None:
        self._forwarder.restart()

    def run_ring(self, ring: LiveRing, timeout_ms: int = 0) -> tuple[int, int]:
        """Decode one block of the ring and send its events; ``(frames, bytes)``."""
        frames, nbytes = self._forwarder.run_ring(ring, timeout_ms)
        if frames:
            self.flush()
        return frames, nbytes

    def run(self, records: list[tuple[Any, ...]]) -> None:
        """Decode record tuples (``(ts_ns, iface, linktype, data, wire_len[, frame])``)
        and send their events."""
        self._forwarder.run_records(records)
        self.flush()

    def advance(self, now_ns: int) -> None:
        """The ring is empty up to ``now_ns``: time stale fragments out, and tell the
        counting Engine (the watermark), so that the other workers' events go on."""
        self._forwarder.advance(now_ns)
        self.flush()

    def flush(self) -> None:
        blob, items, watermark = self._forwarder.take()
        self.send(blob, items, watermark)

    def finish(self) -> None:
        self.flush()

    def table_stats(self) -> dict[str, dict[str, int]]:
        reasm = self.decoder.reassembler
        return {
            "decoder.reassembly": {
                "size": len(reasm),
                "cap": reasm.limits.max_datagrams,
                "evictions": self.decoder.stats.fragment_anomalies.get("evicted", 0),
            }
        }
