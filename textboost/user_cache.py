"""The per-user cache folder: exported graphs, TensorRT engines, the simulator's encodes.

Everything the project caches on a user's machine lives under one root, chosen as the XDG
base-directory convention says (never the current folder, which may be a read-only
checkout or a different one each run).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """``$TEXTBOOST_CACHE``, else ``$XDG_CACHE_HOME/textboost``, else ``~/.cache/textboost``.

    Read at each call, so a changed environment (a test, a service unit) takes effect."""
    env = os.environ.get("TEXTBOOST_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "textboost"
