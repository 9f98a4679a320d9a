"""``python -m bench``: see bench/_cli.py."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
