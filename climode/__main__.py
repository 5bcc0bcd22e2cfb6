"""``python -m climode COMMAND [options]``: see ``climode.cli``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
