"""``python -m detectors``: the same as the ``v6sentry`` command."""

import sys

from detectors.cli import main

sys.exit(main())
