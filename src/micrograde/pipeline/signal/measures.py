"""Physical quality measures: the quantities an expert reads off a micrograph, in physical units.

They complement :mod:`.scores` (which stay in the catalogue) and are what the fused model head
(:mod:`micrograde.models.fusion`) combines with the network's features: each answers "how much",
not only "whether", so that medium and bad differ (a little crystalline ice vs a lot; some drift
vs a lot). Arrays in, numbers out; every measure means the same at any pixel size (tiles and
bands are set in Angstrom). Definitions (details in docs/preprocessing.md):

- ``crystalline_area``: fraction of 160 A tiles whose 3.44-3.90 A ice band holds lattice spots
  (mean of the 3 brightest band periodogram values > 20 x the median of the neighbouring bands).
  NaN when the band is beyond Nyquist.
- ``transmission``: median counts per pixel over the nominal dose per pixel (dose x pixel_size^2):
  the fraction of electrons that pass the specimen (thick ice passes fewer). NaN when the dose
  is unknown or the data are evidently not counts (ratio outside 0.01-2).
- ``carbon_area``: fraction of the field, low-passed to 25 A, more than 7 % darker than its
  brightest 2 % (carbon film absorbs ~10 %; contamination and thick patches also count).
- ``directional_low`` / ``directional_mid`` / ``directional_high``: max - min over 12 direction
  sectors of log10 power (tile-averaged, 512 A tiles) in 1/125-1/62, 1/62-1/33 and 1/33-1/16.7
  1/A. Drift blurs along one direction and removes power there; a straight carbon edge also
  scores.
- ``defocus_um`` / ``defocus_quality``: defocus from the Thon-ring period in k^2 of the
  rotationally averaged spectrum (CTF ~ sin^2(pi lambda dz k^2)); the quality is the peak over
  the median of that periodogram (low when rings are weak: thick ice, drift, empty).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from micrograde.pipeline.signal.scores import SCORE_COLUMNS
from micrograde.pipeline.signal.fourier import resample_to_pixel_size, shape_at_pixel_size
from micrograde.pipeline.signal.spectrum import PowerSpectrum

__all__ = [
    "FEATURES_VERSION",
    "MEASURE_NAMES",
    "PHYSICAL_NAMES",
    "DIRECTION_PIXEL_A",
    "CARBON_PIXEL_A",
    "electron_wavelength",
    "crystalline_area",
    "transmission",
    "carbon_area",
    "directional_power",
    "defocus",
    "quality_measures",
]

#: Version of what ingest computes from a micrograph (scores, measures, cached images): part of every
#: cache entry's identity (pipeline/catalogue/identity.py). Bump it when a computation changes its
#: results, and ingest recomputes every entry once.
FEATURES_VERSION = "1"

#: Every measure, in the order of the cached vector (the fused head matches them by name).
MEASURE_NAMES: tuple[str, ...] = (
    "crystalline_area",
    "transmission",
    "carbon_area",
    "directional_low",
    "directional_mid",
    "directional_high",
    "defocus_um",
    "defocus_quality",
)
#: Every physical quantity cached with a micrograph (the scores, then the measures): the fused
#: head's inputs beside the network's features.
PHYSICAL_NAMES: tuple[str, ...] = (*SCORE_COLUMNS, *MEASURE_NAMES)

ICE_SPOT_BAND = (0.245, 0.295)  # 1/A (3.44-3.90 A reflections with their width)
ICE_SPOT_NEIGHBOURS = ((0.20, 0.24), (0.30, 0.33))  # 1/A
CRYSTAL_TILE_A = 160.0
CRYSTAL_SPOT_RATIO = 20.0
CRYSTAL_TOP = 3
TRANSMISSION_RANGE = (0.01, 2.0)
TRANSMISSION_SAMPLES = 1_000_000
CARBON_PIXEL_A = 12.5  # low-pass to 25 A
CARBON_DARKER = 0.07
CARBON_BRIGHT_QUANTILE = 0.98
DIRECTION_PIXEL_A = 7.5  # the directional bands need Nyquist >= 1/15 A
DIRECTION_TILE_A = 512.0
DIRECTION_BANDS = ((0.008, 0.016), (0.016, 0.03), (0.03, 0.06))  # 1/A
DIRECTION_SECTORS = 12
DEFOCUS_BAND = (1 / 50, 1 / 9)  # 1/A
DEFOCUS_RANGE_UM = (0.3, 8.0)


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in A (300 kV -> 0.0197 A)."""
    v = float(voltage_kv) * 1e3
    return 12.2643 / math.sqrt(v * (1 + 0.978476e-6 * v))


def _tiles(img: np.ndarray, side: int) -> np.ndarray:
    """Non-overlapping ``side`` x ``side`` tiles (mean removed, Hann-windowed), shape (n, side, side)."""
    ny, nx = img.shape[0] // side, img.shape[1] // side
    if ny == 0 or nx == 0:
        raise ValueError(f"image {img.shape} is smaller than one {side}-pixel tile")
    t = img[: ny * side, : nx * side].reshape(ny, side, nx, side).transpose(0, 2, 1, 3).reshape(-1, side, side)
    t = t - t.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)
    w = np.hanning(side).astype(np.float32)
    return t * (w[:, None] * w[None, :])


def _tile_side(tile_a: float, pixel_size: float, shape: tuple[int, int]) -> int:
    side = max(16, int(round(tile_a / pixel_size / 2)) * 2)
    return min(side, (min(shape) // 2) * 2)


def _freqs(side: int, pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    fy = np.fft.fftfreq(side, pixel_size)[:, None]
    fx = np.fft.rfftfreq(side, pixel_size)[None, :]
    return fy, fx


def crystalline_area(img: np.ndarray, pixel_size: float, *, tile_a: float = CRYSTAL_TILE_A,
                     ratio: float = CRYSTAL_SPOT_RATIO) -> float:
    """Fraction of ``tile_a`` tiles holding ice lattice spots (0-1; NaN beyond Nyquist)."""
    nyquist = 0.5 / pixel_size
    if ICE_SPOT_BAND[1] > nyquist:
        return float("nan")
    a = np.asarray(img, dtype=np.float32)
    side = _tile_side(tile_a, pixel_size, a.shape)
    fy, fx = _freqs(side, pixel_size)
    r = np.sqrt(fy**2 + fx**2)
    band = (r >= ICE_SPOT_BAND[0]) & (r <= ICE_SPOT_BAND[1])
    neigh = np.zeros_like(band)
    for lo, hi in ICE_SPOT_NEIGHBOURS:
        neigh |= (r >= lo) & (r <= min(hi, nyquist))
    if band.sum() < CRYSTAL_TOP or not neigh.any():
        return float("nan")
    found = []
    for y0 in range(0, a.shape[0] - side + 1, side):  # one row of tiles at a time: little memory
        f = sfft.rfft2(_tiles(a[y0 : y0 + side], side), axes=(-2, -1))
        top = np.partition(np.abs(f[:, band]) ** 2, -CRYSTAL_TOP, axis=1)[:, -CRYSTAL_TOP:].mean(axis=1)
        ref = np.median(np.abs(f[:, neigh]) ** 2, axis=1)
        found.append(top > ratio * np.maximum(ref, 1e-30))
    return float(np.mean(np.concatenate(found)))


def transmission(img: np.ndarray, pixel_size: float, dose: float | None) -> float:
    """Median counts per pixel / (dose * pixel_size^2); NaN when unknown or not plausible counts."""
    if dose is None or not math.isfinite(float(dose)) or dose <= 0:
        return float("nan")
    a = np.asarray(img)
    step = max(1, int(math.sqrt(a.size / TRANSMISSION_SAMPLES)))  # the median of ~1e6 pixels is enough
    value = float(np.median(a[::step, ::step])) / (float(dose) * pixel_size**2)
    return value if TRANSMISSION_RANGE[0] < value < TRANSMISSION_RANGE[1] else float("nan")


def carbon_area(low: np.ndarray) -> float:
    """Fraction of ``low`` (an image low-passed to ~25 A) more than 7 % darker than its brightest 2 %."""
    a = np.asarray(low, dtype=np.float64)
    bright = float(np.quantile(a, CARBON_BRIGHT_QUANTILE))
    if not bright > 0:
        return float("nan")  # not intensities (zero-mean data): the ratio means nothing
    return float(np.mean(a < (1 - CARBON_DARKER) * bright))


def directional_power(img: np.ndarray, pixel_size: float) -> tuple[float, float, float]:
    """Max - min over direction sectors of log10 power in :data:`DIRECTION_BANDS` (NaN beyond Nyquist)."""
    a = np.asarray(img, dtype=np.float32)
    side = _tile_side(DIRECTION_TILE_A, pixel_size, a.shape)
    power = (np.abs(sfft.rfft2(_tiles(a, side), axes=(-2, -1))) ** 2).mean(axis=0)
    fy, fx = _freqs(side, pixel_size)
    r = np.sqrt(fy**2 + fx**2)
    theta = np.mod(np.arctan2(fy, fx), np.pi)
    step = 1.0 / (side * pixel_size)
    off_axes = (np.abs(fx) > 1.5 * step) & (np.abs(fy) > 1.5 * step)
    sector = (theta / (np.pi / DIRECTION_SECTORS)).astype(np.int64) % DIRECTION_SECTORS
    out = []
    for lo, hi in DIRECTION_BANDS:
        if hi > 0.5 / pixel_size:
            out.append(float("nan"))
            continue
        m = (r >= lo) & (r < hi) & off_axes
        counts = np.bincount(sector[m], minlength=DIRECTION_SECTORS)
        sums = np.bincount(sector[m], weights=power[m], minlength=DIRECTION_SECTORS)
        keep = counts > 0
        if keep.sum() < 2:
            out.append(float("nan"))
            continue
        prof = np.log10(np.maximum(sums[keep] / counts[keep], 1e-30))
        out.append(float(prof.max() - prof.min()))
    return out[0], out[1], out[2]


def defocus(ps: PowerSpectrum, voltage_kv: float = 300.0) -> tuple[float, float]:
    """(defocus in um, quality) from the Thon-ring period in k^2 of ``ps.radial``; NaNs when the
    band is not covered."""
    lam = electron_wavelength(voltage_kv)
    k = np.asarray(ps.radial_freq, dtype=np.float64)
    z = np.asarray(ps.radial, dtype=np.float64)
    lo, hi = DEFOCUS_BAND[0], min(DEFOCUS_BAND[1], 0.9 * ps.nyquist)
    m = (k >= 0.5 * lo) & (k <= 1.1 * hi) & np.isfinite(z)
    if hi <= 2 * lo or m.sum() < 16:
        return float("nan"), float("nan")
    k, z = k[m], z[m]
    dk = float(np.median(np.diff(k)))
    residual = z - ndimage.gaussian_filter1d(z, sigma=max(2.0, 0.01 / dk), mode="nearest")
    s = np.linspace(lo**2, hi**2, 2048)  # uniform in k^2: the rings are periodic there
    r = np.interp(np.sqrt(s), k, residual)
    r = (r - r.mean()) * np.hanning(len(r))
    n = 16 * len(r)
    spectrum = np.abs(np.fft.rfft(r, n))
    freq = np.fft.rfftfreq(n, s[1] - s[0])  # = lambda * dz (A^2) at the ring period
    ok = (freq >= DEFOCUS_RANGE_UM[0] * 1e4 * lam) & (freq <= DEFOCUS_RANGE_UM[1] * 1e4 * lam)
    if not ok.any():
        return float("nan"), float("nan")
    i = int(np.argmax(np.where(ok, spectrum, 0.0)))
    quality = float(spectrum[i] / max(float(np.median(spectrum[ok])), 1e-30))
    return float(freq[i] / lam / 1e4), quality


def quality_measures(
    img: np.ndarray,
    pixel_size: float,
    ps: PowerSpectrum,
    *,
    coarse: tuple[np.ndarray, float] | None = None,
    dose: float | None = None,
    voltage_kv: float = 300.0,
) -> dict[str, float]:
    """Every measure, keyed by :data:`MEASURE_NAMES` (NaN where not measurable).

    ``img``: the full-resolution micrograph; ``ps``: its power spectrum; ``coarse``: (a Fourier
    crop of ``img``, its pixel size), used when at least as fine as the directional and carbon
    measures need (:data:`DIRECTION_PIXEL_A`), else they resample ``img`` themselves.
    """
    src, src_ps = (img, pixel_size)
    if coarse is not None and coarse[1] <= DIRECTION_PIXEL_A * (1 + 1e-6):
        src, src_ps = coarse
    direction_shape = shape_at_pixel_size(np.shape(img), pixel_size, DIRECTION_PIXEL_A)
    if coarse is not None and src is img and pixel_size < DIRECTION_PIXEL_A and np.shape(coarse[0]) == direction_shape:
        # the coarse image IS the crop of ``img`` that resampling would make (a hair coarser than
        # DIRECTION_PIXEL_A by the rounding of its shape): the same array, without a second full FFT
        h, w = np.shape(img)
        directional_src = np.asarray(coarse[0], dtype=np.float32)
        directional_ps = float(pixel_size * 0.5 * (h / direction_shape[0] + w / direction_shape[1]))
    else:
        directional_src, directional_ps = resample_to_pixel_size(src, src_ps, DIRECTION_PIXEL_A)
    low, _ = resample_to_pixel_size(directional_src, directional_ps, CARBON_PIXEL_A)
    d_lo, d_mid, d_hi = directional_power(directional_src, directional_ps)
    dz, dq = defocus(ps, voltage_kv)
    values = {
        "crystalline_area": crystalline_area(img, pixel_size),
        "transmission": transmission(img, pixel_size, dose),
        "carbon_area": carbon_area(low),
        "directional_low": d_lo,
        "directional_mid": d_mid,
        "directional_high": d_hi,
        "defocus_um": dz,
        "defocus_quality": dq,
    }
    return {name: float(values[name]) for name in MEASURE_NAMES}
