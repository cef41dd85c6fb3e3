"""``python -m volbacktest``: the command line."""

import sys

from volbacktest.engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
