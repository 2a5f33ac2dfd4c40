"""``python -m textsampling`` (and ``torchrun -m textsampling``): the ``textsampling`` console script."""

import sys

from textsampling.cli import main

sys.exit(main())
