"""Fourier cropping and resampling to a pixel size."""

from __future__ import annotations

import numpy as np
import pytest

from micrograde.pipeline.signal.fourier import fourier_crop, resample_to_pixel_size, shape_at_pixel_size


@pytest.mark.parametrize(
    ("shape", "out"),
    [((64, 64), (32, 32)), ((65, 63), (31, 20)), ((100, 37), (33, 37)), ((409, 576), (128, 180)), ((96, 80), (96, 41))],
)
def test_fourier_crop_keeps_the_mean(shape, out):
    rng = np.random.default_rng(sum(shape))
    img = (rng.gamma(2.0, 3.0, size=shape) + 7.0).astype(np.float32)
    small = fourier_crop(img, out)
    assert small.shape == out
    assert small.dtype == np.float32
    assert small.mean(dtype=np.float64) == pytest.approx(img.mean(dtype=np.float64), rel=1e-5)


def test_fourier_crop_accepts_integers_and_keeps_their_mean():
    img = np.random.default_rng(1).poisson(30, size=(120, 90)).astype(np.uint16)
    small = fourier_crop(img, (41, 30))
    assert small.dtype == np.float32
    assert small.mean(dtype=np.float64) == pytest.approx(img.mean(dtype=np.float64), rel=1e-5)


def test_fourier_crop_is_exact_for_band_limited_images_and_drops_higher_frequencies():
    h, w = 96, 120
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    kept = np.cos(2 * np.pi * (3 * y / h + 5 * x / w) + 0.4)  # 3 and 5 cycles: below the new Nyquist
    dropped = np.cos(2 * np.pi * 40 * x / w)  # 40 cycles: above the new Nyquist (15 along x)
    img = (2.0 + kept + dropped).astype(np.float32)
    small = fourier_crop(img, (32, 30))
    ys, xs = np.mgrid[0:32, 0:30].astype(np.float64)
    expected = 2.0 + np.cos(2 * np.pi * (3 * ys / 32 + 5 * xs / 30) + 0.4)
    np.testing.assert_allclose(small, expected, atol=1e-4)  # no attenuation, no aliasing (unlike binning)


def test_fourier_crop_rejects_upsampling_and_copies_at_same_size():
    img = np.ones((10, 12), np.float32)
    with pytest.raises(ValueError):
        fourier_crop(img, (11, 12))
    same = fourier_crop(img, (10, 12))
    same[0, 0] = 5
    assert img[0, 0] == 1


def test_fourier_crop_does_not_modify_the_input():
    img = np.random.default_rng(2).standard_normal((64, 80)).astype(np.float32)
    before = img.copy()
    fourier_crop(img, (20, 30))
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize(
    ("shape", "pixel", "expected"),
    [((1440, 1023), 1.0, (360, 256)), ((1023, 1440), 0.83, (212, 299)), ((1000, 1000), 1.2, (300, 300))],
)
def test_resample_to_pixel_size_shape_and_actual_pixel_size(shape, pixel, expected):
    img = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    out, actual = resample_to_pixel_size(img, pixel, 4.0)
    assert out.shape == expected == shape_at_pixel_size(shape, pixel, 4.0)
    assert actual == pytest.approx(4.0, rel=0.01)
    assert out.mean() == pytest.approx(img.mean(), abs=1e-5)


def test_resample_never_upsamples():
    img = np.random.default_rng(4).standard_normal((50, 70)).astype(np.float32)
    out, actual = resample_to_pixel_size(img, 5.0, 4.0)
    assert actual == 5.0
    np.testing.assert_array_equal(out, img)
    with pytest.raises(ValueError):
        resample_to_pixel_size(img, 0.0, 4.0)
