"""Small sessions and a numpy-only radial power spectrum for the simulator tests."""

from __future__ import annotations

import dataclasses

import numpy as np

from micrograde.pipeline.sim.physics import SimParams, SimSession

SMALL_FLOAT = SimSession(name="t_float", detector="Falcon 4i", shape=(256, 256), pixel_size=1.0, mrc_mode=2, dose=40.0)
SMALL_SESSIONS = (
    SMALL_FLOAT,
    SimSession(name="t_int16", detector="K3", shape=(180, 256), pixel_size=0.85, mrc_mode=1, dose=50.0,
               grid_material="Au", grid_maker="UltrAuFoil"),
    SimSession(name="t_half", detector="Falcon 4", shape=(224, 224), pixel_size=1.15, mrc_mode=12, dose=35.0,
               grid_maker="C-flat"),
    SimSession(name="t_uint16", detector="K2 Summit", shape=(200, 208), pixel_size=1.05, mrc_mode=6, dose=45.0),
    SimSession(name="t_int8", detector="DE-64", shape=(192, 192), pixel_size=0.9, mrc_mode=0, dose=30.0),
)


def clean_params(**changes) -> SimParams:
    """A good micrograph's parameters (no astigmatism, no drift) with ``changes`` applied."""
    base = SimParams(
        defocus_um=1.5, astig_um=0.0, astig_angle_deg=0.0, bfactor=60.0, ice_thickness=0.3,
        crystalline_fraction=0.0, crystal_spacings_A=(), contamination=0.0, drift_A=0.0,
        drift_angle_deg=0.0, carbon_fraction=0.0, n_particles=20, empty=False, dose=40.0,
        particle_kind="globular", particle_diameter_A=120.0,
    )
    return dataclasses.replace(base, **changes)


def radial_power(img: np.ndarray, pixel_size: float, tile: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(frequency 1/A, rotationally averaged Hann-windowed periodogram averaged over tiles)."""
    a = img.astype(np.float64)
    win = np.outer(np.hanning(tile), np.hanning(tile))
    acc = np.zeros((tile, tile))
    n = 0
    for y in range(0, a.shape[0] - tile + 1, tile // 2):
        for x in range(0, a.shape[1] - tile + 1, tile // 2):
            t = a[y : y + tile, x : x + tile]
            acc += np.abs(np.fft.fft2((t - t.mean()) * win)) ** 2
            n += 1
    acc /= n
    f = np.fft.fftfreq(tile, pixel_size)
    k = np.hypot(f[:, None], f[None, :])
    step = 1.0 / (tile * pixel_size)
    idx = np.rint(k / step).astype(int).ravel()
    prof = np.bincount(idx, acc.ravel()) / np.maximum(np.bincount(idx), 1)
    nyq = int(0.5 / pixel_size / step)
    return np.arange(nyq + 1) * step, prof[: nyq + 1]


def ice_band_excess(img: np.ndarray, pixel_size: float) -> float:
    """Peak log power in 0.25-0.295 1/A above the median of the neighbouring bands."""
    freq, prof = radial_power(img, pixel_size)
    logp = np.log(prof)
    band = (freq >= 0.25) & (freq <= 0.295)
    side = ((freq >= 0.19) & (freq < 0.24)) | ((freq > 0.305) & (freq <= 0.36))
    return float(logp[band].max() - np.median(logp[side]))


# --- family b -------------------------------------------------------------------------------

def small_b_sessions():
    """Family b's default sessions shrunk to test sizes (same modes, detectors, voltages, formats)."""
    from micrograde.pipeline.sim.family_b import B_SESSIONS

    shapes = [(200, 160), (192, 192), (144, 208), (160, 224)]
    return tuple(
        dataclasses.replace(s, name=f"t{s.name}", shape=shape) for s, shape in zip(B_SESSIONS, shapes, strict=True)
    )


def b_session(**changes):
    """A square family-b session at 1 A/pixel, float32, Falcon 4i at 300 kV (``changes`` applied)."""
    from micrograde.pipeline.sim.model import SimSession

    base = SimSession(name="tb_float", detector="Falcon 4i", shape=(384, 384), pixel_size=1.0, mrc_mode=2,
                      dose=40.0, family="b", voltage_kv=300.0, cs_mm=2.7)
    return dataclasses.replace(base, **changes)


def clean_b(**changes):
    """A good family-b micrograph's parameters (nothing wrong, no astigmatism) with ``changes`` applied."""
    from micrograde.pipeline.sim.family_b import FamilyBParams

    base = FamilyBParams(
        defocus_um=1.5, astig_um=0.0, astig_angle_deg=0.0, voltage_kv=300.0, cs_mm=2.7, ice_thickness_nm=30.0,
        thickness_slope=0.0, meniscus=0.0, crystalline_area=0.0, crystal_form="hexagonal", contamination_area=0.0,
        contaminants=(), drift_path_A=0.0, drift_angle_deg=0.0, drift_bend_deg=0.0, carbon_area=0.0,
        hole_radius_A=2000.0, thin_carbon_nm=0.0, vacuum_area=0.0, particle_cover=0.2, n_particles=20,
        molecule="ellipsoids", particle_size_A=100.0, dose=40.0,
    )
    return dataclasses.replace(base, **changes)
