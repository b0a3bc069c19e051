"""``python -m mridip``: the same command line as the ``mridip`` script."""

import sys

from mridip.cli import main

sys.exit(main())
