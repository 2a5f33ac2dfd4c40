"""``python -m textsampling.cli``: the same as the ``textsampling`` console script."""

import sys

from textsampling.cli import main

sys.exit(main())
