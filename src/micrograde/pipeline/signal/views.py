"""Views of a micrograph for a pretrained image network: crops at a fixed physical pixel size, in
several orientations, and the power spectrum in two orientations.

Why: an ImageNet network sees texture at a scale in pixels. Crops cut from the whole-field view at
the same Angstrom per pixel (8 A by default) show particles, ice and contamination at the same size
for every detector, pixel size and file kind (a K3 at 0.83 A, a Falcon at 0.95 A, an 8-bit PNG
export at 7.5 A). Averaging the network's features over crops spread across the field and over the
eight symmetries of the square (rotations by 90 degrees, flips) gives a description of the whole
micrograph that does not depend on where a blob sits or how the detector was mounted.

Arrays in, arrays out; no file access, no torch.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from micrograde.pipeline.signal.fourier import fourier_crop

__all__ = ["dihedral", "resample_view", "crop_positions", "image_views", "field_views", "spectrum_views", "MIN_FIELD"]


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th (0-7) of the eight symmetries of the square: ``k % 4`` quarter turns, then a
    transpose when ``k >= 4``."""
    out = np.rot90(a, k % 4)
    return out.T if k % 8 >= 4 else out


def resample_view(view: np.ndarray, pixel_size: float, target: float) -> np.ndarray:
    """``view`` (at ``pixel_size`` A/px) brought to ``target`` A/px: a Fourier crop when coarser, a
    bicubic interpolation when finer (an image coarser than the target is shown at the target's
    scale, without inventing detail). Float32."""
    a = np.asarray(view, dtype=np.float32)
    if not (pixel_size > 0 and target > 0):
        raise ValueError(f"pixel sizes must be > 0, got {pixel_size} and {target}")
    factor = pixel_size / target
    shape = (max(1, round(a.shape[0] * factor)), max(1, round(a.shape[1] * factor)))
    if shape == a.shape:
        return a
    if factor < 1:
        return fourier_crop(a, shape)
    return cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def crop_positions(length: int, crop: int, count: int) -> list[int]:
    """``count`` crop origins spread evenly over ``length`` (the first at 0, the last flush with the
    end); one at 0 when the crop does not fit."""
    if length <= crop or count <= 1:
        return [max(0, (length - crop) // 2)] if length > crop else [0]
    return [int(round(i * (length - crop) / (count - 1))) for i in range(count)]


def _pad_to(a: np.ndarray, crop: int) -> np.ndarray:
    ph, pw = max(0, crop - a.shape[0]), max(0, crop - a.shape[1])
    if not (ph or pw):
        return a
    return np.pad(a, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)), mode="reflect" if min(a.shape) > 1 else "edge")


def image_views(view: np.ndarray, pixel_size: float, *, target: float, crop: int, max_crops: int,
                min_views: int, size: int | None = None) -> np.ndarray:
    """(n, size, size) float32 crops of the whole-field ``view`` at ``target`` A/px, each ``crop``
    pixels (``target * crop`` A) wide and resized (bicubic) to ``size`` (default: ``crop``).

    Crop positions form an even grid over the field (as many as fit without gaps, at most
    ``max_crops``, keeping the field's aspect ratio); crop ``i`` is shown in symmetry ``i % 8``. A
    field with fewer than ``min_views`` positions repeats them in further symmetries up to
    ``min_views`` views. A field smaller than one crop is reflect-padded.
    """
    a = resample_view(view, pixel_size, target)
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    h, w = a.shape
    ny, nx = max(1, math.ceil(h / crop)), max(1, math.ceil(w / crop))
    while ny * nx > max_crops:  # thin out the longer direction first
        if ny >= nx and ny > 1:
            ny -= 1
        elif nx > 1:
            nx -= 1
        else:
            break
    tiles = [_pad_to(a[y : y + crop, x : x + crop], crop)
             for y in crop_positions(h, crop, ny) for x in crop_positions(w, crop, nx)]
    if size and size != crop:
        tiles = [cv2.resize(tile, (size, size), interpolation=cv2.INTER_CUBIC) for tile in tiles]
    n = max(len(tiles), min_views)
    return np.stack([dihedral(tiles[i % len(tiles)], i % 8) for i in range(n)]).astype(np.float32)


#: the smallest field side a network input may have (five halvings leave one feature)
MIN_FIELD = 32


def field_views(view: np.ndarray, pixel_size: float, *, target: float, min_pixels: int) -> np.ndarray:
    """(n, h, w) float32: the whole field ``view`` at ``target`` A/px (never finer than the view
    itself: a field too large for the cached view keeps the view's pixel size), in ``n`` of the
    shape-preserving symmetries (identity, up-down flip, left-right flip, half turn): as few as
    make ``n * h * w >= min_pixels`` (at most 4). A side below :data:`MIN_FIELD` is reflect-padded."""
    a = resample_view(view, pixel_size, max(target, pixel_size))
    a = _pad_to(np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0), MIN_FIELD)
    n = int(min(4, max(1, math.ceil(min_pixels / a.size))))
    return np.stack([a, a[::-1], a[:, ::-1], a[::-1, ::-1]][:n]).astype(np.float32)


def spectrum_views(spectrum: np.ndarray, size: int, n: int) -> np.ndarray:
    """(n, size, size) float32: the power spectrum image area-resampled to ``size``, in symmetries
    0, 4 (transpose), 1, 5... (a spectrum is symmetric under a half turn, so four are distinct)."""
    s = np.asarray(spectrum, dtype=np.float32)
    if s.shape != (size, size):
        s = np.asarray(cv2.resize(s, (size, size), interpolation=cv2.INTER_AREA), dtype=np.float32)
    order = (0, 4, 1, 5)
    return np.stack([dihedral(s, order[i % 4]) for i in range(max(1, n))]).astype(np.float32)
