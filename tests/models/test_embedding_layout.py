"""The embedder's image views: crops on a grid leave gaps on a large field; the whole field does not."""

from __future__ import annotations

import numpy as np
import pytest

from micrograde.models.grading import Embedder, EmbedderConfig
from micrograde.pipeline.signal.views import crop_positions


def _entry(view: np.ndarray) -> dict:
    return {"view": view.astype(np.float16), "view_pixel_size": 8.0, "spectrum": np.zeros((64, 64), np.float32)}


@pytest.fixture(scope="module")
def fields():
    """A 480 x 480 field at 8 A/px (3,840 A: larger than 8 crops of 512 A cover), and the same field
    with a dark disc (a contaminant 320 A wide) where no crop of the grid lies."""
    rng = np.random.default_rng(0)
    plain = rng.standard_normal((480, 480)).astype(np.float32)
    yy, xx = np.mgrid[:480, :480]
    spotted = plain.copy()
    spotted[(yy - 240) ** 2 + (xx - 120) ** 2 < 20**2] -= 4.0
    return plain, spotted


def test_crops_miss_what_lies_between_them_and_the_whole_field_sees_it(fields):
    plain, spotted = fields
    rows, cols = crop_positions(480, 64, 2), crop_positions(480, 64, 3)
    assert all(not (r <= 240 < r + 64) for r in rows) and all(not (c <= 120 < c + 64) for c in cols)
    crops = Embedder(EmbedderConfig(spectrum_views=0, layout="crops"))
    field = Embedder(EmbedderConfig(spectrum_views=0))
    a, b = crops.embed([_entry(plain), _entry(spotted)])
    assert np.array_equal(a, b)  # the disc lies in a gap of the grid: the crops' vector cannot change
    a, b = field.embed([_entry(plain), _entry(spotted)])
    assert np.abs(a - b).max() > 1e-3 * np.abs(a).max()
    assert field.embed([_entry(plain)]).shape == (1, field.dim)


def test_the_layout_names_its_vectors_and_crops_keep_the_name_they_had():
    field, crops = EmbedderConfig(), EmbedderConfig(layout="crops")
    assert field.layout == "field" and crops.digest() != field.digest()
    assert EmbedderConfig(batch_size=7).digest() == field.digest()  # the batch size changes no vector
    # vectors stored before there was a layout were stored under this digest: they stay valid
    assert crops.digest() == "11d3d9ba6e2f554b"


def test_a_card_written_before_layouts_loads_the_crops_it_was_trained_with():
    old = EmbedderConfig(layout="crops").model_dump()
    old.pop("layout")
    assert EmbedderConfig.from_card(old).layout == "crops"
    assert EmbedderConfig.from_card(EmbedderConfig().model_dump()).layout == "field"
