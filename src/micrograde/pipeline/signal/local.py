"""Local statistics: how the micrograph's low-resolution intensity and texture vary over its field.

Carbon film, vacuum, contamination and thick patches are regions, not frequencies: an expert sees
them as parts of the field that are darker, brighter, smoother or rougher than the rest. These
measures describe that heterogeneity without thresholds tuned to any renderer. The image, already
low-passed to 25 A (12.5 A/px, the carbon measure's image), is cut into 200 A tiles; each tile has
a mean ``m`` and a standard deviation ``s`` (its texture: particles, noise, edges). Then:

- ``z = (m - median(m)) / median(s)``: each tile's brightness in units of the typical texture, a
  quantity that does not depend on the intensity scale or offset (counts, float, 8-bit exports);
- ``r = s / median(s)``: each tile's texture relative to the typical one;
- ``m / median(m)``: the brightness ratio, meaningful only for counts (a positive median), NaN
  otherwise.

Reported: quantiles of ``z`` (2, 10, 90, 98 %), of ``r`` (10, 90 %), of ``m / median(m)`` (2, 98 %),
the fractions of tiles far darker or brighter (``|z| > 3``, ratio beyond 4 %), flat (``r < 0.6``) or
rough (``r > 1.6``), and the correlation of ``m`` and ``s`` over the tiles. With fewer than
:data:`MIN_TILES` tiles every value is NaN. Arrays in, numbers out.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LOCAL_PIXEL_A", "LOCAL_TILE_A", "MIN_TILES", "LOCAL_NAMES", "local_statistics"]

#: Pixel size of the image the statistics read (25 A low-pass), A/px.
LOCAL_PIXEL_A = 12.5
#: Tile side, A.
LOCAL_TILE_A = 200.0
#: Fewest tiles for which the quantiles mean anything.
MIN_TILES = 9
Z_FAR = 3.0
RATIO_FAR = 0.04
FLAT, ROUGH = 0.6, 1.6

#: The names :func:`local_statistics` returns, in order.
LOCAL_NAMES: tuple[str, ...] = (
    "local_z02", "local_z10", "local_z90", "local_z98", "local_texture10", "local_texture90", "local_dark_fraction",
    "local_bright_fraction", "local_flat_fraction", "local_rough_fraction", "local_ratio02", "local_ratio98",
    "local_ratio_dark_fraction", "local_ratio_bright_fraction", "local_mean_texture_corr",
)  # fmt: skip


def _tile_stats(low: np.ndarray, pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(low, dtype=np.float64)
    side = max(2, int(round(LOCAL_TILE_A / pixel_size)))
    h, w = (a.shape[0] // side) * side, (a.shape[1] // side) * side
    if h == 0 or w == 0:
        return np.zeros(0), np.zeros(0)
    tiles = a[:h, :w].reshape(h // side, side, w // side, side).swapaxes(1, 2).reshape(-1, side * side)
    return tiles.mean(axis=1), tiles.std(axis=1)


def local_statistics(low: np.ndarray, pixel_size: float = LOCAL_PIXEL_A) -> dict[str, float]:
    """The :data:`LOCAL_NAMES` of ``low`` (an image low-passed to about 25 A, at ``pixel_size`` A/px)."""
    nan = dict.fromkeys(LOCAL_NAMES, float("nan"))
    m, s = _tile_stats(low, pixel_size)
    if m.size < MIN_TILES or not np.isfinite(m).all() or not np.isfinite(s).all():
        return nan
    med_m, med_s = float(np.median(m)), float(np.median(s))
    if not med_s > 0:
        return nan  # a constant image: no texture to measure against
    z, r = (m - med_m) / med_s, s / med_s
    def q(x: np.ndarray, p: float) -> float:
        return float(np.quantile(x, p))

    out: dict[str, float] = {
        "local_z02": q(z, 0.02), "local_z10": q(z, 0.10), "local_z90": q(z, 0.90), "local_z98": q(z, 0.98),
        "local_texture10": q(r, 0.10), "local_texture90": q(r, 0.90),
        "local_dark_fraction": float(np.mean(z < -Z_FAR)), "local_bright_fraction": float(np.mean(z > Z_FAR)),
        "local_flat_fraction": float(np.mean(r < FLAT)), "local_rough_fraction": float(np.mean(r > ROUGH)),
    }  # fmt: skip
    if med_m > 0:  # counts: ratios mean something
        ratio = m / med_m
        out.update({"local_ratio02": q(ratio, 0.02), "local_ratio98": q(ratio, 0.98),
                    "local_ratio_dark_fraction": float(np.mean(ratio < 1 - RATIO_FAR)),
                    "local_ratio_bright_fraction": float(np.mean(ratio > 1 + RATIO_FAR))})
    corr = float(np.corrcoef(m, s)[0, 1]) if m.std() > 0 and s.std() > 0 else 0.0
    out["local_mean_texture_corr"] = corr if math.isfinite(corr) else 0.0
    return {name: float(out.get(name, float("nan"))) for name in LOCAL_NAMES}
