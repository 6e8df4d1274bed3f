"""The observation contract: sub-threshold facts a detector reports without alerting.

Owns the ``Observation`` object and its ECS rendering (``event.kind: event``,
``event.dataset: v6sentry.observation``), written by ``v6sentry replay --events FILE``
and shipped to ``logs-v6sentry.event-<namespace>``. An observation is not an alert: it
says what one sensor saw in one closed window (for the sweep family, one source's
probing of one destination /64 with at least ``observe_min_targets`` distinct targets),
so that Elasticsearch can add up what several sensors saw (``v6sentry hunt``). Field
names are stable like the alert contract's; values may be added, never renamed.

Does not decide when to observe (the detections do, at window close, bounded per
window) and does not ship anything (``detectors.ship``). It lives with the index template its
documents go to (``detectors.es.events``) and imports no Elasticsearch client: the
detections, ``replay`` and ``live`` use it without the ``[es]`` extra.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import IO, Any

from detectors.alerts import ECS_VERSION, ecs_observer, ecs_ts

DATASET = "v6sentry.observation"


@dataclass(frozen=True, slots=True)
class Observation:
    """One observation; ``details`` is JSON-safe and lands under ``v6sentry.observation``."""

    kind: str
    ts_ns: int  # packet time of the last packet the observation covers
    start_ns: int
    end_ns: int
    key: str  # what the observation is about; one per key and window
    source_ip: str | None = None
    capture: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def base_id(self) -> str:
        """Same traffic, same id: the kind, the key and the window start."""
        raw = f"{DATASET}|{self.kind}|{self.key}|{self.start_ns}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    def event_id(self, observer: str | None) -> str:
        # Unlike an alert id, the sensor is part of it: two sensors seeing the same
        # traffic are two observations, and cross-sensor counting needs both documents.
        raw = f"{self.base_id()}|{observer or ''}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    def to_ecs(self, observer: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "@timestamp": ecs_ts(self.ts_ns),
            "ecs": {"version": ECS_VERSION},
            "event": {
                "kind": "event",
                "category": ["network"],
                "type": ["info"],
                "module": "v6sentry",
                "dataset": DATASET,
                "id": self.event_id(observer),
                "start": ecs_ts(self.start_ns),
                "end": ecs_ts(self.end_ns),
            },
            "network": {"type": "ipv6"},
            "observer": ecs_observer(observer),
        }
        if self.source_ip is not None:
            doc["source"] = {"ip": self.source_ip}
        if self.capture is not None:
            doc["file"] = {"path": self.capture}
        doc["v6sentry"] = {
            "observation": {"kind": self.kind, "key": self.key, **self.details},
        }
        return doc


class ObservationWriter:
    """Writes observations as ECS JSON lines; counts what it wrote."""

    def __init__(self, stream: IO[str], observer: str | None = None) -> None:
        self.stream = stream
        self.observer = observer
        self.written = 0

    def __call__(self, obs: Observation) -> None:
        doc = obs.to_ecs(self.observer)
        self.stream.write(json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n")
        self.written += 1
