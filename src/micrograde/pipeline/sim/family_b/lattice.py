"""Family b's crystalline ice: domains of random shape with Bragg spots or powder rings.

Domains are where a smooth random field is lowest, inside the ice, covering
``crystalline_area``; each connected piece is one domain with its own form and orientation.

* Hexagonal ice (Ih) domains diffract into spots placed directly in Fourier space: each spot is
  the domain's own shape transform (a domain ``D(x) cos(2 pi g.x)`` has the transform
  ``D^(k - g) / 2 + D^(k + g) / 2``), computed on a coarse grid and copied around ``g``. A domain
  seen along the c axis (basal) shows six (100) spots at 3.90 A (and six (110) at 2.25 A); one
  seen side-on (prism) shows (100) at 3.90 A, (002) at 3.68 A and four (101) at 3.44 A.
* Cubic ice (Ic) domains are nano-crystalline: powder rings at 3.67 A (111), 2.25 A (220) and
  1.92 A (311), drawn as ring-filtered noise inside the domain.

Only spacings of 3.44-3.90 A carry much power below 1/3 A, so a crystalline domain leaves no
trace in an image Fourier-cropped to 4 A/pixel. Domains have no mean-density offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from micrograde.pipeline.sim.family_b.model import FamilyBParams
from micrograde.pipeline.sim.family_b.support import lowest_fraction, smooth_field
from micrograde.pipeline.sim.render import FourierGrid

__all__ = ["Crystal", "HEXAGONAL_A", "C_AXIS_A", "CUBIC_RINGS", "build_crystal"]

F32 = np.float32
#: hexagonal ice lattice: a (in-plane spacing of (100) planes is a*sqrt(3)/2 = 3.90 A) and c
HEXAGONAL_A, C_AXIS_A = 3.90 * 2 / math.sqrt(3), 7.36
#: cubic-ice powder rings: (spacing A, relative amplitude)
CUBIC_RINGS: tuple[tuple[float, float], ...] = ((3.67, 1.0), (2.25, 0.5), (1.92, 0.3))
_SPOT = 0.15  # amplitude of a (100) spot's fringes (fraction of the mean intensity)
_RING = 0.12  # rms of a cubic domain's ring fringes
_WINDOW = 12  # half-size (bins) of the shape transform copied around each spot


@dataclass(frozen=True)
class Crystal:
    mask: np.ndarray  # bool, where crystalline
    spots: np.ndarray | None  # full (ny, nx) complex spectrum of the Bragg spots, or None
    rings: np.ndarray | None  # real-space powder-ring contrast, or None


def _reflections(zone: str, theta: float) -> list[tuple[float, float, float]]:
    """(gy, gx, amplitude) of the reflections of a hexagonal domain, one of each +/- pair."""
    a_star = 1 / 3.90
    out: list[tuple[float, float, float]] = []
    if zone == "basal":
        for j in range(3):
            t = theta + j * math.pi / 3
            out.append((a_star * math.sin(t), a_star * math.cos(t), 1.0))
            t2, g2 = t + math.pi / 6, 1 / 2.25
            out.append((g2 * math.sin(t2), g2 * math.cos(t2), 0.4))
        return out
    c_star = 1 / C_AXIS_A
    ua, uc = (math.sin(theta), math.cos(theta)), (math.cos(theta), -math.sin(theta))
    for h, l, amp in ((1, 0, 1.0), (0, 2, 0.8), (1, 1, 0.9), (1, -1, 0.9), (1, 2, 0.35), (1, -2, 0.35)):  # noqa: E741 - the Miller index l
        gy = h * a_star * ua[0] + l * c_star * uc[0]
        gx = h * a_star * ua[1] + l * c_star * uc[1]
        out.append((gy, gx, amp))
    return out


def build_crystal(
    rng: np.random.Generator, grid: FourierGrid, params: FamilyBParams, allowed: np.ndarray
) -> Crystal:
    """Domains covering ``crystalline_area`` of the image within ``allowed``, with their diffraction."""
    shape, p = grid.shape, grid.pixel_size
    mask = np.zeros(shape, dtype=bool)
    if params.crystalline_area <= 0:
        return Crystal(mask, None, None)
    field = smooth_field(rng, shape, p, rng.uniform(60.0, 160.0), stretch=rng.uniform(1.0, 2.0))
    mask = lowest_fraction(field, allowed, params.crystalline_area)
    ny, nx = shape
    step = max(1, int(math.ceil(max(ny, nx) / 160)))
    coarse = cv2.resize(mask.astype(F32), (nx // step, ny // step), interpolation=cv2.INTER_AREA)
    labels, n = ndimage.label(coarse > 0.5)
    spots = np.zeros(shape, dtype=np.complex64) if n else None
    ring_mask = np.zeros(shape, dtype=F32)
    nyq = 0.5 / p
    for d in range(1, n + 1):
        piece = (labels == d).astype(F32)
        form = params.crystal_form if params.crystal_form != "mixed" else ("hexagonal", "cubic")[int(rng.integers(2))]
        strength = rng.uniform(0.7, 1.3)
        if form == "cubic":
            up = cv2.resize(piece, (nx, ny), interpolation=cv2.INTER_LINEAR)
            ring_mask += F32(strength) * up * mask
            continue
        window = _shape_transform(piece, step, shape)
        zone = "basal" if rng.random() < 0.5 else "prism"
        for gy, gx, amp in _reflections(zone, rng.uniform(0, math.pi)):
            if math.hypot(gy, gx) >= nyq:
                continue
            phase = np.exp(1j * rng.uniform(0, 2 * math.pi))
            assert spots is not None  # allocated whenever there is a domain
            _add_spot(spots, window * np.complex64(0.5 * _SPOT * strength * amp * phase), gy, gx, grid)
    rings = _powder_rings(rng, grid) * ring_mask if ring_mask.any() else None
    return Crystal(mask, spots, rings)


def _shape_transform(piece: np.ndarray, step: int, shape: tuple[int, int]) -> np.ndarray:
    """Low-frequency block (2W+1 square, centred) of the full-size DFT of an upsampled coarse mask."""
    w = min(_WINDOW, piece.shape[0] // 2 - 1, piece.shape[1] // 2 - 1)
    f = np.fft.fftshift(sfft.fft2(piece, workers=1))
    cy, cx = piece.shape[0] // 2, piece.shape[1] // 2
    block = f[cy - w : cy + w + 1, cx - w : cx + w + 1] * (shape[0] * shape[1] / piece.size)
    return block.astype(np.complex64)


def _add_spot(spots: np.ndarray, window: np.ndarray, gy: float, gx: float, grid: FourierGrid) -> None:
    """Add ``window`` centred on frequency (gy, gx) and its conjugate, mirrored, at (-gy, -gx)."""
    ny, nx = grid.shape
    w = window.shape[0] // 2
    by, bx = round(gy * ny * grid.pixel_size), round(gx * nx * grid.pixel_size)
    offs = np.arange(-w, w + 1)
    spots[np.ix_((by + offs) % ny, (bx + offs) % nx)] += window
    spots[np.ix_((-by - offs) % ny, (-bx - offs) % nx)] += np.conj(window)


def _powder_rings(rng: np.random.Generator, grid: FourierGrid) -> np.ndarray:
    """Unit-rms real field whose power lies on the cubic-ice rings (below Nyquist)."""
    weight = np.zeros(grid.k.shape, dtype=F32)
    for spacing, amp in CUBIC_RINGS:
        if 1 / spacing < 0.5 / grid.pixel_size:
            weight += F32(amp) * np.exp(-0.5 * ((grid.k - F32(1 / spacing)) / F32(0.003)) ** 2)
    z = rng.standard_normal((2, *weight.shape), dtype=F32)
    field = sfft.irfft2((z[0] + 1j * z[1]) * weight, s=grid.shape, workers=1)
    return (field * F32(_RING / max(float(field.std()), 1e-12))).astype(F32)
