"""Family b's grid: the hole of a holey film, the film itself, vacuum, and the ice thickness map.

The field of view sits near a circular hole of radius ``hole_radius_A``; the film (carbon, or
gold on UltrAuFoil grids) lies outside the circle, placed so that it covers ``carbon_area`` of
the image. Vacuum is either a dry crescent along the hole edge (ice pulled away from the film)
or a tear in the ice, covering ``vacuum_area``. The ice is thicker towards the hole edge
(meniscus), has a wedge across the field, and gentle undulations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from micrograde.pipeline.sim.family_b.model import FamilyBParams, SessionTraits, inelastic_mean_free_path_nm

__all__ = ["Support", "smooth_field", "lowest_fraction", "build_support"]

F32 = np.float32
_COARSE_SIDE = 128  # long side of the grids smooth fields are drawn on
_CARBON_MFP = 0.25  # attenuation length of carbon relative to ice's (denser; scatters outside the aperture)


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], pixel_size: float, scale_A: float, stretch: float = 1.0
) -> np.ndarray:
    """Gaussian random field (zero mean, unit std, float32) with features ~``scale_A``.

    Drawn on a coarse grid and upsampled bilinearly; ``stretch`` > 1 elongates the features
    along x (or y, at random).
    """
    ny, nx = shape
    step = max(1, int(math.ceil(max(ny, nx) / _COARSE_SIDE)))
    coarse = rng.standard_normal((ny // step + 2, nx // step + 2)).astype(F32)
    sigma = max(scale_A / (pixel_size * step), 0.7)
    sig = (sigma, sigma * stretch) if rng.random() < 0.5 else (sigma * stretch, sigma)
    coarse = ndimage.gaussian_filter(coarse, sig, mode="wrap")
    coarse -= coarse.mean()
    coarse /= max(float(coarse.std()), 1e-6)
    return cv2.resize(coarse, (nx + 2 * step, ny + 2 * step), interpolation=cv2.INTER_LINEAR)[:ny, :nx]


def lowest_fraction(score: np.ndarray, allowed: np.ndarray | None, fraction: float) -> np.ndarray:
    """Boolean region: the ``fraction`` of the *whole image* with the lowest ``score`` within ``allowed``."""
    if fraction <= 0:
        return np.zeros(score.shape, dtype=bool)
    sub = score[::3, ::3] if allowed is None else score[::3, ::3][allowed[::3, ::3]]
    if sub.size == 0:
        return np.zeros(score.shape, dtype=bool)
    share = min(1.0, fraction * score[::3, ::3].size / sub.size)
    region = score <= np.quantile(sub, share)
    return region if allowed is None else region & allowed


@dataclass(frozen=True)
class Support:
    """The grid under one micrograph (all arrays of the image's shape)."""

    edge_dist_A: np.ndarray  # signed distance to the hole edge (positive inside the hole)
    film: np.ndarray  # bool: support film
    vacuum: np.ndarray  # bool: no ice
    thickness_nm: np.ndarray  # ice thickness (0 in vacuum)
    transmission: np.ndarray  # zero-loss transmission of ice + film + thin carbon
    film_phase: np.ndarray  # phase texture of the film and the thin carbon (rad)


def _hole_distance(rng: np.random.Generator, shape: tuple[int, int], p: float, params: FamilyBParams) -> np.ndarray:
    """Signed distance (A) to a hole edge placed so that the film covers ``carbon_area``."""
    ny, nx = shape
    yy = (np.arange(ny, dtype=F32)[:, None] - F32(ny / 2)) * F32(p)
    xx = (np.arange(nx, dtype=F32)[None, :] - F32(nx / 2)) * F32(p)
    r = params.hole_radius_A
    theta = rng.uniform(0, 2 * math.pi)
    uy, ux = math.sin(theta), math.cos(theta)
    if params.carbon_area <= 0:
        offset = 0.0
    else:
        sy, sx = yy[::5], xx[:, ::5]
        lo, hi = 0.0, r + math.hypot(ny, nx) * p
        for _ in range(24):  # film share grows with the centre's offset: bisect for carbon_area
            mid = (lo + hi) / 2
            share = float((np.hypot(sy - F32(uy * mid), sx - F32(ux * mid)) > r).mean())
            lo, hi = (lo, mid) if share > params.carbon_area else (mid, hi)
        offset = (lo + hi) / 2
    return F32(r) - np.hypot(yy - F32(uy * offset), xx - F32(ux * offset))


def build_support(
    rng: np.random.Generator, shape: tuple[int, int], p: float, params: FamilyBParams, traits: SessionTraits
) -> Support:
    """The hole, film, vacuum and ice thickness of one micrograph."""
    dist = _hole_distance(rng, shape, p, params)
    film = dist < 0
    hole = ~film
    mfp = inelastic_mean_free_path_nm(params.voltage_kv)

    # vacuum: a dry crescent along the edge (when the edge is in view) or a tear in the ice
    vacuum = np.zeros(shape, dtype=bool)
    if params.vacuum_area > 0:
        if film.any() and rng.random() < 0.6:
            score = dist + F32(0.08 * params.hole_radius_A) * smooth_field(rng, shape, p, 250.0)
        else:
            score = -smooth_field(rng, shape, p, rng.uniform(120.0, 300.0), stretch=rng.uniform(1.0, 4.0))
        vacuum = lowest_fraction(score, hole, params.vacuum_area)

    # ice: mean thickness in the hole, a wedge, a meniscus towards the edge, undulations
    theta = rng.uniform(0, 2 * math.pi)
    ny, nx = shape
    ramp = (np.arange(ny, dtype=F32)[:, None] / F32(ny) - F32(0.5)) * F32(math.sin(theta))
    ramp = ramp + (np.arange(nx, dtype=F32)[None, :] / F32(nx) - F32(0.5)) * F32(math.cos(theta))
    near_edge = np.exp(-np.maximum(dist, 0) / F32(0.2 * params.hole_radius_A))
    rel = F32(1) + F32(params.thickness_slope) * ramp + F32(0.04) * smooth_field(rng, shape, p, 400.0)
    rel += F32(params.meniscus) * (near_edge - F32(near_edge[hole].mean() if hole.any() else 0.0))
    thickness = F32(params.ice_thickness_nm) * np.maximum(rel, F32(0.2))
    thickness[film] *= F32(0.8)  # ice over the film too
    thickness[vacuum] = 0
    transmission = np.exp(-thickness / F32(mfp))

    # the film: carbon (amorphous, grainy, thicker at its edge) or gold foil (nearly opaque)
    film_phase = np.zeros(shape, dtype=F32)
    if not film.any() and params.thin_carbon_nm <= 0:
        return Support(dist, film, vacuum, thickness, transmission.astype(F32, copy=False), film_phase)
    # grain of amorphous carbon: white noise blurred by 0.8 px, scaled to a physical density
    fine = cv2.GaussianBlur(rng.standard_normal(shape, dtype=F32), (0, 0), 0.8) * F32(1 / p)
    if film.any():
        ridge = F32(1) + F32(0.6) * np.exp(np.minimum(dist, 0) / F32(40.0))
        if traits.support == "gold":
            grains = F32(1) + F32(0.25) * smooth_field(rng, shape, p, 60.0)
            transmission[film] *= (F32(0.04) * grains)[film]
            film_phase[film] = (F32(0.25) * fine)[film]
        else:
            film_nm = rng.uniform(12.0, 30.0)
            grain = F32(1) + F32(0.15) * smooth_field(rng, shape, p, 30.0)
            transmission[film] *= np.exp(-(F32(film_nm / (_CARBON_MFP * mfp)) * ridge * grain))[film]
            film_phase[film] = (F32(0.03 * film_nm / 10.0) * fine * ridge)[film]
    if params.thin_carbon_nm > 0:  # continuous thin carbon across the holes: a support, never masked
        transmission *= F32(math.exp(-params.thin_carbon_nm / (_CARBON_MFP * mfp)))
        film_phase += F32(0.006 * params.thin_carbon_nm / 2.0) * fine
    return Support(dist, film, vacuum, thickness, transmission.astype(F32, copy=False), film_phase)
