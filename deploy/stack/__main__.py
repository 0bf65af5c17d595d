"""``python -m deploy.stack prepare|up|down|status`` (what the Makefile runs)."""

import sys

from deploy.stack.cli import main

sys.exit(main())
