"""``python -m link_sim SCENARIO.yaml`` and ``python -m link_sim sweep SCENARIO.yaml``."""

from __future__ import annotations

import sys

from link_sim.cli import main

if __name__ == "__main__":  # sweep workers are spawned and import this module
    sys.exit(main())
