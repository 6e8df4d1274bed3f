"""A whole rule pack: render every part for one policy, write it, check it.

Owns the pack's file layout (``suricata/...`` and ``sigma/...`` under the
output directory), the pack manifest (``v6sentry-pack.sha256``: what
``rules render`` wrote into a directory, so a later render removes exactly its
own stale files and ``rules check`` can tell stale or foreign files apart),
the committed pack (rendered from ``pcaps/policy.yaml``, the regression
network's policy, by ``make rules``), and the comparison a test makes between
the committed files and a fresh render. Each part decides its own files:
``suricata.render`` and ``sigma.render``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from detectors.detections import discover
from detectors.engine import known_signatures, known_thresholds
from detectors.policy import Policy, empty_policy, load_policy
from detectors.rules import sigma, suricata
from detectors.rules.context import build_context
from detectors.rules.render import DATA, REPO, SIGMA_DIR, SURICATA_DIR, RenderError, environment

# The committed pack is rendered for the regression network, so its Suricata rules can
# be replayed against pcaps/ as they are; sites render their own with --policy.
COMMITTED_POLICY = REPO / "pcaps" / "policy.yaml"
# The same policy as package data: the example a site starts from, and what the committed
# pack is rendered from where there is no checkout (`rules push` without --pack). A test
# keeps it byte-identical to COMMITTED_POLICY.
EXAMPLE_POLICY = DATA / "policy.yaml"
# What `rules render -o DIR` wrote, one "<sha256>  <path>" line per file (sha256sum's
# format, so `sha256sum -c` verifies a pack too). The committed pack has none: its files
# sit beside the templates, and `make rules` knows them from the render itself.
MANIFEST = "v6sentry-pack.sha256"
_MANIFEST_LINE = re.compile(r"([0-9a-f]{64})  (\S.*)")
# Top-level folders of a pack; a manifest path outside them is not one render wrote.
PACK_PARTS = ("suricata", "sigma")


class PackDirError(Exception):
    """A pack directory render must not write into, or a broken manifest; names the path."""


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
    return load_policy(policy_path, known_thresholds(specs), known_signatures(specs))


def render_pack(policy: Policy, lock: dict[int, dict[str, Any]] | None = None) -> Pack:
    """Render every part of the pack for ``policy`` (deterministic for the same inputs)."""
    for folder in (SURICATA_DIR, SIGMA_DIR):
        if not (folder / "templates").is_dir():
            # Package data: missing only from a broken install or a partial copy.
            raise RenderError(
                f"{folder / 'templates'}: rule templates not found; reinstall v6sentry "
                "(they are package data of detectors.rules)"
            )
    specs, _ = discover()
    ctx = build_context(specs, policy)
    env = environment(
        SURICATA_DIR / "templates",
        SIGMA_DIR / "templates",
        families={name: Path(spec.path).parent for name, spec in specs.items()},
    )
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


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _format_manifest(shas: Mapping[str, str]) -> str:
    return "".join(f"{sha}  {rel}\n" for rel, sha in sorted(shas.items()))


def manifest_text(files: Mapping[str, str]) -> str:
    """The manifest of a pack's files (sorted, so the same pack gives the same manifest)."""
    return _format_manifest({rel: digest(text) for rel, text in files.items()})


def read_manifest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file the manifest in ``root`` lists.

    ``PackDirError`` names the manifest line that is not ``<sha256>  <path>``, lists a
    path twice, or points outside the pack's folders (render would delete it).
    """
    path = root / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PackDirError(f"{path}: cannot read: {exc}") from exc
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = _MANIFEST_LINE.fullmatch(line)
        if not m:
            raise PackDirError(f"{path}:{n}: not '<sha256>  <path>' (written by `rules render`)")
        rel = PurePosixPath(m.group(2))
        if rel.is_absolute() or ".." in rel.parts or rel.parts[0] not in PACK_PARTS:
            raise PackDirError(
                f"{path}:{n}: {rel} is not a path under {' or '.join(PACK_PARTS)}/ of the pack"
            )
        if rel.as_posix() in out:
            raise PackDirError(f"{path}:{n}: {rel} listed twice")
        out[rel.as_posix()] = m.group(1)
    return out


def files_under(root: Path) -> list[str]:
    """Every file (anything but a directory) under ``root``, relative, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def write_pack_dir(pack: Pack, outdir: Path) -> list[str]:
    """Write ``pack`` into ``outdir`` with its manifest; returns the stale files removed.

    ``outdir`` must be missing, empty, or hold a pack render wrote (its manifest) and
    nothing else: render then removes the files the old pack had and this one has not.
    Anything else is refused with ``PackDirError`` before a file is touched, so render
    never deletes or overwrites a file it did not write.
    """
    if outdir.exists() and not outdir.is_dir():
        raise PackDirError(f"{outdir}: not a directory")
    present = files_under(outdir) if outdir.is_dir() else []
    old: dict[str, str] = {}
    if MANIFEST in present:
        old = read_manifest(outdir)
        foreign = [rel for rel in present if rel != MANIFEST and rel not in old]
        if foreign:
            more = f" and {len(foreign) - 5} more" if foreign[5:] else ""
            shown = ", ".join(foreign[:5]) + more
            raise PackDirError(
                f"{outdir}: holds files `rules render` did not write ({shown}; not in "
                f"{MANIFEST}); move them out or render into another directory"
            )
    elif present:
        raise PackDirError(
            f"{outdir}: not empty and not a pack written by `rules render` (no {MANIFEST}); "
            "render into a new or empty directory"
        )
    stale = sorted(set(old) - set(pack.files))
    outdir.mkdir(parents=True, exist_ok=True)
    # Until the old files are gone the manifest lists both packs, so a render that stops
    # half-way leaves a directory the next render still recognises as its own.
    both = {**old, **{rel: digest(text) for rel, text in pack.files.items()}}
    (outdir / MANIFEST).write_text(_format_manifest(both), encoding="utf-8")
    write_pack(pack, outdir)
    for rel in stale:
        path = outdir / rel
        path.unlink(missing_ok=True)
        # Drop the folders the stale files leave empty (sigma/rules/zeek for a policy
        # without Zeek rules), never outdir itself.
        for parent in path.parents:
            if parent == outdir or not parent.is_relative_to(outdir) or any(parent.iterdir()):
                break
            parent.rmdir()
    (outdir / MANIFEST).write_text(manifest_text(pack.files), encoding="utf-8")
    return stale


def check_manifest(root: Path) -> list[str]:
    """Problems with a pack directory against its manifest: files render did not write
    (stale ones from an older pack, or foreign ones), listed files that are missing or
    were changed since render wrote them."""
    if not (root / MANIFEST).is_file():
        return [
            f"{root / MANIFEST}: missing, so stale or foreign files cannot be told apart "
            "(render the pack with `v6sentry rules render`)"
        ]
    try:
        listed = read_manifest(root)
    except PackDirError as exc:
        return [str(exc)]
    present = set(files_under(root)) - {MANIFEST}
    problems = [
        f"{root / rel}: not in {MANIFEST}: a stale file of an older pack or not written by "
        "`rules render` (remove it, or render again)"
        for rel in sorted(present - set(listed))
    ]
    for rel, sha in sorted(listed.items()):
        path = root / rel
        if rel not in present:
            problems.append(f"{path}: missing (listed in {MANIFEST})")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            problems.append(f"{path}: changed since `rules render` wrote it ({MANIFEST})")
    return problems


def committed_pack() -> Pack:
    """A fresh render of the committed pack, with the committed lock.

    Reads the packaged copy of the policy, so it works without a checkout too.
    """
    policy = load(str(EXAMPLE_POLICY))
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
