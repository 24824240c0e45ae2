import sys

from cefrtune.cli import main

sys.exit(main())
