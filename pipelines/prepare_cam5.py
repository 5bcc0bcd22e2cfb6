"""``pipelines/prepare_cam5.py``: kept for the commands written before ``climode prepare``
(``climode.cli.prepare``), which it runs."""

import sys

from climode.cli.prepare import main

if __name__ == "__main__":
    sys.exit(main())
