"""The directional measures reuse the preprocessing's coarse image when it is exactly the crop they
would make (issue 14: no second full-resolution FFT), with results identical to the bit."""

from __future__ import annotations

import numpy as np

import micrograde.pipeline.features as features
import micrograde.pipeline.signal.measures as measures
from micrograde.pipeline.signal.fourier import fourier_crop
from micrograde.pipeline.signal.spectrum import power_spectrum


def test_coarse_crop_a_hair_coarser_than_needed_is_reused_with_identical_results(monkeypatch):
    ps, shape = 0.83, (400, 500)  # the crop to 7.5 A is (44, 55): 7.545 A/px, a hair coarser than 7.5
    rng = np.random.default_rng(1)
    img = (rng.poisson(50, size=shape) + 20 * np.sin(np.arange(shape[1]) / 9.0)[None, :]).astype(np.float32)
    spec = power_spectrum(img, ps, tile=128, size=64, max_freq=1 / 3.2)
    crop_shape = (44, 55)
    coarse = (fourier_crop(img, crop_shape), ps * 0.5 * (shape[0] / crop_shape[0] + shape[1] / crop_shape[1]))
    assert coarse[1] > measures.DIRECTION_PIXEL_A * (1 + 1e-6)

    reference = _measures(img, ps, spec, dose=40.0)  # resamples the full image itself
    sizes = []
    real = features.resample_to_pixel_size
    monkeypatch.setattr(features, "resample_to_pixel_size",
                        lambda a, *args: (sizes.append(np.shape(a)), real(a, *args))[1])
    reused = _measures(img, ps, spec, coarse=coarse, dose=40.0)
    assert shape not in sizes, "the full image was not cropped a second time"
    assert _same(reused, reference)
    assert np.isfinite(reused["directional_low"])


def test_a_coarse_image_of_another_shape_is_not_taken_for_the_crop():
    ps, shape = 0.83, (400, 500)
    img = np.random.default_rng(2).normal(100, 5, size=shape).astype(np.float32)
    spec = power_spectrum(img, ps, tile=128, size=64, max_freq=1 / 3.2)
    other = (fourier_crop(img, (40, 50)), 8.3)  # coarser than the measures need: they resample the full image
    assert _same(_measures(img, ps, spec, coarse=other), _measures(img, ps, spec))


def _measures(img, ps, spec, **inputs) -> dict:
    """The registry's measures of ``img`` (the scores may use ``coarse`` differently; they are not compared)."""
    values = features.image_features(img, ps, spectrum_given=spec, **inputs)
    return {name: values[name] for name in features.feature_names("measure")}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all((np.isnan(a[k]) and np.isnan(b[k])) or a[k] == b[k] for k in a)
