"""ONNX export (issue 12): parity with torch, the onnxruntime backend, torch-free loading,
the cross-backend exactness claim, and clear errors for missing, wrong or corrupt graphs.

One export of the shipped model (with a fusion block beside a copy of it) serves the
module; real ONNX Runtime sessions throughout, on small Kodak crops.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import KODAK, REPO
from textboost.codec.image import load_image
from textboost.codec.weights import DEFAULT_MODEL

torch = pytest.importorskip("torch")

MODEL_NAME = DEFAULT_MODEL.name


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """A model copy with trained-looking fusion weights beside it, exported by the CLI."""
    from textboost.codec.weights import ModelFile, fusion_path
    from textboost.fusion.model import FusionBlock
    from textboost.fusion.runtime import save_fusion

    root = tmp_path_factory.mktemp("export")
    model_path = root / MODEL_NAME
    shutil.copy(DEFAULT_MODEL, model_path)
    gen = torch.Generator().manual_seed(0)
    block = FusionBlock()
    with torch.no_grad():  # a non-identity block, so that fusion parity means something
        block.project.weight.copy_(torch.randn(block.project.weight.shape, generator=gen) * 0.05)
    save_fusion(block, fusion_path(model_path), ModelFile.load(model_path).model_id)
    images = []
    for name, (y, x) in {"kodim23.png": (200, 300), "kodim03.png": (100, 200)}.items():
        p = root / f"crop_{name}"
        Image.fromarray(load_image(KODAK / name)[y : y + 96, x : x + 160]).save(p)
        images.append(str(p))
    out = root / "onnx"
    from export.__main__ import main

    rc = main(
        ["onnx", "--model", str(model_path), "--out", str(out), "--fp16", "--images", *images]
    )
    assert rc == 0
    return {"model": model_path, "dir": out, "root": root}


@pytest.fixture(scope="module")
def codecs(exported):
    from textboost import Pipeline

    return {
        "torch": Pipeline.load(exported["model"], backend="torch"),
        "onnxruntime": Pipeline.load(
            exported["model"], backend="onnxruntime", onnx_dir=exported["dir"]
        ),
    }


def _images() -> list[np.ndarray]:
    crops = {"kodim23.png": (180, 260, 100, 150), "kodim07.png": (40, 300, 128, 96),
             "kodim20.png": (300, 10, 70, 200)}  # fmt: skip
    return [load_image(KODAK / n)[y : y + h, x : x + w].copy() for n, (y, x, h, w) in crops.items()]


def test_metadata_records_opset_model_id_and_parity(exported):
    meta = json.loads((exported["dir"] / "textboost-onnx.json").read_text())
    assert meta["format"] == "textboost-onnx/1"
    assert meta["opset"] == 17
    from textboost.codec.weights import ModelFile

    assert meta["model_id"] == ModelFile.load(exported["model"]).model_id.hex()
    assert set(meta["graphs"]) == {"sender", "receiver", "fusion"}
    outputs = meta["parity"]["outputs"]
    assert set(outputs) == {"y", "z", "x_hat", "fused"}
    for name, s in outputs.items():
        assert 0 <= s["mean_abs"] <= s["max_abs"] < 1e-3, name
        assert s["values"] > 0
    # each image at two sizes: one trace serves several heights and widths
    assert len({tuple(s) for s in meta["parity"]["sizes"]}) >= 2


def test_float16_graphs_for_strongly_typed_tensorrt(exported):
    import onnx

    from textboost.codec.exported import read_export
    from textboost.codec.weights import ModelFile

    meta = read_export(exported["dir"], ModelFile.load(exported["model"]).model_id)
    assert set(meta["paths_fp16"]) == {"sender", "receiver", "fusion"}
    for role, path in meta["paths_fp16"].items():
        m = onnx.load(str(path))
        assert {i.data_type for i in m.graph.initializer} == {onnx.TensorProto.FLOAT16}, role
        for t in list(m.graph.input) + list(m.graph.output):  # float32 at the boundary
            assert t.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    for name, s in meta["parity_fp16"]["outputs"].items():
        assert s["max_abs"] < 0.1, name


def test_graphs_have_dynamic_height_and_width(exported):
    import onnx

    for name in ("sender.onnx", "receiver.onnx", "fusion.onnx", "sender.fp16.onnx"):
        m = onnx.load(str(exported["dir"] / name))
        for t in list(m.graph.input) + list(m.graph.output):
            dims = t.type.tensor_type.shape.dim
            assert dims[0].dim_value == 1
            assert dims[2].dim_param and dims[3].dim_param, (name, t.name)


def test_onnx_transforms_match_torch(codecs):
    t, o = codecs["torch"].codec.transforms, codecs["onnxruntime"].codec.transforms
    x = np.random.default_rng(1).random((1, 3, 128, 192), dtype=np.float32)
    (yt, zt), (yo, zo) = t.analysis(x), o.analysis(x)
    assert yo.shape == yt.shape == (1, 8, 12, 128) and yo.dtype == np.float64
    assert zo.shape == zt.shape and np.abs(yo - yt).max() < 1e-3
    assert np.abs(zo - zt).max() < 1e-3
    y_hat = np.floor(yt * 4 + 0.5) / 4
    xs_t, xs_o = t.synthesis(y_hat), o.synthesis(y_hat)
    assert xs_o.shape == xs_t.shape == (1, 3, 128, 192) and xs_o.dtype == np.float32
    assert np.abs(xs_o - xs_t).max() < 1e-3


def test_fusion_adapter_matches_apply_fusion(codecs, kodim23):
    from textboost.fusion.runtime import apply_fusion

    dec = kodim23[:300, :200].copy()  # > one 256-row stripe
    g = np.zeros(dec.shape[:2], np.float32)
    g[40:70, 20:180] = 1.0
    g[260:290, 10:150] = 0.5
    ref = apply_fusion(codecs["torch"].fusion, dec, g)
    got = codecs["onnxruntime"].fusion.fuse(dec, g)
    assert got.shape == ref.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - ref).max() <= 1
    assert (ref != dec).any()  # the block does something here
    with pytest.raises(ValueError, match="guidance"):
        codecs["onnxruntime"].fusion.fuse(dec, g[:10])


def test_cross_backend_streams_decode_to_the_same_latents(codecs):
    """The exactness claim: a stream from either backend decodes to the same ŷ through
    either backend, and to the ŷ its encoder coded."""
    n = 0
    for img in _images():
        for rate in (0.0, 0.45, 1.0):
            for enc_name, enc in codecs.items():
                an = enc.analyse(img, text=False)
                rq = round(rate * 65535)
                _, _, y_coded = enc.codec.code_latents(an, rq)
                data = enc.codec.encode_analysis(an, rq)
                for dec in codecs.values():
                    _, y_q = dec.codec.decode_latents(data)
                    assert np.array_equal(y_q, y_coded), (enc_name, rate)
                n += 1
    assert n == 18


def test_decoded_images_agree_across_backends(codecs):
    img = _images()[0]
    data = codecs["onnxruntime"].encode(img, rate=0.6, text=False)
    for fusion in (False, True):
        a = codecs["torch"].decode(data, fusion=fusion)
        b = codecs["onnxruntime"].decode(data, fusion=fusion)
        assert a.shape == b.shape == img.shape
        assert np.abs(a.astype(int) - b).max() <= 1


def test_refined_streams_decode_identically_across_backends(codecs):
    """effort > 0 changes only the sender's choice of y (issue 13): a refined stream from
    either backend (refinement runs in torch for both) decodes to the ŷ its encoder
    coded through either backend."""
    from textboost.codec.refine import refine_analysis

    img = _images()[0]
    for enc_name, enc in codecs.items():
        an = enc.analyse(img, text=False)
        ref = refine_analysis(enc.codec, an, 30000, 1)
        _, _, y_coded = enc.codec.code_latents(ref, 30000)
        data = enc.codec.encode_analysis(ref, 30000)
        assert data != enc.codec.encode_analysis(an, 30000), enc_name  # refinement changed it
        for dec_name, dec in codecs.items():
            assert np.array_equal(dec.codec.decode_latents(data)[1], y_coded), (enc_name, dec_name)


BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked in this test ({name})")
sys.meta_path.insert(0, _Block())
"""


def test_onnx_backend_never_imports_torch(exported):
    code = (
        BLOCK_TORCH
        + f"""
import numpy as np
from textboost import Pipeline
from textboost.codec.image import load_image
codec = Pipeline.load({str(exported["model"])!r}, backend="onnxruntime",
                   onnx_dir={str(exported["dir"])!r})
assert codec.fusion is not None
img = load_image({str(KODAK / "kodim23.png")!r})[200:280, 300:420]
data = codec.encode(img, rate=0.5, text=False)
out = codec.decode(data)
assert out.shape == img.shape, out.shape
data2 = codec.encode_to_budget(img, max_bytes=400, text=False)
assert len(data2) <= 400
assert "torch" not in sys.modules
print("ok", len(data))
"""
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("ok")


def test_torch_blocker_really_blocks():
    r = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + "import torch"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode != 0 and "torch is blocked" in r.stderr


# -- errors ------------------------------------------------------------------------------


def _copy_export(exported, tmp_path) -> Path:
    d = tmp_path / "onnx"
    shutil.copytree(exported["dir"], d)
    return d


def test_missing_export_names_file_and_command(exported, tmp_path):
    from textboost import Pipeline
    from textboost.codec.exported import ExportError

    with pytest.raises(ExportError) as e:
        Pipeline.load(exported["model"], backend="onnxruntime", onnx_dir=tmp_path / "nothing")
    msg = str(e.value)
    assert "textboost-onnx.json" in msg and "python -m export onnx" in msg
    assert str(exported["model"]) in msg


def test_default_onnx_dir_is_keyed_by_model_id(exported, tmp_path, monkeypatch):
    from textboost import Pipeline
    from textboost.codec.exported import ExportError, default_onnx_dir
    from textboost.codec.weights import ModelFile

    monkeypatch.setenv("TEXTBOOST_CACHE", str(tmp_path))
    mid = ModelFile.load(exported["model"]).model_id
    assert default_onnx_dir(mid) == tmp_path / "onnx" / mid.hex()
    with pytest.raises(ExportError, match=mid.hex()):
        Pipeline.load(exported["model"], backend="onnxruntime")
    shutil.copytree(exported["dir"], default_onnx_dir(mid))
    codec = Pipeline.load(exported["model"], backend="onnxruntime")
    assert codec.codec.transforms.dir == default_onnx_dir(mid)


def test_wrong_model_id_is_refused(exported, tmp_path):
    from textboost import Pipeline
    from textboost.codec.exported import ExportError

    d = _copy_export(exported, tmp_path)
    meta = json.loads((d / "textboost-onnx.json").read_text())
    meta["model_id"] = "deadbeef"
    (d / "textboost-onnx.json").write_text(json.dumps(meta))
    with pytest.raises(ExportError, match="exported from model deadbeef"):
        Pipeline.load(exported["model"], backend="onnxruntime", onnx_dir=d)


def test_corrupt_onnx_is_refused(exported, tmp_path):
    from textboost import Pipeline
    from textboost.codec.exported import ExportError, sha256_file

    d = _copy_export(exported, tmp_path)
    sender = d / "sender.onnx"
    sender.write_bytes(sender.read_bytes()[:5000])
    with pytest.raises(ExportError, match=r"sender\.onnx: checksum mismatch"):
        Pipeline.load(exported["model"], backend="onnxruntime", onnx_dir=d)
    # a garbage graph whose checksum was updated too: ONNX Runtime's refusal, named
    meta = json.loads((d / "textboost-onnx.json").read_text())
    meta["graphs"]["sender"]["sha256"] = sha256_file(sender)
    (d / "textboost-onnx.json").write_text(json.dumps(meta))
    codec = Pipeline.load(exported["model"], backend="onnxruntime", onnx_dir=d)
    with pytest.raises(ExportError, match=r"sender\.onnx: ONNX Runtime cannot load it"):
        codec.encode(_images()[0], rate=0.5, text=False)


def test_export_without_fusion_is_refused_when_weights_exist(exported, tmp_path):
    from textboost import Pipeline
    from textboost.codec.exported import ExportError

    d = _copy_export(exported, tmp_path)
    meta = json.loads((d / "textboost-onnx.json").read_text())
    del meta["graphs"]["fusion"]
    (d / "textboost-onnx.json").write_text(json.dumps(meta))
    with pytest.raises(ExportError, match=r"fusion\.safetensors exists beside the model"):
        Pipeline.load(exported["model"], backend="onnxruntime", onnx_dir=d)
    codec = Pipeline.load(exported["model"], backend="onnxruntime", onnx_dir=d, fusion=False)
    assert codec.fusion is None


def test_unknown_backend_and_missing_gpu_provider(exported):
    from textboost import Pipeline

    with pytest.raises(ValueError, match="backend 'tpu' unknown"):
        Pipeline.load(exported["model"], backend="tpu", onnx_dir=exported["dir"])
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
            Pipeline.load(
                exported["model"], backend="onnxruntime", device="cuda", onnx_dir=exported["dir"]
            )


def test_cli_errors_exit_2_with_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "export", "onnx", "--model", str(tmp_path / "none.safetensors"),
         "--out", str(tmp_path / "o")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "does not exist" in r.stderr


def test_textboost_cli_backend_option_without_torch(exported, tmp_path):
    """`python -m textboost --backend onnxruntime encode/decode`, torch blocked."""
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray(load_image(KODAK / "kodim07.png")[100:196, 200:328]).save(src)
    opts = ["--model", str(exported["model"]), "--backend", "onnxruntime",
            "--onnx-dir", str(exported["dir"])]  # fmt: skip
    for cmd in (
        ["encode", str(src), str(tmp_path / "a.tbx"), "--max-bytes", "300", "--no-text"],
        ["decode", str(tmp_path / "a.tbx"), str(tmp_path / "a.png")],
    ):
        code = BLOCK_TORCH + (
            "from textboost.__main__ import main\n"
            f"rc = main({opts + cmd!r})\n"
            "assert 'torch' not in sys.modules\n"
            "sys.exit(rc)\n"
        )
        r = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
        )
        assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "a.tbx").stat().st_size <= 300
    assert np.asarray(Image.open(tmp_path / "a.png")).shape == (96, 128, 3)
    from textboost.__main__ import main

    rc = main([*opts[:2], "--backend", "onnxruntime", "--onnx-dir", str(tmp_path / "none"),
               "decode", str(tmp_path / "a.tbx"), str(tmp_path / "b.png")])  # fmt: skip
    assert rc == 2


def test_edge_without_torch_or_constriction_writes_the_same_streams(exported, codecs, tmp_path):
    """The Jetson case: no torch, no constriction build. The portable coder writes the same
    bytes as constriction, the ground (torch, constriction) decodes them, and the edge
    decodes the ground's streams."""
    img = _images()[1]
    np.save(tmp_path / "img.npy", img)
    ref = {
        "rate": codecs["onnxruntime"].encode(img, rate=0.5, text=False),
        "budget": codecs["onnxruntime"].encode_to_budget(img, max_bytes=350, text=False),
    }
    (tmp_path / "ref.tbx").write_bytes(ref["rate"])
    block = BLOCK_TORCH.replace('name == "torch" or name.startswith("torch.")',
                                'name.split(".")[0] in ("torch", "constriction")')  # fmt: skip
    code = (
        block
        + f"""
import numpy as np
from pathlib import Path
from textboost import Pipeline
from textboost.codec import coder
assert coder.PORTABLE
d = Path({str(tmp_path)!r})
codec = Pipeline.load({str(exported["model"])!r}, backend="onnxruntime",
                   onnx_dir={str(exported["dir"])!r})
img = np.load(d / "img.npy")
(d / "rate.tbx").write_bytes(codec.encode(img, rate=0.5, text=False))
(d / "budget.tbx").write_bytes(codec.encode_to_budget(img, max_bytes=350, text=False))
np.save(d / "decoded.npy", codec.decode((d / "ref.tbx").read_bytes()))
assert "torch" not in sys.modules and "constriction" not in sys.modules
"""
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    for name, data in ref.items():
        edge = (tmp_path / f"{name}.tbx").read_bytes()
        assert edge == data, name
        _, y_ground = codecs["torch"].codec.decode_latents(edge)
        assert np.array_equal(y_ground, codecs["onnxruntime"].codec.decode_latents(data)[1])
    decoded = np.load(tmp_path / "decoded.npy")
    assert np.array_equal(decoded, codecs["onnxruntime"].decode(ref["rate"]))


def test_sessions_are_built_on_first_use(exported):
    """A sender builds the sender graph's session only (memory on the edge device)."""
    from textboost import Pipeline

    codec = Pipeline.load(exported["model"], backend="onnxruntime", onnx_dir=exported["dir"])
    assert codec.fusion is not None and codec.codec.transforms._sessions == {}
    codec.encode(_images()[2], rate=0.3, text=False)
    assert set(codec.codec.transforms._sessions) == {"sender"}
