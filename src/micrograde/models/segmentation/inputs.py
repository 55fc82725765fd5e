"""What the mask network sees: a micrograph at a fixed physical pixel size, two channels.

Channel 0 is the image Fourier-cropped to ``pixel_size`` (8 A/px by default; see
:func:`micrograde.pipeline.signal.views.resample_view`) and robustly standardised. Channel 1 is the
local lattice power (3.44-3.90 A, :func:`micrograde.pipeline.signal.lattice.lattice_power_map`)
measured on the FULL-resolution image in tiles of about ``lattice_tile_A`` Angstrom (side rounded up
to a fast FFT length; tiles side by side),
resized to the view and scaled by a fixed affine map (recorded in the model card). Ground-truth
masks are brought to the view's grid by nearest-neighbour sampling; predicted masks go back to the
micrograph's grid the same way.

Numpy only (no torch); arrays in, arrays out.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.fft import next_fast_len

from micrograde.pipeline.config import FrozenModel
from micrograde.pipeline.masks import resample_mask
from micrograde.pipeline.signal.lattice import lattice_power_map
from micrograde.pipeline.signal.normalise import ConstantImageError, robust_normalise
from micrograde.pipeline.signal.views import resample_view

__all__ = ["MaskInputConfig", "IGNORE_INDEX", "mask_inputs", "mask_to_view", "mask_to_full", "pad_to_multiple"]

#: target value of pixels that do not count in the loss (padding)
IGNORE_INDEX = 255


class MaskInputConfig(FrozenModel):
    """How a micrograph becomes the mask network's input (stored in the model card)."""

    pixel_size: float = 8.0  # A/px the network sees
    lattice_tile_A: float = 128.0  # side of a lattice tile, Angstrom
    lattice_offset: float = 0.0  # channel 1 = clip((map - offset) * scale, -2, 6)
    lattice_scale: float = 1.0
    clip_sigma: float = 4.0


def _lattice_channel(image: np.ndarray, pixel_size: float, shape: tuple[int, int], cfg: MaskInputConfig) -> np.ndarray:
    tile = next_fast_len(max(16, int(round(cfg.lattice_tile_A / pixel_size))), real=True)
    tile = min(tile, *image.shape)
    lmap = lattice_power_map(image, pixel_size, tile=tile)
    lmap = np.clip((lmap - cfg.lattice_offset) * cfg.lattice_scale, -2.0, 6.0).astype(np.float32)
    return cv2.resize(lmap, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def mask_inputs(image: np.ndarray, pixel_size: float, cfg: MaskInputConfig | None = None) -> np.ndarray:
    """(2, h, w) float32 network input of a full-resolution micrograph at ``pixel_size`` A/px.

    ``(h, w)`` is the field at ``cfg.pixel_size`` (e.g. 5760x4092 at 0.83 A -> 598x425 at 8 A).
    """
    cfg = cfg or MaskInputConfig()
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D micrograph, got shape {a.shape}")
    if not pixel_size > 0:
        raise ValueError(f"pixel size must be > 0, got {pixel_size}")
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    view = resample_view(a, pixel_size, cfg.pixel_size)
    try:
        view = robust_normalise(view, cfg.clip_sigma)
    except ConstantImageError:
        view = np.zeros_like(view)
    return np.stack([view, _lattice_channel(a, pixel_size, view.shape, cfg)]).astype(np.float32)


def mask_to_view(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A full-resolution label map sampled (nearest) onto the view's ``shape``."""
    return resample_mask(np.asarray(mask, dtype=np.uint8), shape)


def mask_to_full(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A view-grid label map brought (nearest) to the micrograph's ``shape``."""
    return mask_to_view(mask, shape)


def pad_to_multiple(
    x: np.ndarray, multiple: int = 32, value: float | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """``x`` (..., h, w) padded at the bottom/right to multiples of ``multiple``: (reflect, or ``value``);
    returns the padded array and the original (h, w)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x, (h, w)
    pad = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    if value is None and min(h, w) > max(ph, pw):
        return np.pad(x, pad, mode="reflect"), (h, w)
    return np.pad(x, pad, mode="constant", constant_values=0 if value is None else value), (h, w)
