"""Local lattice power: where in a micrograph crystalline ice diffracts, tile by tile.

Crystalline ice scatters into a ring or sharp spots at 3.90 / 3.67 / 3.44 A. At the pixel size a
segmentation network sees (about 8 A/px) those frequencies lie far beyond Nyquist, so they are
measured here on the FULL-resolution image: the image is cut into square tiles, each tile is
windowed (Hann) and Fourier transformed, and its mean power in the lattice band (3.44-3.90 A) is
divided by its mean power in the neighbouring shells (just below and just above the band). The
map holds ``log`` of that ratio per tile: about 0 for vitreous ice (a smooth spectrum), clearly
above 0 where a lattice domain covers the tile. Dividing by the neighbouring shells of the same
tile removes the envelope (CTF, dose, detector) and the local contrast.

Arrays in, arrays out; no file access, no torch.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

__all__ = ["LATTICE_BAND", "SHELL_WIDTH", "lattice_visible", "lattice_power_map", "tile_grid"]

#: The lattice band, in Angstrom (resolution), high then low frequency edge: 3.44-3.90 A.
LATTICE_BAND: tuple[float, float] = (3.44, 3.90)
#: Width (1/A) of each neighbouring shell the band is normalised by.
SHELL_WIDTH = 0.03
#: Tiles transformed at once (bounds the temporary complex array).
_BATCH = 256


def lattice_visible(pixel_size: float) -> bool:
    """Whether the lattice band lies below Nyquist at ``pixel_size`` (A/px), i.e. pixel size < 1.72 A."""
    if not pixel_size > 0:
        raise ValueError(f"pixel size must be > 0, got {pixel_size}")
    return 1.0 / (2.0 * pixel_size) > 1.0 / LATTICE_BAND[0]


def tile_grid(shape: tuple[int, int], tile: int, stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tile origins (ys, xs) covering ``shape``: every ``stride`` pixels (default: ``tile``), the last
    flush with the edge. An image side shorter than ``tile`` gives one origin, 0."""
    stride = stride or tile
    if tile < 8 or stride < 1:
        raise ValueError(f"tile must be >= 8 and stride >= 1, got tile={tile}, stride={stride}")

    def origins(n: int) -> np.ndarray:
        if n <= tile:
            return np.zeros(1, dtype=int)
        out = list(range(0, n - tile + 1, stride))
        if out[-1] != n - tile:
            out.append(n - tile)
        return np.asarray(out, dtype=int)

    return origins(int(shape[0])), origins(int(shape[1]))


def _shell_masks(tile: int, pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over an rfft2 grid of a ``tile`` square: the lattice band, its neighbouring shells."""
    fy = sfft.fftfreq(tile, d=pixel_size)
    fx = sfft.rfftfreq(tile, d=pixel_size)
    f = np.hypot(fy[:, None], fx[None, :])
    lo, hi = 1.0 / LATTICE_BAND[1], 1.0 / LATTICE_BAND[0]
    nyquist = 1.0 / (2.0 * pixel_size)
    band = (f >= lo) & (f <= hi)
    shells = ((f >= lo - SHELL_WIDTH) & (f < lo)) | ((f > hi) & (f <= min(hi + SHELL_WIDTH, nyquist)))
    return band, shells


def lattice_power_map(image: np.ndarray, pixel_size: float, tile: int = 128, stride: int | None = None) -> np.ndarray:
    """(ny, nx) float32 map of log(band power / neighbouring-shell power) per tile of ``image``.

    ``image`` is the full-resolution micrograph at ``pixel_size`` A/px; tile ``(i, j)`` starts at
    ``tile_grid(image.shape, tile, stride)`` origins ``(ys[i], xs[j])`` and is ``tile`` pixels square
    (``tile * pixel_size`` A). Where the band lies beyond Nyquist (pixel size >= 1.72 A) nothing can be
    measured and the map is all zeros. Non-finite pixels count as the tile's mean.
    """
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {a.shape}")
    if not pixel_size > 0:
        raise ValueError(f"pixel size must be > 0, got {pixel_size}")
    if tile < 8:
        raise ValueError(f"tile must be at least 8 pixels, got {tile}")
    ys, xs = tile_grid(a.shape, tile, stride)
    out = np.zeros((len(ys), len(xs)), dtype=np.float32)
    if not lattice_visible(pixel_size):
        return out
    t = min(tile, *a.shape)
    band, shells = _shell_masks(t, pixel_size)
    if not band.any() or not shells.any():
        return out
    window = np.outer(np.hanning(t), np.hanning(t)).astype(np.float32)
    origins = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    for start in range(0, len(origins), _BATCH):
        chunk = origins[start : start + _BATCH]
        stack = np.stack([a[ys[i] : ys[i] + t, xs[j] : xs[j] + t] for i, j in chunk]).astype(np.float32)
        bad = ~np.isfinite(stack)
        if bad.any():
            stack[bad] = 0.0
        stack -= stack.mean(axis=(1, 2), keepdims=True)
        stack *= window
        power = np.abs(sfft.rfft2(stack, axes=(1, 2))) ** 2
        ratio = (power[:, band].mean(axis=1) + 1e-12) / (power[:, shells].mean(axis=1) + 1e-12)
        for (i, j), value in zip(chunk, np.log(ratio), strict=True):
            out[i, j] = value
    return out
