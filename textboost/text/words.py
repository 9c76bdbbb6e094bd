"""A spotted word: its quadrilateral, its string and the spotter's confidence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from textboost.text.style import Style

__all__ = ["Word", "oriented_rect", "reading_order", "rect_quad"]


@dataclass(frozen=True, slots=True)
class Word:
    """One text instance in image pixels.

    ``quad`` is (4, 2) float: x, y of four corners, clockwise from the top-left of the
    text as read (ICDAR 2015 order: p0→p1 runs along the text). ``score`` is the
    spotter's confidence in [0, 1] (a version-1 text section carries it in 1/15 steps; a
    version-0 one carries none: 1.0). ``style``: how the receiver should draw it, chosen by
    the sender on the original pixels (None: the version-0 rendering). ``restore``: how
    much of the receiver's fusion block the word gets, 1 all of it, 0 none (the sender
    chooses, in thirds, so that the drawn glyphs bring the pixels closer to the photo,
    :mod:`textboost.fusion.choice`).
    """

    quad: np.ndarray
    text: str
    score: float = 1.0
    style: Style | None = None
    restore: float = 1.0

    def __post_init__(self) -> None:
        q = np.asarray(self.quad, dtype=np.float64)
        if q.shape != (4, 2):
            raise ValueError(f"word {self.text!r}: quad of shape {q.shape}, expected (4, 2)")
        object.__setattr__(self, "quad", q)

    @property
    def area(self) -> float:
        """Area of the quadrilateral in px² (shoelace formula)."""
        x, y = self.quad[:, 0], self.quad[:, 1]
        return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))

    @property
    def char_area(self) -> float:
        """Average character area (box area / characters): the paper's filter criterion."""
        return self.area / max(1, len(self.text))


def oriented_rect(quad: np.ndarray) -> tuple[float, float, float, float, float]:
    """(cx, cy, width, height, angle) of the rectangle the renderer draws for a quad.

    The angle (radians, image axes: x right, y down) is the principal edge's direction
    (paper §4.1), the reading direction p0→p1 averaged with p3→p2; width and height are
    the quad's extents along and across it: the smallest rectangle at that angle.
    """
    q = np.asarray(quad, dtype=np.float64)
    d = (q[1] - q[0] + q[2] - q[3]) / 2
    angle = float(np.arctan2(d[1], d[0])) if np.any(d) else 0.0
    u = np.array([np.cos(angle), np.sin(angle)])
    v = np.array([-u[1], u[0]])
    pu, pv = q @ u, q @ v
    cu, cv = (pu.max() + pu.min()) / 2, (pv.max() + pv.min()) / 2
    c = cu * u + cv * v
    return float(c[0]), float(c[1]), float(np.ptp(pu)), float(np.ptp(pv)), angle


def reading_order(quad: np.ndarray, n_chars: int) -> np.ndarray:
    """A detector's quad with its corners turned so that p0→p1 runs along the text.

    Detectors order corners geometrically (top-left first). A word of several characters
    whose box stands at least 1.5× taller than wide is read along its long side, as on
    a pole turned 90° (paper §4.1: the principal edge is the longer side).
    """
    q = np.asarray(quad, dtype=np.float64)
    top = np.hypot(*(q[1] - q[0] + q[2] - q[3])) / 2
    side = np.hypot(*(q[2] - q[1] + q[3] - q[0])) / 2
    return np.roll(q, -1, axis=0) if n_chars > 1 and side >= 1.5 * top else q


def rect_quad(cx: float, cy: float, width: float, height: float, angle: float) -> np.ndarray:
    """The four corners of an oriented rectangle, in reading order (top-left first)."""
    u = np.array([np.cos(angle), np.sin(angle)]) * width / 2
    v = np.array([-np.sin(angle), np.cos(angle)]) * height / 2
    c = np.array([cx, cy])
    return np.stack([c - u - v, c + u - v, c + u + v, c - u + v])
