"""IPv6 fragment reassembly with bounded memory (RFC 8200 4.5, RFC 5722).

Owns the table of datagrams in flight: it stores fragments, detects overlaps,
expires datagrams on packet time and evicts the oldest when a cap is reached.
It does not parse headers: ``core`` gives it the unfragmentable prefix and the
fragment payload, and walks the reassembled bytes itself.

Overlapping fragments discard the whole datagram and keep discarding its
later fragments until it times out (RFC 5722). Exact duplicates, common on
span ports that mirror both directions, are dropped without complaint.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

MAX_DATAGRAM = 65535  # payload length limit without jumbograms


@dataclass(frozen=True, slots=True)
class ReassemblyLimits:
    """Caps for the reassembly table; overridable as ``decoder`` thresholds."""

    timeout_ns: int = 60 * 1_000_000_000  # RFC 8200: 60 s
    max_datagrams: int = 4096
    max_bytes: int = 16 * 1024 * 1024
    max_fragments: int = 128  # per datagram; far above any honest MTU split


@dataclass(slots=True)
class _Datagram:
    first_ts: int
    prefix: bytes | None = None  # IPv6 header + unfragmentable headers + Fragment header
    pieces: dict[int, bytes] = field(default_factory=dict)  # offset -> payload
    total: int | None = None  # payload length once the last fragment is seen
    size: int = 0
    first_chain_complete: bool = True
    dead: bool = False  # overlap seen: drop everything until the timeout


@dataclass(frozen=True, slots=True)
class Completed:
    """A reassembled datagram: ``prefix`` then ``payload``."""

    prefix: bytes
    payload: bytes
    count: int
    first_chain_complete: bool


class Reassembler:
    """Bounded table of IPv6 datagrams awaiting fragments."""

    def __init__(self, limits: ReassemblyLimits) -> None:
        self.limits = limits
        self._table: OrderedDict[Hashable, _Datagram] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._table)

    def expire(self, now_ns: int) -> list[tuple[Hashable, str]]:
        """Drop datagrams older than the timeout; return (key, kind) pairs."""
        out: list[tuple[Hashable, str]] = []
        deadline = now_ns - self.limits.timeout_ns
        while self._table:
            key, dgram = next(iter(self._table.items()))
            if dgram.first_ts > deadline:
                break
            self._drop(key)
            # A dead datagram was already reported as an overlap.
            if not dgram.dead:
                out.append((key, "timeout"))
        return out

    def pending(self) -> int:
        """Datagrams still incomplete (reported at the end of a capture)."""
        return sum(1 for d in self._table.values() if not d.dead)

    def _drop(self, key: Hashable) -> None:
        dgram = self._table.pop(key)
        self._bytes -= dgram.size

    def add(
        self,
        key: Hashable,
        now_ns: int,
        offset: int,
        more: bool,
        payload: bytes,
        prefix: bytes,
        first_chain_complete: bool,
    ) -> tuple[Completed | None, list[tuple[Hashable, str]]]:
        """Add one fragment. Returns the completed datagram, if any, and anomalies."""
        anomalies = self.expire(now_ns)
        dgram = self._table.get(key)
        if dgram is None:
            if len(self._table) >= self.limits.max_datagrams:
                old = next(iter(self._table))
                if not self._table[old].dead:
                    anomalies.append((old, "evicted"))
                self._drop(old)
            dgram = _Datagram(first_ts=now_ns)
            self._table[key] = dgram
        if dgram.dead:
            return None, anomalies
        end = offset + len(payload)
        problem = None
        if end > MAX_DATAGRAM:
            problem = "oversize"
        elif (
            (more and len(payload) % 8)
            or (not more and dgram.total is not None and dgram.total != end)
            or (dgram.total is not None and end > dgram.total)
        ):
            problem = "inconsistent_length"
        elif len(dgram.pieces) >= self.limits.max_fragments:
            problem = "too_many_fragments"
        if problem is None:
            problem = self._overlap(dgram, offset, payload)
            if problem == "duplicate":
                return None, anomalies
        if problem is None and not more and any(o + len(p) > end for o, p in dgram.pieces.items()):
            problem = "inconsistent_length"
        if problem is not None:
            self._bytes -= dgram.size
            dgram.size = 0
            dgram.pieces.clear()
            dgram.prefix = None
            dgram.dead = True
            anomalies.append((key, problem))
            return None, anomalies
        dgram.pieces[offset] = payload
        dgram.size += len(payload)
        self._bytes += len(payload)
        if offset == 0:
            dgram.prefix = prefix
            dgram.size += len(prefix)
            self._bytes += len(prefix)
            dgram.first_chain_complete = first_chain_complete
        if not more:
            dgram.total = end
        while self._bytes > self.limits.max_bytes and len(self._table) > 1:
            old = next(iter(self._table))
            if old == key:
                break
            if not self._table[old].dead:
                anomalies.append((old, "evicted"))
            self._drop(old)
        return self._complete(key, dgram), anomalies

    @staticmethod
    def _overlap(dgram: _Datagram, offset: int, payload: bytes) -> str | None:
        end = offset + len(payload)
        same = dgram.pieces.get(offset)
        if same is not None and same == payload:
            return "duplicate"
        for o, p in dgram.pieces.items():
            if o < end and offset < o + len(p):
                return "overlap"
        return None

    def _complete(self, key: Hashable, dgram: _Datagram) -> Completed | None:
        if dgram.total is None or dgram.prefix is None:
            return None
        if dgram.size - len(dgram.prefix) != dgram.total:
            return None
        # Sizes add up and nothing overlaps, so the pieces tile [0, total).
        payload = b"".join(dgram.pieces[o] for o in sorted(dgram.pieces))
        self._drop(key)
        return Completed(dgram.prefix, payload, len(dgram.pieces), dgram.first_chain_complete)
