"""Interpretable per-micrograph quality scores, in physical units (the same meaning at any pixel size).

Spectral scores read a :class:`~.spectrum.PowerSpectrum` (computed from the full-resolution image);
real-space scores read the image low-passed at a fixed resolution in Angstrom. Definitions and
units are in docs/preprocessing.md; in short:

- ``ice_ring_score``: excess of the brightest ring or spots in 0.245-0.295 1/A (the 3.44-3.90 A ice
  reflections, 0.25-0.29 1/A, with their spectral width) over the
  same statistic in the neighbouring bands 0.20-0.24 and 0.30-0.33 1/A, in units of the
  spectrum's robust noise sigma. ~0 for vitreous ice, >> 1 for crystalline ice. NaN when the
  band is beyond Nyquist.
- ``thon_reach_A``: resolution (A) up to which Thon rings are reproducible between two disjoint
  halves of the tiles (half-set ring correlation above a noise threshold).
- ``anisotropy``: 1 - min/max of the directional power, from the 2-theta harmonic of the
  background-subtracted log power in 1/40-1/5 1/A (0 isotropic, -> 1 fully directional).
- ``contrast``: std of the image low-passed to 20 A over the robust sigma of the raw image
  scaled to 1 A pixels (assuming white shot noise), so thick ice gives low values.
- ``dark_fraction``: area fraction that is darker than median - 4 robust sigma after a 50 A
  low-pass (contamination, thick carbon).

Their names, units and order live in the feature registry (:mod:`micrograde.pipeline.features`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from micrograde.pipeline.signal.fourier import resample_to_pixel_size
from micrograde.pipeline.signal.normalise import robust_stats
from micrograde.pipeline.signal.spectrum import CORR_WIDTH, PowerSpectrum, frequency_grid, power_spectrum

__all__ = [
    "ICE_BAND",
    "ICE_NEIGHBOURS",
    "ice_ring_score",
    "thon_reach",
    "anisotropy",
    "contrast",
    "dark_fraction",
]

ICE_BAND = (0.245, 0.295)  # 1/A: 0.25-0.29 (3.44-3.90 A ice reflections) plus their spectral width
ICE_NEIGHBOURS = ((0.20, 0.24), (0.30, 0.33))  # 1/A
SPOT_PIXELS = 8  # brightest pixels compared: a single lattice gives >= 6 spots of >= 2 grid pixels
THON_START = 1 / 30  # 1/A: reach is searched from here up
THON_MIN_CORR = 0.05  # half-set correlation above which rings count as present ...
THON_NOISE_SIGMAS = 5.0  # ... when it is also this many noise sigmas of the correlation
THON_GAP = 0.02  # 1/A: a dip shorter than this does not end the rings
ANISOTROPY_BAND = (1 / 40, 1 / 5)  # 1/A
CONTRAST_LOWPASS_A = 20.0  # resolution of the low-pass (pixel size 10 A)
CONTRAST_REF_PIXEL_A = 1.0
DARK_LOWPASS_A = 50.0  # resolution of the low-pass (pixel size 25 A)
DARK_SIGMAS = 4.0


def _spectrum(x: PowerSpectrum | np.ndarray, pixel_size: float | None) -> PowerSpectrum:
    if isinstance(x, PowerSpectrum):
        return x
    if pixel_size is None:
        raise TypeError("pass a PowerSpectrum, or an image and its pixel_size")
    return power_spectrum(np.asarray(x), pixel_size)


def _masks(ps: PowerSpectrum) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(fy, fx, |f|, data mask): data = inside the periodogram and off the axis lines."""
    fy, fx, r = frequency_grid(ps.size, ps.max_freq)
    step = ps.freq_step
    data = (np.abs(fy) <= ps.nyquist) & (np.abs(fx) <= ps.nyquist)
    data &= (np.abs(fy) > 1.5 * step) & (np.abs(fx) > 1.5 * step)
    return fy, fx, r, data


def _ring_means(values: np.ndarray, r: np.ndarray, mask: np.ndarray, step: float) -> np.ndarray:
    bins = np.rint(r[mask] / step).astype(np.int64)
    sums = np.bincount(bins, weights=values[mask])
    counts = np.bincount(bins)
    keep = counts > 0
    return sums[keep] / counts[keep]


def _top_mean(values: np.ndarray, k: int) -> float:
    k = min(k, values.size)
    return float(np.partition(values, values.size - k)[values.size - k :].mean())


def ice_ring_score(x: PowerSpectrum | np.ndarray, pixel_size: float | None = None) -> float:
    """Crystalline-ice score (noise sigmas; ~0 vitreous, >> 1 crystalline; NaN if unavailable).

    The maximum of two statistics, each "ice band minus neighbourhood": the largest rotational
    mean of one grid-pixel-wide ring (powder rings), and the mean of the 8 brightest band pixels
    (sharp lattice spots of even a single domain, localised in angle).
    """
    ps = _spectrum(x, pixel_size)
    if not ps.available:
        return float("nan")
    _, _, r, data = _masks(ps)
    band = data & (r >= ICE_BAND[0]) & (r <= ICE_BAND[1])
    neigh = np.zeros_like(band)
    for lo, hi in ICE_NEIGHBOURS:
        neigh |= data & (r >= lo) & (r <= hi)
    if not band.any() or not neigh.any():
        return float("nan")
    z = ps.image
    ring = _ring_means(z, r, band, ps.freq_step).max() - _ring_means(z, r, neigh, ps.freq_step).max()
    spot = _top_mean(z[band], SPOT_PIXELS) - _top_mean(z[neigh], SPOT_PIXELS)
    return float(max(ring, spot))


def _thon_threshold(ps: PowerSpectrum, freq: np.ndarray) -> np.ndarray:
    # pixels per correlation window ~ pi * r * width (half plane)
    df = freq[1] - freq[0]
    radius = np.maximum(freq / df, 1.0)  # in periodogram bins
    width = max(3, int(round(CORR_WIDTH / df)) | 1)
    n_eff = np.pi * radius * width  # calibrated on pure noise: sigma(corr) ~ 1 / sqrt(n_eff)
    return np.maximum(THON_MIN_CORR, THON_NOISE_SIGMAS / np.sqrt(n_eff))


def thon_reach(x: PowerSpectrum | np.ndarray, pixel_size: float | None = None) -> float:
    """Thon-ring reach in Angstrom (smaller is better): the resolution up to which rings stand
    above noise. NaN when the spectrum has no half-sets (fewer than two tiles).

    Scanning up from 1/30 A, the half-set ring correlation (``PowerSpectrum.half_corr``) is
    compared with a threshold (max(0.05, 5 noise sigmas of the correlation, from the number of
    periodogram pixels in the ring window)); the rings end where
    it stays below for more than 0.02 1/A. The reach is the last frequency above the threshold
    (30 A when there are no rings at all; 2 x pixel size when they reach Nyquist).
    """
    ps = _spectrum(x, pixel_size)
    corr = ps.half_corr
    freq = np.asarray(ps.radial_freq, dtype=np.float64)
    if corr is None or len(freq) < 3 or not np.isfinite(corr).any():
        return float("nan")
    thr = _thon_threshold(ps, freq)
    above = np.nan_to_num(np.asarray(corr, dtype=np.float64), nan=0.0) > thr
    start = int(np.searchsorted(freq, THON_START))
    if start >= len(freq):
        return float(1.0 / freq[-1])
    gap_bins = max(1, int(math.ceil(THON_GAP / (freq[1] - freq[0]))))
    last, run = None, 0
    for i in range(start, len(freq)):
        if above[i]:
            last, run = i, 0
        else:
            run += 1
            if run > gap_bins:
                break
    if last is None:
        return float(1.0 / freq[start])
    return float(1.0 / freq[last])


def anisotropy(x: PowerSpectrum | np.ndarray, pixel_size: float | None = None) -> float:
    """Directional anisotropy of the spectrum, 0 (isotropic) .. 1 (fully directional).

    ``a`` is the RMS over rings in 1/40-1/5 1/A (up to Nyquist) of the amplitude of the
    cos(2 theta) component of the background-subtracted log10 power
    (``PowerSpectrum.direction_amp``, a half-set cross estimate free of noise bias). Drift damps
    power along one direction (same phase in every ring); astigmatism makes rings elliptical
    (phase alternating with frequency): both raise ``a``. The score is ``1 - 10**(-2 a)``, i.e.
    1 - min/max of the directional power. A spectrum from a single tile (no half-sets) falls
    back to the same measure on the grid image, which carries a small noise bias.
    """
    ps = _spectrum(x, pixel_size)
    amp = ps.direction_amp
    if not math.isfinite(amp):
        amp = _grid_direction_amp(ps)
    return float(1.0 - 10.0 ** (-2.0 * amp)) if math.isfinite(amp) else float("nan")


def _grid_direction_amp(ps: PowerSpectrum) -> float:
    fy, fx, r, data = _masks(ps)
    hi = min(ANISOTROPY_BAND[1], ps.nyquist, ps.max_freq)
    band = data & (r >= ANISOTROPY_BAND[0]) & (r <= hi)
    if not band.any():
        return float("nan")
    z = ps.image[band].astype(np.float64) * ps.log_scale
    theta2 = 2.0 * np.arctan2(fy[band], fx[band])
    bins = np.rint(r[band] / ps.freq_step).astype(np.int64)
    counts = np.bincount(bins)
    keep = counts > 0
    c = np.bincount(bins, weights=z * np.cos(theta2))[keep] / counts[keep]
    s = np.bincount(bins, weights=z * np.sin(theta2))[keep] / counts[keep]
    return float(2.0 * np.sqrt(np.mean(c * c + s * s)))


def _lowpass(
    img: np.ndarray, pixel_size: float, target: float, coarse: tuple[np.ndarray, float] | None
) -> np.ndarray:
    src, src_ps = img, pixel_size
    if coarse is not None and coarse[1] <= target * (1 + 1e-6):
        src, src_ps = coarse
    out, _ = resample_to_pixel_size(src, src_ps, target)
    return out


def contrast(
    img: np.ndarray, pixel_size: float, *, coarse: tuple[np.ndarray, float] | None = None
) -> float:
    """Low-resolution contrast: std(image low-passed to 20 A) / (robust sigma(raw) * pixel_size / 1 A).

    The denominator is the raw noise level brought to 1 A pixels (white shot noise per pixel
    scales as 1 / pixel_size), so the same specimen and dose give the same value at 0.83 or
    1.2 A/px. ``coarse`` = (a Fourier-cropped copy of ``img``, its pixel size <= 10 A) skips the
    full-size crop.
    """
    _, sigma = robust_stats(img)
    low = _lowpass(img, pixel_size, CONTRAST_LOWPASS_A / 2, coarse)
    return float(np.std(low, dtype=np.float64) / (sigma * pixel_size / CONTRAST_REF_PIXEL_A))


def dark_fraction(
    img: np.ndarray, pixel_size: float, *, coarse: tuple[np.ndarray, float] | None = None
) -> float:
    """Fraction of the area darker than median - 4 robust sigma after a 50 A low-pass.

    Isolated single pixels are removed with a binary opening (3x3 cross at 25 A/px).
    ``coarse`` = (a Fourier-cropped copy of ``img``, its pixel size <= 25 A) skips the full crop.
    """
    low = _lowpass(img, pixel_size, DARK_LOWPASS_A / 2, coarse)
    try:
        med, sigma = robust_stats(low)
    except ValueError:
        return 0.0
    mask = low < med - DARK_SIGMAS * sigma
    if min(mask.shape) >= 3:
        mask = ndimage.binary_opening(mask)
    return float(mask.mean())
