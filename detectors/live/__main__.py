"""``python -m detectors.live -i IFACE ...``: ``v6sentry live`` without the other commands.

Owns nothing but a parser around ``detectors.live.cli``'s options, so the live
mode can run (and be tested) on its own; ``v6sentry live`` is the same code.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from detectors.live import cli


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line and exit 2, as in ``v6sentry``."""

    def error(self, message: str) -> NoReturn:
        self.exit(cli.EXIT_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m detectors.live",
        description="v6sentry live: capture on interfaces and write one alert per line.",
        epilog=cli.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
