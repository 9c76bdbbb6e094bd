"""Entry point: `python -m textboost.eval rd|strip ...` (see textboost.eval.cli)."""

import sys

from textboost.eval.cli import main

sys.exit(main())
