"""spark-submit entry point: ``spark-submit main.py --strategy data`` (or ``python main.py``).

Argument parsing only; everything else lives in :mod:`sparkgrad.engine`.
"""

import sys

from sparkgrad.engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
