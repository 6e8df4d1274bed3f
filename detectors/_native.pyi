"""Type stubs for the native core (``native/``, built by maturin)."""

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, BinaryIO, Final, final

from detectors.decoder import DecoderLimits, ReassemblyLimits
from detectors.events import DecodeStats, Event

__version__: Final[str]

# -- capture (native/src/capture/) ------------------------------------------------------

CHUNK: Final[int]
MAX_CAPLEN: Final[int]
MAX_BLOCK: Final[int]

class CaptureError(Exception):
    """The input cannot be read as a capture. The message names the file."""

class Interface:
    """One capture interface: a pcap file has one, a pcapng section any number."""

    @property
    def linktype(self) -> int: ...
    @property
    def snaplen(self) -> int: ...
    @property
    def name(self) -> str | None: ...
    @property
    def tsresol(self) -> int: ...
    @property
    def tsoffset_s(self) -> int: ...
    def __init__(
        self,
        linktype: int,
        snaplen: int,
        name: str | None = None,
        tsresol: int = 6,
        tsoffset_s: int = 0,
    ) -> None: ...
    def ts_scale(self) -> tuple[int, int]: ...
    def to_ns(self, units: int) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class Records(Iterator[tuple[int, int, int, bytes, int]]):
    def __iter__(self) -> Records: ...
    def __next__(self) -> tuple[int, int, int, bytes, int]: ...

class CaptureReader:
    """An open capture. Iterate ``records()``; then check ``truncated``/``warnings``."""

    @property
    def path(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def compressed(self) -> bool: ...
    @property
    def interfaces(self) -> list[Interface]: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def truncated(self) -> bool: ...
    @property
    def records_read(self) -> int: ...
    def records(self) -> Records: ...
    def close(self) -> None: ...
    def __enter__(self) -> CaptureReader: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

def open_capture(
    path: str, stdin: BinaryIO | None = None, chunk_size: int = ...
) -> CaptureReader: ...

# -- live capture (native/src/live/) -----------------------------------------------------

@final
class LiveRing:
    """One interface read through a TPACKET_V3 ring (``native/src/live/``)."""

    @staticmethod
    def open(
        iface: str,
        promisc: bool,
        buffer_mb: int,
        bpf: bytes | Callable[[int], bytes | None] | None = None,
        fanout: int | None = None,
        index: int = 0,
        fanout_defrag: bool = False,
    ) -> LiveRing: ...
    def next_batch(self, timeout_ms: int) -> list[tuple[int, int, int, bytes, int]]: ...
    def count_batch(self, timeout_ms: int) -> tuple[int, int]: ...
    def stats(self) -> tuple[int, int, int]: ...
    def close(self) -> None: ...
    def fileno(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def ifindex(self) -> int: ...
    @property
    def hatype(self) -> int: ...
    @property
    def linktype(self) -> int: ...
    @property
    def geometry(self) -> tuple[int, int]: ...
    @property
    def promisc_error(self) -> OSError | None: ...

# -- decoder (native/src/decode/) -------------------------------------------------------

class Reassembler:
    """A live view of a decoder's fragment table."""

    def __len__(self) -> int: ...
    def pending(self) -> int: ...
    @property
    def limits(self) -> ReassemblyLimits: ...

class Decoder:
    """Turns one captured frame into events. One instance per capture stream."""

    want_packets: bool
    want_tunnels: bool
    def __init__(
        self,
        limits: DecoderLimits | None = None,
        *,
        want_packets: bool = False,
        want_tunnels: bool = False,
    ) -> None: ...
    def decode(
        self, ts_ns: int, frame: int, iface: int, linktype: int, data: bytes, wire_len: int
    ) -> list[Event]: ...
    def expire(self, now_ns: int) -> list[Event]: ...
    @property
    def stats(self) -> DecodeStats: ...
    @property
    def reassembler(self) -> Reassembler: ...
    @property
    def limits(self) -> DecoderLimits: ...

def icmpv6_checksum_ok(src: bytes, dst: bytes, data: bytes, start: int, end: int) -> bool: ...

# -- the fused loop (native/src/pipeline.rs) ---------------------------------------------

class NativeReducer:
    """A family's native reducer (``native/src/reducer.rs``), built by kind."""

    def __init__(self, kind: str, settings: dict[str, Any]) -> None: ...
    @property
    def kind(self) -> str: ...
    def tick(self, now_ns: int) -> list[Any]: ...
    def flush(self, now_ns: int) -> list[Any]: ...
    def tables(self) -> list[tuple[str, int, int, int]]: ...
    def suppressed(self) -> int: ...
    def call(self, name: str, *args: Any) -> list[Any]: ...

class Pipeline:
    """Records in, decoded and counted natively; Python gets events, outputs and ticks."""

    frame: int
    def __init__(self, decoder: Decoder, tick_ns: int) -> None: ...
    def add_reducer(self, owner: int, reducer: NativeReducer) -> None: ...
    def set_python_kinds(
        self, packets: bool, tunnels: bool, nd: bool, malformed: bool, fragments: bool
    ) -> None: ...
    def native_kinds(self) -> tuple[bool, bool, bool, bool, bool]: ...
    @property
    def now_ns(self) -> int: ...
    def advance(self, now_ns: int) -> bool: ...
    def expire(self, now_ns: int) -> list[Any]: ...
    def restart(self) -> None: ...
    def run_capture(
        self, reader: CaptureReader, max_items: int
    ) -> tuple[list[Any], int | None, bool]: ...
    def run_ring(
        self, ring: LiveRing, timeout_ms: int, max_items: int
    ) -> tuple[list[Any], int | None, int, int, bool]: ...
    def run_records(
        self, records: list[tuple[int, int, int, bytes, int]], start: int, max_items: int
    ) -> tuple[list[Any], int | None, int]: ...

# -- the sweep reducer (native/src/reduce/) -----------------------------------------------

class SweepReducer:
    """``ipv6.sweep``'s per-packet counting (``native/src/reduce/``)."""

    def __init__(
        self,
        window_ns: int,
        tiers: tuple[float, float, float],
        wide_prefixes: float,
        wide_targets: float,
        min_no_reply: float,
        exact_up_to: int,
        precision: int,
        src_precision: int,
        max_sources: int,
        max_pairs: int,
        observe_min: float | None,
    ) -> None: ...
    def on_packet(
        self,
        ts_ns: int,
        frame: int,
        iface: int,
        linktype: int,
        wire_len: int,
        src_mac: bytes | None,
        dst_mac: bytes | None,
        vlans: tuple[int, ...],
        src: bytes,
        dst: bytes,
        hop_limit: int,
        traffic_class: int,
        flow_label: int,
        payload_len: int,
        upper: int,
        sport: int | None,
        dport: int | None,
        icmp_type: int | None,
        icmp_code: int | None,
        tcp_flags: int | None,
        quoted_src: bytes | None,
        tunnels: tuple[tuple[Any, ...], ...],
    ) -> list[tuple[Any, ...]] | None: ...
    def tick(self, now_ns: int) -> list[tuple[Any, ...]] | None: ...
    def flush(self) -> list[tuple[Any, ...]] | None: ...
    def table_stats(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]: ...

def time_native(path: str, decode: bool) -> tuple[int, float]: ...
