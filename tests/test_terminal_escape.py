"""Words carried over the link never reach the operator's terminal raw (issue 22 item 14):
``textboost info``, ``downlink decode`` and ``downlink receive`` print ESC, BEL, C1
controls and bidi overrides as escapes, through one helper (``textboost.cli.printable``)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import ROOT, run_module
from textboost.bitstream.container import Container, Header
from textboost.cli import printable
from textboost.text.payload import encode_words
from textboost.text.words import Word

# retitle the terminal, ring the bell, CSI via C1, reorder the line, a line separator
HOSTILE = ["\x1b]0;owned\x07", "\x1b[2J\x1b[31mRED", "\x9b31m", "EXIT\u202e21", "a\u2028b"]
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u2028")
UNSAFE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}

@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


def quad(x: float, y: float) -> np.ndarray:
    return np.array([[x, y], [x + 40, y], [x + 40, y + 12], [x, y + 12]], float)


def hostile_words(width: int, height: int) -> bytes:
    words = [Word(quad(4 + 10 * i, 4 + 14 * i), w) for i, w in enumerate(HOSTILE)]
    return encode_words(words, width, height)


def wait_bound(port: int, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Until ``proc`` has bound UDP ``port`` on loopback (our own bind then fails)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and proc.poll() is None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing bound port {port}: {proc.poll()}")


def assert_escaped(out: str) -> None:
    assert not any(c in out for c in RAW), repr(out)
    assert "\\x1b]0;owned\\x07" in out and "EXIT\\u202e21" in out and "\\x9b31m" in out


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_printable_leaves_no_control_format_or_separator_characters(text):
    out = printable(text)
    assert not any(unicodedata.category(c) in UNSAFE for c in out)
    if text.isprintable():
        assert out == text  # words in any script print as they are
    for c in text:  # each unsafe character is written as its code point
        if unicodedata.category(c) in UNSAFE:
            assert f"{ord(c):02x}" in out


def test_textboost_info_escapes_the_words(tmp_path):
    header = Header(model_id=b"TST1", width=160, height=96, rate=500, n_groups=1)
    tbx = tmp_path / "hostile.tbx"
    c = Container(header=header, text=hostile_words(160, 96), z=b"z" * 20, groups=(b"g" * 50,))
    tbx.write_bytes(c.to_bytes())
    r = run_module("textboost", "info", str(tbx))
    assert r.returncode == 0, r.stderr
    assert_escaped(r.stdout)


def test_downlink_decode_escapes_the_words(tmp_path, codec, small_image, capsys):
    """A real stream with the hostile words in its text section, decoded by the real codec."""
    from downlink.cli import main

    real = Container.parse(codec.encode(small_image, rate=0.5))
    h = real.header
    text = hostile_words(h.width, h.height)
    tbx = tmp_path / "hostile.tbx"
    tbx.write_bytes(Container(header=h, text=text, z=real.z, groups=real.groups).to_bytes())
    assert main(["decode", str(tbx), str(tmp_path / "o.png"), "--no-fusion"]) == 0
    assert_escaped(capsys.readouterr().out)


def test_downlink_receive_escapes_the_words(tmp_path):
    """``downlink receive`` prints each bundle's words as its text section lands and again in
    the summary; the bundle comes from a real sender over UDP on loopback."""
    from textboost.protocol import LinkConfig
    from uplink import UplinkNode
    from uplink.udp import UdpUplink, parse_host_port

    header = Header(model_id=b"TST1", width=160, height=96, rate=500, n_groups=1)
    c = Container(header=header, text=hostile_words(160, 96), z=b"z" * 20, groups=(b"g" * 50,))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    link = ["--mtu", "200", "--arq", "deferred", "--rto-s", "0.3", "--nak-timeout-s", "0.3"]
    ground = subprocess.Popen(
        [sys.executable, "-m", "downlink", "receive", "--bind", "127.0.0.1", "--port", str(port),
         "--out", str(tmp_path / "rx"), "--expect", "1", "--timeout-s", "60", "--no-decode",
         *link],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_bound(port, ground)
        cfg = LinkConfig(mtu_bytes=200, arq="deferred", rto_s=0.3, nak_timeout_s=0.3)
        edge = UplinkNode(cfg)
        edge.store("hostile.tbx", c.to_bytes(), 0.0)
        with UdpUplink(edge, parse_host_port(f"127.0.0.1:{port}"), rate_bps=400_000) as tx:
            assert tx.run(timeout_s=60.0)
        out, err = ground.communicate(timeout=60)
    finally:
        ground.kill()
    assert ground.returncode == 0, err
    assert out.count("owned") == 2  # the text line and the summary
    assert_escaped(out)
