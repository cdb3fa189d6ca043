"""``python -m vix_ttl.sim``: the ``vix-ttl`` command."""

import sys

from vix_ttl.sim.cli import main

sys.exit(main())
