"""Type stubs for ``detectors._native``, the Rust core (``native/``).

Only what Python code uses: the decoder (``native/src/decode/``), re-exported by
``detectors.decoder``.
"""

from detectors.decoder import DecoderLimits, ReassemblyLimits
from detectors.events import DecodeStats, Event

__version__: str

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
