import sys

from vix_ttl.cli import main

sys.exit(main())
