"""The observation index template.

Owns the composable index template for ``logs-v6sentry.event-*`` (field types of the
observation documents ``detectors.es.observations`` writes: keywords for prefixes and
sensors, numbers for counts, so the hunt's terms, cardinality and max aggregations work).
Like the alert template it is a plain index, not a data stream, above Elastic's built-in
``logs`` template. ``detectors.es.template`` installs it and ``detectors.ship``
delivers the documents (``_id`` = ``event.id``, so re-shipping does not duplicate).

Does not build observations.
"""

from __future__ import annotations

from typing import Any

from detectors.es import EVENT_PATTERN

TEMPLATE_NAME = "v6sentry-event"
TEMPLATE_PRIORITY = 200  # above Elastic's built-in logs-*-* (100): see the ship template
TEMPLATE_VERSION = 1

_KW: dict[str, Any] = {"type": "keyword", "ignore_above": 1024}


def template_body(pattern: str = EVENT_PATTERN) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "kind": _KW,
        "key": _KW,
        "source_prefix": _KW,
        "destination_prefix": _KW,
        "tier": _KW,
        "source_addresses": {"type": "long"},
        "more_source_addresses": {"type": "boolean"},
        "estimated_targets": {"type": "long"},
        "exact": {"type": "boolean"},
        "no_reply_ratio": {"type": "double"},
        "packets": {"type": "long"},
        "dropped": {"type": "long"},
        "emitted": {"type": "long"},
        "cap": {"type": "long"},
        "probes": {"type": "object", "dynamic": True},
        "window": {
            "properties": {
                "start": {"type": "double"},
                "end": {"type": "double"},
                "seconds": {"type": "double"},
            }
        },
    }
    return {
        "index_patterns": [pattern],
        "priority": TEMPLATE_PRIORITY,
        "version": TEMPLATE_VERSION,
        "_meta": {"managed_by": "v6sentry", "description": "v6sentry observations (ECS)"},
        "template": {
            "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
            "mappings": {
                "date_detection": False,
                "dynamic_templates": [
                    {"strings_as_keywords": {"match_mapping_type": "string", "mapping": _KW}},
                ],
                "properties": {
                    "@timestamp": {"type": "date_nanos"},
                    "event": {
                        "properties": {
                            "start": {"type": "date_nanos"},
                            "end": {"type": "date_nanos"},
                        }
                    },
                    "source": {"properties": {"ip": {"type": "ip"}}},
                    "observer": {"properties": {"name": _KW}},
                    "v6sentry": {"properties": {"observation": {"properties": obs}}},
                },
            },
        },
    }
