"""``python -m vix_ttl``: the ``vix-ttl`` command, kept where the README has always run it."""

import sys

from vix_ttl.sim.cli import main

sys.exit(main())
