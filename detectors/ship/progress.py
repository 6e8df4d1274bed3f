"""A progress line on standard error for long shipments.

Owns drawing only: a bar with a count and a rate when the total is known, a
count and a rate when it is not. It redraws in place on a terminal, at most
five times a second; when stderr is not a terminal (``--progress`` into a log)
it writes one plain line every ten seconds instead, so logs stay readable.
No dependency: this is twenty lines, not worth a package.
"""

from __future__ import annotations

import time
from typing import IO


class Progress:
    """Counts documents dealt with and draws them; ``close()`` ends the line."""

    def __init__(self, stream: IO[str], total: int | None, label: str = "ship") -> None:
        self.stream = stream
        self.total = total
        self.label = label
        self.done = 0
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._last = 0.0
        self._interval = 0.2 if self.tty else 10.0

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = f"{self.done / elapsed:,.0f} docs/s"
        if self.total:
            share = min(self.done / self.total, 1.0)
            filled = int(share * 30)
            text = (
                f"v6sentry: {self.label} [{'#' * filled}{'.' * (30 - filled)}] "
                f"{self.done}/{self.total} {share:4.0%} {rate}"
            )
        else:
            text = f"v6sentry: {self.label}: {self.done} documents, {rate}"
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state (and end the line on a terminal)."""
        self._draw(time.monotonic())
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
