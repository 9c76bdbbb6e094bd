"""The HTML report in a real browser (headless Chromium): a tiny real-codec scenario (one
kodak_text photo captured twice, a fast link, one run) through ``python -m link_sim``,
then the verdict, parameters, per-image table, thumbnails linking full-size files that
exist, word crops, and no horizontal overflow at 1280 px. A screenshot is saved under the
test's tmp folder."""

from __future__ import annotations

import copy
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml
from PIL import Image

from tests.helpers import ROOT, run_module

IMAGE = "kodim03_text.png"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    raw = copy.deepcopy(yaml.safe_load((ROOT / "scenarios/rescue.yaml").read_text()))
    fast = {"rate_bps": 9600, "delay_s": 0.01, "mtu_bytes": 256}
    raw.update(
        name="tiny_web",
        description="Two captures of one photo over 9600 bit/s: <b>escaped</b> & checked.",
        duration_s=60, runs=1,
        images={"set": "kodak_text", "files": [IMAGE],
                "capture": {"start_s": 0.0, "interval_s": 20.0, "count": 2}},
        link={"forward": fast, "reverse": dict(fast)},
        # one target met, one missed on purpose: both marks must render
        targets={"deadline_s": 120, "text_deadline_s": 0.001},
    )
    tmp = tmp_path_factory.mktemp("html")
    scenario = tmp / "tiny.yaml"
    scenario.write_text(yaml.safe_dump(raw))
    out = tmp / "out"
    res = run_module("link_sim", str(scenario), "--out", str(out), "--cache",
                     str(tmp / "cache"), "--no-progress")
    assert res.returncode == 0, res.stderr[-2000:]
    return out / "report.html"


def test_report_files_and_escaping(report):
    html = report.read_text()
    assert "<b>escaped</b>" not in html and "&lt;b&gt;escaped&lt;/b&gt; &amp; checked" in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from a network
    decoded = sorted((report.parent / "decoded").glob("*.png"))
    assert decoded, "no full-size decoded PNG beside the report"
    with Image.open(decoded[0]) as im, Image.open(ROOT / "link_sim/data/kodak_text" / IMAGE) as o:
        assert im.size == o.size


def test_report_in_chromium(report, browser_page, tmp_path):
    page = browser_page
    page.goto(report.as_uri())
    verdict = page.locator("#verdict")
    assert verdict.count() == 1
    text = verdict.inner_text()
    for label in ("Photos delivered", "Photo latency", "Time to text", "Legibility"):
        assert label in text
    assert "FAIL" in text and "PASS" in text  # the missed text deadline, the met photo one
    oks = page.eval_on_selector_all(".tb-check", "els => els.map(e => e.dataset.ok)")
    assert oks.count("false") == 1 and oks.count("true") == 1, oks

    params = page.locator("#parameters").inner_text()
    assert "9600 bit/s" in params and "kodak_text" in params and "Targets" in params

    rows = page.locator("#images tr")
    assert rows.count() == 1 + 2  # header and two captures
    name = page.locator("#images td.tb-name").first
    assert name.get_attribute("title") == IMAGE

    links = page.eval_on_selector_all("a.tb-full", "els => els.map(e => e.href)")
    assert len(links) == 2
    for href in links:
        target = Path(unquote(urlparse(href).path))
        assert target.is_file() and target.parent == report.parent / "decoded", href
    loaded = page.eval_on_selector_all(
        ".tb-card img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
    assert loaded and all(loaded), "an image in the gallery did not load"
    assert page.locator(".tb-crops img").count() >= 2  # original and decoded of a word

    for width in (1280, 800):
        page.set_viewport_size({"width": width, "height": 900})
        scroll, inner = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"horizontal overflow at {width} px: {scroll} > {inner}"
    page.set_viewport_size({"width": 1280, "height": 900})
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
