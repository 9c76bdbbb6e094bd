"""Text-fidelity evaluation: ground-truth parsing, the ICDAR 2015 matcher on hand-made cases
with F1 worked out by hand, plate normalisation, and one small run of the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from textboost.scenetext.gt import (
    GtWord,
    load_dataset,
    load_sets,
    parse_icdar2015,
    parse_openalpr,
    read_gt,
)
from textboost.scenetext.match import (
    Counts,
    match_image,
    normalise_plate,
    plate_read,
    transcription_match,
)
from textboost.text.words import Word

SCENETEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scenetext"


def box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def gt(x0, y0, x1, y1, text: str) -> GtWord:
    return GtWord(box(x0, y0, x1, y1), text, text != "###")


def det(x0, y0, x1, y1, text: str) -> Word:
    return Word(box(x0, y0, x1, y1), text, 0.9)


# -- matcher --------------------------------------------------------------------------------


def test_det_and_e2e_with_dont_care_and_a_false_positive():
    truth = [gt(0, 0, 10, 10, "HELLO"), gt(20, 0, 30, 10, "WORLD"), gt(40, 0, 50, 10, "###")]
    dets = [
        det(0, 0, 10, 10, "hello"),  # IoU 1, right text (case-insensitive)
        det(20, 0, 30, 10, "W0RLD"),  # IoU 1, wrong text
        det(41, 0, 50, 10, "xx"),  # 90/90 of its area inside ### -> ignored
        det(60, 0, 70, 10, "junk"),  # nothing there -> false positive
    ]
    m = match_image(truth, dets)
    assert m.ignored == (2,)
    assert (m.det.tp, m.det.n_gt, m.det.n_det) == (2, 2, 3)
    # DET: P = 2/3, R = 1, F1 = 2·(2/3)·1 / (5/3) = 0.8
    assert m.det.precision == pytest.approx(2 / 3)
    assert m.det.recall == 1.0
    assert m.det.f1 == pytest.approx(0.8)
    # E2E: P = 1/3, R = 1/2, F1 = 2·(1/6) / (5/6) = 0.4
    assert m.e2e.tp == 1
    assert m.e2e.f1 == pytest.approx(0.4)
    assert m.pairs == ((0, 0, True), (1, 1, False))


def test_half_inside_dont_care_is_not_ignored():
    # exactly 50 % of the detection inside ### is not "more than half": a false positive
    m = match_image([gt(0, 0, 10, 10, "###")], [det(5, 0, 15, 10, "x")])
    assert m.ignored == ()
    assert (m.det.tp, m.det.n_gt, m.det.n_det) == (0, 0, 1)
    assert m.det.f1 == 0.0


def test_one_to_one_duplicate_detection_is_a_false_positive():
    m = match_image([gt(0, 0, 10, 10, "A1")], [det(0, 0, 10, 10, "A1"), det(0, 0, 10, 10, "A1")])
    # P = 1/2, R = 1, F1 = 2/3 for both DET and E2E
    assert m.det.f1 == pytest.approx(2 / 3)
    assert m.e2e.f1 == pytest.approx(2 / 3)
    assert m.pairs == ((0, 0, True),)


def test_one_detection_over_two_words_matches_one():
    truth = [gt(0, 0, 10, 10, "AB"), gt(10, 0, 20, 10, "CD")]
    # IoU with AB = 100/120 > 0.5, with CD = 20/200: AB matched, CD missed
    m = match_image(truth, [det(0, 0, 12, 10, "AB")])
    assert (m.det.tp, m.det.n_gt, m.det.n_det) == (1, 2, 1)
    assert m.det.f1 == pytest.approx(2 / 3)  # P 1, R 1/2


def test_iou_threshold_is_strict():
    truth = [gt(0, 0, 10, 10, "X")]
    assert match_image(truth, [det(0, 0, 10, 5, "X")]).det.tp == 0  # IoU exactly 0.5
    assert match_image(truth, [det(0, 0, 10, 6, "X")]).det.tp == 1  # IoU 0.6


def test_polygon_iou_is_exact_for_rotated_quads():
    diamond = GtWord(np.array([[5, 0], [10, 5], [5, 10], [0, 5]], float), "ROT")
    # square 10x10 around the diamond: IoU 50/100 = 0.5 -> no match (strict)
    assert match_image([diamond], [det(0, 0, 10, 10, "ROT")]).det.tp == 0
    # square [1,9]²: intersection 50 - 4·1 = 46, union 50 + 64 - 46 = 68, IoU 0.676
    assert match_image([diamond], [det(1, 1, 9, 9, "rot")]).e2e.tp == 1


def test_no_detections_and_empty_counts():
    m = match_image([gt(0, 0, 10, 10, "A")], [])
    assert (m.det.precision, m.det.recall, m.det.f1) == (0.0, 0.0, 0.0)
    total = Counts(1, 2, 3) + Counts(2, 2, 1)
    assert (total.tp, total.n_gt, total.n_det) == (3, 4, 4)
    assert total.f1 == pytest.approx(0.75)


def test_transcription_match_rules():
    assert transcription_match("Carpark", "CARPARK")
    assert not transcription_match("Carpark", "Carpar")
    assert transcription_match("[06]", "06")  # special first and last may be dropped
    assert transcription_match("(06", "06")
    assert transcription_match("EXIT", "ＥＸＩＴ")  # full-width forms (NFKC)
    assert transcription_match("Café", "CAFÉ")
    assert not transcription_match("06", "[06]")  # only the ground truth's may be dropped
    assert transcription_match("Genaxis Theatre", "genaxis theatre")
    assert not transcription_match("Genaxis Theatre", "GenaxisTheatre")


# -- plates ---------------------------------------------------------------------------------


def test_normalise_plate():
    assert normalise_plate("m5-xsx ") == "M5XSX"
    assert normalise_plate("AY0·9034") == "AY09034"
    assert normalise_plate("ＡＢ１２") == "AB12"


def test_plate_mode_ignores_unannotated_text():
    plate = [gt(100, 100, 200, 140, "M5XSX")]
    dets = [
        det(100, 100, 200, 140, "M5-XSX"),  # the plate, read right
        det(300, 300, 400, 340, "ABC123"),  # another car's plate: not annotated, ignored
    ]
    m = match_image(plate, dets, ignore_unannotated=True)
    assert m.ignored == (1,)
    assert m.det.f1 == 1.0 and m.e2e.f1 == 1.0
    assert m.plate_read is True
    # a box touching the plate with IoU 2000/6000 = 1/3 is a false positive: P 1/2, F1 2/3
    m = match_image(plate, [*dets, det(150, 100, 250, 140, "SX")], ignore_unannotated=True)
    assert m.det.f1 == pytest.approx(2 / 3)
    # the same detections without plate mode: ABC123 is a false positive too, P = 1/3
    assert match_image(plate, [*dets, det(150, 100, 250, 140, "SX")]).det.precision == 1 / 3


def test_plate_read_from_split_detections_and_misreads():
    plate = gt(100, 100, 200, 140, "M5XSX")
    assert plate_read(plate, [det(150, 100, 200, 140, "XSX"), det(100, 100, 140, 140, "M5")])
    assert not plate_read(plate, [det(100, 100, 200, 140, "M5XSK")])
    assert not plate_read(plate, [det(300, 300, 400, 340, "M5XSX")])  # not on the plate
    m = match_image([plate], [det(100, 100, 200, 140, "M5X5X")], ignore_unannotated=True)
    assert m.det.tp == 1 and m.e2e.tp == 0 and m.plate_read is False


# -- ground truth ---------------------------------------------------------------------------


def test_parse_icdar2015_bom_crlf_commas_and_dont_care(tmp_path):
    p = tmp_path / "gt_a.txt"
    p.write_bytes(
        "\ufeff377,117,463,117,465,130,378,130,Genaxis Theatre\r\n"
        "1,2,3,4,5,6,7,8,a,b\r\n"
        "\r\n"
        "1,1,2,1,2,2,1,2,###\r\n".encode()
    )
    words = parse_icdar2015(p.read_text(encoding="utf-8-sig"))
    assert [w.text for w in words] == ["Genaxis Theatre", "a,b", "###"]
    assert [w.care for w in words] == [True, True, False]
    np.testing.assert_array_equal(words[0].quad, [[377, 117], [463, 117], [465, 130], [378, 130]])
    with pytest.raises(ValueError, match=r"gt_x.txt:2: expected 8 coordinates"):
        parse_icdar2015("1,2,3,4,5,6,7,8,ok\n1,2,3,word\n", "gt_x.txt")
    with pytest.raises(ValueError, match="not a number"):
        parse_icdar2015("1,2,3,4,5,6,7,z,word\n")


def test_parse_openalpr():
    name, w = parse_openalpr("eu1.jpg\t396\t340\t203\t46\tM5XSX\n")
    assert name == "eu1.jpg" and w.text == "M5XSX" and w.care
    np.testing.assert_array_equal(w.quad, [[396, 340], [599, 340], [599, 386], [396, 386]])
    with pytest.raises(ValueError, match="TAB-separated"):
        parse_openalpr("eu1.jpg 396 340 203 46 M5XSX")


def test_load_dataset_pairs_images_with_either_format(tmp_path):
    img = Image.new("RGB", (32, 16))
    for name in ("a.jpg", "b.png", "c.png"):
        img.save(tmp_path / name)
    (tmp_path / "gt_a.txt").write_text("0,0,8,0,8,8,0,8,hi\n", encoding="utf-8-sig")
    (tmp_path / "b.txt").write_text("b.png\t1\t2\t3\t4\tAB12\n")
    images, skipped = load_dataset(tmp_path)
    assert [(g.image.name, g.kind) for g in images] == [("a.jpg", "icdar2015"), ("b.png", "plate")]
    assert skipped == ["c.png"]
    assert len(load_dataset(tmp_path, limit=1)[0]) == 1
    (tmp_path / "b.txt").write_text("other.png\t1\t2\t3\t4\tAB12\n")
    with pytest.raises(ValueError, match=r"annotates 'other\.png'"):
        read_gt(tmp_path / "b.png")


def test_load_sets_reads_each_named_set_in_turn():
    sets = list(load_sets(SCENETEXT, ["openalpr_eu", "icdar2015_mmocr_toy"], limit=2))
    assert [(name, len(images)) for name, images in sets] == [
        ("openalpr_eu", 2),
        ("icdar2015_mmocr_toy", 2),
    ]
    assert {g.kind for g in sets[0][1]} == {"plate"} and sets[1][1][0].kind == "icdar2015"
    assert len(next(load_sets(SCENETEXT, ["openalpr_eu"]))[1]) > 2  # 0: every image
    with pytest.raises(FileNotFoundError, match="no_such_set"):
        next(load_sets(SCENETEXT, ["no_such_set"]))


def test_real_ground_truth_files():
    icdar = SCENETEXT / "icdar2015_mmocr_toy" / "img_1.jpg"
    plate = SCENETEXT / "openalpr_eu" / "eu1.jpg"
    if not icdar.is_file() or not plate.is_file():
        pytest.skip("shared scene-text data not present")
    g = read_gt(icdar)
    assert g is not None and g.kind == "icdar2015"
    assert len(g.words) == 7 and len(g.care_words) == 4
    assert g.words[0].text == "Genaxis Theatre"
    p = read_gt(plate)
    assert p is not None and p.kind == "plate" and p.words[0].text == "M5XSX"


# -- the CLI end to end ---------------------------------------------------------------------


def _small_set(tmp_path: Path) -> Path | None:
    """A 1-image ICDAR set cropped from img_1 (the "Carpark" sign), so the run is quick."""
    src = SCENETEXT / "icdar2015_mmocr_toy" / "img_1.jpg"
    if not src.is_file():
        return None
    x0, y0, x1, y1 = 352, 176, 480, 240  # 128x64 around the word
    folder = tmp_path / "toy"
    folder.mkdir()
    Image.open(src).convert("RGB").crop((x0, y0, x1, y1)).save(folder / "img_1.png")
    g = read_gt(src)
    assert g is not None
    lines = []
    for w in g.words:
        q = w.quad - [x0, y0]
        if q.min() >= 0 and q[:, 0].max() <= x1 - x0 and q[:, 1].max() <= y1 - y0:
            lines.append(",".join(str(int(v)) for v in q.ravel()) + "," + w.text)
    (folder / "gt_img_1.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.slow
def test_cli_text_end_to_end_and_merge(tmp_path, capsys):
    from textboost.eval.cli import main

    folder = _small_set(tmp_path)
    if folder is None:
        pytest.skip("shared scene-text data not present")
    out = tmp_path / "r.json"
    common = ["text", "--dataset", str(folder), "--out", str(out), "--bpp", "0.8", "--limit", "1"]
    assert main([*common, "--entrants", "original,codec,textboost"]) == 0
    assert "E2E P/R/F1" in capsys.readouterr().out
    first = json.loads(out.read_text())
    assert list(first["entrants"])[:2] == ["original", "codec"]
    rc = main([*common, "--entrants", "avif", "--avif-downscale", "1", "--merge"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "textboost-eval-text/1"
    assert doc["run"]["machine"]["logical_cores"]
    assert doc["run"]["versions"]["rapidocr-onnxruntime"]
    summary = doc["datasets"]["toy"]["summary"]
    assert {"original", "avif", "codec"} <= set(summary)
    assert summary["codec"] == first["datasets"]["toy"]["summary"]["codec"]
    orig = summary["original"][0]
    assert orig["det"]["n_gt"] >= 1 and orig["det"]["recall"] > 0
    image = doc["datasets"]["toy"]["images"][0]
    for name in set(summary) - {"original"}:
        row = summary[name][0]
        assert row["target_bpp"] == 0.8 and row["n_fit"] == 1
        assert row["bpp"] <= 0.8
        pt = image["entrants"][name]["points"][0]
        assert pt["bytes"] <= pt["budget_bytes"] == int(0.8 * 128 * 64 / 8)
    if "textboost" in summary:
        assert "carried" in summary["textboost"][0]  # (the filter may carry no word here)
    assert set(image["grid"]["tiles"]) == set(summary)
    grid = Image.open(out.with_suffix(".png"))
    assert grid.width > 190 + 4 * 64 and grid.height > 60

    # the paper's block and a word block decode the same stream
    import torch

    from textboost.codec.weights import ModelFile
    from textboost.fusion.runtime import save_fusion
    from textboost.fusion.word_block import WordFusionNet

    torch.manual_seed(0)
    block = WordFusionNet((8, 8))
    torch.nn.init.normal_(block.tail.weight, std=0.1)
    wf = tmp_path / "w.fusion.safetensors"
    save_fusion(block, wf, ModelFile.load(None).model_id)
    rc = main([*common, "--entrants", "paper,words,plain", "--word-fusion", str(wf), "--merge"])
    assert rc == 0
    doc = json.loads(out.read_text())
    summary = doc["datasets"]["toy"]["summary"]
    assert summary["paper"][0]["bytes"] == summary["words"][0]["bytes"]
    # plain: the same stream and bytes, no block: the codec's own picture of that stream
    assert summary["plain"][0]["bytes"] == summary["words"][0]["bytes"]
    assert summary["plain"][0]["text_bytes"] == summary["words"][0]["text_bytes"]
    assert doc["entrants"]["plain"]["settings"]["fusion"] is False
    if summary["words"][0]["text_bytes"]:  # a word carried: the block moved its pixels
        assert summary["plain"][0]["psnr_db"] != summary["words"][0]["psnr_db"]
    assert doc["entrants"]["words"]["settings"]["fusion_kind"] == "words"
    assert doc["entrants"]["paper"]["settings"]["fusion_kind"] == "paper"
    assert summary["words"][0]["text_psnr_db"] is not None
    assert "words PSNR" in capsys.readouterr().out


def test_cli_text_rejects_bad_arguments(tmp_path, capsys):
    from textboost.eval.cli import main

    assert main(["text", "--dataset", str(tmp_path / "nope"), "--out", "x.json"]) == 2
    assert "folder not found" in capsys.readouterr().err
    assert main(["text", "--dataset", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    assert "no annotated images" in capsys.readouterr().err


def test_crop_grid_layout():
    from textboost.eval.text_eval import ENTRANTS, Crop, pick_rows, render_grid

    rng = np.random.default_rng(0)
    tile = rng.integers(0, 255, (20, 60, 3), dtype=np.uint8)
    crops = [
        Crop(
            ds,
            f"{ds}{k}.jpg",
            "WORD",
            (0, 0, 60, 20),
            {e: tile for e in ENTRANTS if e != "avif"},  # avif: nothing fitted
            {"original": "WORD"},
            {"original": True},
            {"textboost": ("WORD", True)},
        )
        for ds in ("a", "b")
        for k in range(3)
    ]
    rows = pick_rows(crops, 3)
    assert [(c.dataset, c.file) for c in rows] == [
        ("a", "a0.jpg"),
        ("b", "b0.jpg"),
        ("a", "a1.jpg"),
    ]
    im = render_grid(rows, ENTRANTS, 0.03)
    zoom = round(100 / 20)  # integer nearest-neighbour zoom to about 100 px high
    assert im.width >= 190 + 4 * 60 * zoom and im.height > 3 * 20 * zoom
    px = np.asarray(im)
    np.testing.assert_array_equal(
        px[22 : 22 + zoom, 190 : 190 + zoom], np.broadcast_to(tile[0, 0], (zoom, zoom, 3))
    )


def test_merge_refuses_other_targets_or_images():
    from textboost.eval.text_eval import SCHEMA, merge_results

    def doc(targets, files):
        return {
            "schema": SCHEMA,
            "bpp_targets": targets,
            "grid_bpp": 0.03,
            "entrants": {},
            "unavailable": {},
            "datasets": {"s": {"kind": "plate", "images": [{"file": f} for f in files]}},
        }

    with pytest.raises(ValueError, match="bpp_targets"):
        merge_results(doc([0.03], ["a.jpg"]), doc([0.03, 0.06], ["a.jpg"]))
    with pytest.raises(ValueError, match="other datasets or images"):
        merge_results(doc([0.03], ["a.jpg"]), doc([0.03], ["b.jpg"]))


def test_keep_grid_rows_drops_pixels_of_other_images():
    from textboost.eval.text_eval import crops_from_doc, keep_grid_rows

    tile = {"png": "", "read": "x", "correct": False}

    def image(f):
        return {
            "file": f,
            "grid": {"gt_text": "W", "box": [0, 0, 1, 1], "tiles": {"codec": dict(tile)}},
        }

    doc = {
        "datasets": {
            "a": {"images": [image("a1"), image("a2"), image("a3")]},
            "b": {"images": [image("b1")]},
        }
    }
    keep_grid_rows(doc, 3)
    kept = [
        (n, r["file"])
        for n, ds in doc["datasets"].items()
        for r in ds["images"]
        if "png" in r["grid"]["tiles"]["codec"]
    ]
    assert kept == [("a", "a1"), ("a", "a2"), ("b", "b1")]
    assert doc["datasets"]["a"]["images"][2]["grid"]["tiles"]["codec"]["read"] == "x"
    assert crops_from_doc({"datasets": {"a": {"images": [image("a3")]}}}, ["avif"]) == []


# -- the matrix benchmark (resumable per set, rate and entrant) -----------------------------


def test_matrix_units_are_ordered_rate_by_rate_original_first():
    from textboost.eval.text_matrix import Unit, plan_units

    units = plan_units(["a", "b"], [0.03, 0.02], ["original", "codec", "words"])
    assert units[:2] == [Unit("a", None, "original"), Unit("b", None, "original")]
    assert [u.label for u in units[2:6]] == ["codec@0.03", "words@0.03"] * 2
    assert {u.bpp for u in units[6:]} == {0.02} and len(units) == 10


@pytest.mark.slow
def test_matrix_resumes_per_unit_and_reuses_streams(tmp_path):
    from textboost.eval.text_eval import TextEvalConfig
    from textboost.eval.text_matrix import (
        MatrixSet,
        Unit,
        assemble,
        markdown,
        run_unit,
        unit_file,
    )
    from textboost.scenetext.gt import load_dataset

    folder = _small_set(tmp_path)
    if folder is None:
        pytest.skip("shared scene-text data not present")
    images, _ = load_dataset(folder)
    ds = MatrixSet("toy", folder, "icdar2015", tuple(images))
    out, streams = tmp_path / "m", tmp_path / "streams"
    base = TextEvalConfig(avif_divisors=(1.0,), stream_dir=streams)
    seen: list[str] = []
    for u in (Unit("toy", None, "original"), Unit("toy", 0.8, "codec")):
        assert run_unit(u, ds, base, out, seen.append) == 1
        assert run_unit(u, ds, base, out, seen.append) == 0  # done: nothing again
    assert len(seen) == 2
    coded = sorted(streams.iterdir())
    assert len(coded) == 1 and coded[0].name.endswith("-plain.tbx")
    path = unit_file(out, Unit("toy", 0.8, "codec"))
    first = json.loads(path.read_text())["record"]
    path.write_text('{"record": {"file": "img_1.png", "entr')  # a line cut by a kill
    assert run_unit(Unit("toy", 0.8, "codec"), ds, base, out) == 1  # from the kept stream
    assert sorted(streams.iterdir()) == coded
    again = json.loads(path.read_text().splitlines()[-1])["record"]
    assert again["entrants"]["codec"]["points"][0]["bytes"] == (
        first["entrants"]["codec"]["points"][0]["bytes"]
    )
    doc = assemble(out, [ds], [0.8], ["original", "codec"])
    toy = doc["docs"]["0.8"]["datasets"]["toy"]
    assert toy["images_done"] == {"original": 1, "codec": 1}
    assert set(toy["summary"]) == {"original", "codec"}
    assert toy["summary"]["codec"][0]["bpp"] <= 0.8
    assert set(toy["images"][0]["grid"]["tiles"]) == {"original", "codec"}
    md = markdown(doc)
    assert "| 0.8 | codec | 1/1 |" in md and "| — | original | 1/1 |" in md
    assert Image.open(out / "grid_toy_0.8.png").width > 190
