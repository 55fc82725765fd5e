"""The default mask model (trained on first use from simulation only) on a real micrograph:
the ice ball is masked, the picks on it are removed, the picks on clean ice are kept."""

from __future__ import annotations

import cv2
import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
from scipy import ndimage

from micrograde.flows.masks import compute_masks, write_mask_outputs
from micrograde.models.segmentation.default import DEFAULT_MASK_MODEL, ensure_default_mask_model, mask_model_dir
from micrograde.pipeline.io.label_maps import read_label_map

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # trains the default model (minutes)


def _ice_ball(image: np.ndarray) -> np.ndarray:
    """The large dark ball, found without the model: the biggest region far darker than the ice."""
    blurred = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 8)
    med = float(np.median(blurred))
    dark = blurred < med - 0.5 * (med - float(blurred.min()))
    labels, _ = ndimage.label(dark)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def test_default_model_masks_the_ice_ball_and_keeps_clean_picks(real_micrograph, tmp_path):
    star = real_micrograph.parent / "Ucsf_stack_1142_DW_autopick.star"
    if not star.is_file():
        pytest.skip("real autopick STAR absent")
    root = tmp_path / "ws"
    model = ensure_default_mask_model(root)  # built on first use
    weights = (mask_model_dir(root, DEFAULT_MASK_MODEL) / "weights.pt").read_bytes()
    again = ensure_default_mask_model(root)  # reused, not trained again
    assert again.card["created_at"] == model.card["created_at"]
    assert (mask_model_dir(root, DEFAULT_MASK_MODEL) / "weights.pt").read_bytes() == weights
    assert model.card["training"]["source"].startswith("simulated") and model.card["seed"] == 0

    rows = pd.DataFrame({"path": [str(real_micrograph)], "micrograph": [str(real_micrograph)],
                         "name": [real_micrograph.name], "cache_key": ["k"], "pixel_size": [1.0]})
    pred, results = compute_masks(model, rows)
    report = tmp_path / "report"
    summary = write_mask_outputs(report, pred, results, particles=[str(star)])
    mask, _ = read_label_map(report / "masks" / "Ucsf_stack_1142_DW.mrc")
    with mrcfile.open(real_micrograph) as mrc:
        ball = _ice_ball(np.asarray(mrc.data))
    assert (mask[ball] != 0).mean() > 0.9  # the ball is masked
    assert 0.1 < pred["area_contamination"].iloc[0] < 0.3 and pred["usable_area"].iloc[0] > 0.6

    picks = starfile.read(star)
    kept = starfile.read(report / "particles_selected.star")
    x, y = picks["rlnCoordinateX"].astype(int), picks["rlnCoordinateY"].astype(int)
    dist = ndimage.distance_transform_edt(~ball)[y, x]
    kept_xy = set(zip(kept["rlnCoordinateX"].round(3), kept["rlnCoordinateY"].round(3), strict=False))
    was_kept = np.array([(round(a, 3), round(b, 3)) in kept_xy
                         for a, b in zip(picks["rlnCoordinateX"], picks["rlnCoordinateY"], strict=False)])
    on_ball, clean = ball[y, x], dist >= 30
    assert on_ball.sum() >= 4 and not was_kept[on_ball].any()  # every pick on the ball is removed
    # picks on clean ice are kept. The default model (simulation only) calls some of this clean ice
    # carbon: 4.0 % on one machine, 10.4 % on another (2026-11-28; docs/masks.md). Same code, seed and
    # single-threaded training, but the CPUs' vector kernels round differently and the training
    # drifts apart; so the bounds are loose: most of the clean ice stays usable and most of its picks
    # are kept.
    far = ndimage.distance_transform_edt(~ball) >= 30
    assert (mask[far] != 0).mean() < 0.2
    assert was_kept[clean].mean() >= 0.7
    assert summary["kept"].sum() == len(kept) and summary["removed_contamination"].sum() >= on_ball.sum()
