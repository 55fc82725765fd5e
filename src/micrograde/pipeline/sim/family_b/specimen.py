"""Family b's specimen: 3-D molecules of hard-edged ellipsoids, their real-space projections,
particle placement, and the solvent's noise spectrum.

A molecule is a set of ellipsoids of uniform density: a compact complex of a few ellipsoids, a
random-walk chain of beads (an elongated, flexible complex) or a helical filament. A projection
is the exact path length through the ellipsoids along the beam, computed per pixel; each
micrograph renders a few random 3-D orientations and stamps them (with in-plane quarter turns
and flips, which are projections too) at the particle positions.
"""

from __future__ import annotations

import hashlib
import math

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from micrograde.pipeline.sim.family_b.model import FamilyBParams, SessionTraits, interaction_constant
from micrograde.pipeline.sim.render import FourierGrid

__all__ = [
    "Ellipsoid",
    "AREA_FACTOR",
    "molecule_parts",
    "project",
    "view_library",
    "place_particles",
    "stamp",
    "particle_phase_per_A",
    "ice_spectrum",
]

F32 = np.float32
Ellipsoid = tuple[np.ndarray, np.ndarray, np.ndarray]  # centre (3,), semi-axes (3,), rotation (3, 3)
_VIEWS = 10  # 3-D orientations rendered per micrograph
_MAX_BOX = 160  # projections are rendered on at most this many pixels a side, then resized
_DELTA_V = 2.4  # potential of protein above the surrounding ice (V)
#: projected area of a molecule as a share of the disc of its size (for particle counts)
AREA_FACTOR = {"ellipsoids": 0.45, "chain": 0.3, "filament": 0.25}


def molecule_parts(kind: str, size_A: float, session_name: str) -> list[Ellipsoid]:
    """The ellipsoids of the session's molecule (fixed by the session name), extent ~``size_A``."""
    seed = int.from_bytes(hashlib.sha256(f"molecule|{session_name}|{kind}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    parts: list[Ellipsoid] = []
    if kind == "ellipsoids":
        for _ in range(int(rng.integers(4, 9))):
            v = rng.standard_normal(3)
            centre = v / np.linalg.norm(v) * rng.uniform(0.0, 0.28) * size_A
            axes = rng.uniform(0.1, 0.22, 3) * size_A
            parts.append((centre, axes, Rotation.random(rng=rng).as_matrix()))
    elif kind == "chain":
        bead = rng.uniform(0.1, 0.13) * size_A
        n = int(rng.integers(8, 14))
        direction, pos = np.array([1.0, 0.0, 0.0]), np.zeros(3)
        for _ in range(n):
            parts.append((pos.copy(), np.full(3, bead), np.eye(3)))
            direction = direction + rng.normal(0, 0.45, 3)  # persistence: the walk bends gently
            direction /= np.linalg.norm(direction)
            pos = pos + 1.5 * bead * direction
    elif kind == "filament":
        radius, rise = 0.11 * size_A, 0.06 * size_A
        n = int(size_A * 0.85 / rise)
        for i in range(n):
            a = i * 2 * math.pi / 5.3
            centre = np.array([i * rise, 0.6 * radius * math.cos(a), 0.6 * radius * math.sin(a)])
            parts.append((centre, np.array([1.1, 0.8, 0.8]) * radius, np.eye(3)))
    else:
        raise ValueError(f"unknown molecule {kind!r}")
    centres = np.array([c for c, _, _ in parts])
    shift = centres.mean(axis=0)
    extent = max(float(np.ptp(centres, axis=0).max()) + 2 * max(float(a.max()) for _, a, _ in parts), 1e-6)
    scale = size_A / extent
    return [((c - shift) * scale, a * scale, r) for c, a, r in parts]


def project(parts: list[Ellipsoid], rotation: np.ndarray, box: int, pixel_A: float) -> np.ndarray:
    """Projected thickness (A) of the rotated molecule along z on a ``box`` x ``box`` grid.

    For an ellipsoid ``{r: (r-c)^T A (r-c) <= 1}`` the chord along z at in-plane offset ``u`` is
    ``2 sqrt(a33 - u^T (a33 S - s s^T) u) / a33`` with ``A = [[S, s], [s^T, a33]]``.
    """
    out = np.zeros((box, box), dtype=F32)
    half = box / 2.0
    for centre, axes, own in parts:
        q = rotation @ own
        a = q @ np.diag(1.0 / axes**2) @ q.T
        c = rotation @ centre
        s, a33 = a[:2, 2], a[2, 2]
        m = a33 * a[:2, :2] - np.outer(s, s)
        reach = float(axes.max()) / pixel_A + 1
        cx, cy = half + c[0] / pixel_A, half + c[1] / pixel_A
        x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, box)
        y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, box)
        if x0 >= x1 or y0 >= y1:
            continue
        ux = ((np.arange(x0, x1) + 0.5 - cx) * pixel_A).astype(F32)[None, :]
        uy = ((np.arange(y0, y1) + 0.5 - cy) * pixel_A).astype(F32)[:, None]
        quad = F32(m[0, 0]) * ux * ux + F32(2 * m[0, 1]) * ux * uy + F32(m[1, 1]) * uy * uy
        out[y0:y1, x0:x1] += F32(2 / a33) * np.sqrt(np.maximum(F32(a33) - quad, 0))
    return out


def view_library(rng: np.random.Generator, parts: list[Ellipsoid], size_A: float, pixel_A: float) -> list[np.ndarray]:
    """Projections of the molecule in ``_VIEWS`` uniformly random orientations at ``pixel_A``."""
    box = int(math.ceil(1.2 * size_A / pixel_A)) + 2
    render_box, render_px = box, pixel_A
    if box > _MAX_BOX:  # large particles: render coarser, then resize to the real pixel size
        render_box, render_px = _MAX_BOX, pixel_A * box / _MAX_BOX
    views = []
    for rot in Rotation.random(_VIEWS, rng=rng).as_matrix():
        v = project(parts, rot, render_box, render_px)
        views.append(v if render_box == box else cv2.resize(v, (box, box), interpolation=cv2.INTER_LINEAR))
    return views


def place_particles(
    rng: np.random.Generator, n: int, shape: tuple[int, int], spacing_px: float, allowed: np.ndarray, film: np.ndarray
) -> np.ndarray:
    """Up to ``n`` centres (y, x) in ``allowed`` pixels, ``spacing_px`` apart (fewer on the film)."""
    ny, nx = shape
    if n <= 0:
        return np.zeros((0, 2))
    cand = rng.uniform([0, 0], [ny, nx], size=(10 * n, 2))
    keep_film = rng.random(len(cand)) < 0.3
    kept = np.empty((n, 2))
    count = 0
    for (y, x), on_film_ok in zip(cand, keep_film, strict=True):
        iy, ix = int(y), int(x)
        if not allowed[iy, ix] or (film[iy, ix] and not on_film_ok):
            continue
        if count and (((kept[:count] - (y, x)) ** 2).sum(1).min() < spacing_px**2):
            continue
        kept[count] = (y, x)
        count += 1
        if count == n:
            break
    return kept[:count]


def stamp(rng: np.random.Generator, target: np.ndarray, views: list[np.ndarray], centres: np.ndarray) -> None:
    """Add a view (random choice, quarter turn and flip) at each centre of ``target`` in place."""
    ny, nx = target.shape
    for y, x in centres:
        v = np.rot90(views[int(rng.integers(len(views)))], int(rng.integers(4)))
        if rng.random() < 0.5:
            v = v[::-1]
        h = v.shape[0]
        y0, x0 = int(round(y)) - h // 2, int(round(x)) - h // 2
        ty0, tx0, ty1, tx1 = max(y0, 0), max(x0, 0), min(y0 + h, ny), min(x0 + h, nx)
        if ty0 < ty1 and tx0 < tx1:
            target[ty0:ty1, tx0:tx1] += v[ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0]


def particle_phase_per_A(params: FamilyBParams) -> float:
    """Phase shift (rad) per Angstrom of protein along the beam."""
    return interaction_constant(params.voltage_kv) * _DELTA_V


def _mean_ice_shape(traits: SessionTraits) -> float:
    """Mean of the ice spectrum's shape over frequencies up to 1/2 A^-1 (the 1 A/pixel square)."""
    f = np.fft.fftfreq(256)
    return float(np.mean(_ice_shape(np.hypot(f[:, None], f[None, :]).astype(F32), traits)))


def _ice_shape(k: np.ndarray, traits: SessionTraits) -> np.ndarray:
    lorentz = F32(1) / (F32(1) + (k * F32(traits.ice_corr_A)) ** 2)
    k_w = F32(1 / traits.water_peak_A)
    shoulder = F32(traits.water_weight) * np.exp(-0.5 * ((k - k_w) / F32(0.06)) ** 2)
    return (lorentz + shoulder) * (F32(1) - np.exp(-((k * F32(500.0)) ** 2)))


def ice_spectrum(
    rng: np.random.Generator, grid: FourierGrid, params: FamilyBParams, traits: SessionTraits
) -> np.ndarray:
    """The solvent's phase noise, drawn directly on the rfft half-plane (complex64).

    Power ``1 / (1 + (k xi)^2)`` (correlated solvent density, correlation length ``xi`` per
    session) plus a water-like shoulder at the session's ``water_peak_A`` (2.8-3.6 A), rising
    from nothing below ~1/500 A. The spectral density is physical (per A^2, the same at every
    pixel size); the rms phase of 1 A pixels is 0.22 rad for 50 nm of ice and grows with the
    square root of the thickness.
    """
    rms = 0.22 * math.sqrt(params.ice_thickness_nm / 50.0)
    ny, nx = grid.shape
    scale = rms * math.sqrt(ny * nx / 2 / _mean_ice_shape(traits)) / grid.pixel_size
    amp = np.sqrt(_ice_shape(grid.k, traits)) * F32(scale)
    z = rng.standard_normal((2, *amp.shape), dtype=F32)
    return ((z[0] + 1j * z[1]) * amp).astype(np.complex64, copy=False)
