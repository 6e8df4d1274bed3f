"""Type stubs of the native core (``native/``, Rust): only what Python calls."""

from typing import Any

__version__: str

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
