"""The training-time font pool: every usable face under some folders (system fonts).

Stage 2 draws its synthetic text in many more faces than the receiver's guidance set, so
that the fusion block cannot learn "this face means the map is right". These fonts are
used at training time only and never shipped (their licences vary: Debian's font
packages are free licences, but none is redistributed by this project).

A face is usable when its character map covers the generator's alphabet (A–Z, a–z, 0–9
and the punctuation it draws); symbol and digit-only faces are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["INSTALL_HINT", "REQUIRED_CHARS", "discover_fonts", "shortfall"]

INSTALL_HINT = "make training-fonts (scripts/install-training-fonts.sh, docs/text.md)"
REQUIRED_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-:.$ "
SUFFIXES = (".ttf", ".otf")


def _covers(path: Path) -> bool:
    from fontTools.ttLib import TTFont, TTLibError

    try:
        with TTFont(str(path), lazy=True, fontNumber=0) as f:
            cmap = f.getBestCmap() or {}
    except (TTLibError, OSError, KeyError, AssertionError, ValueError):
        return False
    return all(ord(c) in cmap for c in REQUIRED_CHARS)


def discover_fonts(dirs: Sequence[str | Path], exclude: Sequence[str] = ()) -> list[Path]:
    """Usable faces under ``dirs`` (recursively), sorted by file name so that the list, and
    so the generator's draws, do not depend on folder order; the first copy of a file name
    wins and names containing any of ``exclude`` are left out. Missing folders are skipped
    (a machine may lack a font package); an empty result is an error."""
    seen: dict[str, Path] = {}
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            if (
                p.suffix.lower() in SUFFIXES
                and p.name not in seen
                and not any(x.lower() in p.name.lower() for x in exclude)
                and _covers(p)
            ):
                seen[p.name] = p
    if not seen:
        raise FileNotFoundError(f"no usable fonts under {[str(d) for d in dirs]}")
    return [seen[k] for k in sorted(seen)]


def shortfall(found: int, dirs: Sequence[str | Path], expected: int) -> str | None:
    """One line to print when far fewer faces were found than the training expects (a
    machine without the font packages: the block would learn from a handful of faces)."""
    if found >= expected:
        return None
    return (
        f"warning: only {found} training faces under {', '.join(map(str, dirs))} "
        f"(expected at least {expected}); install them with {INSTALL_HINT}"
    )
