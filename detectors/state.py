"""Bounded state for detections: capped tables, packet-time windows, suppression.

Owns the only containers detections may keep per-host or per-key state in.
Every table has a cap; inserting past it evicts the least recently used entry
and counts the eviction, so memory stays flat under floods that randomise
addresses. ``Windows`` keeps one packet-time window per key in such a table
and hands every window that ends (rolled over, due, evicted or flushed) to its
owner exactly once. Does not know about packets or alerts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Window(Protocol):
    """Anything that knows when its packet-time window started."""

    start_ns: int


W = TypeVar("W", bound=Window)


class TableStats(Protocol):
    """What the statistics read of a table: a ``BoundedTable`` or a ``NativeTable``."""

    @property
    def name(self) -> str: ...
    @property
    def cap(self) -> int: ...
    @property
    def evictions(self) -> int: ...
    def __len__(self) -> int: ...


class NativeTable:
    """Size, cap and evictions of a table kept by the native core (``detectors._native``),
    read on demand from ``stats``, which answers ``(size, cap, evictions)``."""

    def __init__(self, name: str, cap: int, stats: Callable[[], tuple[int, int, int]]) -> None:
        self.name = name
        self.cap = cap
        self._stats = stats

    def __len__(self) -> int:
        return self._stats()[0]

    @property
    def evictions(self) -> int:
        return self._stats()[2]


class BoundedTable(Generic[K, V]):
    """An LRU mapping with a hard cap and an eviction counter."""

    def __init__(self, name: str, cap: int, on_evict: Callable[[K, V], None] | None = None):
        if cap < 1:
            raise ValueError(f"table {name}: cap must be at least 1, got {cap}")
        self.name = name
        self.cap = cap
        self.evictions = 0
        self._on_evict = on_evict
        self._data: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: K) -> bool:
        return key in self._data

    def get(self, key: K) -> V | None:
        """Look up and mark as recently used."""
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def peek(self, key: K) -> V | None:
        """Look up without touching recency."""
        return self._data.get(key)

    def put(self, key: K, value: V) -> None:
        data = self._data
        if key in data:
            data.move_to_end(key)
        elif len(data) >= self.cap:
            old_key, old_value = data.popitem(last=False)
            self.evictions += 1
            if self._on_evict is not None:
                self._on_evict(old_key, old_value)
        data[key] = value

    def setdefault(self, key: K, factory: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            value = factory()
            self.put(key, value)
        return value

    def pop(self, key: K) -> V | None:
        return self._data.pop(key, None)

    def items(self) -> Iterator[tuple[K, V]]:
        """Oldest first. Copy before mutating the table while iterating."""
        return iter(list(self._data.items()))

    def pop_oldest_while(self, keep_going: Callable[[K, V], bool]) -> list[tuple[K, V]]:
        """Pop entries from the old end while ``keep_going`` says so (expiry in time order)."""
        data, out = self._data, []
        while data:
            key, value = next(iter(data.items()))
            if not keep_going(key, value):
                break
            data.popitem(last=False)
            out.append((key, value))
        return out

    def clear(self) -> None:
        self._data.clear()


class Windows(Generic[K, W]):
    """One packet-time window per key, ``span_ns`` long, in a bounded table.

    ``close`` gets every window that ends, once: when the next event of its key
    falls past it, when ``close_due`` finds it ``span_ns + grace_ns`` old, when it
    is evicted, and at ``close_all``.
    """

    def __init__(
        self,
        name: str,
        cap: int,
        span_ns: int,
        close: Callable[[K, W], None] | None = None,
        grace_ns: int = 0,
    ) -> None:
        self.span_ns = span_ns
        self.grace_ns = grace_ns
        self._on_close = close
        self.table: BoundedTable[K, W] = BoundedTable(name, cap, self._close)

    def _close(self, key: K, window: W) -> None:
        if self._on_close is not None:
            self._on_close(key, window)

    def current(self, key: K, ts_ns: int, new: Callable[[int], W]) -> W:
        """The window of ``key`` that holds ``ts_ns``; the one before it closes."""
        window = self.table.get(key)
        if window is None or ts_ns - window.start_ns >= self.span_ns:
            if window is not None:
                self._close(key, window)
            window = new(ts_ns)
            self.table.put(key, window)
        return window

    def close_due(self, now_ns: int) -> None:
        for key, window in self.table.items():
            if now_ns - window.start_ns >= self.span_ns + self.grace_ns:
                self.table.pop(key)
                self._close(key, window)

    def close_all(self) -> None:
        for key, window in self.table.items():
            self._close(key, window)
        self.table.clear()


class Suppressor:
    """Per-identifier alert suppression on packet time (Zeek's Notice model).

    ``allow`` answers whether an alert for ``identifier`` may be raised at
    ``now_ns``; when it may, the identifier is then suppressed for
    ``interval_ns``. The table is bounded: an identifier evicted under a flood
    may alert again, which is the safe direction to fail.
    """

    def __init__(self, name: str, interval_ns: int, cap: int) -> None:
        self.interval_ns = interval_ns
        self.table: BoundedTable[Hashable, int] = BoundedTable(name, cap)
        self.suppressed = 0

    def allow(self, identifier: Hashable, now_ns: int) -> bool:
        until = self.table.get(identifier)
        if until is not None and now_ns < until:
            self.suppressed += 1
            return False
        self.table.put(identifier, now_ns + self.interval_ns)
        return True

    def active(self, identifier: Hashable, now_ns: int) -> bool:
        """True, and counted as suppressed, while ``identifier`` is suppressed."""
        until = self.table.peek(identifier)
        if until is not None and now_ns < until:
            self.suppressed += 1
            return True
        return False
