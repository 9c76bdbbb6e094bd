"""Honesty toward the operator: regions drawn from carried words are outlined over the
decoded picture, with the string and the spotter's confidence, and a toggle hides them."""

from __future__ import annotations

from textboost.web.components import ImageCard, Outline, image_card, page

THUMB = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _card(outlines) -> str:
    return image_card(ImageCard("img", thumb_src=THUMB, href="a.png", outlines=outlines))


def test_outlines_carry_string_and_confidence_escaped():
    html = _card(
        [
            Outline([(0.1, 0.2), (0.5, 0.2), (0.5, 0.3), (0.1, 0.3)], "Victonia <Ave>", 0.62),
            Outline([(0.6, 0.6), (0.9, 0.6), (0.9, 0.7), (0.6, 0.7)], "KA 5510", 0.97),
        ]
    )
    assert "Victonia &lt;Ave&gt;" in html and "<Ave>" not in html
    assert "spotter confidence 0.62" in html and "spotter confidence 0.97" in html
    assert html.count("<polygon") == 2 and html.count("class='tb-low'") == 1
    assert "class='tb-ol' checked" in html and "not camera pixels" in html
    assert "tb-ol" not in _card([])  # no words drawn: no toggle, no overlay


def test_the_toggle_hides_the_outlines_in_a_browser(browser_page, tmp_path):
    doc = tmp_path / "card.html"
    quad = [(0.1, 0.2), (0.5, 0.2), (0.5, 0.3), (0.1, 0.3)]
    doc.write_text(page("card", _card([Outline(quad, "KA 5510", 0.9)])))
    p = browser_page
    p.goto(doc.as_uri())
    assert p.locator("svg.tb-outline").is_visible()
    p.locator("input.tb-ol").uncheck()
    assert not p.locator("svg.tb-outline").is_visible()
    p.locator("input.tb-ol").check()
    assert p.locator("svg.tb-outline").is_visible()
