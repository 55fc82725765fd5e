"""Family b's physics: lattices only at full resolution, drift, MTF, vacuum, contamination, film, ice."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers_simulate import b_session, clean_b, radial_power, small_b_sessions

from micrograde.pipeline.masks import MASK_CODES
from micrograde.pipeline.signal.fourier import resample_to_pixel_size
from micrograde.pipeline.sim.family_b import B_SESSIONS, render_b, sample_b, session_traits
from micrograde.pipeline.sim.family_b.optics import detector_psf
from micrograde.pipeline.sim.model import MODE_DTYPES

SESSION = b_session()


def _render(params, session=SESSION, seed=0):
    return render_b(params, session, np.random.default_rng(seed))


def _band_mean(img, pixel_size, lo, hi, tile=128):
    freq, prof = radial_power(img.astype(np.float64), pixel_size, tile=tile)
    return float(prof[(freq >= lo) & (freq <= hi)].mean())


@pytest.mark.parametrize("form", ["hexagonal", "cubic", "mixed"])
def test_crystalline_ice_shows_at_full_resolution_and_not_after_a_4A_crop(form):
    vitreous = clean_b(n_particles=0, particle_cover=0.0)
    crystal = dataclasses.replace(vitreous, crystalline_area=0.35, crystal_form=form)
    full, cropped = [], []
    for seed in range(3):
        images = [_render(p, seed=seed).image for p in (vitreous, crystal)]
        full.append([_band_mean(im, 1.0, 0.25, 0.29) for im in images])
        small = [resample_to_pixel_size(im, 1.0, 4.0)[0] for im in images]
        cropped.append([_band_mean(im, 4.0, 1 / 40, 0.125, tile=32) for im in small])
    full_ratio = np.mean([c / v for v, c in full])
    cropped_ratio = np.mean([c / v for v, c in cropped])
    assert full_ratio > 1.5  # lattice spots / rings at 3.44-3.90 A
    assert abs(cropped_ratio - 1) < 0.1  # no density offset, nothing below 1/3.4 A


def test_crystalline_domains_are_masked_where_the_lattice_is():
    out = _render(clean_b(crystalline_area=0.3), seed=4)
    inside = out.mask == MASK_CODES["crystalline"]
    assert abs(inside.mean() - 0.3) < 0.01
    img = out.image.astype(np.float64)
    # the lattice's fringes make the pixel-to-pixel variation larger inside the domains
    d = np.abs(np.diff(img, axis=1))
    assert d[inside[:, 1:]].mean() > 1.05 * d[~inside[:, 1:]].mean()


def test_drift_lowers_power_along_its_direction():
    def directional(img):
        f = np.abs(np.fft.rfft2(img - img.mean())) ** 2
        n = img.shape[0]
        kx = np.fft.rfftfreq(n)[None, :]
        ky = np.abs(np.fft.fftfreq(n))[:, None]
        mid = lambda a: (a > 0.02) & (a < 0.06)  # noqa: E731 - cycles per pixel (1 A pixels)
        return f[(ky < 0.01) & mid(kx)].mean(), f[(kx < 0.01) & mid(ky)].mean()

    base = clean_b(n_particles=60, particle_size_A=60.0, dose=80.0)
    along_x, along_y = directional(_render(dataclasses.replace(base, drift_path_A=50.0), seed=3).image.astype(float))
    assert along_y > 2 * along_x  # drift along x (angle 0) removes x-frequencies
    bent = dataclasses.replace(base, drift_path_A=50.0, drift_angle_deg=90.0, drift_bend_deg=40.0)
    along_x, along_y = directional(_render(bent, seed=3).image.astype(float))
    assert along_x > 1.5 * along_y  # a curved path along y: still mostly y


def test_detector_mtf_lowers_high_frequency_power():
    params = clean_b(n_particles=0, particle_cover=0.0)
    ratios = {}
    for detector in ("K2 Summit", "Falcon 4i"):
        img = _render(params, b_session(detector=detector), seed=2).image
        ratios[detector] = _band_mean(img, 1.0, 0.4, 0.5) / _band_mean(img, 1.0, 0.05, 0.15)
    assert ratios["K2 Summit"] < 0.7 * ratios["Falcon 4i"]
    for mtf in (0.3, 0.55):
        psf = detector_psf(mtf)
        assert psf.sum() == pytest.approx(1.0, abs=1e-5)
        row = np.zeros(64)
        row[32 - 3 : 32 + 4] = psf.sum(axis=0)
        at_nyquist = abs(np.fft.fft(np.fft.ifftshift(row))[32])
        assert at_nyquist == pytest.approx(mtf, rel=0.15)


def test_vacuum_is_bright_without_specimen_contrast():
    out = _render(clean_b(vacuum_area=0.3, n_particles=40), seed=5)
    vac = out.mask == MASK_CODES["empty"]
    assert abs(vac.mean() - 0.3) < 0.01
    img = resample_to_pixel_size(out.image, 1.0, 8.0)[0]
    small_vac = resample_to_pixel_size(vac.astype(np.float32), 1.0, 8.0)[0] > 0.99
    small_ice = resample_to_pixel_size((~vac).astype(np.float32), 1.0, 8.0)[0] > 0.99
    assert img[small_vac].mean() > 1.1 * img[small_ice].mean()  # no ice: more electrons
    assert img[small_vac].std() / img[small_vac].mean() < 0.7 * img[small_ice].std() / img[small_ice].mean()


def test_contamination_is_dark_and_masked():
    out = _render(clean_b(contamination_area=0.25, contaminants=("ball", "chunk")), seed=6)
    dirty = out.mask == MASK_CODES["contamination"]
    assert abs(dirty.mean() - 0.25) < 0.03
    img = out.image.astype(np.float64)
    assert np.median(img[dirty]) < 0.7 * np.median(img[~dirty])


def test_film_outside_the_hole_is_darker_and_masked_as_carbon():
    for detector, grid_maker in (("Falcon 4i", "Quantifoil R2/1"), ("Falcon 4i", "UltrAuFoil R1.2/1.3")):
        session = b_session(grid_maker=grid_maker, detector=detector)
        out = _render(clean_b(carbon_area=0.4), session, seed=7)
        film = out.mask == MASK_CODES["carbon"]
        assert abs(film.mean() - 0.4) < 0.01
        img = out.image.astype(np.float64)
        factor = 0.1 if session_traits(session).support == "gold" else 0.9
        assert img[film].mean() < factor * img[~film].mean()


def test_thick_ice_passes_fewer_electrons():
    thin = _render(clean_b(ice_thickness_nm=30.0), seed=8).image.astype(np.float64)
    thick_params = clean_b(ice_thickness_nm=150.0)
    thick = _render(thick_params, seed=8).image.astype(np.float64)
    expected = thick_params.transmission / clean_b(ice_thickness_nm=30.0).transmission
    assert thick.mean() / thin.mean() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("session", small_b_sessions(), ids=lambda s: s.name)
def test_output_dtype_shape_counts_and_determinism(session):
    params = sample_b(np.random.default_rng(1), session, "medium")
    a = render_b(params, session, np.random.default_rng(2))
    b = render_b(params, session, np.random.default_rng(2))
    c = render_b(params, session, np.random.default_rng(3))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == a.mask.shape == session.shape
    assert a.image.dtype == (np.float32 if session.mrc_mode in (2, 12) else MODE_DTYPES[session.mrc_mode])
    assert a.mask.dtype == np.uint8 and set(np.unique(a.mask)) <= set(MASK_CODES.values())
    mean = float(a.image.astype(np.float64).mean())
    assert 0.2 * params.dose * session.pixel_size**2 < mean < 1.1 * params.dose * session.pixel_size**2


def test_sessions_keep_their_traits_and_differ_from_family_a():
    from micrograde.pipeline.sim.model import DEFAULT_SESSIONS

    traits = [session_traits(s) for s in B_SESSIONS]
    assert traits == [session_traits(s) for s in B_SESSIONS]  # fixed by the session
    assert len({t.gain_seed for t in traits}) == 4 and len({t.water_peak_A for t in traits}) == 4
    assert {s.pixel_size for s in B_SESSIONS}.isdisjoint({s.pixel_size for s in DEFAULT_SESSIONS})
    assert {s.shape for s in B_SESSIONS}.isdisjoint({s.shape for s in DEFAULT_SESSIONS})
    assert {s.mrc_mode for s in B_SESSIONS} == {1, 2, 6, 12} and {s.voltage_kv for s in B_SESSIONS} == {200.0, 300.0}
    assert {s.cs_mm for s in B_SESSIONS} == {2.7, 0.01} and any(s.suffix == ".tif" for s in B_SESSIONS)
    assert all(30 <= s.dose <= 70 for s in B_SESSIONS) and all(s.family == "b" for s in B_SESSIONS)
