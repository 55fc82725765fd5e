"""Building blocks of the micrograph simulator: frequency grids, the CTF, and the parts of the
specimen (particles, soft blobs, a carbon edge, crystalline-ice domains).

All functions take a random generator and return float32 arrays; nothing here reads or writes
files. Lengths are in Angstrom unless the name ends in ``_px``.
"""

from __future__ import annotations

import zlib

import numpy as np
import scipy.fft as sfft

from micrograde.pipeline.sim.model import SimParams

__all__ = [
    "FourierGrid",
    "ctf_terms",
    "particle_points",
    "particle_deltas",
    "soft_blobs",
    "carbon_mask",
    "crystal_lattice",
    "fourier_noise",
]

F32 = np.float32


class FourierGrid:
    """Spatial frequencies (1/A) of an ``rfft2`` of a (ny, nx) image at ``pixel_size``."""

    def __init__(self, shape: tuple[int, int], pixel_size: float) -> None:
        ny, nx = shape
        self.shape = (ny, nx)
        self.pixel_size = pixel_size
        self.kx = sfft.rfftfreq(nx, d=pixel_size).astype(F32)[None, :]
        self.ky = sfft.fftfreq(ny, d=pixel_size).astype(F32)[:, None]
        self.k2 = self.kx**2 + self.ky**2
        self.k = np.sqrt(self.k2)
        self.angle = np.arctan2(self.ky, self.kx)


def ctf_terms(grid: FourierGrid, params: SimParams) -> tuple[np.ndarray, np.ndarray]:
    """(phase CTF, amplitude CTF): ``-(sqrt(1-w^2) sin chi + w cos chi)`` and ``cos chi``.

    ``chi = pi lambda dz k^2 - pi/2 Cs lambda^3 k^4`` with an astigmatic defocus
    ``dz(theta) = defocus + astig/2 cos(2 (theta - astig_angle))`` (underfocus positive).
    """
    lam = F32(params.wavelength_A)
    cs = F32(params.cs_mm * 1e7)
    ang = np.deg2rad(params.astig_angle_deg)
    dz = F32(params.defocus_um * 1e4) + F32(0.5 * params.astig_um * 1e4) * np.cos(2 * (grid.angle - F32(ang)))
    chi = F32(np.pi) * lam * dz * grid.k2 - F32(np.pi / 2) * cs * lam**3 * grid.k2**2
    w = F32(params.amplitude_contrast)
    cos_chi = np.cos(chi)
    phase_ctf = -(F32(np.sqrt(1 - w * w)) * np.sin(chi) + w * cos_chi)
    return phase_ctf.astype(F32, copy=False), cos_chi.astype(F32, copy=False)


def fourier_noise(rng: np.random.Generator, grid: FourierGrid) -> np.ndarray:
    """Complex Gaussian noise on the rfft half-plane with the statistics of ``rfft2(white noise)``."""
    ny, nx = grid.shape
    z = rng.standard_normal((ny, nx // 2 + 1, 2), dtype=F32)
    z *= F32(np.sqrt(ny * nx / 2))
    return z.view(np.complex64)[..., 0]


def particle_points(kind: str, diameter: float) -> np.ndarray:
    """3-D centres (n, 3) of the Gaussian lobes that make up one particle of ``kind``.

    The layout of a kind is fixed (seeded by its name), so every particle of a session is the same
    molecule seen in a different orientation.
    """
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    r = diameter / 2
    if kind == "globular":
        pts = rng.uniform(-1, 1, size=(400, 3))
        pts = pts[(pts**2).sum(1) < 1][:14] * np.array([0.8, 0.65, 0.55]) * r
    elif kind == "shell":
        v = rng.standard_normal((32, 3))
        pts = 0.85 * r * v / np.linalg.norm(v, axis=1, keepdims=True)
    elif kind == "dumbbell":
        a = rng.standard_normal((8, 3)) * 0.18 * r + [0.5 * r, 0, 0]
        b = rng.standard_normal((8, 3)) * 0.18 * r - [0.5 * r, 0, 0]
        pts = np.concatenate([a, b, [[0.0, 0.0, 0.0]]])
    elif kind == "ring":
        t = np.linspace(0, 2 * np.pi, 14, endpoint=False)
        pts = np.stack([0.7 * r * np.cos(t), 0.7 * r * np.sin(t), rng.normal(0, 0.05 * r, t.size)], axis=1)
    elif kind == "rod":
        x = np.linspace(-0.85 * r, 0.85 * r, 12)
        pts = np.stack([x, rng.normal(0, 0.08 * r, 12), rng.normal(0, 0.08 * r, 12)], axis=1)
    else:
        raise ValueError(f"unknown particle kind {kind!r}")
    return pts - pts.mean(0)


def _random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform random rotation matrices (n, 3, 3) from unit quaternions."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def particle_deltas(
    rng: np.random.Generator, shape: tuple[int, int], pixel_size: float, params: SimParams
) -> np.ndarray:
    """Weighted deltas at the projected lobe centres of ``n_particles`` randomly oriented particles.

    Centres keep about one diameter apart (greedy rejection). Convolving the result with the lobe
    Gaussian (done in Fourier space by the caller) gives the projected potential.
    """
    ny, nx = shape
    out = np.zeros(ny * nx, dtype=np.float64)
    n = 0 if params.empty else params.n_particles
    if n == 0:
        return out.reshape(ny, nx).astype(F32)
    d_px = params.particle_diameter_A / pixel_size
    margin = min(0.3 * d_px, 0.25 * min(ny, nx))
    cand = rng.uniform([margin, margin], [ny - margin, nx - margin], size=(6 * n, 2))
    kept: list[np.ndarray] = []
    min_d2 = (0.95 * d_px) ** 2
    for c in cand:
        if len(kept) == n:
            break
        if not kept or ((np.asarray(kept) - c) ** 2).sum(1).min() >= min_d2:
            kept.append(c)
    centres = np.asarray(kept)
    pts = particle_points(params.particle_kind, params.particle_diameter_A) / pixel_size
    rot = _random_rotations(rng, len(centres))
    proj = np.einsum("nij,mj->nmi", rot, pts)[..., :2]  # (n, m, 2): x, y of rotated lobes
    yy = np.rint(centres[:, None, 0] + proj[..., 1]).astype(np.int64).ravel()
    xx = np.rint(centres[:, None, 1] + proj[..., 0]).astype(np.int64).ravel()
    ok = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
    out += np.bincount(yy[ok] * nx + xx[ok], minlength=ny * nx)
    return out.reshape(ny, nx).astype(F32)


def _ellipse_patch(
    shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float, angle: float, wobble: float, phase: float
) -> tuple[tuple[slice, slice], np.ndarray]:
    """A soft ellipse (values 0..1, ~1.5 px edge) with a wavy outline, clipped to the image."""
    ny, nx = shape
    r = max(ry, rx) * (1 + wobble) + 2
    y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, ny)
    x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, nx)
    yy = np.arange(y0, y1, dtype=F32)[:, None] - F32(cy)
    xx = np.arange(x0, x1, dtype=F32)[None, :] - F32(cx)
    ca, sa = F32(np.cos(angle)), F32(np.sin(angle))
    u, v = xx * ca + yy * sa, -xx * sa + yy * ca
    rho = np.sqrt((u / F32(rx)) ** 2 + (v / F32(ry)) ** 2)
    if wobble:
        rho /= 1 + F32(wobble) * np.sin(3 * np.arctan2(v, u) + F32(phase))
    patch = np.clip((1 - rho) * F32(min(rx, ry) / 1.5) + F32(0.5), 0, 1)
    return (slice(y0, y1), slice(x0, x1)), patch


def soft_blobs(
    rng: np.random.Generator,
    shape: tuple[int, int],
    pixel_size: float,
    fraction: float,
    radius_A: tuple[float, float],
    wobble: float = 0.0,
) -> tuple[np.ndarray, list[tuple[tuple[slice, slice], np.ndarray]]]:
    """Place soft ellipses until their union covers ``fraction`` of the image (mask > 0.5).

    Returns the union mask (float32 0..1) and each blob's (slices, patch).
    """
    ny, nx = shape
    mask = np.zeros(shape, dtype=F32)
    blobs: list[tuple[tuple[slice, slice], np.ndarray]] = []
    total = ny * nx
    covered = 0
    for _ in range(1000):
        if covered >= fraction * total or fraction <= 0:
            break
        remaining = fraction * total - covered
        r = rng.uniform(radius_A[0], radius_A[1]) / pixel_size
        r = float(np.clip(min(r, 1.1 * np.sqrt(remaining / np.pi)), 3.0, None))
        aspect = rng.uniform(0.6, 1.0)
        cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
        sl, patch = _ellipse_patch(
            shape, cy, cx, r * aspect, r, rng.uniform(0, np.pi), wobble, rng.uniform(0, 2 * np.pi)
        )
        before = int((mask[sl] > 0.5).sum())
        np.maximum(mask[sl], patch, out=mask[sl])
        covered += int((mask[sl] > 0.5).sum()) - before
        blobs.append((sl, patch))
    return mask, blobs


def carbon_mask(rng: np.random.Generator, shape: tuple[int, int], fraction: float) -> np.ndarray:
    """A carbon-support region covering ``fraction`` of the image, with a straight or curved edge."""
    ny, nx = shape
    if fraction <= 0:
        return np.zeros(shape, dtype=F32)
    theta = rng.uniform(0, 2 * np.pi)
    curvature = 0.0 if rng.random() < 0.5 else rng.uniform(-1.5, 1.5) / max(ny, nx)
    yy = np.arange(ny, dtype=F32)[:, None] - F32(ny / 2)
    xx = np.arange(nx, dtype=F32)[None, :] - F32(nx / 2)
    along = -xx * F32(np.sin(theta)) + yy * F32(np.cos(theta))
    dist = xx * F32(np.cos(theta)) + yy * F32(np.sin(theta)) + F32(curvature) * along**2
    cut = float(np.quantile(dist[::4, ::4], fraction))
    return np.clip((F32(cut) - dist) / F32(3.0) + F32(0.5), 0, 1).astype(F32)


def crystal_lattice(
    rng: np.random.Generator, shape: tuple[int, int], pixel_size: float, params: SimParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crystalline-ice domains: (lattice contrast, domain offset, domain cover 0..1) images, float32.

    Each domain is a soft patch holding hexagonal lattices (three cosines 60 degrees apart) with one
    or more of the spacings in ``params.crystal_spacings_A`` at a random in-plane orientation, so the
    power spectrum shows spots on rings at 1/3.90, 1/3.67 and 1/3.44 1/A. Domains also differ in mean
    density (diffraction contrast), which stays visible after downsampling.
    """
    lattice = np.zeros(shape, dtype=F32)
    offset = np.zeros(shape, dtype=F32)
    spacings = params.crystal_spacings_A
    if params.crystalline_fraction <= 0 or not spacings:
        return lattice, offset, np.zeros(shape, dtype=F32)
    cover, blobs = soft_blobs(rng, shape, pixel_size, params.crystalline_fraction, (90.0, 260.0), wobble=0.1)
    for i, (sl, patch) in enumerate(blobs):
        yy = np.arange(sl[0].start, sl[0].stop, dtype=F32)[:, None] * F32(pixel_size)
        xx = np.arange(sl[1].start, sl[1].stop, dtype=F32)[None, :] * F32(pixel_size)
        theta = rng.uniform(0, np.pi / 3)
        # every domain carries the spacing due in turn (so all listed spacings appear) plus maybe more
        chosen = {spacings[i % len(spacings)]} | {s for s in spacings if rng.random() < 0.3}
        field = np.zeros(patch.shape, dtype=F32)
        for s in sorted(chosen):
            k = 2 * np.pi / s
            for j in range(3):
                a = theta + j * np.pi / 3
                field += np.cos(F32(k * np.cos(a)) * xx + F32(k * np.sin(a)) * yy + F32(rng.uniform(0, 2 * np.pi)))
        strength = rng.uniform(0.7, 1.3) / np.sqrt(len(chosen))
        lattice[sl] += F32(strength) * patch * field
        offset[sl] += F32(rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.05)) * patch
    return lattice, offset, cover
