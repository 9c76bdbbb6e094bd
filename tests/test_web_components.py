"""The shared page components: text is escaped everywhere, the verdict is PASS only when
every judged check passes, cards say what has and has not landed, crops come from the boxes."""

from __future__ import annotations

import numpy as np

from textboost.web import (
    Check,
    ImageCard,
    TextCrop,
    image_card,
    page,
    params_table,
    table,
    text_crops,
    verdict_block,
)

EVIL = "<script>alert('x')</script>"


def test_every_text_is_escaped():
    html = page(EVIL, verdict_block([Check(EVIL, EVIL, EVIL, True, EVIL)])
                + params_table([(EVIL, [(EVIL, EVIL)])])
                + table([EVIL], [[EVIL]], names=[0])
                + image_card(ImageCard(EVIL, strings=[EVIL], crops=[TextCrop(EVIL)],
                                       href="decoded/a'b.png", thumb_src="data:x",
                                       warnings=[EVIL], details=[(EVIL, EVIL)], seen=True,
                                       card_id=EVIL)))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html and "a&#x27;b.png" in html
    assert "http" not in html  # self-contained: no external stylesheet, font or script


def test_verdict_pass_fail_and_no_targets():
    ok, bad, free = Check("a", "1", "≤ 2", True), Check("b", "3", "≤ 2", False), Check("c", "4")
    assert "PASS: all 1 targets met" in verdict_block([ok, free])
    fail = verdict_block([ok, bad, free])
    assert "FAIL: 1 of 2 targets missed (b)" in fail and "class='tb-verdict fail'" in fail
    assert "No targets set" in verdict_block([free]) and "– no target" in verdict_block([free])


def test_card_words_states():
    assert "words: not landed" in image_card(ImageCard("a"))
    assert "words: <b>(none)</b>" in image_card(ImageCard("a", strings=[]))
    assert "words" not in image_card(ImageCard("a", text_path=False))
    card = image_card(ImageCard("a", thumb_src="data:t", href="decoded/a.png"))
    assert "href='decoded/a.png'" in card and "full size" in card


def test_text_crops_follow_the_word_box_and_scale():
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 50:150] = 255  # a white "word"
    half = img[::2, ::2].copy()  # a decoded image at half the size
    words = [{"text": "WORD", "quad": [[50, 40], [150, 40], [150, 60], [50, 60]]},
             {"text": "OFF", "quad": [[500, 500], [600, 500], [600, 520], [500, 520]]}]
    crops = text_crops(words, img, half)
    assert [c.text for c in crops] == ["WORD", "OFF"]
    assert crops[0].original_src.startswith("data:image/jpeg;base64,")
    assert crops[0].decoded_src is not None
    assert crops[1].original_src is None and crops[1].decoded_src is None  # outside: a dash
    assert len(text_crops(words, img, None, limit=1)) == 1
