"""``python -m sysid.cli``: the same as the ``sysid`` console script."""

import sys

from sysid.cli import main

if __name__ == "__main__":
    sys.exit(main())
