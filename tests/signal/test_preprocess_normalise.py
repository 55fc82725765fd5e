"""Robust normalisation for float, integer and 8/16-bit images."""

from __future__ import annotations

import numpy as np
import pytest

from micrograde.pipeline.signal.normalise import ConstantImageError, robust_normalise, robust_stats


def _image(dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        mean = 40 if info.max <= 255 else 500
        return np.clip(rng.poisson(mean, size=(200, 300)), info.min, info.max).astype(dtype)
    return (rng.standard_normal((200, 300)) * 3.0 + 10.0).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int16, np.uint16, np.uint8])
def test_standardises_every_input_type(dtype):
    img = _image(dtype)
    before = img.copy()
    out = robust_normalise(img)
    assert out.dtype == np.float32 and out.shape == img.shape
    assert abs(float(out.mean())) < 1e-4
    assert float(out.std()) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_array_equal(img, before)  # input untouched


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_clips_a_hot_pixel(dtype):
    img = _image(dtype, seed=1)
    img[17, 23] = 60000 if dtype == np.uint16 else 1e6
    out = robust_normalise(img, clip_sigma=4.0)
    assert float(out.max()) < 5.0  # without the clip the hot pixel would sit at ~245 sigma
    # the clip touches only the outliers: ordinary pixels keep their order
    a, b = np.unravel_index(np.argsort(img, axis=None)[100:102], img.shape)
    assert out[a[0], b[0]] <= out[a[1], b[1]]


def test_uint8_with_a_majority_value_still_normalises():
    img = np.zeros((100, 100), np.uint8)
    img[:, :30] = np.random.default_rng(2).integers(1, 255, size=(100, 30))
    out = robust_normalise(img)
    assert float(out.std()) == pytest.approx(1.0, abs=1e-4)


def test_constant_image_raises_value_error():
    with pytest.raises(ValueError):
        robust_normalise(np.full((50, 50), 7, np.uint16))
    with pytest.raises(ConstantImageError):
        robust_stats(np.zeros((10, 10), np.float32))


def test_robust_stats_ignore_outliers():
    img = np.random.default_rng(3).standard_normal((400, 400)).astype(np.float32)
    img[:4] = 1e4  # 1% extreme rows
    med, sigma = robust_stats(img)
    assert abs(med) < 0.1 and sigma == pytest.approx(1.0, rel=0.1)
