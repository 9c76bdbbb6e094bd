"""Write ``stream_pins.json``: SHA-256 of the streams of three shipped Kodak crops at three
rates, and of the latents they decode to.

    .venv/bin/python tests/data/make_stream_pins.py

``tests/test_exact.py`` encodes them again: any change to the exact parameter path that
moves one bit of a stream fails there. The values were written by the exact path as it
was before its array-speed rewrite (float64 products over every 3×3 tap), so the rewrite
is checked against its predecessor, not against itself. Run again only for a deliberate
change of the bitstream, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SOURCES = ("kodim07", "kodim12", "kodim20")
CROP = (101, 37, 330, 214)  # x, y, width, height: not a multiple of 64 either way
RATES_Q = (0, 26214, 65535)


def crop(name: str):
    from textboost.codec.image import load_image

    x, y, w, h = CROP
    return load_image(ROOT / "link_sim" / "data" / "kodak" / f"{name}.png")[y : y + h, x : x + w]


def pins(codec) -> dict[str, list[str]]:
    out = {}
    for name in SOURCES:
        an = codec.analyse(crop(name))
        for rate_q in RATES_Q:
            data = codec.encode_analysis(an, rate_q)
            _, y_q = codec.decode_latents(data)
            out[f"{name}@{rate_q}"] = [
                hashlib.sha256(data).hexdigest(),
                hashlib.sha256(y_q.astype("<i8").tobytes()).hexdigest(),
            ]
    return out


def main() -> None:
    from textboost import Codec

    codec = Codec.load()
    meta = {"made_by": "tests/data/make_stream_pins.py", "model_id": codec.model_id.hex(),
            "crop_xywh": list(CROP), "streams": pins(codec)}  # fmt: skip
    (HERE / "stream_pins.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
