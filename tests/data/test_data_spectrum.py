"""Geometric augmentations move the power spectrum as the image's own spectrum moves."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
from helpers_data import lattice_image, power_spectrum, spectral_peaks, synthetic_pair

from micrograde.pipeline.data.augment import AugmentConfig, apply_augment, build_augment
from micrograde.pipeline.data.augment_geometry import FieldCrop, Shear, Stretch, Turn

N = 256
WAVEVECTORS = [(20, 7), (-9, 15)]


def _peak_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance from a peak of ``a`` to the nearest peak of ``b`` (up to the sign: power
    spectra of real images are centrosymmetric)."""
    return max(min(np.linalg.norm(b - p, axis=1).min(), np.linalg.norm(b + p, axis=1).min()) for p in a)


def _check(transform, expected_peak=None, tol: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    image = lattice_image(N, WAVEVECTORS)
    spectrum = power_spectrum(image, window=False)
    out = A.Compose([transform], seed=0)(image=image, spectrum=spectrum)
    through_pipeline = spectral_peaks(out["spectrum"], 4)
    of_transformed_image = spectral_peaks(power_spectrum(out["image"]), 4)
    assert _peak_distance(through_pipeline, of_transformed_image) <= tol
    assert _peak_distance(of_transformed_image, through_pipeline) <= tol
    if expected_peak is not None:
        assert _peak_distance(np.array([expected_peak]), through_pipeline) <= tol
    return through_pipeline, of_transformed_image


@pytest.mark.parametrize("angle", [30.0, -75.0, 137.0])
def test_rotated_lattice_peak_rotates_with_it(angle: float) -> None:
    theta = np.radians(angle)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    _check(Turn(quarter_turns=False, flip_p=0.0, rotate_p=1.0, angle_range=(angle, angle), p=1.0),
           expected_peak=rot @ np.array(WAVEVECTORS[0], float))


def test_shear_maps_the_spectrum_by_the_inverse_transpose() -> None:
    sx = np.tan(np.radians(15.0))
    linear = np.array([[1.0, sx], [sx, 1.0]])
    k = np.array(WAVEVECTORS[0], float)
    expected = np.linalg.inv(linear).T @ k
    assert np.linalg.norm(expected - linear @ k) > 5  # the test tells A from A^-T
    _check(Shear(shear_range=(15.0, 15.0), p=1.0), expected_peak=expected)


def test_stretch_and_field_crop_scale_the_spectrum_inversely() -> None:
    _check(Stretch(stretch_range=(1.1, 1.1), p=1.0))
    peaks, _ = _check(FieldCrop(fraction_range=(0.8, 0.8), p=1.0))
    radii = sorted(np.linalg.norm(peaks, axis=1))
    assert radii[-1] == pytest.approx(0.8 * np.hypot(*WAVEVECTORS[0]), abs=1.5)


@pytest.mark.parametrize("seed", range(8))
def test_quarter_turns_and_flips_are_exact(seed: int) -> None:
    image, _ = synthetic_pair(seed)
    spectrum = power_spectrum(image, window=False)
    out = A.Compose([Turn(rotate_p=0.0, p=1.0)], seed=seed)(image=image, spectrum=spectrum)
    expected = power_spectrum(out["image"], window=False)
    # exact except the Nyquist row/column (index 0), which has no mirror inside the array
    np.testing.assert_allclose(out["spectrum"][1:, 1:], expected[1:, 1:], atol=1e-4)


def test_image_only_steps_leave_the_spectrum_alone() -> None:
    cfg = AugmentConfig(turn_p=0, shear_p=0, stretch_p=0, crop_p=0, blur_p=1, dose_p=1, ice_p=1, stripes_p=1,
                        defocus_p=1, dropout_p=1)
    image, spectrum = synthetic_pair(1)
    img2, spec2 = apply_augment(build_augment(cfg), image, spectrum)
    assert not np.allclose(img2, image)
    np.testing.assert_array_equal(spec2, spectrum)


def test_full_pipeline_keeps_image_and_spectrum_consistent() -> None:
    image = lattice_image(N, WAVEVECTORS, noise=0.0)
    spectrum = power_spectrum(image, window=False)
    cfg = AugmentConfig(blur_p=0, dose_p=0, ice_p=0, stripes_p=0, defocus_p=0, dropout_p=0, shear_p=1, stretch_p=1,
                        crop_p=1, seed=4)
    compose = build_augment(cfg)
    for _ in range(3):
        img2, spec2 = apply_augment(compose, image, spectrum)
        assert _peak_distance(spectral_peaks(spec2, 4), spectral_peaks(power_spectrum(img2), 4)) <= 2.0


@pytest.mark.parametrize("transform", [FieldCrop(fraction_range=(0.8, 0.8), p=1.0),
                                       Turn(quarter_turns=False, flip_p=0.0, rotate_p=1.0, angle_range=(45, 45), p=1.0),
                                       Stretch(stretch_range=(0.9, 0.9), p=1.0)], ids=["crop", "rotate", "stretch"])
def test_no_ring_is_mirrored_back_into_the_spectrum(transform) -> None:
    """Frequencies brought in from outside the array get a constant level, never a reflection
    (a reflected ice ring would be an invented one)."""
    yy, xx = np.mgrid[:N, :N]
    r = np.hypot(yy - N // 2, xx - N // 2) / (N / 2)
    spectrum = (10.0 * np.exp(-(((r - 0.86) / 0.01) ** 2))).astype(np.float32)  # one sharp ring near the edge
    image, _ = synthetic_pair(0)
    out = A.Compose([transform], seed=0)(image=image, spectrum=spectrum)["spectrum"]
    assert out.max() > 5  # the ring is still there...
    ring_radius = r[out > 5]
    assert ring_radius.max() - ring_radius.min() < 0.25  # ...as one ring (an ellipse at most)
    assert out[r > ring_radius.max() + 0.05].max() < 1.0  # and nothing ring-like beyond it
