"""Geometric augmentations applied consistently to a micrograph and to its power spectrum.

Each transform here is an albumentations ``DualTransform`` that also understands a ``spectrum``
target: call it (or a ``Compose`` holding it) as ``t(image=img, spectrum=spec)``.

The image is mapped by an affine map about its centre, ``x' = A (x - c) + c + t``. The Fourier
transform of ``f(A^-1 x)`` is ``|det A| F(A^T k)``, so its power spectrum is the old one mapped by
``k' = A^-T k`` about the DC term, and a translation ``t`` (a crop) only changes phases, so it
leaves the power spectrum alone:

=================  ==========================  =====================================
transform          image                       spectrum (about DC)
=================  ==========================  =====================================
rotation R         R                           R (R^-T = R)
flip F             F                           F (same flip about DC)
shear / stretch A  A                           A^-T
crop + resize      1/f scale + translation     f scale (contracts toward DC)
=================  ==========================  =====================================

The spectrum's DC term sits at pixel ``(N//2, N//2)`` (the ``numpy.fft.fftshift`` convention); its
frequency scale does not matter because a linear map commutes with scaling. Values that come
from outside the array are filled by reflection in the IMAGE (texture continues) but by a constant in
the SPECTRUM (the median of its outermost annulus): a reflected spectrum would mirror rings back
in, inventing ring arcs where an ice ring would be read. Nothing here clips: float images keep
any range.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

# albumentations checks PyPI for a newer version on import (a network call with a 2 s timeout);
# a facility pipeline must not phone home. Set only as a default: NO_ALBUMENTATIONS_UPDATE=0 wins.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2
import numpy as np
from albumentations.core.transforms_interface import DualTransform

__all__ = [
    "SpectrumPairTransform",
    "Turn",
    "Shear",
    "Stretch",
    "FieldCrop",
    "affine_matrix",
    "warp_affine",
    "outer_level",
]

_BORDER = cv2.BORDER_REFLECT_101


def _range(value: Any, name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {value!r}")
    return lo, hi


def _probability(value: float, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
    return value


def affine_matrix(linear: np.ndarray, centre: tuple[float, float], shift: np.ndarray | None = None) -> np.ndarray:
    """The 2x3 forward matrix (x, y order) of ``x' = A (x - centre) + centre + shift``."""
    a = np.asarray(linear, dtype=np.float64)
    c = np.asarray(centre, dtype=np.float64)
    t = np.zeros(2) if shift is None else np.asarray(shift, dtype=np.float64)
    return np.hstack([a, (c + t - a @ c)[:, None]])


def outer_level(spectrum: np.ndarray) -> float:
    """Median of the spectrum's outermost annulus (90-100 % of the half-width): the level used for
    frequencies a warp brings in from outside the array. A constant, never a reflection, so no
    mirrored ring (a fake ice ring) can appear."""
    plane = spectrum[..., 0] if spectrum.ndim == 3 else spectrum
    ring = plane.reshape(-1)[_outer_annulus(*plane.shape)]
    return float(np.median(ring)) if ring.size else float(np.median(plane))


@functools.lru_cache(maxsize=16)
def _outer_annulus(h: int, w: int) -> np.ndarray:
    yy, xx = np.ogrid[:h, :w]
    r = np.hypot((yy - h // 2) / (h / 2), (xx - w // 2) / (w / 2))
    idx = np.flatnonzero((r >= 0.9) & (r <= 1.0))[::3]  # every 3rd pixel: the median is as good, 3x cheaper
    idx.setflags(write=False)
    return idx


def warp_affine(arr: np.ndarray, matrix: np.ndarray, interpolation: int = cv2.INTER_LINEAR,
                border_mode: int = _BORDER, border_value: float = 0.0) -> np.ndarray:
    """Warp a (H, W) or (H, W, 1) array by a forward 2x3 matrix, keeping shape, dtype and range."""
    squeeze = arr.ndim == 3 and arr.shape[2] == 1
    plane = arr[..., 0] if squeeze else arr
    if plane.dtype not in (np.float32, np.float64, np.uint8, np.uint16):
        plane = plane.astype(np.float32)
    out = cv2.warpAffine(plane, matrix, (plane.shape[1], plane.shape[0]), flags=interpolation, borderMode=border_mode,
                         borderValue=border_value)
    out = out.astype(arr.dtype, copy=False)
    return out[..., None] if squeeze else out


class SpectrumPairTransform(DualTransform):
    """Base class: a linear map ``A`` (plus translation) of the image and ``A^-T`` of its spectrum.

    Subclasses implement :meth:`draw` returning ``(A, shift)`` for an image of a given shape,
    using ``self.py_random`` so that the Compose seed controls them.
    """

    def __init__(self, interpolation: int = cv2.INTER_LINEAR, border_mode: int = _BORDER, p: float = 0.5):
        super().__init__(p=p)
        self.interpolation = int(interpolation)
        self.border_mode = int(border_mode)

    @property
    def targets(self) -> dict[str, Any]:
        targets = dict(super().targets)
        targets["spectrum"] = self.apply_to_spectrum
        return targets

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("interpolation", "border_mode")

    def draw(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        linear, shift = self.draw(params["shape"])
        return {"linear": np.asarray(linear, dtype=np.float64), "shift": np.asarray(shift, dtype=np.float64)}

    @staticmethod
    def _is_identity(linear: np.ndarray, shift: np.ndarray | None = None) -> bool:
        return np.allclose(linear, np.eye(2), atol=1e-12) and (shift is None or np.allclose(shift, 0, atol=1e-9))

    def apply(self, img: np.ndarray, linear: np.ndarray, shift: np.ndarray, **params: Any) -> np.ndarray:
        if self._is_identity(linear, shift):
            return img
        h, w = img.shape[:2]
        matrix = affine_matrix(linear, ((w - 1) / 2.0, (h - 1) / 2.0), shift)
        return warp_affine(img, matrix, self.interpolation, self.border_mode)

    def apply_to_mask(self, mask: np.ndarray, linear: np.ndarray, shift: np.ndarray, **params: Any) -> np.ndarray:
        if self._is_identity(linear, shift):
            return mask
        h, w = mask.shape[:2]
        matrix = affine_matrix(linear, ((w - 1) / 2.0, (h - 1) / 2.0), shift)
        return warp_affine(mask, matrix, cv2.INTER_NEAREST, self.border_mode)

    def apply_to_spectrum(self, spectrum: np.ndarray, linear: np.ndarray, **params: Any) -> np.ndarray:
        """Map the power spectrum by ``A^-T`` about its DC pixel ``(N//2, N//2)``; no translation."""
        if self._is_identity(linear):
            return spectrum
        h, w = spectrum.shape[:2]
        inv_t = np.linalg.inv(linear).T
        matrix = affine_matrix(inv_t, (w // 2, h // 2))
        return warp_affine(spectrum, matrix, self.interpolation, cv2.BORDER_CONSTANT, outer_level(spectrum))


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


class Turn(SpectrumPairTransform):
    """Turned: 90-degree turns, flips and free rotation, composed into one rotation/reflection.

    Args:
        quarter_turns: draw a random multiple of 90 degrees.
        flip_p: probability of a mirror flip (left-right; with the turns this covers every flip).
        rotate_p: probability of an extra free rotation drawn from ``angle_range`` (degrees).
    """

    def __init__(self, quarter_turns: bool = True, flip_p: float = 0.5, rotate_p: float = 0.5,
                 angle_range: tuple[float, float] = (-180.0, 180.0), interpolation: int = cv2.INTER_LINEAR,
                 border_mode: int = _BORDER, p: float = 1.0):
        super().__init__(interpolation=interpolation, border_mode=border_mode, p=p)
        self.quarter_turns = bool(quarter_turns)
        self.flip_p = _probability(flip_p, "flip_p")
        self.rotate_p = _probability(rotate_p, "rotate_p")
        self.angle_range = _range(angle_range, "angle_range")

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("quarter_turns", "flip_p", "rotate_p", "angle_range", *super().get_transform_init_args_names())

    def draw(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        rng = self.py_random
        k = rng.randrange(4) if self.quarter_turns else 0
        flip = rng.random() < self.flip_p
        angle = rng.uniform(*self.angle_range) if rng.random() < self.rotate_p else 0.0
        linear = _rotation(math.radians(angle)) @ _rotation(k * math.pi / 2)
        linear = np.round(linear, 12) if angle == 0.0 else linear  # exact quarter turns
        if flip:
            linear = linear @ np.diag([-1.0, 1.0])
        return linear, np.zeros(2)


class Shear(SpectrumPairTransform):
    """Skewed: shear by angles (degrees) drawn from ``shear_range`` along x and along y.

    The image gets ``A = [[1, tan sx], [tan sy, 1]]``; the spectrum the inverse-transpose shear.
    """

    def __init__(self, shear_range: tuple[float, float] = (-8.0, 8.0), interpolation: int = cv2.INTER_LINEAR,
                 border_mode: int = _BORDER, p: float = 0.5):
        super().__init__(interpolation=interpolation, border_mode=border_mode, p=p)
        self.shear_range = _range(shear_range, "shear_range")
        if max(abs(v) for v in self.shear_range) >= 45:
            raise ValueError("shear_range must stay within (-45, 45) degrees")

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("shear_range", *super().get_transform_init_args_names())

    def draw(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        sx = math.tan(math.radians(self.py_random.uniform(*self.shear_range)))
        sy = math.tan(math.radians(self.py_random.uniform(*self.shear_range)))
        return np.array([[1.0, sx], [sy, 1.0]]), np.zeros(2)


class Stretch(SpectrumPairTransform):
    """Stretched: anisotropic magnification ``stretch`` along a random axis, times an isotropic
    ``scale``. Real microscopes show about 1-2 % anisotropic magnification; the spectrum is
    compressed along the same axis (``A^-T``), so Thon rings become ellipses as they would."""

    def __init__(self, stretch_range: tuple[float, float] = (0.96, 1.04),
                 scale_range: tuple[float, float] = (1.0, 1.0), interpolation: int = cv2.INTER_LINEAR,
                 border_mode: int = _BORDER, p: float = 0.5):
        super().__init__(interpolation=interpolation, border_mode=border_mode, p=p)
        self.stretch_range = _range(stretch_range, "stretch_range")
        self.scale_range = _range(scale_range, "scale_range")
        if min(self.stretch_range + self.scale_range) <= 0:
            raise ValueError("stretch_range and scale_range must be positive factors")

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("stretch_range", "scale_range", *super().get_transform_init_args_names())

    def draw(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        phi = self.py_random.uniform(0.0, math.pi)
        stretch = self.py_random.uniform(*self.stretch_range)
        scale = self.py_random.uniform(*self.scale_range)
        rot = _rotation(phi)
        return scale * (rot @ np.diag([stretch, 1.0]) @ rot.T), np.zeros(2)


class FieldCrop(SpectrumPairTransform):
    """Fragmented: a random square window covering ``fraction`` of the field side, resized back to
    the full size. The image is magnified by ``1/fraction`` (plus a translation); the spectrum is
    contracted by ``fraction`` toward DC (the rim is filled by reflection). Keep the fraction
    near 1: features at fixed spatial frequency (the ice ring at 3.7 A) move by the same factor."""

    def __init__(self, fraction_range: tuple[float, float] = (0.8, 1.0), interpolation: int = cv2.INTER_LINEAR,
                 border_mode: int = _BORDER, p: float = 0.5):
        super().__init__(interpolation=interpolation, border_mode=border_mode, p=p)
        self.fraction_range = _range(fraction_range, "fraction_range")
        if not 0 < self.fraction_range[0] <= self.fraction_range[1] <= 1:
            raise ValueError("fraction_range must lie in (0, 1]")

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("fraction_range", *super().get_transform_init_args_names())

    def draw(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        h, w = shape[:2]
        f = self.py_random.uniform(*self.fraction_range)
        # window centre offset from the field centre, so the window stays inside the field
        off = np.array(
            [self.py_random.uniform(-0.5, 0.5) * w * (1 - f), self.py_random.uniform(-0.5, 0.5) * h * (1 - f)]
        )
        linear = np.eye(2) / f
        return linear, -linear @ off
