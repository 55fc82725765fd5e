"""Power spectrum on the fixed frequency grid, from the full-resolution image."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_preprocess import ctf_image, lattice

from micrograde.pipeline.signal.spectrum import PowerSpectrum, frequency_grid, power_spectrum


def _grid_ring_peak(ps: PowerSpectrum, lo: float = 0.05) -> float:
    """Frequency (1/A) of the ring of the grid image with the most (linear) power above ``lo``."""
    _, _, r = frequency_grid(ps.size, ps.max_freq)
    bins = np.rint(r / ps.freq_step).astype(int)
    power = 10.0 ** (ps.image.astype(np.float64) * ps.log_scale)
    means = np.bincount(bins.ravel(), power.ravel()) / np.bincount(bins.ravel())
    first = int(np.ceil(lo / ps.freq_step))
    return (first + int(np.argmax(means[first : ps.size // 2]))) * ps.freq_step


@pytest.mark.parametrize("pixel", [0.8, 1.0, 1.2])
def test_lattice_of_3_67_A_peaks_at_3_67_A_for_any_pixel_size(pixel):
    rng = np.random.default_rng(int(pixel * 10))
    shape = (1024, 1280)
    img = rng.standard_normal(shape).astype(np.float32) + lattice(shape, pixel, 3.67, amp=0.3)
    ps = power_spectrum(img, pixel)
    native_bin = ps.radial_freq[1] - ps.radial_freq[0]
    first = int(0.05 / native_bin)
    peak = ps.radial_freq[first + int(np.argmax(ps.radial[first:]))]
    assert abs(peak - 1 / 3.67) <= native_bin
    assert abs(_grid_ring_peak(ps) - 1 / 3.67) <= ps.freq_step


def test_same_frequency_lands_on_the_same_grid_pixel_at_every_pixel_size():
    peaks = []
    for pixel in (0.8, 1.2):
        shape = (1024, 1024)
        img = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
        img += lattice(shape, pixel, 6.0, amp=0.3, angle=0.5, order=1)
        ps = power_spectrum(img, pixel)
        image = ps.image.copy()
        image[ps.size // 2 - 4 : ps.size // 2 + 5, ps.size // 2 - 4 : ps.size // 2 + 5] = 0  # ignore DC
        peaks.append(np.array(np.unravel_index(np.argmax(image), image.shape)))
    assert np.abs(peaks[0] - peaks[1]).max() <= 1
    fy, fx, _ = frequency_grid(256, 1 / 3.2)
    f = np.hypot(fy[tuple(peaks[0])], fx[tuple(peaks[0])])
    assert f == pytest.approx(1 / 6.0, abs=0.003)


def test_output_layout_and_types_for_a_non_square_image():
    img = np.random.default_rng(6).standard_normal((1023, 1440)).astype(np.float32)
    ps = power_spectrum(img, 0.83, size=128)
    assert ps.image.shape == (128, 128) and ps.image.dtype == np.float32
    assert np.isfinite(ps.image).all()
    assert ps.available and ps.max_freq == pytest.approx(1 / 3.2)
    assert ps.radial.shape == ps.radial_freq.shape
    assert ps.radial_freq[-1] == pytest.approx(1 / (2 * 0.83), rel=1e-4)
    assert ps.n_tiles == 2  # 512-pixel tiles of the full-resolution image
    assert abs(float(np.median(ps.image))) < 0.2  # background-subtracted


def test_unavailable_when_nyquist_is_coarser_than_3_4_A():
    img = np.random.default_rng(7).standard_normal((512, 512)).astype(np.float32)
    assert not power_spectrum(img, 2.0).available
    assert power_spectrum(img, 1.7).available


def test_beyond_nyquist_the_grid_is_filled_with_the_background():
    pixel = 1.65  # Nyquist 0.303 1/A: between 1/3.4 and the grid edge 1/3.2
    img = np.random.default_rng(8).standard_normal((512, 512)).astype(np.float32)
    ps = power_spectrum(img, pixel)
    fy, fx, _ = frequency_grid(ps.size, ps.max_freq)
    outside = (np.abs(fy) > ps.nyquist) | (np.abs(fx) > ps.nyquist)
    assert ps.available and outside.any()
    assert (ps.image[outside] == 0).all()
    assert (ps.image[~outside] != 0).mean() > 0.95


def test_intensity_scale_and_offset_do_not_change_the_spectrum():
    img = ctf_image((768, 768), 1.0, seed=3)
    a = power_spectrum(img, 1.0)
    b = power_spectrum(img * 250.0 + 1000.0, 1.0)
    np.testing.assert_allclose(a.image, b.image, atol=2e-3)
    np.testing.assert_allclose(a.radial, b.radial, atol=2e-3)


def test_half_set_correlation_sees_thon_rings_and_not_noise():
    rings = power_spectrum(ctf_image((1024, 1024), 1.0, bfactor=60, seed=1), 1.0)
    noise = power_spectrum(np.random.default_rng(1).standard_normal((1024, 1024)).astype(np.float32), 1.0)
    band = (rings.radial_freq > 0.05) & (rings.radial_freq < 0.12)
    assert np.nanmean(rings.half_corr[band]) > 0.3
    assert abs(np.nanmean(noise.half_corr[band])) < 0.05


def test_small_images_use_smaller_tiles_and_tiny_ones_are_rejected():
    ps = power_spectrum(np.random.default_rng(9).standard_normal((300, 200)).astype(np.float32), 1.0)
    assert ps.tile <= 200 and ps.n_tiles >= 2
    with pytest.raises(ValueError):
        power_spectrum(np.zeros((20, 20), np.float32), 1.0)
