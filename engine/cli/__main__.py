"""``python -m engine.cli``: the ``hardbench`` command line."""

import sys

from engine.cli import main

if __name__ == "__main__":  # the job entrypoints import every module: never run on import
    sys.exit(main())
