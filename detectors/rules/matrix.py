"""The coverage matrix: which engine can raise which v6sentry detection.

Owns the table (signature x engine) and its Markdown and JSON forms. Levels
come from each signature's ``coverage`` in its family spec, the single source
of truth; the tests prove them on real engines (``tests/test_suricata.py``
replays every regression capture through Suricata with the pack,
``tests/test_sigma.py`` runs the Sigma rules over v6sentry's alerts). Sigma
over v6sentry alerts covers every signature by construction, and Sigma over
Suricata EVE can only see what the Suricata pack raises, so those two
columns are derived, not declared. It renders nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENGINES = (
    ("v6sentry", "v6sentry"),
    ("suricata", "Suricata pack"),
    ("sigma_v6sentry", "Sigma on v6sentry alerts"),
    ("sigma_suricata", "Sigma on Suricata"),
    ("sigma_zeek", "Sigma on Zeek"),
)
_MARK = {"full": "yes", "partial": "partial", "none": "no"}


def rows(ctx: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per signature, in sid order: levels per engine and the reasons."""
    out = []
    for sid in sorted(ctx["signatures"]):
        sig = ctx["signatures"][sid]
        suricata = sig["coverage"]["suricata"]
        zeek = sig["coverage"]["zeek"]
        out.append(
            {
                "sid": sid,
                "category": sig["category"],
                "signature": sig["key"],
                "text": sig["text"],
                "levels": {
                    "v6sentry": "full",
                    "suricata": suricata["level"],
                    "sigma_v6sentry": "full",
                    "sigma_suricata": suricata["level"],
                    "sigma_zeek": zeek["level"],
                },
                "why": {"suricata": suricata["why"], "zeek": zeek["why"]},
            }
        )
    return out


def totals(table: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per engine, how many signatures are full, partial and none."""
    out: dict[str, dict[str, int]] = {}
    for key, _ in ENGINES:
        counts = {"full": 0, "partial": 0, "none": 0}
        for row in table:
            counts[row["levels"][key]] += 1
        out[key] = counts
    return out


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown(ctx: Mapping[str, Any]) -> str:
    """The matrix as Markdown: a summary, the table, then the reasons by engine."""
    table = rows(ctx)
    count = totals(table)
    lines = [
        f"{len(table)} signatures. yes: raised on exactly the regression captures where "
        "v6sentry raises it. partial: for the Suricata pack, raised only where v6sentry "
        "raises it, but not everywhere; for Zeek, an approximation that may also fire "
        "elsewhere. no: the engine's language or logs cannot express it. Reasons and known "
        "limits are listed below the table.",
        "",
        "| engine | yes | partial | no |",
        "|---|---|---|---|",
    ]
    for key, title in ENGINES:
        c = count[key]
        lines.append(f"| {title} | {c['full']} | {c['partial']} | {c['none']} |")
    lines += [
        "",
        "| sid | detection | signature | " + " | ".join(t for _, t in ENGINES) + " |",
        "|---|---|---|" + "---|" * len(ENGINES),
    ]
    for row in table:
        marks = " | ".join(_MARK[row["levels"][k]] for k, _ in ENGINES)
        lines.append(f"| {row['sid']} | `{row['category']}` | {row['signature']} | {marks} |")
    for engine, title in (("suricata", "Suricata pack"), ("zeek", "Sigma on Zeek")):
        lines += ["", f"Reasons and limits, {title}:", ""]
        for row in table:
            if row["why"][engine]:
                level = _MARK[row["levels"][f"sigma_{engine}" if engine == "zeek" else engine]]
                lines.append(
                    f"- {row['sid']} {row['signature']} ({level}): {_cell(row['why'][engine])}"
                )
    return "\n".join(lines) + "\n"
