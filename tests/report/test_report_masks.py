"""The report's Masks section: usable-area plot and thumbnails with masks overlaid."""

from __future__ import annotations

import numpy as np
from helpers_report import fake_images, make_card, make_predictions

from micrograde.pipeline.masks import DEFECT_CLASSES, area_column
from micrograde.pipeline.report.masks import MASK_COLOURS, overlay
from micrograde.pipeline.report.page import build_report


def test_overlay_tints_masked_pixels_only():
    thumb = np.full((20, 30), 100, dtype=np.uint8)
    mask = np.zeros((10, 15), dtype=np.uint8)
    mask[:5, :5] = 2  # a quarter of the top-left, at half resolution
    rgb = overlay(thumb, mask, alpha=0.5)
    assert rgb.shape == (20, 30, 3)
    assert (rgb[15:, 15:] == 100).all()
    assert tuple(rgb[0, 0]) == tuple(round(0.5 * 100 + 0.5 * c) for c in MASK_COLOURS[2])


def test_masks_section_appears_only_with_usable_area():
    pred = make_predictions(12)
    plain = build_report(pred, card=make_card(), rejects=None, get_images=fake_images, run_info={})
    assert 'id="masks"' not in plain
    rng = np.random.default_rng(0)
    areas = rng.dirichlet(np.ones(len(DEFECT_CLASSES) + 1), len(pred))
    for i, name in enumerate(DEFECT_CLASSES):
        pred[area_column(name)] = areas[:, i]
    pred["usable_area"] = areas[:, -1]
    calls = []

    def get_masks(key):
        calls.append(key)
        thumb, _ = fake_images(key)
        return thumb, np.ones((9, 12), dtype=np.uint8)

    html = build_report(pred, card=make_card(), rejects=None, get_images=fake_images, run_info={}, get_masks=get_masks)
    assert 'id="masks"' in html and "Usable area" not in plain
    section = html.split('id="masks"')[1].split("</section>")[0]
    assert section.count("<figure") == len(pred) and section.count("data:image/png") == len(pred) + 1
    least = pred.sort_values("usable_area")["cache_key"].iloc[0]
    assert calls[0] == least  # least usable first
