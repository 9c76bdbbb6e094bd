"""``python -m link_sim SCENARIO.yaml`` and ``python -m link_sim sweep SCENARIO.yaml``."""

from __future__ import annotations

import sys

from link_sim.cli import main

sys.exit(main())
