"""Family b's microscope and detector: CTF with coherence envelopes, a curved drift trajectory,
the detector MTF and the fixed-pattern errors of a gain reference.

Transfer functions live on the ``rfft2`` half-plane of a :class:`~micrograde.pipeline.sim.render.FourierGrid`
(spatial frequencies in 1/A). Lengths in Angstrom unless a name says otherwise.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
import scipy.fft as sfft

from micrograde.pipeline.sim.family_b.model import FamilyBParams, SessionTraits
from micrograde.pipeline.sim.model import electron_wavelength
from micrograde.pipeline.sim.render import FourierGrid

__all__ = [
    "AMPLITUDE_CONTRAST",
    "coherent_transfer",
    "drift_trajectory",
    "drift_transfer",
    "detector_psf",
    "detector_blur",
    "gain_reference_error",
]

F32 = np.float32
#: share of amplitude contrast of vitreous specimens in family b
AMPLITUDE_CONTRAST = 0.1
_FRAMES = 40  # dose fractions the drift trajectory is sampled at
_PSF_SIZE = 7


def coherent_transfer(
    grid: FourierGrid, params: FamilyBParams, traits: SessionTraits, damping_A: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(phase-contrast transfer, log of the coherence envelope) of the objective lens.

    Aberration ``chi = pi lambda z(theta) k^2 - pi/2 Cs lambda^3 k^4`` with the astigmatic focus
    ``z(theta) = z_mean + dz/2 cos 2(theta - theta_ast)`` (underfocus positive); the image of a
    weak phase object ``phi`` with amplitude contrast ``w`` is ``-2 sin(chi + asin w) E(k) phi(k)``.
    ``E`` is the product of the spatial-coherence envelope (illumination semi-angle ``alpha``:
    ``exp(-(pi alpha / lambda)^2 (lambda z k - Cs lambda^3 k^3)^2)``), the temporal one (focal
    spread ``Delta``: ``exp(-(pi lambda Delta k^2)^2 / 2)``) and a specimen damping
    ``exp(-damping_A k)`` (left out of the returned log-envelope).
    """
    lam = electron_wavelength(params.voltage_kv)
    cs = params.cs_mm * 1e7
    z_mean, z_diff = params.defocus_um * 1e4, params.astig_um * 1e4
    z = F32(z_mean) + F32(z_diff / 2) * np.cos(F32(2) * (grid.angle - F32(math.radians(params.astig_angle_deg))))
    k, k2 = grid.k, grid.k2
    chi = F32(math.pi * lam) * z * k2 - F32(math.pi / 2 * cs * lam**3) * k2 * k2
    slope = F32(lam) * z * k - F32(cs * lam**3) * k2 * k  # gradient of chi / 2 pi
    alpha = traits.source_mrad * 1e-3
    log_env = -((F32(math.pi * alpha / lam) * slope) ** 2)
    log_env -= F32(0.5 * (math.pi * lam * traits.focal_spread_A) ** 2) * k2 * k2
    chi += F32(math.asin(AMPLITUDE_CONTRAST))
    transfer = F32(-2) * np.sin(chi) * np.exp(log_env - F32(damping_A) * k)
    return transfer.astype(F32, copy=False), log_env.astype(F32, copy=False)


def drift_trajectory(params: FamilyBParams, frames: int = _FRAMES) -> np.ndarray:
    """Specimen positions (frames, 2) as (y, x) in A, centred on their mean.

    The specimen moves along a path of length ``drift_path_A`` whose direction turns steadily by
    ``drift_bend_deg`` (an arc), fast at first and slowing down (speed ~ exp(-2 t)), as stage and
    beam-induced motion do within an exposure.
    """
    if params.drift_path_A <= 0:
        return np.zeros((frames, 2))
    t = np.linspace(0.0, 1.0, frames)
    s = (1.0 - np.exp(-2.0 * t)) / (1.0 - math.exp(-2.0))  # arc length travelled, 0..1
    fine = np.linspace(0.0, 1.0, 512)
    heading = math.radians(params.drift_angle_deg) + math.radians(params.drift_bend_deg) * (fine - 0.5)
    step = params.drift_path_A / (fine.size - 1)
    x = np.concatenate([[0.0], np.cumsum(np.cos(heading[1:]) * step)])
    y = np.concatenate([[0.0], np.cumsum(np.sin(heading[1:]) * step)])
    pos = np.stack([np.interp(s, fine, y), np.interp(s, fine, x)], axis=1)
    return pos - pos.mean(axis=0)


def drift_transfer(grid: FourierGrid, positions_A: np.ndarray) -> np.ndarray:
    """Transfer function of the sum of the frames shifted along ``positions_A`` (complex64).

    The frames are splatted into a kernel (bilinear weights at the sub-pixel positions, wrapped
    around the image) whose transform is the transfer function; an image convolved with it is
    the dose-weighted sum of shifted copies.
    """
    ny, nx = grid.shape
    kernel = np.zeros((ny, nx), dtype=F32)
    pix = positions_A / grid.pixel_size
    y0, x0 = np.floor(pix[:, 0]), np.floor(pix[:, 1])
    fy, fx = pix[:, 0] - y0, pix[:, 1] - x0
    w = F32(1.0 / len(pix))
    for dy, dx, weight in ((0, 0, (1 - fy) * (1 - fx)), (1, 0, fy * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 1, fy * fx)):
        np.add.at(kernel, ((y0 + dy).astype(int) % ny, (x0 + dx).astype(int) % nx), (weight * w).astype(F32))
    return sfft.rfft2(kernel, workers=1).astype(np.complex64, copy=False)


def _psf(f_c: float, size: int) -> np.ndarray:
    f = np.fft.fftfreq(64)
    fy, fx = f[:, None], f[None, :]
    mtf = np.sinc(fx) * np.sinc(fy) * np.exp(-np.hypot(fx, fy) / f_c)
    psf = np.fft.fftshift(np.real(np.fft.ifft2(mtf)))
    c, h = 32, size // 2
    kernel = psf[c - h : c + h + 1, c - h : c + h + 1]
    return kernel / kernel.sum()


def _mtf_at_nyquist(kernel: np.ndarray) -> float:
    """The kernel's transfer along x at 0.5 cycles/pixel (alternating sum of its column sums)."""
    cols = kernel.sum(axis=0)
    return float(abs((cols * (-1.0) ** np.arange(cols.size)).sum()))


@functools.lru_cache(maxsize=8)
def detector_psf(mtf_nyquist: float, size: int = _PSF_SIZE) -> np.ndarray:
    """Real-space kernel (``size`` square, sum 1) of the detector MTF, for a convolution.

    MTF: the pixel's sinc (separable) times ``exp(-f / f_c)`` (f in cycles/pixel); the kernel is
    the MTF's inverse transform cropped to ``size`` pixels, with ``f_c`` chosen (bisection) so
    that the kernel's own transfer along an axis at Nyquist is ``mtf_nyquist``.
    """
    lo, hi = 0.02, 50.0
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if _mtf_at_nyquist(_psf(mid, size)) < mtf_nyquist else (lo, mid)
    kernel = _psf(math.sqrt(lo * hi), size).astype(F32)
    kernel.flags.writeable = False
    return kernel


def detector_blur(counts: np.ndarray, mtf_nyquist: float) -> np.ndarray:
    """Recorded counts (signal and shot noise alike) seen through the detector's MTF."""
    return cv2.filter2D(counts, cv2.CV_32F, detector_psf(mtf_nyquist), borderType=cv2.BORDER_REFLECT_101)


@functools.lru_cache(maxsize=8)
def gain_reference_error(shape: tuple[int, int], seed: int, rms: float) -> np.ndarray:
    """The fixed multiplicative pattern a slightly wrong gain reference leaves (read-only, float32).

    Per-pixel errors (``rms``), a few columns and a row off by several ``rms`` (a defective
    readout line), and a faint flat-field tilt. The same for every micrograph of a session.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    pattern = rng.normal(1.0, rms, size=shape).astype(F32)
    for axis, count in ((1, int(rng.integers(2, 5))), (0, int(rng.integers(1, 3)))):
        for index in rng.integers(0, shape[axis], size=count):
            factor = F32(1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(3.0, 6.0) * rms)
            if axis == 1:
                pattern[:, index] *= factor
            else:
                pattern[index, :] *= factor
    yy = np.linspace(-0.5, 0.5, ny, dtype=F32)[:, None]
    xx = np.linspace(-0.5, 0.5, nx, dtype=F32)[None, :]
    pattern *= F32(1.0) + F32(rms) * (F32(rng.normal()) * xx + F32(rng.normal()) * yy)
    pattern.flags.writeable = False
    return pattern
