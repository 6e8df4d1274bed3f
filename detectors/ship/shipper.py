"""Bulk-index alert documents into Elasticsearch, exactly once, losing nothing.

Owns the shipping loop over ``client.bulk``: batches, ``op_type=create`` with
the alert id as ``_id`` (a 409 is a duplicate, not a failure), per-item and
whole-request retries with exponential backoff on 429 and 5xx, the dead-letter
file for documents refused for good, the spool for everything Elasticsearch
could not take (unreachable, or still rejecting after the retries) and the
resending of the spool at the start of a run, periodically while the node is
back, and at the end. It does not read alert files (``convert``), build the
client (``connect``) nor define the mapping (``template``).

``streaming_bulk`` is not used: with ``raise_on_error`` it stops at the first
item error, and it neither retries item 429/5xx nor hands back what it could
not deliver. Here every document ends in exactly one of: indexed, duplicate,
failed (dead-lettered) or spooled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from elastic_transport import SerializationError
from elasticsearch import ApiError, Elasticsearch, TransportError

from detectors.es.template import install_template
from detectors.ship import ShipError
from detectors.ship.convert import Document
from detectors.ship.progress import Progress
from detectors.ship.spool import Spool, SpoolFull


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per document and the backoff between them.

    Five attempts with 0.5, 1, 2 and 4 s pauses ride out a node that is merging,
    relocating a shard or briefly over its indexing pressure (about 7.5 s in all)
    without stalling a sensor for minutes; what is still rejected goes to the spool
    and is retried on the next resend instead of being held in memory.
    """

    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 8.0

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


@dataclass(slots=True)
class Counts:
    """What happened to the documents of one run (a resent document is also
    counted as indexed or duplicate)."""

    indexed: int = 0
    duplicates: int = 0
    retried: int = 0
    spooled: int = 0
    resent: int = 0
    failed: int = 0
    unconfirmed: int = 0  # left unconfirmed by a malformed reply (so spooled too)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def line(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in asdict(self).items())


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _reason(error: Any) -> Any:
    """The useful part of an item error: type and reason (and the cause's)."""
    if not isinstance(error, dict):
        return error
    out = {k: error[k] for k in ("type", "reason") if k in error}
    cause = error.get("caused_by")
    if isinstance(cause, dict):
        out["caused_by"] = {k: cause[k] for k in ("type", "reason") if k in cause}
    return out or error


Entry = tuple[str, Document]

_ACTION = "create"


def _item_results(body: Any, ids: list[str]) -> tuple[list[dict[str, Any] | None], str]:
    """Each sent document's result from a bulk reply body, or None where the reply
    does not confirm it; with a description of what was wrong, for the warning.

    A bulk reply is trusted only as far as it is well-formed: an ``items`` list,
    one item per document sent and in the same order, each ``{"create": {...}}``
    with an integer ``status`` and, when it names one, the ``_id`` that was sent.
    Anything else (``{}``, too few or too many items, an item without a status or
    for another id) leaves the affected documents unconfirmed.
    """
    if not isinstance(body, dict):
        return [None] * len(ids), f"the reply is a {type(body).__name__}, not a JSON object"
    items = body.get("items")
    if not isinstance(items, list):
        return [None] * len(ids), "the reply has no 'items' list"
    problems: list[str] = []
    # With a count that differs, position says nothing: only an item naming its _id
    # confirms a document.
    need_id = len(items) != len(ids)
    if need_id:
        problems.append(f"{'fewer' if len(items) < len(ids) else 'more'} items than documents sent")
    results: list[dict[str, Any] | None] = []
    for position, doc_id in enumerate(ids):
        item = items[position] if position < len(items) else None
        result = item.get(_ACTION) if isinstance(item, dict) else None
        if position >= len(items):
            results.append(None)
        elif not isinstance(result, dict):
            results.append(None)
            problems.append(f"an item without a '{_ACTION}' object")
        elif not isinstance(result.get("status"), int) or isinstance(result["status"], bool):
            results.append(None)
            problems.append("an item without an integer status")
        elif need_id and "_id" not in result:
            results.append(None)
            problems.append("items without an _id")
        elif result.get("_id", doc_id) != doc_id:
            results.append(None)
            problems.append("an item for another _id than the document sent in its place")
        else:
            results.append(result)
    return results, "; ".join(dict.fromkeys(problems))


class Shipper:
    """Ships documents to one index; see the module docstring.

    Use: ``start()``, ``add()`` per document, ``tick()`` now and then in a
    long-running process, ``close()`` at the end; ``counts`` says what happened.
    """

    def __init__(
        self,
        client: Elasticsearch,
        index: str,
        spool: Spool,
        *,
        batch_docs: int = 500,
        batch_bytes: int = 5 * 1024 * 1024,
        retry: RetryPolicy | None = None,
        bulk_timeout: str = "15s",
        probe_interval_s: float = 5.0,
        max_delay_s: float = 1.0,
        progress: Progress | None = None,
        warn: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.index = index
        self.spool = spool
        self.batch_docs = batch_docs
        self.batch_bytes = batch_bytes
        self.retry = retry or RetryPolicy()
        self.bulk_timeout = bulk_timeout
        self.probe_interval_s = probe_interval_s
        self.max_delay_s = max_delay_s
        self.progress = progress
        self.warn = warn or (lambda message: None)
        self.sleep = sleep
        self.clock = clock
        self.counts = Counts()
        self.down = False
        self._next_probe = 0.0
        self._templates: set[str] = set()
        self._reply_problems: set[str] = set()
        self._batch: list[Entry] = []
        self._batch_size = 0
        self._batch_since = 0.0

    # -- public -------------------------------------------------------------------------

    def start(self) -> None:
        """Install the template and resend what an earlier run left in the spool."""
        self._resend()

    def add(self, doc: Document, index: str | None = None) -> None:
        """Queue one document (for ``index``, default the shipper's); a full batch is
        sent (or spooled) at once."""
        if not self._batch:
            self._batch_since = self.clock()
        self._batch.append((index or self.index, doc))
        # Approximate size: the JSON as sent, without re-serialising it twice.
        self._batch_size += len(json.dumps(doc.source, separators=(",", ":"))) + 64
        if len(self._batch) >= self.batch_docs or self._batch_size >= self.batch_bytes:
            self.flush()

    def tick(self) -> None:
        """For long-running callers: send a batch that waited too long, and resend
        the spool once the node answers again."""
        if self._batch and self.clock() - self._batch_since >= self.max_delay_s:
            self.flush()
        elif self.down:
            self._probe_and_resend()

    def flush(self) -> None:
        batch, self._batch, self._batch_size = self._batch, [], 0
        if not batch:
            return
        if self.down:
            self._probe_and_resend()
        if self.down:
            self._to_spool(batch)
            return
        undelivered = self._send(batch)
        self._to_spool(undelivered)

    def close(self) -> Counts:
        """Send what is queued; if the node is away, one last probe and resend."""
        self.flush()
        if self.down:
            self._next_probe = 0.0
            self._probe_and_resend()
        if self.progress is not None:
            self.progress.close()
        return self.counts

    # -- internals ----------------------------------------------------------------------

    def _mark_down(self, exc: Exception) -> None:
        if not self.down:
            self.warn(f"Elasticsearch unreachable ({exc}); spooling to {self.spool.directory}")
        self.down = True
        self._next_probe = self.clock() + self.probe_interval_s

    def _probe_and_resend(self) -> None:
        if self.clock() < self._next_probe:
            return
        try:
            self.client.cluster.health(timeout="5s")
        except ApiError:
            pass  # it answered (maybe without the monitor privilege): reachable
        except TransportError:
            self._next_probe = self.clock() + self.probe_interval_s
            return
        self.down = False
        self._resend()

    def _ensure_template(self, index: str) -> bool:
        """False when the node is unreachable (then the caller spools)."""
        if index in self._templates:
            return True
        try:
            install_template(self.client, index)
        except ApiError as exc:
            # A shipping key may lack manage_index_templates; an admin may have installed
            # the template. Say so once and ship anyway.
            self.warn(f"cannot install the index template for {index}: {exc}")
        except TransportError as exc:
            self._mark_down(exc)
            return False
        self._templates.add(index)
        return True

    def _to_spool(self, entries: list[Entry]) -> None:
        if not entries:
            return
        try:
            self.spool.append(entries)
        except SpoolFull as exc:
            raise ShipError(str(exc)) from None
        self.counts.spooled += len(entries)
        self._advance(len(entries))

    def _advance(self, count: int) -> None:
        if self.progress is not None:
            self.progress.advance(count)

    def _dead_letter(self, index: str, doc: Document, reason: Any) -> None:
        self.spool.dead_letter(index, doc.id, reason, doc.source)
        self.counts.failed += 1

    def _send(self, batch: list[Entry], resending: bool = False) -> list[Entry]:
        """Deliver a batch with retries; returns the entries still undelivered: those
        still rejected after the retries, and those no reply confirmed."""
        for index in sorted({index for index, _ in batch}):
            if not self._ensure_template(index):
                return batch
        pending = list(enumerate(batch))  # positions, to count each retried document once
        retried: set[int] = set()
        unconfirmed: list[Entry] = []
        for attempt in range(1, self.retry.attempts + 1):
            operations: list[dict[str, Any]] = []
            for _, (index, doc) in pending:
                operations.append({"create": {"_index": index, "_id": doc.id}})
                operations.append(doc.source)
            again: list[tuple[int, Entry]] = []
            try:
                response = self.client.bulk(operations=operations, timeout=self.bulk_timeout)
            except ApiError as exc:
                status = exc.meta.status
                if status in (401, 403):
                    raise ShipError(
                        f"Elasticsearch refused the credentials ({status}): {exc.message}"
                    ) from None
                if not _retryable(status):
                    for _, (index, doc) in pending:
                        self._dead_letter(index, doc, {"status": status, "error": str(exc)})
                        self._delivered(resending)
                    return unconfirmed
                again = pending
            except SerializationError:
                # The node answered, but not with JSON: nothing of the batch is confirmed.
                # (The exception quotes the body; the warning, given once per kind, does not.)
                self._unconfirmed(len(pending), len(pending), "the reply is not JSON")
                return unconfirmed + [entry for _, entry in pending]
            except TransportError as exc:
                self._mark_down(exc)
                return unconfirmed + [entry for _, entry in pending]
            else:
                ids = [doc.id for _, (_, doc) in pending]
                results, problem = _item_results(response.body, ids)
                missing = 0
                for (position, (index, doc)), result in zip(pending, results, strict=True):
                    if result is None:
                        # Not retried: a node that answers without confirming would answer
                        # the same way again. The spool keeps it; a resend that finds it
                        # already indexed counts a duplicate (the _id is the alert id).
                        unconfirmed.append((index, doc))
                        missing += 1
                        continue
                    status = result["status"]
                    if status in (200, 201):
                        self.counts.indexed += 1
                    elif status == 409:
                        self.counts.duplicates += 1
                    elif _retryable(status):
                        again.append((position, (index, doc)))
                        continue
                    else:
                        reason = {"status": status, "error": _reason(result.get("error"))}
                        self._dead_letter(index, doc, reason)
                    self._delivered(resending)
                if missing:
                    self._unconfirmed(missing, len(pending), problem)
            if not again:
                return unconfirmed
            for position, _ in again:
                if position not in retried:
                    retried.add(position)
                    self.counts.retried += 1
            pending = again
            if attempt < self.retry.attempts:
                self.sleep(self.retry.pause(attempt))
        return unconfirmed + [entry for _, entry in pending]

    def _unconfirmed(self, missing: int, sent: int, problem: str) -> None:
        """Say (once per kind of problem, not once per batch) that a reply left
        documents unconfirmed; they go to, or stay in, the spool."""
        self.counts.unconfirmed += missing
        if problem in self._reply_problems:
            return
        self._reply_problems.add(problem)
        self.warn(
            f"Elasticsearch's bulk reply did not confirm {missing} of {sent} document(s): "
            f"{problem}; they are kept in the spool {self.spool.directory} "
            "(further replies like this are only counted)"
        )

    def _delivered(self, resending: bool) -> None:
        """One document dealt with for good (indexed, duplicate or dead-lettered)."""
        if resending:
            self.counts.resent += 1
        else:
            self._advance(1)

    def _resend(self) -> None:
        """Resend spooled segments, oldest first, until the spool is empty or the
        node stops taking documents (then the segment goes back whole)."""
        while not self.down:
            claim = self.spool.claim()
            if claim is None:
                return
            ok = True
            batch: list[Entry] = []
            for record in claim.records():
                if record.document is None or record.index is None:
                    self.spool.dead_letter(None, None, record.error, record.raw)
                    self.counts.failed += 1
                    continue
                batch.append((record.index, record.document))
                if len(batch) >= self.batch_docs:
                    ok = not self._send(batch, resending=True)
                    batch = []
                    if not ok:
                        break
            if ok and batch:
                ok = not self._send(batch, resending=True)
            if ok:
                claim.done()
            else:
                claim.release()
                return
