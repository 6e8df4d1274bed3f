"""The README's detection reference, rendered from the family specs.

Owns turning every ``spec.yaml`` (and the decoder's tunables) into the
tables between the README's ``BEGIN detections`` / ``END detections``
markers, through ``templates/readme_detections.md.j2``, so the README never
disagrees with the specs. ``python -m detectors.specdoc`` rewrites the block
(``make docs``); ``--check`` exits 1 when it is stale. Does not document
anything else in the README.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jinja2

from detectors.detections import discover
from detectors.engine import DECODER_THRESHOLDS

BEGIN = "<!-- BEGIN detections: generated from the specs by `make docs`; do not edit -->"
END = "<!-- END detections -->"
README = Path(__file__).resolve().parent.parent / "README.md"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _oneline(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render() -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("detectors", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )
    env.filters["number"] = _number
    env.filters["oneline"] = _oneline
    specs, _ = discover()
    template = env.get_template("readme_detections.md.j2")
    return template.render(
        families=[specs[name] for name in sorted(specs)],
        decoder=list(DECODER_THRESHOLDS.values()),
    )


def splice(readme: str, block: str, begin: str = BEGIN, end: str = END) -> str:
    """``readme`` with the text between the markers replaced by ``block``."""
    head, sep, rest = readme.partition(begin)
    if not sep or end not in rest:
        raise ValueError(f"README has no '{begin}' ... '{end}' block")
    _, _, tail = rest.partition(end)
    return f"{head}{begin}\n{block.strip()}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the README's detection tables.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    args = parser.parse_args(argv)
    current = README.read_text(encoding="utf-8")
    wanted = splice(current, render())
    if args.check:
        if wanted != current:
            print("README.md detection tables are stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
