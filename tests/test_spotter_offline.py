"""The spotters load and read with the network blocked: their models (and the
recogniser's dictionary) ship inside the wheels, nothing is fetched at run time."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

BLOCK = textwrap.dedent(
    """
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    """
)

SPOT = textwrap.dedent(
    """
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
    from textboost.text.render import FONT_PATH
    from textboost.text.spotter import {cls}

    im = Image.new("RGB", (320, 96), "white")
    ImageDraw.Draw(im).text((16, 20), "KA 5510", fill="black",
                            font=ImageFont.truetype(str(FONT_PATH), 44))
    words = {cls}(threads=1).spot(np.asarray(im))
    print("".join(w.text for w in words))
    """
)


@pytest.mark.parametrize(
    "cls, module",
    [("RapidOcrSpotter", "rapidocr_onnxruntime"), ("PpOcrV6Spotter", "rapidocr")],
)
def test_spotter_loads_and_reads_with_the_network_blocked(cls, module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    code = BLOCK + SPOT.format(cls=cls)
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "KA5510" in r.stdout.replace(" ", ""), (r.stdout, r.stderr[-1000:])
