"""Interpretable scores: crystalline ice, Thon-ring reach, anisotropy, contrast, dark blobs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers_preprocess import crystalline_patch, ctf_image, dark_blobs, filtered_noise, lattice

from micrograde.pipeline.features import SCORE_COLUMNS, image_features
from micrograde.pipeline.signal.fourier import fourier_crop
from micrograde.pipeline.signal.scores import (
    anisotropy,
    contrast,
    dark_fraction,
    ice_ring_score,
    thon_reach,
)
from micrograde.pipeline.signal.spectrum import power_spectrum

SHAPE = (1024, 1024)


@pytest.mark.parametrize("pixel", [0.8, 1.0, 1.2])
@pytest.mark.parametrize("spacing", [3.67, 3.90, 3.44])
def test_ice_ring_score_separates_crystalline_from_vitreous(pixel, spacing):
    vitreous = ctf_image(SHAPE, pixel, seed=int(spacing * 100))
    crystal = vitreous + lattice(SHAPE, pixel, spacing, amp=0.15, angle=spacing)
    s_vit = ice_ring_score(power_spectrum(vitreous, pixel))
    s_cry = ice_ring_score(power_spectrum(crystal, pixel))
    assert abs(s_vit) < 1.0
    assert s_cry > s_vit + 3.0


def test_ice_ring_score_catches_a_few_small_domains_and_a_powder_ring():
    pixel = 1.0
    base = ctf_image(SHAPE, pixel, seed=11)
    domains = base + crystalline_patch(SHAPE, pixel, amp=0.1, seed=2)
    # powder: many orientations of a 3.67 A lattice -> a continuous ring
    powder = base + sum(lattice(SHAPE, pixel, 3.67, amp=0.04, angle=a, order=1) for a in np.linspace(0, np.pi, 60))
    vit = ice_ring_score(power_spectrum(base, pixel))
    assert ice_ring_score(power_spectrum(domains, pixel)) > vit + 3.0
    assert ice_ring_score(power_spectrum(powder, pixel)) > vit + 3.0


def test_ice_ring_score_is_nan_when_the_band_is_beyond_nyquist():
    assert math.isnan(ice_ring_score(power_spectrum(ctf_image((512, 512), 2.0), 2.0)))
    assert math.isnan(ice_ring_score(ctf_image((512, 512), 2.0), 2.0))  # image + pixel size form


def test_thon_reach_follows_the_envelope():
    shape, pixel = (2048, 2048), 1.0
    sharp = thon_reach(power_spectrum(ctf_image(shape, pixel, bfactor=40, seed=1), pixel))
    soft = thon_reach(power_spectrum(ctf_image(shape, pixel, bfactor=400, seed=1), pixel))
    none = thon_reach(power_spectrum(np.random.default_rng(1).standard_normal(shape).astype(np.float32), pixel))
    assert 2 * pixel <= sharp < soft < none
    assert sharp < 5.0 and soft > 6.0
    assert none >= 25.0  # no rings at all


def test_thon_reach_means_the_same_at_different_pixel_sizes():
    reach = [
        thon_reach(power_spectrum(ctf_image((2048, 2048), p, bfactor=150, seed=2), p)) for p in (0.8, 1.2)
    ]
    assert reach[0] == pytest.approx(reach[1], rel=0.3)


def test_anisotropy_rises_with_drift_and_astigmatism():
    pixel = 1.0
    iso = anisotropy(power_spectrum(ctf_image(SHAPE, pixel, seed=4), pixel))
    drift = anisotropy(power_spectrum(ctf_image(SHAPE, pixel, drift=15.0, seed=4), pixel))
    astig = anisotropy(power_spectrum(ctf_image(SHAPE, pixel, astig=2500.0, seed=4), pixel))
    assert 0.0 <= iso < 0.2
    assert drift > iso + 0.25 and drift <= 1.0
    assert astig > iso + 0.2


def _scene(pixel, amp, seed=0, base_pixel=0.4, base=2400):
    """Same physical specimen (100 A features) at any pixel size, with dose-limited white noise."""
    rng = np.random.default_rng(seed)
    field = filtered_noise((base, base), base_pixel, lambda fy, fx: np.exp(-(fy**2 + fx**2) * 60.0**2), rng)
    field *= amp / field.std()
    n = int(round(base * base_pixel / pixel))
    return fourier_crop(field, (n, n)) + rng.standard_normal((n, n)).astype(np.float32) / pixel


def test_contrast_is_lower_for_thick_ice_and_independent_of_pixel_size():
    thin = {p: contrast(_scene(p, 0.3), p) for p in (0.8, 1.2)}
    thick = contrast(_scene(1.0, 0.08), 1.0)
    assert thin[0.8] == pytest.approx(thin[1.2], rel=0.15)
    assert thick < 0.5 * min(thin.values())


def test_dark_fraction_measures_the_blob_area():
    pixel = 1.0
    clean = _scene(pixel, 0.3, seed=5)
    blobs = dark_blobs(clean.shape, pixel, n=3, radius_A=100.0, depth=3.0, seed=5)
    area = float((blobs < 0).mean())
    assert dark_fraction(clean, pixel) < 0.01
    assert dark_fraction(clean + blobs, pixel) == pytest.approx(area, rel=0.35)


def test_image_features_scores_and_coarse_shortcut_agree():
    pixel = 1.0
    img = _scene(pixel, 0.3, seed=6)
    ps = power_spectrum(img, pixel)
    full = {n: v for n, v in image_features(img, pixel, spectrum_given=ps).items() if n in SCORE_COLUMNS}
    coarse = fourier_crop(img, (480, 480))  # 2 A/px, finer than any real-space low-pass
    fast = image_features(img, pixel, spectrum_given=ps, coarse=(coarse, 2.0))
    assert tuple(full) == SCORE_COLUMNS
    for name in SCORE_COLUMNS:
        assert fast[name] == pytest.approx(full[name], rel=1e-3, abs=1e-6)
