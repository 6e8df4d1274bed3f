"""A whole rule pack: render every part for one policy, write it, check it.

Owns the pack's file layout (``suricata/...`` and ``sigma/...`` under the
output directory), the committed pack (rendered from ``pcaps/policy.yaml``,
the regression network's policy, by ``make rules``), and the comparison a test
makes between the committed files and a fresh render. Each part decides its
own files: ``suricata.render`` and ``sigma.render``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from detectors.detections import discover
from detectors.engine import known_thresholds
from detectors.policy import Policy, empty_policy, load_policy
from detectors.rules import sigma, suricata
from detectors.rules.context import build_context
from detectors.rules.render import REPO, SIGMA_DIR, SURICATA_DIR, RenderError, environment

# The committed pack is rendered for the regression network, so its Suricata rules can
# be replayed against pcaps/ as they are; sites render their own with --policy.
COMMITTED_POLICY = REPO / "pcaps" / "policy.yaml"


@dataclass(frozen=True, slots=True)
class Pack:
    """Rendered files (path relative to the pack root -> text) and the rule lock they imply."""

    files: dict[str, str]
    lock: dict[int, dict[str, Any]]
    context: dict[str, Any]


def load(policy_path: str | None) -> Policy:
    specs, _ = discover()
    if policy_path is None:
        return empty_policy()
    return load_policy(policy_path, known_thresholds(specs))


def render_pack(policy: Policy, lock: dict[int, dict[str, Any]] | None = None) -> Pack:
    """Render every part of the pack for ``policy`` (deterministic for the same inputs)."""
    for folder in (SURICATA_DIR, SIGMA_DIR):
        if not (folder / "templates").is_dir():
            # The templates are part of the checkout, not of the Python package.
            raise RenderError(
                f"{folder / 'templates'}: rule templates not found; `v6sentry rules` runs "
                "from a v6sentry checkout installed with `pip install -e` (make setup)"
            )
    specs, _ = discover()
    ctx = build_context(specs, policy)
    env = environment(SURICATA_DIR / "templates", SIGMA_DIR / "templates")
    files, new_lock = suricata.render(env, ctx, suricata.load_lock() if lock is None else lock)
    files.update(sigma.render(env, ctx))
    return Pack(dict(sorted(files.items())), new_lock, ctx)


def write_pack(pack: Pack, outdir: Path) -> list[Path]:
    """Write the pack's files under ``outdir``; returns the paths written."""
    written = []
    for rel, text in pack.files.items():
        path = outdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def committed_pack() -> Pack:
    """A fresh render of the committed pack, with the committed lock."""
    policy = load(str(COMMITTED_POLICY))
    # Name the policy by its repo path so the committed files do not depend on the checkout.
    rel = COMMITTED_POLICY.relative_to(REPO).as_posix()
    return render_pack(replace(policy, source=f"file:{rel}", path=rel))


def stale_files(pack: Pack, root: Path = REPO) -> list[str]:
    """Committed files that differ from ``pack`` (or are missing, or are left over)."""
    stale = [
        rel
        for rel, text in pack.files.items()
        if not (root / rel).exists() or (root / rel).read_text(encoding="utf-8") != text
    ]
    for part in sigma.GENERATED_DIRS + suricata.GENERATED_DIRS:
        for path in sorted((root / part).rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and rel not in pack.files:
                stale.append(f"{rel} (no longer rendered)")
    if suricata.load_lock() != pack.lock:
        stale.append(suricata.LOCK.relative_to(REPO).as_posix())
    return stale
