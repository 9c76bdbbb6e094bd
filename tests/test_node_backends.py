"""The nodes on a chosen backend (issue 12): ``python -m uplink send|encode|verify`` and
``python -m downlink receive|decode`` with ``--backend onnxruntime`` never import torch
(subprocesses with torch blocked, as in test_export_onnx.py), the Jetson unit's options
exist, and a missing backend or missing graphs is one line with exit 2.

One export of the shipped model (the session's ``onnx_dir``) serves the module; small
images, ``--no-text`` except where the text path is under test. Edge tests: they also run
on the torch-free Python 3.10 of ``.ci/run``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import KODAK, REPO, TORCH
from textboost.codec.image import load_image

pytestmark = pytest.mark.edge

BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked in this test ({name})")
sys.meta_path.insert(0, _Block())
"""

TEXT_IMAGE = REPO / "link_sim" / "data" / "kodak_text" / "kodim23_text.png"


def _torch_free(module: str, argv: list[str]) -> list[str]:
    """A command line that runs ``python -m module argv`` with torch blocked and fails if
    torch was imported all the same."""
    code = BLOCK_TORCH + (
        "import runpy\n"
        f"sys.argv = [{module!r}, *{argv!r}]\n"
        "try:\n"
        f"    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
        "    rc = 0\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "sys.exit(rc)\n"
    )
    return [sys.executable, "-c", code]


def _run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("node_images")
    plain = root / "plain.png"  # no text: 128x96
    Image.fromarray(load_image(KODAK / "kodim07.png")[100:196, 200:328]).save(plain)
    text = root / "text.png"  # 384x256 with a rendered plate-like string (the text path)
    Image.fromarray(load_image(TEXT_IMAGE)[256:512, 192:576]).save(text)
    return {"plain": plain, "text": text}


def _ort(onnx_dir: Path) -> list[str]:
    return ["--backend", "onnxruntime", "--onnx-dir", str(onnx_dir)]


def test_node_imports_never_import_torch():
    code = BLOCK_TORCH + (
        "import uplink, uplink.cli, uplink.encode, downlink, downlink.cli, downlink.node\n"
        "import textboost.pipeline.verify, textboost.pipeline.loader\n"
        "from textboost.pipeline.loader import PipelineLoader\n"
        "PipelineLoader(backend='onnxruntime').model_id\n"
        "assert 'torch' not in sys.modules\n"
    )
    r = _run([sys.executable, "-c", code], timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_uplink_encode_and_downlink_decode_without_torch(onnx_dir, images, tmp_path):
    tbx, png = tmp_path / "a.tbx", tmp_path / "a.png"
    r = _run(_torch_free("uplink", ["encode", str(images["text"]), str(tbx),
                                    "--max-bytes", "900", "--json", *_ort(onnx_dir)]))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    enc = json.loads(r.stdout)
    assert enc["bytes"] == tbx.stat().st_size <= 900
    assert enc["backend"] == "onnxruntime" and enc["words"], enc  # the spotter ran, torch-free
    r = _run(_torch_free("downlink", ["decode", str(tbx), str(png), "--json", *_ort(onnx_dir)]))
    assert r.returncode == 0, r.stderr[-2000:]
    dec = json.loads(r.stdout)
    assert [w["text"] for w in dec["words"]] == enc["words"]
    assert np.asarray(Image.open(png)).shape == (256, 384, 3)
    if TORCH:  # the same stream decodes to the same image on torch (exact entropy path)
        from downlink.cli import main

        assert main(["decode", str(tbx), str(tmp_path / "t.png"), "--groups", "2"]) == 0
        assert main(["decode", str(tbx), str(tmp_path / "o.png"), "--groups", "2",
                     *_ort(onnx_dir)]) == 0  # fmt: skip
        a, b = (np.asarray(Image.open(tmp_path / n)).astype(int) for n in ("t.png", "o.png"))
        assert np.abs(a - b).max() <= 1


def test_uplink_encode_effort_without_torch_is_one_line(onnx_dir, images, tmp_path):
    """Refinement needs torch; a torch-free edge is told so in one line (issue 13)."""
    r = _run(_torch_free("uplink", ["encode", str(images["plain"]), str(tmp_path / "o.tbx"),
                                    "--rate", "0.3", "--no-text", "--effort", "1",
                                    *_ort(onnx_dir)]))  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "effort" in lines[0] and "torch" in lines[0], r.stderr


def test_uplink_encode_bpp_and_no_text(onnx_dir, images, tmp_path):
    from uplink.cli import main

    out = tmp_path / "b.tbx"
    assert main(["encode", str(images["plain"]), str(out), "--bpp", "0.3", "--no-text",
                 *_ort(onnx_dir)]) == 0  # fmt: skip
    assert out.stat().st_size <= 0.3 * 128 * 96 / 8
    from textboost.bitstream.container import Container

    assert Container.parse(out.read_bytes()).text in (b"", b"\x00")


def test_uplink_verify_without_torch(onnx_dir, images):
    r = _run(_torch_free("uplink", ["verify", "--image", str(images["plain"]), "--no-text",
                                    "--max-bytes", "400", "--json", *_ort(onnx_dir)]))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["ok"] and out["backend"] == "onnxruntime" and out["bytes"] <= 400
    assert out["image"] == "128x96" and out["psnr_db"] > 20
    assert {"load", "g_a_h_a", "budget_search_and_coding", "entropy_decoding", "g_s",
            "encode_total", "decode_total"} <= set(out["seconds"])  # fmt: skip
    assert all(v >= 0 for v in out["seconds"].values())
    assert "ocr_spot" not in out["seconds"]
    # which ONNX Runtime build and provider ran (a Jetson owner checks the GPU build here)
    assert out["providers"] == ["CPUExecutionProvider"] and out["onnxruntime"]
    assert len(out["onnxruntime_packages"]) == 1, out["onnxruntime_packages"]
    assert out["onnxruntime_packages"][0].split()[0] in ("onnxruntime", "onnxruntime-gpu")


def test_verify_human_report_and_shipped_image(onnx_dir, capsys):
    """The human report: one line per stage; the default image is shipped and has text."""
    from textboost.pipeline.verify import default_verify_image
    from uplink.cli import main

    assert default_verify_image().is_file() and "kodak_text" in str(default_verify_image())
    rc = main(["verify", "--image", str(KODAK / "kodim23.png"), "--no-text", "--max-bytes",
               "1500", *_ort(onnx_dir)])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and out[-1] == "OK"
    assert "onnxruntime (cpu" in out[0] and "PSNR" in out[0]
    assert out[1].startswith("  ONNX Runtime ") and "providers CPUExecutionProvider" in out[1]
    assert any(line.split()[0] == "g_s" and line.endswith(" ms") for line in out[1:-1])


def test_send_and_receive_over_udp_without_torch(onnx_dir, images, tmp_path):
    """The node options the Jetson bundle's field.yaml sets (its codec section), and a ground
    receiver on the same backend: one image over loopback, both processes torch-free."""
    from uplink.cli import build_parser

    parsed = build_parser().parse_args(
        ["send", "inbox", "--to", "h:1", "--max-bytes", "1", "--rate-bps", "1", "--cache-dir",
         "c", "--model", "m", "--backend", "onnxruntime", "--onnx-dir", "o", "--device", "cuda"]
    )  # fmt: skip
    assert (parsed.backend, parsed.device, str(parsed.onnx_dir)) == ("onnxruntime", "cuda", "o")

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    link = ["--mtu", "200", "--arq", "deferred", "--rto-s", "0.3", "--nak-timeout-s", "0.3"]
    model = str(REPO / "textboost" / "zoo" / "tb-small-cpu3.safetensors")
    ground = subprocess.Popen(
        _torch_free("downlink", ["receive", "--bind", "127.0.0.1", "--port", str(port), "--out",
                                 str(tmp_path / "rx"), "--expect", "1", "--timeout-s", "120",
                                 "--json", "--model", model, *_ort(onnx_dir), *link]),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        edge = _run(_torch_free("uplink", [
            "send", str(images["plain"]), "--to", f"127.0.0.1:{port}", "--max-bytes", "500",
            "--no-text", "--timeout-s", "120", "--json", "--cache-dir", str(tmp_path / "cache"),
            "--model", model, *_ort(onnx_dir), "--device", "cpu", *link,
        ]))  # fmt: skip
        out, err = ground.communicate(timeout=180)
    finally:
        ground.kill()
    assert edge.returncode == 0, edge.stderr[-2000:]
    assert ground.returncode == 0, err[-2000:]
    sent = json.loads(edge.stdout)
    assert sent["images"][0]["acked_s"] is not None and sent["images"][0]["bytes"] <= 500
    (res,) = json.loads(out)["results"]
    assert res["complete"] and res["decoded"] and res["error"] is None
    assert np.asarray(Image.open(res["png_path"])).shape == (96, 128, 3)


# -- one-line errors, exit 2 ------------------------------------------------------------


def _one_line_error(capsys, main, argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("node", ["uplink", "downlink"])
def test_missing_graphs_name_the_folder_and_the_command(node, images, tmp_path, capsys):
    import importlib

    main = importlib.import_module(f"{node}.cli").main
    missing = tmp_path / "no-export"
    tbx = tmp_path / "x.tbx"
    tbx.write_bytes(b"not used")
    argv = {
        "uplink": [
            ["encode", str(images["plain"]), str(tmp_path / "o.tbx"), "--max-bytes", "300"],
            ["verify"],
            ["send", str(images["plain"]), "--to", "127.0.0.1:9"],
        ],
        "downlink": [
            ["decode", str(tbx), str(tmp_path / "o.png")],
            ["receive", "--port", "0", "--out", str(tmp_path / "rx")],
        ],
    }[node]
    for args in argv:
        err = _one_line_error(capsys, main, [*args, "--backend", "onnxruntime",
                                             "--onnx-dir", str(missing)])  # fmt: skip
        assert str(missing / "textboost-onnx.json") in err, err
        assert "python -m export onnx" in err, err
        assert not (tmp_path / "o.tbx").exists() and not (tmp_path / "rx").exists()


def test_bad_backend_and_bad_device_are_one_line(onnx_dir, images, tmp_path, capsys):
    from downlink.cli import main as down
    from uplink.cli import main as up

    err = _one_line_error(capsys, up, ["encode", str(images["plain"]), str(tmp_path / "o.tbx"),
                                       "--max-bytes", "300", "--backend", "tpu"])  # fmt: skip
    assert "--backend" in err and "'tpu'" in err
    err = _one_line_error(capsys, down, ["decode", "x.tbx", "o.png", "--backend", "tpu"])
    assert "--backend" in err
    err = _one_line_error(capsys, up, ["verify", *_ort(onnx_dir), "--device", "tpu"])
    assert "device 'tpu'" in err
    err = _one_line_error(capsys, up, ["encode", str(images["plain"]), str(tmp_path / "o.tbx"),
                                       "--max-bytes", "300", "--model",
                                       str(tmp_path / "none.safetensors")])  # fmt: skip
    assert "none.safetensors does not exist" in err


def test_torch_backend_without_torch_is_one_line(images, tmp_path):
    r = _run(_torch_free("uplink", ["encode", str(images["plain"]), str(tmp_path / "o.tbx"),
                                    "--max-bytes", "300", "--backend", "torch"]))  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "torch is not installed" in r.stderr and "--backend onnxruntime" in r.stderr


def test_decode_errors_are_one_line(onnx_dir, tmp_path, capsys):
    from downlink.cli import main

    bad = tmp_path / "bad.tbx"
    bad.write_bytes(b"TBX garbage")
    err = _one_line_error(capsys, main, ["decode", str(bad), str(tmp_path / "o.png"),
                                         *_ort(onnx_dir)])  # fmt: skip
    assert str(bad) in err
    err = _one_line_error(capsys, main, ["decode", str(tmp_path / "none.tbx"), "o.png"])
    assert "none.tbx" in err


def test_export_without_fusion_serves_the_sender_not_the_fusing_receiver(
    onnx_dir, images, tmp_path, capsys
):
    """Fusion weights beside the model, an export without them: the sender (which never
    fuses) works; the receiver refuses in one line unless told --no-fusion."""
    import shutil

    from downlink.cli import main as down
    from textboost.codec.weights import DEFAULT_MODEL, fusion_path
    from uplink.cli import main as up

    if not fusion_path(DEFAULT_MODEL).is_file():
        pytest.skip("the shipped model has no fusion block")
    d = tmp_path / "onnx"
    shutil.copytree(onnx_dir, d)
    meta = json.loads((d / "textboost-onnx.json").read_text())
    del meta["graphs"]["fusion"]
    (d / "textboost-onnx.json").write_text(json.dumps(meta))
    tbx = tmp_path / "a.tbx"
    assert up(["encode", str(images["plain"]), str(tbx), "--max-bytes", "300", "--no-text",
               *_ort(d)]) == 0  # fmt: skip
    err = _one_line_error(capsys, down, ["decode", str(tbx), str(tmp_path / "a.png"), *_ort(d)])
    assert "fusion" in err and "python -m export onnx" in err
    assert down(["decode", str(tbx), str(tmp_path / "a.png"), "--no-fusion", *_ort(d)]) == 0
