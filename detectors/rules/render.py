"""Rendering the rule packs: the sandboxed Jinja2 environment and its escaping.

Owns the one template environment every pack part renders through: sandboxed
(templates cannot reach Python internals), ``StrictUndefined`` (a field the
spec or policy lacks fails the render instead of printing nothing), and the
filters that put policy text into each output language safely. Policy free
text reaches templates as ``PolicyText``; printing it without one of the
escaping filters is an error, so no template can forget to escape.

Rule syntax lives in the templates under ``data/suricata/templates`` and
``data/sigma/templates`` (package data beside this module, so an installed
``v6sentry`` renders from any directory); the parts (``suricata.py``, ``sigma.py``) decide which
templates to render and check what comes out. This module writes no files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from detectors.rules.context import PolicyText

# The checkout root: only `make rules` (the committed pack) and tests write or read there;
# an installed package has no checkout, so nothing a user runs may depend on it.
REPO = Path(__file__).resolve().parents[2]
# Rendering inputs (templates, pipelines, ATT&CK data, dates, the rule lock, the example
# policy) are package data, installed with the wheel.
DATA = Path(__file__).resolve().parent / "data"
SURICATA_DIR = DATA / "suricata"
SIGMA_DIR = DATA / "sigma"

# Control characters end a Suricata rule line or a comment; no escape exists for them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURICATA_ESCAPE = re.compile(r'([\\;"])')


class RenderError(Exception):
    """A pack that cannot be rendered; ``str()`` names the file, line and key when known."""


def _text(value: Any, what: str) -> str:
    text = str(value)
    if _CONTROL.search(text):
        where = value.where if isinstance(value, PolicyText) else "template"
        raise RenderError(
            f"{where}: {text!r} contains a newline or control character, "
            f"which cannot appear in {what}"
        )
    return text


def suricata_msg(value: Any) -> str:
    """Text for inside a quoted Suricata option (msg): ``\\``, ``;`` and ``"`` escaped."""
    return _SURICATA_ESCAPE.sub(r"\\\1", _text(value, "a Suricata rule"))


def suricata_comment(value: Any) -> str:
    """Text for a ``#`` comment in a rules or YAML file: anything but a line break."""
    return _text(value, "a one-line comment")


def yaml_str(value: Any) -> str:
    """A double-quoted YAML scalar (JSON string syntax is valid YAML)."""
    return json.dumps(str(value), ensure_ascii=True)


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _finalize(value: Any) -> Any:
    if isinstance(value, PolicyText):
        raise RenderError(
            f"{value.where}: policy text printed without an escaping filter "
            "(template bug: use suricata_msg, suricata_comment or yaml_str)"
        )
    return "" if value is None else value


# A template a family folder holds is named "@<family>/<file>" (FAMILY_PREFIX + family).
FAMILY_PREFIX = "@"


def family_template(family: str, name: str) -> str:
    """The environment's name for ``name`` in ``family``'s own folder."""
    return f"{FAMILY_PREFIX}{family}/{name}"


def environment(
    *template_dirs: Path, families: Mapping[str, Path] | None = None
) -> SandboxedEnvironment:
    """The sandboxed, strict environment over ``template_dirs``, plus each of
    ``families`` (name -> folder) as ``family_template(name, file)``."""
    central = jinja2.FileSystemLoader([str(d) for d in template_dirs])
    own = jinja2.PrefixLoader(
        {
            f"{FAMILY_PREFIX}{name}": jinja2.FileSystemLoader(str(d))
            for name, d in (families or {}).items()
        }
    )
    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader([own, central]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # rules and YAML, not HTML; escaping is per language, by filter
        finalize=_finalize,
    )
    env.filters.update(
        suricata_msg=suricata_msg,
        suricata_comment=suricata_comment,
        yaml_str=yaml_str,
        number=number,
    )
    return env


def render_template(env: jinja2.Environment, name: str, **data: Any) -> str:
    """Render one template; Jinja errors become ``RenderError`` naming the template."""
    try:
        return env.get_template(name).render(**data)
    except RenderError:
        raise
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name} not found") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{exc.filename or name}:{exc.lineno}: {exc.message}") from exc
    except (jinja2.UndefinedError, jinja2.exceptions.SecurityError) as exc:
        raise RenderError(f"{name}: {exc}") from exc
