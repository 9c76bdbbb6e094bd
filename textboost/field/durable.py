"""Files that survive a power cut whole or not at all (the field services' outputs)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TMP_SUFFIX", "write_durably"]

TMP_SUFFIX = ".tmp"  # a file being written; readers (and the drop folder) ignore it


def write_durably(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``path`` as ``path.tmp`` and rename it, so a reader never sees half a file;
    with ``fsync`` (default) the data and the rename are on disk when this returns."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
