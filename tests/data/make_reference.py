"""Write the reference stream that pins the bitstream: ``reference.tbx`` and
``reference.json`` beside this file.

    .venv/bin/python tests/data/make_reference.py

It encodes a fixed 128×96 crop of a shipped Kodak image (``link_sim/data/kodak/kodim03.png``,
the crop below) with the shipped default model at rate 0.5, and records the SHA-256 of the
stream and of the codec's decoded pixels without the fusion block (HxWx3 uint8, row-major;
the pixels, not a PNG file, so that no PNG encoder's version enters the hash; the fusion
block is a receiver-side post-filter with its own weights file and tests).
``tests/test_reference_stream.py`` checks that encoding the crop again gives the same
bytes and that decoding the committed stream gives the same pixels. Run this script
again only for a deliberate change of the bitstream or the decoder, and say so in the
commit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SOURCE = "link_sim/data/kodak/kodim03.png"
CROP = (300, 200, 128, 96)  # x, y, width, height
RATE = 0.5


def reference_crop():
    from textboost.codec.image import load_image

    x, y, w, h = CROP
    return load_image(ROOT / SOURCE)[y : y + h, x : x + w].copy()


def main() -> None:
    from textboost import Pipeline

    codec = Pipeline.load()
    data = codec.encode(reference_crop(), rate=RATE)
    pixels = codec.decode(data, fusion=False)
    (HERE / "reference.tbx").write_bytes(data)
    meta = {
        "made_by": "tests/data/make_reference.py",
        "source": SOURCE,
        "crop_xywh": list(CROP),
        "rate": RATE,
        "model_id": codec.model_id.hex(),
        "tbx_bytes": len(data),
        "tbx_sha256": hashlib.sha256(data).hexdigest(),
        "decoded_shape": list(pixels.shape),
        "decoded_pixels_sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
    }
    (HERE / "reference.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
