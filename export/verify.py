"""``python -m export verify``: the first thing a device owner runs after installing a bundle.

The round trip itself lives in :mod:`textboost.pipeline.verify`, shared with
``python -m uplink verify`` (the edge sender must not import ``export``'s build tools).
"""

from __future__ import annotations

from textboost.pipeline.verify import default_verify_image, format_verify, verify

__all__ = ["default_verify_image", "format_verify", "verify"]
