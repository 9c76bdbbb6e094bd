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

Version 1 appends, after the strings, in the same row order::

    | flags byte × n: confidence q (bits 0-3, score ≈ q/15), styled (bit 4), coloured (bit 5)
    | per styled word 3 bytes: face | dark << 3 | inset << 4,  stretch | (dx+8) << 4,  dy+8
    | per coloured word 3 bytes: fg r | fg g << 4,  fg b | bg r << 4,  bg g | bg b << 4

(:class:`textboost.text.style.Style` says what the fields mean). A word without a style
is drawn as version 0 draws it; a version-0 section still decodes, to words with score 1.0
and no style.

Version 2 (what the encoder writes) is a prefix code: the words go row by row, most
valuable first (:func:`textboost.text.filter.word_rank`), and the body is always raw, so
the first bytes of the section that land are whole words and a lost tail loses only the
last words, as a lost y group loses only detail::

    n varint | per word: cx varint | cy varint | width varint | height varint | angle zz
             | UTF-8 length varint | string | flags byte | style 3 bytes if styled
             | colours 3 bytes if coloured

(the same fields as version 1; absolute centres cost about 2 bytes a word more than the
deltas, and brotli, which version 1 often picked, would hide the word boundaries). In
version 2 the flags byte's bits 6-7 hold how much of the receiver's block a word gets,
in thirds: 0 all of it, 1 two thirds, 2 one third, 3 none (:attr:`Word.restore`, chosen
by the sender on the original pixels, :mod:`textboost.fusion.choice`); a section whose
words all get the whole block is byte for byte what it was before the bits existed.
:func:`read_prefix` reads the whole words of any prefix. Decoding is bounded (words,
string length, decompressed size) and raises :class:`BitstreamError` naming the field.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import replace

import brotli

from textboost.bitstream.container import BitstreamError
from textboost.bitstream.varint import varint, zigzag
from textboost.text.filter import word_rank
from textboost.text.style import FACES, Style
from textboost.text.words import Word, oriented_rect, rect_quad

__all__ = [
    "MAX_BODY",
    "MAX_STRING_BYTES",
    "MAX_WORDS",
    "decode_words",
    "encode_words",
    "quantise_words",
    "read_prefix",
    "read_words",
    "restore_level",
    "with_restore",
]

VERSION = 2  # what the encoder writes; the decoder reads 0, 1 and 2
CONF_STEPS = 15
STYLED, COLOURED = 0x10, 0x20
RESTORE_SHIFT, RESTORE_STEPS = 6, 3  # version 2: bits 6-7, restore = 1 - level / 3
RESTORE_BITS = RESTORE_STEPS << RESTORE_SHIFT
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
    """(cy, cx, w, h, angle steps, UTF-8 string, word) on the grid, most valuable first
    (the order version 2 writes; version 1 wrote them by position)."""
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
    rows.sort(key=lambda r: (word_rank(r[6]), r[0], r[1]))
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
        replace(r[6], quad=_quad(*r[:4], _signed_angle(r[4]), step))
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
    body = bytearray(varint(len(words)))
    for cy, cx, w, h, angle, text, word in _rows(words, width, height, bits):
        st = word.style
        q = _clamp(round(float(word.score) * CONF_STEPS), 0, CONF_STEPS)
        body += varint(cx) + varint(cy) + varint(w) + varint(h) + zigzag(_signed_angle(angle))
        body += varint(len(text)) + text
        body.append(
            q
            | (STYLED if st else 0)
            | (COLOURED if st and st.coloured else 0)
            | restore_level(word.restore) << RESTORE_SHIFT
        )
        if st:
            body += bytes(
                (st.face | st.dark << 3 | st.inset << 4, st.stretch | (st.dx + 8) << 4, st.dy + 8)
            )
            if st.coloured:
                (fr, fg, fb), (br, bg, bb) = st.fg, st.bg
                body += bytes((fr | fg << 4, fb | br << 4, bg | bb << 4))
    return bytes([RAW | VERSION << 2 | (bits - MIN_BITS) << 4]) + body


def restore_level(restore: float) -> int:
    """The carried level (0..3) of a restore strength in [0, 1] (nearest third)."""
    if not 0.0 <= restore <= 1.0:
        raise ValueError(f"restore {restore!r} outside 0..1")
    return RESTORE_STEPS - round(restore * RESTORE_STEPS)


def with_restore(section: bytes, width: int, height: int, restore: list[float]) -> bytes:
    """A version-2 ``section`` with each word's restore strength (bits 6-7 of its flags
    byte, nearest third) set as ``restore`` says, in the section's order; no other bit
    changes."""
    if not section:
        if restore:
            raise ValueError(f"{len(restore)} restore strengths for 0 words")
        return section
    version = (section[0] >> 2) & 3
    if version != VERSION:
        raise ValueError(f"text section version {version}: only {VERSION} carries restore")
    at: list[int] = []
    words = _decode(section, width, height, prefix=False, flag_at=at)[0]
    if len(restore) != len(words):
        raise ValueError(f"{len(restore)} restore strengths for {len(words)} words")
    out = bytearray(section)
    for pos, r in zip(at, restore, strict=True):
        out[1 + pos] = out[1 + pos] & ~RESTORE_BITS | restore_level(r) << RESTORE_SHIFT
    return bytes(out)


def decode_words(section: bytes, width: int, height: int) -> list[Word]:
    """The words of a text section (an empty section: no words)."""
    return _decode(section, width, height, prefix=False)[0]


def read_prefix(data: bytes, width: int, height: int) -> tuple[list[Word], int | None]:
    """The whole words in the first bytes of a text section, and how many words the whole
    section holds (None: not known yet). A version-2 prefix yields its leading words in
    order; an older section yields its words only once it is whole.

    Raises:
        BitstreamError: the bytes that did arrive are malformed.
    """
    if not data:
        return [], None
    if (data[0] >> 2) & 3 < 2:
        try:
            words = decode_words(data, width, height)
        except BitstreamError:
            return [], None
        return words, len(words)
    return _decode(data, width, height, prefix=True)


def _decode(
    section: bytes, width: int, height: int, *, prefix: bool, flag_at: list[int] | None = None
) -> tuple[list[Word], int | None]:
    """The words (and word count) of a section; ``flag_at`` gathers where each version-2
    word's flags byte lies in the body."""
    if not section:
        return [], 0
    head = section[0]
    method, version, bits = head & 3, (head >> 2) & 3, (head >> 4) + MIN_BITS
    if version > VERSION:
        raise BitstreamError(f"text: payload version {version}, this decoder reads 0..{VERSION}")
    if bits > MAX_BITS:
        raise BitstreamError(f"text: grid bits {bits} outside {MIN_BITS}..{MAX_BITS}")
    if version == 2 and method != RAW:
        raise BitstreamError(f"text: version 2 with compression method {method}, expected 0 (raw)")
    body = _decompress(method, section[1:])
    r = _Reader(body)
    try:
        n = r.varint("word count")
    except _Truncated:
        if prefix:
            return [], None
        raise
    if n > MAX_WORDS:
        raise BitstreamError(f"text: word count {n} exceeds {MAX_WORDS}")
    top = 1 << bits
    step = max(width, height) / top
    if version == 2:
        words = []
        for i in range(n):
            try:
                words.append(_read_row(r, i, top, step, flag_at))
            except _Truncated:
                if prefix:
                    return words, n
                raise
    else:
        words = _read_columns(r, n, top, step)
        if version == 1:
            words = _read_styles(r, words)
    if r.pos != len(body):
        raise BitstreamError(f"text: {len(body) - r.pos} unexpected bytes after the last word")
    return words, n


def _read_row(
    r: _Reader, i: int, top: int, step: float, flag_at: list[int] | None = None
) -> Word:
    """One version-2 word (``flag_at``: append where its flags byte lies)."""
    cx = r.varint(f"word {i} centre x")
    cy = r.varint(f"word {i} centre y")
    w = r.varint(f"word {i} width")
    h = r.varint(f"word {i} height")
    angle = r.zigzag(f"word {i} angle")
    text = _string(r, i, r.varint(f"word {i} string length"))
    _check_geometry(i, cy, cx, w, h, angle, top)
    if flag_at is not None:
        flag_at.append(r.pos)
    flags = _flags(i, r.take(1, f"word {i} flags")[0], RESTORE_BITS)
    style = _style(r, i, flags) if flags & STYLED else None
    restore = 1.0 - (flags >> RESTORE_SHIFT) / RESTORE_STEPS
    return Word(_quad(cy, cx, w, h, angle, step), text, (flags & 0x0F) / CONF_STEPS, style, restore)


def _read_columns(r: _Reader, n: int, top: int, step: float) -> list[Word]:
    """The version-0 columns (version 1 appends its flags and styles after them)."""
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
    words = []
    for i in range(n):
        _check_geometry(i, cys[i], cxs[i], ws[i], hs[i], angles[i], top)
        text = _string(r, i, lengths[i])
        words.append(Word(_quad(cys[i], cxs[i], ws[i], hs[i], angles[i], step), text))
    return words


def _check_geometry(i: int, cy: int, cx: int, w: int, h: int, angle: int, top: int) -> None:
    for name, v, lo in (
        ("centre y", cy, 0),
        ("centre x", cx, 0),
        ("width", w, 1),
        ("height", h, 1),
    ):
        if not lo <= v <= top:
            raise BitstreamError(f"text: word {i} {name} {v} outside {lo}..{top} grid steps")
    if not -ANGLE_STEPS // 2 <= angle < ANGLE_STEPS // 2:
        raise BitstreamError(f"text: word {i} angle {angle} outside ±{ANGLE_STEPS // 2}")


def _string(r: _Reader, i: int, length: int) -> str:
    if length > MAX_STRING_BYTES:
        raise BitstreamError(
            f"text: word {i} string length {length} exceeds {MAX_STRING_BYTES} bytes"
        )
    raw = r.take(length, f"word {i} string")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BitstreamError(f"text: word {i} string is not UTF-8 ({e.reason})") from e


def read_words(section: bytes, width: int, height: int) -> tuple[list[Word], str | None]:
    """(words, None), or ([], why) for a section that does not decode: the receiver keeps
    the picture and logs why its words were lost, instead of failing."""
    try:
        return decode_words(section, width, height), None
    except BitstreamError as e:
        return [], f"text section unreadable, no words drawn: {e}"


def _read_styles(r: _Reader, words: list[Word]) -> list[Word]:
    """The version-1 columns: confidence and flags, styles, colours."""
    flags = [_flags(i, r.take(1, f"word {i} flags")[0]) for i in range(len(words))]
    styled = [i for i, f in enumerate(flags) if f & STYLED]
    styles = {i: _style_fields(r, i) for i in styled}
    for i in styled:
        if flags[i] & COLOURED:
            styles[i].update(_colour_fields(r, i))
    return [
        Word(w.quad, w.text, (f & 0x0F) / CONF_STEPS, Style(**styles[i]) if i in styles else None)
        for i, (w, f) in enumerate(zip(words, flags, strict=True))
    ]


def _flags(i: int, f: int, allowed: int = 0) -> int:
    """The flags byte, checked; ``allowed``: the bits above 5 this version defines."""
    if f & 0xC0 & ~allowed or (f & COLOURED and not f & STYLED) or f & 0x0F > CONF_STEPS:
        raise BitstreamError(f"text: word {i} flags 0x{f:02x} invalid")
    return f


def _style(r: _Reader, i: int, flags: int) -> Style:
    fields = _style_fields(r, i)
    if flags & COLOURED:
        fields.update(_colour_fields(r, i))
    return Style(**fields)


def _style_fields(r: _Reader, i: int) -> dict:
    a, b, c = r.take(3, f"word {i} style")
    face = a & 7
    if face >= len(FACES) or c > 15:
        raise BitstreamError(f"text: word {i} style bytes {a:02x}{b:02x}{c:02x} invalid")
    return dict(
        face=face, dark=bool(a & 8), inset=a >> 4, stretch=b & 15, dx=(b >> 4) - 8, dy=c - 8
    )


def _colour_fields(r: _Reader, i: int) -> dict:
    a, b, c = r.take(3, f"word {i} colours")
    return dict(fg=(a & 15, a >> 4, b & 15), bg=(b >> 4, c & 15, c >> 4))


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


def _clamp(v: int, lo: int, hi: int) -> int:
    return min(hi, max(lo, v))


class _Truncated(BitstreamError):
    """The bytes end inside a field: a prefix of the section, or a truncated one."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise _Truncated(f"text: truncated at {what} (byte {self.pos} of {len(self.data)})")
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
