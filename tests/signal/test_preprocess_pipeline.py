"""preprocess(): model image, spectrum, thumbnail and scores; display helpers."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pytest
from helpers_preprocess import ctf_image, lattice
from PIL import Image

from micrograde.pipeline.config import PreprocessConfig
from micrograde.pipeline.features import SCORE_COLUMNS
from micrograde.pipeline.signal.display import data_uri, png_bytes, to_uint8
from micrograde.pipeline.signal.preprocess import Preprocessed, model_image_geometry, preprocess

CFG = PreprocessConfig()


def _check(out: Preprocessed, cfg: PreprocessConfig, shape: tuple[int, int]) -> None:
    assert out.image.shape == (cfg.image_size, cfg.image_size) and out.image.dtype == np.float32
    assert out.spectrum.shape == (cfg.spectrum_size, cfg.spectrum_size) and out.spectrum.dtype == np.float32
    assert out.thumbnail.dtype == np.uint8
    assert max(out.thumbnail.shape) == min(cfg.thumbnail_size, max(shape))
    assert out.thumbnail.shape[0] / out.thumbnail.shape[1] == pytest.approx(shape[0] / shape[1], abs=0.01)
    for arr in (out.image, out.spectrum, out.radial, out.radial_freq):
        assert np.isfinite(arr).all()
    assert out.radial.shape == out.radial_freq.shape
    assert tuple(out.scores) == SCORE_COLUMNS
    assert out.pixel_size >= cfg.target_pixel_size * 0.99


def test_square_micrograph():
    img = ctf_image((1024, 1024), 1.0, seed=1)
    before = img.copy()
    out = preprocess(img, 1.0, CFG)
    _check(out, CFG, img.shape)
    np.testing.assert_array_equal(img, before)  # the input is not modified
    # 1024 A field at 4 A/px = 256 px: exactly the model input, no padding
    assert out.pixel_size == pytest.approx(4.0)
    assert abs(float(out.image.mean())) < 1e-3 and float(out.image.std()) == pytest.approx(1.0, abs=1e-3)
    assert out.spectrum_available


@pytest.mark.parametrize("shape", [(1023, 1440), (1440, 1023)])
def test_k3_shaped_micrograph_padded_at_target_pixel_size(shape):
    out = preprocess(ctf_image(shape, 0.83, seed=2), 0.83, CFG)
    _check(out, CFG, shape)
    # short side 1023 * 0.83 A = 849 A -> 212 px at 4 A: padded with zeros to 256 (never resized up);
    # long side 1440 * 0.83 A -> 299 px: centre-cropped to 256
    assert out.pixel_size == pytest.approx(4.0, rel=0.01)
    image = out.image if shape[0] < shape[1] else out.image.T
    assert (image[:20] == 0).all() and (image[-20:] == 0).all()
    assert (image[25:-25] != 0).all()


def test_k3_shaped_micrograph_short_side_fills_the_model_input():
    cfg = PreprocessConfig(image_size=128, thumbnail_size=256, spectrum_size=128)
    shape = (1023, 1440)
    out = preprocess(ctf_image(shape, 0.83, seed=3), 0.83, cfg)
    _check(out, cfg, shape)
    assert out.pixel_size == pytest.approx(1023 * 0.83 / 128, rel=0.01)
    assert (out.image != 0).mean() > 0.99  # no padding


def test_non_square_micrograph_is_not_distorted():
    # a dark disc in the centre must stay round in the square model image
    shape, pixel = (1023, 1440), 1.0
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    img -= 6.0 * ((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < 300**2)
    cfg = PreprocessConfig(image_size=128)
    out = preprocess(img, pixel, cfg)
    dark = out.image < -1.0
    height = np.flatnonzero(dark.any(axis=1))
    width = np.flatnonzero(dark.any(axis=0))
    assert height.size == pytest.approx(width.size, abs=2)
    assert height.size == pytest.approx(600 / out.pixel_size, abs=3)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.float16])
def test_integer_and_half_precision_input(dtype):
    rng = np.random.default_rng(5)
    img = rng.poisson(20, size=(600, 700)).astype(dtype)
    out = preprocess(img, 1.0, CFG)
    _check(out, CFG, img.shape)


def test_hot_pixels_do_not_leak_into_the_outputs():
    img = ctf_image((1024, 1024), 1.0, seed=6)
    ref = preprocess(img, 1.0, CFG)
    hot = img.copy()
    hot[100, 200] = hot[700, 31] = 1e7
    out = preprocess(hot, 1.0, CFG)
    assert np.abs(out.image - ref.image).mean() < 0.01  # unclipped, 1e7 would swamp the whole image
    assert np.abs(out.image - ref.image).max() < 1.5
    assert np.abs(out.spectrum - ref.spectrum).mean() < 0.1


def test_spectrum_and_scores_come_from_full_resolution():
    # 3.67 A crystalline signal is far beyond the 4 A model image, yet the spectrum scores it
    pixel = 1.0
    base = ctf_image((1024, 1024), pixel, seed=7)
    vit = preprocess(base, pixel, CFG)
    cry = preprocess(base + lattice(base.shape, pixel, 3.67, amp=0.15), pixel, CFG)
    assert cry.scores["ice_ring_score"] > vit.scores["ice_ring_score"] + 3.0


def test_coarse_pixel_size_marks_the_spectrum_unavailable():
    out = preprocess(ctf_image((600, 600), 2.0, seed=8), 2.0, CFG)
    assert not out.spectrum_available
    assert math.isnan(out.scores["ice_ring_score"])
    assert out.pixel_size == pytest.approx(600 * 2.0 / 256, rel=0.01)  # the short side fills 256 px


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError):
        preprocess(np.full((256, 256), 3.0, np.float32), 1.0, CFG)
    nan = np.random.default_rng(9).standard_normal((256, 256)).astype(np.float32)
    nan[5, 5] = np.nan
    with pytest.raises(ValueError):
        preprocess(nan, 1.0, CFG)
    with pytest.raises(ValueError):
        preprocess(np.ones((4, 256, 256), np.float32), 1.0, CFG)
    with pytest.raises(ValueError):
        preprocess(np.ones((256, 256), np.float32), 0.0, CFG)


def test_model_image_geometry_never_upsamples():
    shape, ps = model_image_geometry((100, 120), 5.0, CFG)  # already coarser than 4 A
    assert shape == (100, 120) and ps == pytest.approx(5.0)
    shape, ps = model_image_geometry((4092, 5760), 0.83, CFG)
    assert shape[0] == CFG.image_size and shape[1] == pytest.approx(5760 * 256 / 4092, abs=1)
    assert ps == pytest.approx(4092 * 0.83 / 256, rel=0.005)


def test_to_uint8_png_and_data_uri_round_trip():
    img = np.linspace(-3, 7, 200 * 100, dtype=np.float32).reshape(200, 100)
    u8 = to_uint8(img)
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255
    assert (u8 == 0).mean() == pytest.approx(0.01, abs=0.002)  # the 1st percentile saturates
    png = png_bytes(img)
    decoded = np.asarray(Image.open(io.BytesIO(png)))
    np.testing.assert_array_equal(decoded, u8)
    uri = data_uri(png)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == png
    assert (to_uint8(np.full((5, 5), 2.0)) == 0).all()
    thumb = np.arange(256, dtype=np.uint8).reshape(16, 16)  # uint8 is written as is ...
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(thumb)))), thumb)
    stretched = np.asarray(Image.open(io.BytesIO(png_bytes(thumb, 10, 90))))  # ... unless asked
    np.testing.assert_array_equal(stretched, to_uint8(thumb, 10, 90))
    with pytest.raises(ValueError):
        to_uint8(img, low_pct=50, high_pct=10)
