"""Self-contained HTML pieces (inline CSS, no network fetch) shared by link_sim's report and
the ground station's live page: verdict, parameters, image cards with text crops."""

from textboost.web.components import (
    CSS,
    Check,
    ImageCard,
    Outline,
    TextCrop,
    image_card,
    mark,
    page,
    params_table,
    table,
    verdict_block,
)
from textboost.web.images import data_uri, text_crops, thumbnail

__all__ = [
    "CSS",
    "Check",
    "ImageCard",
    "Outline",
    "TextCrop",
    "data_uri",
    "image_card",
    "mark",
    "page",
    "params_table",
    "table",
    "text_crops",
    "thumbnail",
    "verdict_block",
]
