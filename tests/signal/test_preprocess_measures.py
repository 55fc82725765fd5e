"""Physical quality measures: each responds to its own defect, in physical units, at any pixel size."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from micrograde.pipeline.catalogue.cache import CacheMissError, load_measures, save_entry
from micrograde.pipeline.config import PreprocessConfig
from micrograde.pipeline.features import feature_names, image_features
from micrograde.pipeline.signal.fourier import resample_to_pixel_size
from micrograde.pipeline.signal.measures import (
    CARBON_PIXEL_A,
    DIRECTION_PIXEL_A,
    carbon_area,
    crystalline_area,
    defocus,
    directional_power,
    electron_wavelength,
    transmission,
)
from micrograde.pipeline.signal.preprocess import preprocess
from micrograde.pipeline.signal.spectrum import power_spectrum
from micrograde.pipeline.sim.physics import DEFAULT_SESSIONS, sample_params, simulate_micrograph

SESSION = DEFAULT_SESSIONS[0]  # Falcon 4i, 1024 px at 0.95 A


@pytest.fixture(scope="module")
def clean_params():
    """A clean, thin-ice micrograph's parameters (every defect off) with all ice spacings."""
    p = sample_params(np.random.default_rng(0), SESSION, "good")
    return dataclasses.replace(p, crystal_spacings_A=(3.9, 3.67, 3.44), crystalline_fraction=0.0, contamination=0.0,
                               carbon_fraction=0.0, drift_A=0.0, ice_thickness=0.3, defocus_um=2.0)


def _sim(params, seed=1, **changes):
    p = dataclasses.replace(params, **changes)
    return simulate_micrograph(p, SESSION, np.random.default_rng(seed)), p


def test_electron_wavelength_known_values():
    assert electron_wavelength(300) == pytest.approx(0.01969, abs=2e-5)
    assert electron_wavelength(200) == pytest.approx(0.02508, abs=2e-5)


def _lattice_field(shape, pixel_size, covered: float, rng) -> np.ndarray:
    """Poisson counts with a hexagonal 3.67 A lattice over the left ``covered`` fraction of the field."""
    y, x = np.mgrid[: shape[0], : shape[1]] * pixel_size
    angles = (0.3, 0.3 + np.pi / 3, 0.3 + 2 * np.pi / 3)
    lattice = sum(np.cos(2 * np.pi / 3.67 * (x * np.cos(a) + y * np.sin(a))) for a in angles)
    mask = (np.arange(shape[1]) < covered * shape[1])[None, :]
    return rng.poisson(40.0 * (1 + 0.05 * lattice * mask)).astype(np.float32)


@pytest.mark.parametrize("pixel_size", [0.8, 1.1])
def test_crystalline_area_follows_the_covered_fraction(pixel_size):
    rng = np.random.default_rng(3)
    side = int(round(1200 / pixel_size))
    found = [crystalline_area(_lattice_field((side, side), pixel_size, f, rng), pixel_size) for f in (0.0, 0.3, 0.7)]
    assert found[0] == 0.0
    assert found[1] == pytest.approx(0.3, abs=0.12)
    assert found[2] == pytest.approx(0.7, abs=0.12)


def test_crystalline_area_separates_a_little_ice_from_a_lot(clean_params):
    none = crystalline_area(_sim(clean_params)[0], SESSION.pixel_size)
    little = crystalline_area(_sim(clean_params, crystalline_fraction=0.08)[0], SESSION.pixel_size)
    lot = crystalline_area(_sim(clean_params, crystalline_fraction=0.4)[0], SESSION.pixel_size)
    assert none == 0.0
    assert 0.02 < little < 0.3
    assert lot > 0.35 and lot > 2 * little


def test_crystalline_area_is_nan_when_the_ice_band_is_beyond_nyquist():
    img = np.random.default_rng(0).poisson(40, (512, 512)).astype(np.float32)
    assert np.isnan(crystalline_area(img, 2.0))


def test_transmission_is_counts_over_dose(clean_params):
    thin, p = _sim(clean_params, ice_thickness=0.3)
    thick, _ = _sim(clean_params, ice_thickness=0.9)
    t_thin = transmission(thin, SESSION.pixel_size, p.dose)
    t_thick = transmission(thick, SESSION.pixel_size, p.dose)
    assert t_thin == pytest.approx(np.exp(-0.8 * 0.3), rel=0.03)  # the simulator's exp(-0.8 t)
    assert t_thick == pytest.approx(np.exp(-0.8 * 0.9), rel=0.03)
    assert np.isnan(transmission(thin, SESSION.pixel_size, None))
    zero_mean = thin - thin.mean()
    assert np.isnan(transmission(zero_mean, SESSION.pixel_size, p.dose))  # not counts: refused, not guessed


def test_carbon_area_measures_a_darker_region():
    rng = np.random.default_rng(5)
    img = np.full((400, 400), 100.0, np.float32)
    img[:, :160] *= 0.88  # 40 % of the field absorbs 12 %
    img = rng.poisson(img * 5).astype(np.float32)
    low, _ = resample_to_pixel_size(img, 1.0, CARBON_PIXEL_A)
    assert carbon_area(low) == pytest.approx(0.4, abs=0.05)
    assert carbon_area(np.full((40, 40), 3.0)) == 0.0
    assert np.isnan(carbon_area(np.full((40, 40), -1.0)))


def test_directional_power_grows_with_drift(clean_params):
    def high(drift, seed):
        img, _ = _sim(clean_params, seed=seed, drift_A=drift)
        low, ps = resample_to_pixel_size(img, SESSION.pixel_size, DIRECTION_PIXEL_A)
        return directional_power(low, ps)[2]

    for seed in (1, 2):
        still, some, much = high(0.0, seed), high(20.0, seed), high(60.0, seed)
        assert some > still + 0.12
        assert much > still + 0.2


def test_directional_bands_beyond_nyquist_are_nan():
    img = np.random.default_rng(0).poisson(40, (256, 256)).astype(np.float32)
    lo, mid, hi = directional_power(img, 12.0)  # Nyquist 1/24 A: the top band is out
    assert np.isfinite(lo) and np.isfinite(mid) and np.isnan(hi)


@pytest.mark.parametrize("defocus_um", [1.0, 2.0, 3.5])
def test_defocus_is_read_from_the_thon_rings(clean_params, defocus_um):
    img, _ = _sim(clean_params, defocus_um=defocus_um)
    found, quality = defocus(power_spectrum(img, SESSION.pixel_size))
    assert found == pytest.approx(defocus_um, abs=0.15)
    assert quality > 5


def test_quality_measures_every_name_and_preprocess_carries_them(clean_params):
    img, p = _sim(clean_params)
    ps = power_spectrum(img, SESSION.pixel_size)
    every = image_features(img, SESSION.pixel_size, spectrum_given=ps, dose=p.dose)
    values = {n: every[n] for n in feature_names("measure")}
    assert tuple(every) == feature_names("score", "measure", "local")
    assert all(np.isfinite(v) for v in values.values())
    out = preprocess(img, SESSION.pixel_size, PreprocessConfig(), dose=p.dose)
    assert out.measures == pytest.approx(values, rel=0.05)  # preprocess clips hot pixels first
    assert np.isnan(preprocess(img, SESSION.pixel_size, PreprocessConfig()).measures["transmission"])


def test_measures_round_trip_through_the_cache(tmp_path):
    values = np.array([0.1, np.nan, 0.3], np.float32)
    save_entry(tmp_path, "ab" * 16, measures=values, measure_names=np.array(["a", "b", "c"]))
    got = load_measures(tmp_path, "ab" * 16)
    assert list(got) == ["a", "b", "c"] and got["a"] == pytest.approx(0.1) and np.isnan(got["b"])
    save_entry(tmp_path, "cd" * 16, image=np.zeros((4, 4), np.float32))
    with pytest.raises(CacheMissError, match="re-run `micrograde ingest`"):
        load_measures(tmp_path, "cd" * 16)
    with pytest.raises(CacheMissError, match="missing"):
        load_measures(tmp_path, "ef" * 16)
