"""Power spectrum of the full-resolution micrograph on a fixed frequency grid.

Steps (see docs/preprocessing.md):

1. Tile-averaged periodogram (Welch-like): the image is cut into non-overlapping square tiles
   (``tile`` pixels, centred on the image), each tile has its mean removed and a periodic Hann
   window applied, and ``|rfft2|^2`` is averaged over the tiles (one batched FFT per row of
   tiles, float32). Power is normalised to a mean of 1 over all non-DC frequencies, so its level
   does not depend on the image's intensity scale (counts, float, 8/16 bit).
2. ``radial``: log10 of the rotationally averaged power on the native periodogram bins
   (width ``1 / (tile * pixel_size)``), so sharp lattice spots show as well as rings; the
   detector's axis lines (|kx| or |ky| <= 1) are left out.
3. A smooth background: running median (0.04 1/A wide) of the rotational mean of log10 power,
   then a Gaussian.
4. The log10 power is interpolated (bilinear, in frequency space) onto a fixed grid of
   ``size x size`` pixels spanning ``-max_freq .. +max_freq`` in both directions, so the same
   pixel means the same spatial frequency (1/A) for every pixel size. The background is
   subtracted and the result divided by its robust sigma (``log_scale``, in log10 units), then
   clipped to [-6, 12]. Grid points beyond the periodogram (beyond Nyquist) are 0, i.e. the
   background value.
5. A half-set ring correlation (``half_corr``): the background-subtracted log power of two
   disjoint halves of the tiles, correlated (uncentred, like an FRC) over 0.02 1/A wide rings.
   Thon rings are common to both halves and noise is not, so it is near 1 where rings stand
   above noise and near 0 where they do not: ``scores.thon_reach`` reads it.
6. ``direction_amp``: RMS over rings in 1/40-1/5 1/A of the amplitude of the cos(2 theta)
   component of the background-subtracted log10 power, from the cross product of the two
   halves (so noise adds no bias): ``scores.anisotropy`` reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from micrograde.pipeline.signal.normalise import MAD_TO_SIGMA

__all__ = ["ICE_LIMIT_A", "PowerSpectrum", "power_spectrum", "frequency_grid", "spectrum_is_available"]

#: The ice-ring band (3.44-3.9 A) must be below Nyquist: finest spacing that must be visible, A.
ICE_LIMIT_A = 3.4
MIN_TILE = 32
LOW_FREQ = 1 / 100  # 1/A; below it the tile mean/window dominate: left out of statistics
BACKGROUND_WIDTH = 0.04  # 1/A, running-median window of the background
CORR_WIDTH = 0.02  # 1/A, ring width of the half-set correlation
DIRECTION_BAND = (1 / 40, 1 / 5)  # 1/A, band of the directional (anisotropy) measure
CLIP = (-6.0, 12.0)
_TINY = 1e-12


@dataclass(frozen=True)
class PowerSpectrum:
    """Power spectrum of a micrograph (see the module docstring for the method)."""

    image: np.ndarray  # (size, size) float32, normalised log10 power, DC at [size//2, size//2]
    max_freq: float  # 1/A at the grid edge
    available: bool  # False when Nyquist < 1/3.4 A: the ice-ring band cannot be seen
    radial: np.ndarray  # rotational average of log10 power (native bins)
    radial_freq: np.ndarray  # 1/A
    nyquist: float = float("nan")  # 1/A, 1 / (2 * pixel_size)
    log_scale: float = 1.0  # log10 power per unit of ``image``
    half_corr: np.ndarray | None = None  # half-set ring correlation at ``radial_freq`` (NaN: no halves)
    direction_amp: float = float("nan")  # cos(2 theta) amplitude of log10 power (NaN: no halves)
    n_tiles: int = 0
    tile: int = 0  # tile side used (pixels)

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def freq_step(self) -> float:
        """1/A per pixel of ``image``."""
        return 2.0 * self.max_freq / self.size


@lru_cache(maxsize=8)
def _grid(size: int, max_freq: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = (np.arange(size) - size // 2) * (2.0 * max_freq / size)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    r = np.hypot(fy, fx)
    for arr in (fy, fx, r):
        arr.setflags(write=False)
    return fy, fx, r


def frequency_grid(size: int, max_freq: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fy, fx, |f|) in 1/A for every pixel of a spectrum image (read-only arrays)."""
    return _grid(int(size), float(max_freq))


def spectrum_is_available(pixel_size: float) -> bool:
    """Whether Nyquist reaches the ice-ring band (1 / (2 * pixel_size) >= 1 / 3.4 A)."""
    return 2.0 * pixel_size <= ICE_LIMIT_A * (1 + 1e-9)


def _tile_layout(shape: tuple[int, int], tile: int) -> tuple[int, int, int]:
    h, w = shape
    t = min(int(tile), h, w)
    t -= t % 2
    while t >= 2 * MIN_TILE and (h // t) * (w // t) < 2:
        t //= 2
        t -= t % 2
    if t < MIN_TILE:
        raise ValueError(f"image {shape} is too small for a power spectrum (needs >= {MIN_TILE} px)")
    return t, h // t, w // t


@lru_cache(maxsize=4)
def _window(t: int) -> np.ndarray:
    w1 = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(t) / t)).astype(np.float32)
    win = np.outer(w1, w1)
    win.setflags(write=False)
    return win


def _periodogram(a: np.ndarray, t: int, ny: int, nx: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Sums of windowed |rfft2|^2 over the even / odd tiles: (sum0, sum1, n0, n1)."""
    win = _window(t)
    y_off, x_off = (a.shape[0] - ny * t) // 2, (a.shape[1] - nx * t) // 2
    acc = np.zeros((2, t, t // 2 + 1), dtype=np.float64)
    counts = [0, 0]
    k = 0
    for j in range(ny):
        y0 = y_off + j * t
        strip = a[y0 : y0 + t, x_off : x_off + nx * t].reshape(t, nx, t).transpose(1, 0, 2)
        means = strip.mean(axis=(1, 2), dtype=np.float64, keepdims=True).astype(np.float32)
        tiles = strip - means  # contiguous (nx, t, t) float32
        tiles *= win
        spec = sfft.rfft2(tiles, overwrite_x=True)
        power = np.square(spec.real)
        power += np.square(spec.imag)
        first = k % 2  # tiles i with (k + i) even go to half 0
        for half, start in ((0, first), (1, 1 - first)):
            sel = power[start::2]
            if len(sel):
                acc[half] += sel.sum(axis=0)
                counts[half] += len(sel)
        k += nx
    return acc[0], acc[1], counts[0], counts[1]


def _smooth_background(radial: np.ndarray, df: float, first: int) -> np.ndarray:
    prof = radial.copy()
    prof[:first] = prof[first]
    width = max(5, int(round(BACKGROUND_WIDTH / df)) | 1)
    bg = ndimage.median_filter(prof, size=width, mode="nearest")
    return ndimage.gaussian_filter1d(bg, sigma=width / 4.0, mode="nearest")


def _radial_mean(values: np.ndarray, bins: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    sums = np.bincount(bins[valid], weights=values[valid], minlength=n)[:n]
    counts = np.bincount(bins[valid], minlength=n)[:n]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / counts
    # bins without pixels (none in practice): carry the neighbour's value
    bad = ~np.isfinite(out)
    if bad.any():
        idx = np.arange(n)
        out[bad] = np.interp(idx[bad], idx[~bad], out[~bad])
    return out


def _half_plane_geometry(t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ky = np.fft.fftfreq(t, 1.0 / t)[:, None]
    kx = np.arange(t // 2 + 1, dtype=np.float64)[None, :]
    r = np.hypot(ky, kx)
    bins = np.minimum(np.rint(r).astype(np.int64), t // 2 + 1)
    axes = ((np.abs(ky) <= 1) | (kx <= 1)) & (r > 4)  # detector/edge artefact lines
    valid = (bins <= t // 2) & ~axes
    return r, bins, valid, np.arctan2(ky, kx)


def _half_set_stats(halves, n_half, wnorm, ref, geom, n_bins, df, first, nyquist):
    """Half-set ring correlation per bin, and the noise-free cos(2 theta) amplitude (log10).

    Noise is independent between the two halves of the tiles while Thon rings and directional
    damping are common, so cross products of the halves are unbiased by noise.
    """
    r, bins, valid, theta = geom
    resid = []
    for acc, n in zip(halves, n_half, strict=True):
        logp = np.log10(acc / (n * wnorm * ref) + _TINY)
        prof = _radial_mean(logp, bins, valid, n_bins)
        bg = _smooth_background(prof, df, first)
        resid.append(logp - bg[np.minimum(bins, n_bins - 1)])
    e0, e1 = resid
    b = bins[valid]
    s01 = np.bincount(b, weights=(e0 * e1)[valid], minlength=n_bins)[:n_bins]
    s00 = np.bincount(b, weights=(e0 * e0)[valid], minlength=n_bins)[:n_bins]
    s11 = np.bincount(b, weights=(e1 * e1)[valid], minlength=n_bins)[:n_bins]
    width = max(3, int(round(CORR_WIDTH / df)) | 1)
    kern = np.ones(width)
    s01, s00, s11 = (np.convolve(v, kern, mode="same") for v in (s01, s00, s11))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = s01 / np.sqrt(s00 * s11)
    corr[:first] = np.nan

    f = r * df
    band = valid & (f >= DIRECTION_BAND[0]) & (f <= min(DIRECTION_BAND[1], nyquist))
    if not band.any():
        return corr, float("nan")
    bb, cos2, sin2 = bins[band], np.cos(2 * theta[band]), np.sin(2 * theta[band])
    counts = np.bincount(bb)
    keep = counts > 0
    harm = []
    for e in (e0[band], e1[band]):
        c = np.bincount(bb, weights=e * cos2)[keep] / counts[keep]
        s = np.bincount(bb, weights=e * sin2)[keep] / counts[keep]
        harm.append((c, s))
    (c0, s0), (c1, s1) = harm
    cross = float(np.mean(c0 * c1 + s0 * s1))
    return corr, 2.0 * math.sqrt(max(cross, 0.0))


def power_spectrum(
    img: np.ndarray,
    pixel_size: float,
    *,
    tile: int = 512,
    size: int = 256,
    max_freq: float = 1 / 3.2,
) -> PowerSpectrum:
    """Tile-averaged power spectrum of the full-resolution ``img`` on the fixed frequency grid."""
    a = np.asarray(img)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {a.shape}")
    if not (pixel_size > 0 and math.isfinite(pixel_size)):
        raise ValueError(f"pixel_size must be a positive number, got {pixel_size}")
    if size < 8 or max_freq <= 0:
        raise ValueError(f"bad spectrum grid: size={size}, max_freq={max_freq}")
    if a.dtype != np.float32:
        a = a.astype(np.float32)

    t, ny, nx = _tile_layout(a.shape, tile)
    acc0, acc1, n0, n1 = _periodogram(a, t, ny, nx)
    n_tiles = n0 + n1
    wnorm = float(np.square(_window(t), dtype=np.float64).sum())
    power = (acc0 + acc1) / (n_tiles * wnorm)
    geom = _half_plane_geometry(t)
    r_native, bins, valid, _ = geom
    ref = float(power[r_native >= 2].mean())
    if not ref > 0:
        raise ValueError("the image has no variation: no power spectrum")
    logp = np.log10(power / ref + _TINY)

    n_bins = t // 2 + 1
    df = 1.0 / (t * pixel_size)
    radial_freq = np.arange(n_bins) * df
    radial = np.log10(_radial_mean(power / ref, bins, valid, n_bins) + _TINY)
    first = min(n_bins - 1, max(3, int(math.ceil(LOW_FREQ / df))))
    # the background follows the mean of log power, like the 2-D map it is subtracted from
    background = _smooth_background(_radial_mean(logp, bins, valid, n_bins), df, first)

    # Interpolate log power onto the fixed grid (P(-f) = P(f) folds the left half onto the rfft half).
    fy, fx, r_grid = frequency_grid(size, max_freq)
    ky, kx = fy * (t * pixel_size), fx * (t * pixel_size)
    neg = kx < 0
    ky = np.where(neg, -ky, ky)
    kx = np.where(neg, -kx, kx)
    shifted = np.fft.fftshift(logp, axes=0)  # rows: ky = -t/2 .. t/2 - 1
    coords = np.stack([(ky + t // 2).ravel(), kx.ravel()])
    vals = ndimage.map_coordinates(shifted, coords, order=1, mode="constant", cval=np.nan, prefilter=False)
    resid = vals.reshape(size, size) - np.interp(r_grid, radial_freq, background)

    nyquist = 0.5 / pixel_size
    stats = np.isfinite(resid) & (r_grid >= LOW_FREQ) & (r_grid <= min(nyquist, max_freq))
    sample = resid[stats]
    if sample.size:
        resid -= np.median(sample)
        sample = resid[stats]
    scale = MAD_TO_SIGMA * float(np.median(np.abs(sample - np.median(sample)))) if sample.size else 0.0
    if not scale > 0:
        scale = float(sample.std()) if sample.size else 1.0
    scale = scale if scale > 0 else 1.0
    image = np.nan_to_num(np.clip(resid / scale, *CLIP), nan=0.0).astype(np.float32)

    if n0 and n1:
        half_corr, direction_amp = _half_set_stats(
            (acc0, acc1), (n0, n1), wnorm, ref, geom, n_bins, df, first, nyquist
        )
    else:
        half_corr, direction_amp = np.full(n_bins, np.nan), float("nan")

    return PowerSpectrum(
        image=image,
        max_freq=float(max_freq),
        available=spectrum_is_available(pixel_size),
        radial=radial.astype(np.float32),
        radial_freq=radial_freq.astype(np.float32),
        nyquist=float(nyquist),
        log_scale=float(scale),
        half_corr=half_corr.astype(np.float32),
        direction_amp=float(direction_amp),
        n_tiles=int(n_tiles),
        tile=int(t),
    )
