"""`python -m cefrtune ...`: the same command line as the `cefrtune` command (cefrtune.cli)."""

import sys

from cefrtune.cli import main

sys.exit(main())
