"""The `.tbx` text section: spotted words in a few bytes.

The receiver draws each word as an oriented rectangle (paper §4.1), so that is what is
sent: centre, width and height on a grid of 2^B steps over the image's longer side
(B chosen so a step is at most one pixel), the angle in 1/256 turns, and the UTF-8
string. Layout of the body, column by column so that a general-purpose compressor
sees like next to like (``varint`` = unsigned LEB128, ``zz`` = zigzag varint)::

    n varint | cy deltas varint × n (sorted by cy, cx) | cx deltas zz × n
    | width varint × n | height varint × n | angle zz × n
    | UTF-8 byte lengths varint × n | the strings, concatenated

and the section is one byte ``method | version << 2 | (B - 6) << 4`` then the body, raw,
raw-deflate or brotli, whichever is smallest. No words → an empty section (0 bytes).

Version 1 (what the encoder writes) appends, after the strings, in the same row order::

    | flags byte × n: confidence q (bits 0-3, score ≈ q/15), styled (bit 4), coloured (bit 5)
    | per styled word 3 bytes: face | dark << 3 | inset << 4,  stretch | (dx+8) << 4,  dy+8
    | per coloured word 3 bytes: fg r | fg g << 4,  fg b | bg r << 4,  bg g | bg b << 4

(:class:`textboost.text.style.Style` says what the fields mean). A word without a style
is drawn as version 0 draws it; a version-0 section still decodes, to words with score 1.0
and no style. Decoding is bounded (words, string length, decompressed size) and raises
:class:`BitstreamError` naming the field.
"""

from __future__ import annotations

import math
import zlib

import brotli

from textboost.bitstream.container import BitstreamError
from textboost.bitstream.varint import varint, zigzag
from textboost.text.style import FACES, Style
from textboost.text.words import Word, oriented_rect, rect_quad

__all__ = [
    "MAX_BODY",
    "MAX_STRING_BYTES",
    "MAX_WORDS",
    "decode_words",
    "encode_words",
    "quantise_words",
    "read_words",
]

VERSION = 1  # what the encoder writes; the decoder reads 0 and 1
CONF_STEPS = 15
STYLED, COLOURED = 0x10, 0x20
RAW, DEFLATE, BROTLI = 0, 1, 2
MAX_WORDS = 255
MAX_STRING_BYTES = 255
MAX_BODY = 16 * 1024  # decompressed body cap: no bombs
ANGLE_STEPS = 256
MIN_BITS, MAX_BITS = 6, 21


def grid_bits(width: int, height: int) -> int:
    """Bits per grid axis so that one step is at most one pixel of the longer side."""
    return min(MAX_BITS, max(MIN_BITS, math.ceil(math.log2(max(width, height)))))


def _rows(words: list[Word], width: int, height: int, bits: int) -> list[tuple]:
    """(cy, cx, w, h, angle steps, UTF-8 string, word) on the grid, sorted as written."""
    step = max(width, height) / (1 << bits)
    top = 1 << bits
    rows = []
    for w in words:
        s = w.text.encode("utf-8")
        if len(s) > MAX_STRING_BYTES:
            raise ValueError(f"word {w.text[:20]!r}…: {len(s)} UTF-8 bytes > {MAX_STRING_BYTES}")
        cx, cy, rw, rh, ang = oriented_rect(w.quad)
        rows.append(
            (
                _clamp(round(cy / step), 0, top),
                _clamp(round(cx / step), 0, top),
                _clamp(round(rw / step), 1, top),
                _clamp(round(rh / step), 1, top),
                round(ang / (2 * math.pi) * ANGLE_STEPS) % ANGLE_STEPS,
                s,
                w,
            )
        )
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


def _signed_angle(a: int) -> int:
    return a - ANGLE_STEPS if a >= ANGLE_STEPS // 2 else a


def _quad(cy: int, cx: int, w: int, h: int, angle: int, step: float):
    return rect_quad(cx * step, cy * step, w * step, h * step, angle * 2 * math.pi / ANGLE_STEPS)


def quantise_words(
    words: list[Word], width: int, height: int, bits: int | None = None
) -> list[Word]:
    """``words`` as the receiver will see them (quads on the grid, in the section's
    order), keeping string, score and style: what the sender's matcher must fit."""
    bits = grid_bits(width, height) if bits is None else bits
    step = max(width, height) / (1 << bits)
    return [
        Word(_quad(*r[:4], _signed_angle(r[4]), step), r[6].text, r[6].score, r[6].style)
        for r in _rows(words, width, height, bits)
    ]


def encode_words(words: list[Word], width: int, height: int, bits: int | None = None) -> bytes:
    """The text section for ``words`` in a ``width``×``height`` image (b"" for none)."""
    if not words:
        return b""
    if len(words) > MAX_WORDS:
        raise ValueError(f"{len(words)} words, the text section carries at most {MAX_WORDS}")
    bits = grid_bits(width, height) if bits is None else bits
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"grid bits {bits} outside {MIN_BITS}..{MAX_BITS}")
    rows = _rows(words, width, height, bits)
    body = bytearray(varint(len(rows)))
    prev_y = prev_x = 0
    for cy, *_ in rows:
        body += varint(cy - prev_y)
        prev_y = cy
    for _, cx, *_ in rows:
        body += zigzag(cx - prev_x)
        prev_x = cx
    for col in (2, 3):
        for r in rows:
            body += varint(r[col])
    for r in rows:
        body += zigzag(_signed_angle(r[4]))
    for r in rows:
        body += varint(len(r[5]))
    for r in rows:
        body += r[5]
    styles = [r[6].style for r in rows]
    for r, st in zip(rows, styles, strict=True):
        q = _clamp(round(float(r[6].score) * CONF_STEPS), 0, CONF_STEPS)
        body.append(q | (STYLED if st else 0) | (COLOURED if st and st.coloured else 0))
    for st in styles:
        if st:
            body += bytes(
                (st.face | st.dark << 3 | st.inset << 4, st.stretch | (st.dx + 8) << 4, st.dy + 8)
            )
    for st in styles:
        if st and st.fg and st.bg:
            (fr, fg, fb), (br, bg, bb) = st.fg, st.bg
            body += bytes((fr | fg << 4, fb | br << 4, bg | bb << 4))
    body = bytes(body)
    candidates = {
        RAW: body,
        DEFLATE: _deflate(body),
        BROTLI: brotli.compress(body, mode=brotli.MODE_TEXT, quality=11, lgwin=10),
    }
    method = min(candidates, key=lambda m: (len(candidates[m]), m))
    return bytes([method | VERSION << 2 | (bits - MIN_BITS) << 4]) + candidates[method]


def decode_words(section: bytes, width: int, height: int) -> list[Word]:
    """The words of a text section (an empty section: no words)."""
    if not section:
        return []
    head = section[0]
    method, version, bits = head & 3, (head >> 2) & 3, (head >> 4) + MIN_BITS
    if version > VERSION:
        raise BitstreamError(f"text: payload version {version}, this decoder reads 0..{VERSION}")
    if bits > MAX_BITS:
        raise BitstreamError(f"text: grid bits {bits} outside {MIN_BITS}..{MAX_BITS}")
    body = _decompress(method, section[1:])
    r = _Reader(body)
    n = r.varint("word count")
    if n > MAX_WORDS:
        raise BitstreamError(f"text: word count {n} exceeds {MAX_WORDS}")
    top = 1 << bits
    cys, y = [], 0
    for i in range(n):
        y += r.varint(f"word {i} centre y")
        cys.append(y)
    cxs, x = [], 0
    for i in range(n):
        x += r.zigzag(f"word {i} centre x")
        cxs.append(x)
    ws = [r.varint(f"word {i} width") for i in range(n)]
    hs = [r.varint(f"word {i} height") for i in range(n)]
    angles = [r.zigzag(f"word {i} angle") for i in range(n)]
    lengths = [r.varint(f"word {i} string length") for i in range(n)]
    step = max(width, height) / top
    words = []
    for i in range(n):
        for name, v, lo in (
            ("centre y", cys[i], 0),
            ("centre x", cxs[i], 0),
            ("width", ws[i], 1),
            ("height", hs[i], 1),
        ):
            if not lo <= v <= top:
                raise BitstreamError(f"text: word {i} {name} {v} outside {lo}..{top} grid steps")
        if not -ANGLE_STEPS // 2 <= angles[i] < ANGLE_STEPS // 2:
            raise BitstreamError(f"text: word {i} angle {angles[i]} outside ±{ANGLE_STEPS // 2}")
        if lengths[i] > MAX_STRING_BYTES:
            raise BitstreamError(
                f"text: word {i} string length {lengths[i]} exceeds {MAX_STRING_BYTES} bytes"
            )
        raw = r.take(lengths[i], f"word {i} string")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BitstreamError(f"text: word {i} string is not UTF-8 ({e.reason})") from e
        words.append(Word(_quad(cys[i], cxs[i], ws[i], hs[i], angles[i], step), text))
    if version >= 1:
        words = _read_styles(r, words)
    if r.pos != len(body):
        raise BitstreamError(f"text: {len(body) - r.pos} unexpected bytes after the last string")
    return words


def read_words(section: bytes, width: int, height: int) -> tuple[list[Word], str | None]:
    """(words, None), or ([], why) for a section that does not decode: the receiver keeps
    the picture and logs why its words were lost, instead of failing."""
    try:
        return decode_words(section, width, height), None
    except BitstreamError as e:
        return [], f"text section unreadable, no words drawn: {e}"


def _read_styles(r: _Reader, words: list[Word]) -> list[Word]:
    """The version-1 columns: confidence and flags, styles, colours."""
    flags = [r.take(1, f"word {i} flags")[0] for i in range(len(words))]
    styled = [i for i, f in enumerate(flags) if f & STYLED]
    for i, f in enumerate(flags):
        if f & 0xC0 or (f & COLOURED and not f & STYLED) or f & 0x0F > CONF_STEPS:
            raise BitstreamError(f"text: word {i} flags 0x{f:02x} invalid")
    styles: dict[int, dict] = {}
    for i in styled:
        a, b, c = r.take(3, f"word {i} style")
        face = a & 7
        if face >= len(FACES) or c > 15:
            raise BitstreamError(f"text: word {i} style bytes {a:02x}{b:02x}{c:02x} invalid")
        styles[i] = dict(
            face=face, dark=bool(a & 8), inset=a >> 4, stretch=b & 15, dx=(b >> 4) - 8, dy=c - 8
        )
    for i in styled:
        if flags[i] & COLOURED:
            a, b, c = r.take(3, f"word {i} colours")
            styles[i]["fg"] = (a & 15, a >> 4, b & 15)
            styles[i]["bg"] = (b >> 4, c & 15, c >> 4)
    return [
        Word(w.quad, w.text, (f & 0x0F) / CONF_STEPS, Style(**styles[i]) if i in styles else None)
        for i, (w, f) in enumerate(zip(words, flags, strict=True))
    ]


def _decompress(method: int, data: bytes) -> bytes:
    if method == RAW:
        out = data
    elif method == DEFLATE:
        d = zlib.decompressobj(-15)
        try:
            out = d.decompress(data, MAX_BODY + 1)
        except zlib.error as e:
            raise BitstreamError(f"text: deflate body corrupt ({e})") from e
        if len(out) <= MAX_BODY and not d.eof:
            raise BitstreamError("text: deflate body truncated")
        if d.unused_data:
            raise BitstreamError(f"text: {len(d.unused_data)} bytes after the deflate body")
    elif method == BROTLI:
        d = brotli.Decompressor()
        try:
            out = d.process(data, output_buffer_limit=MAX_BODY + 1)
        except brotli.error as e:
            raise BitstreamError(f"text: brotli body corrupt ({e})") from e
        if len(out) <= MAX_BODY and not d.is_finished():
            raise BitstreamError("text: brotli body truncated")
    else:
        raise BitstreamError(f"text: compression method {method}, expected 0, 1 or 2")
    if len(out) > MAX_BODY:
        raise BitstreamError(f"text: body decompresses past the {MAX_BODY}-byte cap")
    return out


def _deflate(body: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return c.compress(body) + c.flush()


def _clamp(v: int, lo: int, hi: int) -> int:
    return min(hi, max(lo, v))




class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise BitstreamError(f"text: truncated at {what} (byte {self.pos} of {len(self.data)})")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self, what: str) -> int:
        value = shift = 0
        for _ in range(4):
            b = self.take(1, what)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
        raise BitstreamError(f"text: {what} varint longer than 4 bytes")

    def zigzag(self, what: str) -> int:
        u = self.varint(what)
        return u >> 1 if not u & 1 else -(u >> 1) - 1
