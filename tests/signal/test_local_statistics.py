"""Local statistics of the field (src/micrograde/pipeline/signal/local.py): regions that are darker, brighter,
flatter or rougher than the rest are counted, whatever the intensity scale."""

from __future__ import annotations

import numpy as np
import pytest

from micrograde.pipeline.features import ImageInputs, feature_names, image_features
from micrograde.pipeline.signal.local import LOCAL_NAMES, LOCAL_PIXEL_A, LOCAL_TILE_A, local_statistics

TILE = int(round(LOCAL_TILE_A / LOCAL_PIXEL_A))  # 16 px


def _field(seed: int = 0, tiles: int = 10, level: float = 100.0, texture: float = 5.0) -> np.ndarray:
    """A textured ice field of ``tiles`` x ``tiles`` 200 A tiles at 12.5 A/px."""
    rng = np.random.default_rng(seed)
    return (level + texture * rng.standard_normal((tiles * TILE, tiles * TILE))).astype(np.float32)


def test_the_registry_lists_the_local_statistics_in_order():
    assert feature_names("local") == LOCAL_NAMES


def test_a_uniform_field_has_no_outlying_tiles():
    out = local_statistics(_field())
    assert set(out) == set(LOCAL_NAMES)
    assert abs(out["local_z02"]) < 1 and abs(out["local_z98"]) < 1
    for name in ("local_dark_fraction", "local_bright_fraction", "local_flat_fraction", "local_rough_fraction",
                 "local_ratio_dark_fraction", "local_ratio_bright_fraction"):
        assert out[name] == 0.0, name
    assert 0.8 < out["local_texture10"] <= 1.0 <= out["local_texture90"] < 1.2


def test_a_flat_bright_region_counts_as_bright_and_flat_tiles_of_its_area():
    img = _field(1)
    img[: 3 * TILE, :] = 130.0 + 0.5 * np.random.default_rng(2).standard_normal((3 * TILE, img.shape[1]))
    out = local_statistics(img)  # 30 of 100 tiles: vacuum-like (brighter, no texture)
    assert out["local_bright_fraction"] == pytest.approx(0.3)
    assert out["local_flat_fraction"] == pytest.approx(0.3)
    assert out["local_ratio_bright_fraction"] == pytest.approx(0.3)
    assert out["local_z98"] > 3 and out["local_ratio98"] == pytest.approx(1.3, abs=0.01)
    assert out["local_dark_fraction"] == 0.0
    assert out["local_mean_texture_corr"] < -0.9  # the bright tiles are the flat ones


def test_dark_blobs_count_as_dark_tiles():
    img = _field(3)
    img[2 * TILE: 4 * TILE, 5 * TILE: 7 * TILE] -= 60.0  # 4 tiles of contamination
    out = local_statistics(img)
    assert out["local_dark_fraction"] == pytest.approx(0.04)
    assert out["local_ratio_dark_fraction"] == pytest.approx(0.04)
    assert out["local_z02"] < -3
    assert out["local_bright_fraction"] == 0.0


def test_z_and_texture_statistics_do_not_depend_on_scale_or_offset():
    img = _field(4)
    img[:TILE, :TILE] -= 40.0
    a = local_statistics(img)
    b = local_statistics(3.7 * img - 500.0)  # another scale, and a negative median
    for name in LOCAL_NAMES:
        if "ratio" in name:
            assert np.isfinite(a[name]) and np.isnan(b[name]), name  # ratios only mean something for counts
        else:
            assert b[name] == pytest.approx(a[name], rel=1e-5, abs=1e-6), name


def test_too_small_or_constant_fields_give_nan_not_an_error():
    assert all(np.isnan(v) for v in local_statistics(_field(tiles=2)).values())
    assert all(np.isnan(v) for v in local_statistics(np.full((200, 200), 5.0, np.float32)).values())
    assert all(np.isnan(v) for v in local_statistics(np.zeros((4, 4), np.float32)).values())


def test_image_features_compute_them_from_a_full_resolution_micrograph():
    rng = np.random.default_rng(5)
    img = rng.poisson(40.0, (1024, 1024)).astype(np.float32)  # 2 A/px: 2048 A field, 100 tiles
    img[:256, :] = rng.poisson(52.0, (256, 1024))  # a brighter quarter
    values = image_features(ImageInputs(img, 2.0, dose=10.0))
    assert set(LOCAL_NAMES) <= set(values)
    assert values["local_ratio_bright_fraction"] == pytest.approx(0.25, abs=0.06)
    assert values["local_ratio98"] == pytest.approx(1.3, abs=0.05)
