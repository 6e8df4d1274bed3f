"""The optional dependency groups (pip extras) and the error when one is missing.

Owns which sub-commands need which extra and the one line a command prints when its
extra is not installed. The sensor (``replay``, ``live``) needs only the core
dependencies; ``rules`` and ``hunt`` need ``[siem]`` (Jinja2, pySigma and its
Elasticsearch backend, the Elasticsearch client); shipping (``ship``, ``--es``) needs
``[es]``. pyproject.toml's ``[project.optional-dependencies]`` lists the same groups.
"""

from __future__ import annotations

import importlib.util
from typing import Final

# Extra -> (module imported, the distribution that provides it), checked in this order.
EXTRAS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "siem": (
        ("jinja2", "Jinja2"),
        ("sigma", "pySigma"),
        ("sigma.backends.elasticsearch", "pySigma-backend-elasticsearch"),
        ("elasticsearch", "elasticsearch"),
    ),
    "es": (("elasticsearch", "elasticsearch"),),
}


def _installed(module: str) -> bool:
    try:
        # find_spec, not import: the check must not load pySigma (slow) for nothing.
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package of a dotted name is missing
        return False


def missing(extra: str, command: str) -> str | None:
    """The one-line error for ``command`` when ``extra`` is not installed, else None."""
    for module, dist in EXTRAS[extra]:
        if not _installed(module):
            return (
                f"`v6sentry {command}` needs the [{extra}] extra ({dist} is not installed): "
                f"pip install 'v6sentry[{extra}]'"
            )
    return None


def needed(args_command: str | None, es_url: str | None) -> tuple[str, str] | None:
    """(extra, command words) a parsed command line needs beyond the core, if any."""
    if args_command in ("rules", "hunt"):
        return "siem", args_command
    if args_command == "ship":
        return "es", "ship"
    if args_command in ("replay", "live") and es_url:
        return "es", f"{args_command} --es"
    return None
