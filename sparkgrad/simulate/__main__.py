"""``python -m sparkgrad.simulate ...`` (see :mod:`sparkgrad.simulate.cli`)."""

import sys

from sparkgrad.simulate.cli import main

if __name__ == "__main__":
    sys.exit(main())
