"""The spectrum profile on a fixed 1/A grid and the network's views at a fixed pixel size."""

from __future__ import annotations

import numpy as np
import pytest

from micrograde.pipeline.signal.profile import PROFILE_EDGES, profile_names, spectrum_profile
from micrograde.pipeline.signal.views import (
    MIN_FIELD,
    crop_positions,
    dihedral,
    field_views,
    image_views,
    resample_view,
    spectrum_views,
)


def _radial(pixel_size: float, tile: int = 256, peak: float | None = None):
    f = np.arange(tile // 2 + 1) / (tile * pixel_size)
    z = -2.0 * f  # power falling with frequency
    if peak is not None:
        z = z + 1.5 * np.exp(-0.5 * ((f - peak) / 0.008) ** 2)  # as wide as a real ice ring
    return z.astype(np.float32), f.astype(np.float32)


def test_the_same_spectrum_gives_the_same_profile_at_any_pixel_size():
    a = spectrum_profile(*_radial(0.8, peak=0.275))
    b = spectrum_profile(*_radial(1.2, peak=0.275))  # Nyquist 0.417 1/A: still every bin
    assert a.shape == (len(profile_names()),) == (2 * (len(PROFILE_EDGES) - 1),)
    assert np.allclose(a, b, atol=0.12, equal_nan=True)


def test_an_ice_reflection_shows_in_its_ripple_bin_and_a_level_shift_changes_nothing():
    z, f = _radial(1.0, peak=0.275)
    prof = dict(zip(profile_names(), spectrum_profile(z, f), strict=True))
    ripple = {k: v for k, v in prof.items() if k.startswith("ripple_")}
    assert max(ripple, key=ripple.get) == "ripple_0.27"
    shifted = spectrum_profile(z + 3.0, f)
    assert np.allclose(shifted, spectrum_profile(z, f), atol=1e-5, equal_nan=True)  # per-micrograph whitening


def test_bins_beyond_nyquist_are_missing():
    prof = dict(zip(profile_names(), spectrum_profile(*_radial(7.5)), strict=True))  # Nyquist 0.067 1/A
    assert np.isfinite(prof["level_0.05"]) and np.isnan(prof["level_0.07"]) and np.isnan(prof["ripple_0.30"])


def test_dihedral_gives_the_eight_distinct_symmetries_of_a_square():
    a = np.arange(16.0).reshape(4, 4)
    views = {dihedral(a, k).tobytes() for k in range(8)}
    assert len(views) == 8 and dihedral(a, 8).tobytes() == a.tobytes()


def test_crop_positions_cover_the_field_from_edge_to_edge():
    assert crop_positions(300, 64, 4) == [0, 79, 157, 236]
    assert crop_positions(50, 64, 3) == [0]


@pytest.mark.parametrize("pixel_size", [2.0, 4.0, 7.5, 12.0])
def test_views_show_a_lattice_at_the_same_period_in_pixels_whatever_the_pixel_size(pixel_size):
    period_a = 64.0  # Angstrom
    n = int(2048 / pixel_size)
    x = np.arange(n) * pixel_size
    img = np.cos(2 * np.pi * x / period_a)[None, :] * np.ones((n, 1))
    views = image_views(img.astype(np.float32), pixel_size, target=8.0, crop=64, max_crops=4, min_views=1, size=64)
    spec = np.abs(np.fft.rfft(views[0].mean(axis=0) if views[0].std(axis=0).mean() < views[0].std(axis=1).mean()
                              else views[0].mean(axis=1)))
    spec[0] = 0
    assert int(np.argmax(spec)) == 64 * 8 // 64  # 8 A/px: a 64 A period is 8 px, i.e. 8 cycles in 64 px


def test_small_fields_are_padded_and_shown_in_several_orientations():
    view = np.random.default_rng(0).normal(size=(40, 50)).astype(np.float32)
    out = image_views(view, 8.0, target=8.0, crop=64, max_crops=8, min_views=4, size=128)
    assert out.shape == (4, 128, 128)
    assert len({v.tobytes() for v in out}) == 4


def test_resample_and_spectrum_views_shapes():
    v = np.ones((100, 80), np.float32)
    assert resample_view(v, 4.0, 8.0).shape == (50, 40)
    assert resample_view(v, 16.0, 8.0).shape == (200, 160)
    s = spectrum_views(np.random.default_rng(1).normal(size=(256, 256)), 128, 2)
    assert s.shape == (2, 128, 128) and np.allclose(s[1], s[0].T)


def test_field_views_show_the_whole_field_at_the_target_scale_in_few_orientations():
    rng = np.random.default_rng(0)
    view = rng.standard_normal((300, 400)).astype(np.float32)  # 4 A/px: 1200 x 1600 A
    out = field_views(view, 4.0, target=8.0, min_pixels=30_000)
    assert out.shape == (1, 150, 200)  # the whole field at 8 A/px; 30,000 pixels are enough
    assert np.isclose(out[0].mean(), view.mean(), atol=1e-4)  # a Fourier crop keeps the mean
    out = field_views(view, 4.0, target=8.0, min_pixels=60_000)  # two fields' worth: a flip is added
    assert out.shape == (2, 150, 200) and np.allclose(out[1], out[0][::-1])
    assert field_views(view, 4.0, target=8.0, min_pixels=10**9).shape[0] == 4  # at most the four of its shape


def test_field_views_never_invent_detail_and_pad_tiny_fields():
    view = np.random.default_rng(1).standard_normal((20, 50)).astype(np.float32)
    out = field_views(view, 16.0, target=8.0, min_pixels=1)  # a view coarser than the target keeps its scale
    assert out.shape == (1, MIN_FIELD, 50)
    assert np.allclose(out[0, 6:26], view)  # reflect-padded to MIN_FIELD rows, the field untouched
