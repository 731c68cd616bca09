"""``python -m interp_gan ...``: the ``interp-gan`` command, for a checkout that was not installed."""
import sys

from interp_gan.cli import main

sys.exit(main())
