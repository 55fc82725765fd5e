"""The simulator's physics: determinism, output types, ice lattices and the CTF in the spectrum."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers_simulate import SMALL_FLOAT, SMALL_SESSIONS, clean_params, ice_band_excess, radial_power

from micrograde.pipeline.sim.physics import (
    COUNT_DTYPES,
    DEFAULT_SESSIONS,
    ICE_SPACINGS_A,
    SimSession,
    sample_params,
    simulate_micrograph,
)
from micrograde.pipeline.sim.render import FourierGrid, ctf_terms

SESSION_512 = dataclasses.replace(SMALL_FLOAT, name="t512", shape=(512, 512))


def _sim(params, session=SMALL_FLOAT, seed=0):
    return simulate_micrograph(params, session, np.random.default_rng(seed))


def test_same_seed_same_micrograph_and_different_seed_differs():
    s = SMALL_SESSIONS[1]
    p1 = sample_params(np.random.default_rng(7), s, "bad")
    p2 = sample_params(np.random.default_rng(7), s, "bad")
    assert p1 == p2
    a = simulate_micrograph(p1, s, np.random.default_rng(3))
    b = simulate_micrograph(p2, s, np.random.default_rng(3))
    c = simulate_micrograph(p1, s, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert sample_params(np.random.default_rng(8), s, "bad") != p1


@pytest.mark.parametrize("session", SMALL_SESSIONS, ids=lambda s: f"mode{s.mrc_mode}")
def test_output_dtype_shape_and_counts(session):
    params = sample_params(np.random.default_rng(1), session, "medium")
    img = simulate_micrograph(params, session, np.random.default_rng(2))
    assert img.shape == session.shape
    assert np.isfinite(img.astype(np.float64)).all()
    if session.mrc_mode in COUNT_DTYPES:
        assert img.dtype == COUNT_DTYPES[session.mrc_mode]
        assert img.min() >= 0
    else:
        assert img.dtype == np.float32
        assert img.min() >= 0 and np.array_equal(img, np.rint(img))  # float-stored counts
    # the mean follows the dose: counts per pixel ~ dose * pixel_size^2 * transmission (<= 1)
    expected = params.dose * session.pixel_size**2
    assert 0.25 * expected < float(img.mean()) < 1.1 * expected


def test_integer_counts_saturate_instead_of_wrapping():
    s = SimSession(name="sat", detector="x", shape=(64, 64), pixel_size=2.0, mrc_mode=0, dose=60.0)
    img = _sim(clean_params(dose=60.0, n_particles=2, particle_diameter_A=40.0), s)
    assert img.dtype == np.int8 and img.min() >= 0 and img.max() == 127  # 240 e/pixel saturates


def test_crystalline_ice_gives_a_peak_at_the_ice_spacings_that_vitreous_ice_lacks():
    vitreous = _sim(clean_params(), SESSION_512, seed=5)
    crystal = _sim(clean_params(crystalline_fraction=0.35, crystal_spacings_A=ICE_SPACINGS_A), SESSION_512, seed=5)
    assert ice_band_excess(crystal, 1.0) > 0.5
    assert ice_band_excess(vitreous, 1.0) < 0.15
    # the excess sits at the lattice spacing itself
    freq, prof = radial_power(_sim(clean_params(crystalline_fraction=0.35, crystal_spacings_A=(3.67,)),
                                   SESSION_512, seed=6), 1.0)
    band = (freq > 0.2) & (freq < 0.4)
    assert abs(freq[band][np.argmax(prof[band])] - 1 / 3.67) <= 1.5 / (128 * 1.0)


def test_ice_peak_scales_with_pixel_size():
    """Same lattice at another pixel size: the peak stays at 1/3.90 1/A."""
    s = dataclasses.replace(SESSION_512, pixel_size=0.8, name="t08")
    img = _sim(clean_params(crystalline_fraction=0.4, crystal_spacings_A=(3.90,)), s, seed=2)
    freq, prof = radial_power(img, 0.8)
    band = (freq > 0.2) & (freq < 0.4)
    assert abs(freq[band][np.argmax(prof[band])] - 1 / 3.90) <= 1.5 / (128 * 0.8)


def test_ice_peak_in_the_pipeline_power_spectrum():
    from micrograde.pipeline.signal.spectrum import power_spectrum

    def band_peak(img):
        ps = power_spectrum(img, 1.0, tile=256)
        freq, radial = ps.radial_freq, ps.radial
        band = (freq >= 0.25) & (freq <= 0.295)
        side = ((freq >= 0.19) & (freq < 0.24)) | ((freq > 0.305) & (freq <= 0.36))
        return float(radial[band].max() - np.median(radial[side]))

    crystal = _sim(clean_params(crystalline_fraction=0.35, crystal_spacings_A=ICE_SPACINGS_A), SESSION_512, 9)
    vitreous = _sim(clean_params(), SESSION_512, 9)
    assert band_peak(crystal) > band_peak(vitreous) + 0.2


def test_first_thon_ring_minimum_matches_the_ctf():
    """The radial spectrum's first minimum lies at the first zero of the simulated CTF."""
    params = clean_params(defocus_um=2.0, n_particles=0, empty=True, bfactor=40.0, ice_thickness=0.5)
    img = _sim(params, SESSION_512, seed=1)
    freq, prof = radial_power(img, 1.0)
    grid = FourierGrid((1, 4096), 1.0)
    phase_ctf, _ = ctf_terms(grid, params)
    k = grid.kx[0]
    first_zero = k[np.argmax(np.diff(np.sign(phase_ctf[0])) != 0)]
    window = (freq > 0.6 * first_zero) & (freq < 1.3 * first_zero)
    minimum = freq[window][np.argmin(prof[window])]
    assert abs(minimum - first_zero) <= 2.0 / (128 * 1.0)


def test_drift_blurs_along_its_direction_only():
    base = clean_params(n_particles=40, particle_diameter_A=60.0)
    img = _sim(dataclasses.replace(base, drift_A=40.0, drift_angle_deg=0.0), SESSION_512, seed=3).astype(float)
    f = np.abs(np.fft.rfft2(img - img.mean())) ** 2
    kx = np.fft.rfftfreq(512)[None, :]
    ky = np.abs(np.fft.fftfreq(512))[:, None]
    mid = lambda a: (a > 0.025) & (a < 0.08)  # noqa: E731 - a band of frequencies, 1/A
    along_x = f[(ky < 0.01) & mid(kx)].mean()  # drift along x removes these
    along_y = f[(kx < 0.01) & mid(ky)].mean()
    assert along_y > 2 * along_x


def test_contamination_darkens_and_thick_ice_lowers_counts():
    clean = _sim(clean_params(), SESSION_512, 4).astype(float)
    dirty = _sim(clean_params(contamination=0.3), SESSION_512, 4).astype(float)
    thick = _sim(clean_params(ice_thickness=0.95), SESSION_512, 4).astype(float)
    assert (dirty < 0.5 * clean.mean()).mean() > 0.2  # ~30 % of the area is strongly dark
    assert (clean < 0.5 * clean.mean()).mean() < 0.01
    assert thick.mean() < 0.75 * clean.mean()


def test_particles_add_power_at_particle_sizes_that_an_empty_hole_lacks():
    def band_power(img):
        freq, prof = radial_power(img, 1.0)
        return prof[(freq > 1 / 60) & (freq < 1 / 15)].mean() / prof[freq > 0.3].mean()

    for seed in (0, 1):
        full = _sim(clean_params(n_particles=60, particle_diameter_A=80.0), SESSION_512, seed)
        empty = _sim(clean_params(n_particles=0, empty=True), SESSION_512, seed)
        assert band_power(full) > 1.15 * band_power(empty)


def test_default_sessions_are_diverse_and_small():
    s = DEFAULT_SESSIONS
    assert len(s) >= 3
    assert len({x.mrc_mode for x in s}) >= 3 and {2}.issubset({x.mrc_mode for x in s})
    assert len({x.shape for x in s}) >= 3 and all(max(x.shape) <= 1024 for x in s)
    assert any(x.shape[0] == x.shape[1] for x in s)
    assert any(abs(max(x.shape) / min(x.shape) - 1.41) < 0.03 for x in s)  # K3-like aspect
    assert all(0.8 <= x.pixel_size <= 1.2 for x in s) and len({x.pixel_size for x in s}) == len(s)
    assert {x.grid_material for x in s} == {"Cu", "Au"} and len({x.grid_maker for x in s}) >= 2
    assert len({x.dose for x in s}) >= 3 and len({x.detector for x in s}) >= 3


def test_invalid_session_and_params_are_rejected():
    with pytest.raises(ValueError, match="MRC mode"):
        SimSession(name="x", detector="x", shape=(64, 64), pixel_size=1.0, mrc_mode=3, dose=40)
    with pytest.raises(ValueError, match="ice_thickness"):
        clean_params(ice_thickness=1.5)
    with pytest.raises(ValueError, match="subset"):
        clean_params(crystalline_fraction=0.2, crystal_spacings_A=(2.5,))
