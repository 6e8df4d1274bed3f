"""The on-disk spool: alerts Elasticsearch did not take yet, kept until it does.

Owns the spool directory: append-only JSONL segments (``seg-00000001.jsonl``,
one ``{"index", "id", "doc"}`` object per line), fsync'd before an append
returns, bounded in total size (``SpoolFull`` when an append would pass the
bound), claimed one segment at a time for resending and deleted only once every
line was delivered or dead-lettered. Also owns the dead-letter file
(``dead-letter.jsonl`` in the same directory) for documents Elasticsearch
refused for good. It does not talk to Elasticsearch.

Several v6sentry processes may share one spool: appends and claims take an
exclusive ``flock`` on ``.lock``. A claimed segment is renamed to
``seg-N.jsonl.resending-PID`` so appenders never write into a file being
resent; a claim left by a process that died is given back when the spool is
opened. Appenders open, write, fsync and close under the lock, so a claim never
races an open file handle.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors.ship.convert import Document

DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
_SEGMENT = re.compile(r"^seg-(\d{8})\.jsonl(?:\.resending-(\d+))?$")


class SpoolFull(Exception):
    """An append would pass the spool's size bound; nothing of that append was written."""


def default_spool_dir() -> Path:
    """``$XDG_STATE_HOME/v6sentry/spool``, or ``~/.local/state/v6sentry/spool``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "v6sentry" / "spool"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled line: a document and its index, or why the line is unreadable."""

    line: int
    index: str | None
    document: Document | None
    error: str | None = None
    raw: str | None = None


class Claim:
    """One segment taken for resending: read it, then ``done()`` or ``release()``."""

    def __init__(self, spool: Spool, path: Path, original: Path) -> None:
        self.spool = spool
        self.path = path
        self.original = original

    def records(self) -> Iterator[SpoolRecord]:
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    index, doc_id, source = obj["index"], obj["id"], obj["doc"]
                    typed = isinstance(index, str) and isinstance(doc_id, str)
                    if not typed or not isinstance(source, dict):
                        raise ValueError("index, id and doc have the wrong types")
                except (ValueError, KeyError, TypeError) as exc:
                    # A torn last line (a crash mid-append) or damage: kept in the
                    # dead-letter file with the reason, never skipped silently.
                    yield SpoolRecord(number, None, None, f"unreadable spool line: {exc}", line)
                    continue
                yield SpoolRecord(number, index, Document(doc_id, source))

    def done(self) -> None:
        """Every line was delivered or dead-lettered: the segment goes away."""
        with self.spool.locked():
            self.path.unlink()
            _fsync_dir(self.spool.directory)

    def release(self) -> None:
        """Resending stopped part-way: the segment returns whole (delivered lines
        come back as 409 duplicates next time, so nothing is indexed twice)."""
        with self.spool.locked():
            self.path.rename(self.original)
            _fsync_dir(self.spool.directory)


class Spool:
    """The spool directory; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dead_letter_path = directory / "dead-letter.jsonl"
        self._lock_path = directory / ".lock"
        with self.locked():
            self._recover_claims()

    @contextmanager
    def locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _entries(self) -> list[tuple[int, int | None, Path]]:
        out = []
        for path in self.directory.iterdir():
            match = _SEGMENT.match(path.name)
            if match:
                pid = int(match.group(2)) if match.group(2) else None
                out.append((int(match.group(1)), pid, path))
        return sorted(out, key=lambda e: e[0])

    def _recover_claims(self) -> None:
        for seq, pid, path in self._entries():
            if pid is not None and not _pid_alive(pid):
                path.rename(self.directory / f"seg-{seq:08d}.jsonl")

    def size(self) -> int:
        """Bytes held in segments (claimed ones included)."""
        return sum(path.stat().st_size for _, _, path in self._entries())

    def pending(self) -> int:
        """Documents waiting in the spool (lines of all segments)."""
        total = 0
        for _, _, path in self._entries():
            with open(path, "rb") as fh:
                total += sum(1 for line in fh if line.strip())
        return total

    def append(self, records: list[tuple[str, Document]]) -> None:
        """Write ``(index, document)`` pairs durably; SpoolFull if over the bound."""
        if not records:
            return
        data = "".join(
            json.dumps(
                {"index": index, "id": doc.id, "doc": doc.source},
                separators=(",", ":"),
                ensure_ascii=False,
            )
            + "\n"
            for index, doc in records
        ).encode()
        with self.locked():
            entries = self._entries()
            used = sum(path.stat().st_size for _, _, path in entries)
            if used + len(data) > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.directory} is full ({used} bytes used of {self.max_bytes}); "
                    f"{len(records)} document(s) could not be stored"
                )
            last = entries[-1] if entries else None
            if last and last[1] is None and last[2].stat().st_size < self.segment_bytes:
                path, new = last[2], False
            else:
                path, new = self.directory / f"seg-{(last[0] + 1 if last else 1):08d}.jsonl", True
            _append_durably(path, data)
            if new:
                _fsync_dir(self.directory)

    def claim(self) -> Claim | None:
        """Take the oldest unclaimed segment for resending, or None."""
        with self.locked():
            for _, pid, path in self._entries():
                if pid is None:
                    claimed = path.with_name(f"{path.name}.resending-{os.getpid()}")
                    path.rename(claimed)
                    return Claim(self, claimed, path)
        return None

    def dead_letter(self, index: str | None, doc_id: str | None, reason: Any, doc: Any) -> None:
        """Record a document Elasticsearch refused for good (or an unreadable line)."""
        entry = {
            "time": datetime.now(tz=UTC).isoformat(timespec="seconds"),
            "index": index,
            "id": doc_id,
            "reason": reason,
            "doc": doc,
        }
        line = json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self.locked():
            _append_durably(self.dead_letter_path, line.encode())
