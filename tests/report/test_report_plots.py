"""Report figures: valid PNGs for ordinary and degenerate inputs, no pyplot global state."""

from __future__ import annotations

import io
import sys

import numpy as np
import pandas as pd
import pytest
from helpers_report import make_card, make_predictions
from PIL import Image

from micrograde.pipeline.report import plots
from micrograde.pipeline.report.page import SECTION_IDS, build_report


def _size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as im:
        im.verify()
        return im.size


def test_every_plot_is_a_png():
    preds = make_predictions(30)
    card = make_card()
    figures = [
        plots.score_histograms(preds),
        plots.class_fraction_over_time(preds),
        plots.class_fraction_over_time(preds.assign(acquired_at=pd.NaT)),  # ingest order fallback
        plots.confusion_matrix_plot(card["metrics"]["confusion"]),
        plots.calibration_plot(card["calibration"]["curve"]),
        plots.calibration_plot([{"confidence": 0.5, "accuracy": 0.4}, {"confidence": 0.9, "accuracy": None}]),
        plots.training_curves(card["history"]),
        plots.class_counts_bar({"good": 3, "medium": 0, "bad": 7}),
        plots.class_counts_bar(pd.crosstab(preds["session"], preds["label"])),
    ]
    for png in figures:
        w, h = _size(png)
        assert w > 100 and h > 100
    assert "matplotlib.pyplot" not in sys.modules


def test_degenerate_inputs_still_plot():
    empty = make_predictions(5).iloc[0:0]
    _size(plots.score_histograms(empty))
    _size(plots.class_fraction_over_time(empty))
    one = make_predictions(1)
    _size(plots.class_fraction_over_time(one))
    _size(plots.score_histograms(one.assign(ice_ring_score=np.nan)))
    _size(plots.training_curves([]))
    _size(plots.confusion_matrix_plot(np.zeros((3, 3))))
    with pytest.raises(ValueError, match="calibration curve"):
        plots.calibration_plot({"foo": [1]})


def test_report_of_an_empty_run_has_every_section():
    empty = make_predictions(5).iloc[0:0]
    rejects = pd.DataFrame({"path": ["/a.mrc"], "reason": ["corrupt"], "detail": [""]})
    html = build_report(
        empty,
        card=make_card(),
        rejects=rejects,
        get_images=None,
        run_info={"run_id": "r"},
        warnings=[],
        review_url=None,
    )
    for sid in SECTION_IDS:
        assert f'id="{sid}"' in html
    assert 'data-count="0" data-label="total"' in html
    assert "No micrograph was graded good" in html
