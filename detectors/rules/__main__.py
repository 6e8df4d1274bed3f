"""``make rules``: re-render the committed rule pack and the README's coverage matrix.

Owns writing the committed pack (``suricata/v6sentry.rules``, its variables
include, ``data/suricata/rules.lock.yaml`` with bumped revisions, and the Sigma
rules and queries) from ``pcaps/policy.yaml``, removing rendered files that
are no longer produced, and splicing the coverage matrix into README.md.
``--check`` changes nothing and exits 1 when anything committed is stale.
"""

from __future__ import annotations

import argparse
import sys

from detectors.rules import suricata
from detectors.rules.matrix import markdown
from detectors.rules.pack import committed_pack, stale_files, write_pack
from detectors.rules.render import REPO, RenderError
from detectors.specdoc import README, splice

BEGIN = "<!-- BEGIN coverage: generated from the specs by `make rules`; do not edit -->"
END = "<!-- END coverage -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m detectors.rules",
        description="Re-render the committed rule pack and the README coverage matrix.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if anything is stale")
    args = parser.parse_args(argv)
    try:
        pack = committed_pack()
    except RenderError as exc:
        print(f"rules: error: {exc}", file=sys.stderr)
        return 2
    readme = README.read_text(encoding="utf-8")
    wanted = splice(readme, markdown(pack.context), BEGIN, END)
    stale = stale_files(pack)
    if wanted != readme:
        stale.append("README.md (coverage matrix)")
    if args.check:
        for item in stale:
            print(f"rules: stale: {item}", file=sys.stderr)
        if stale:
            print("rules: run `make rules` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    for item in stale:
        if item.endswith("(no longer rendered)"):
            (REPO / item.split(" ", 1)[0]).unlink()
    write_pack(pack, REPO)
    suricata.LOCK.write_text(suricata.dump_lock(pack.lock), encoding="utf-8")
    README.write_text(wanted, encoding="utf-8")
    for item in stale:
        print(f"rules: updated {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
