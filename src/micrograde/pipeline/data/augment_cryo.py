"""Image-only augmentations: defocus-like blur, tile dropout, and cryo-EM label-preserving changes.

Each is an albumentations ``ImageOnlyTransform``: it changes the ``image`` and passes a
``spectrum`` target through untouched. That is deliberate. The spectrum channel is the power
spectrum of the FULL-resolution micrograph; we cannot recompute it from the downsampled image,
and we do not fake spectral changes (no invented Thon rings, no fake ice rings). A blur, extra
shot noise, lower contrast or a small defocus offset leaves the physical spectrum's landmarks
(ice rings, Thon-ring reach of a good micrograph) where the label depends on them.

None of these adds what would change a label: no crystals, contamination, drift streaks or
cracks. All work on float images of any range (no clipping to [0, 1]); the dose, ice and
stripe transforms keep the image's mean and standard deviation, so a normalised image stays
normalised. Randomness comes from ``self.py_random`` / ``self.random_generator`` only, so the
Compose seed controls every draw.
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
import scipy.fft
from albumentations.core.transforms_interface import ImageOnlyTransform

from micrograde.pipeline.data.augment_geometry import _range

__all__ = [
    "DefocusBlur",
    "TileDropout",
    "DoseResample",
    "IceContrast",
    "GainStripes",
    "DefocusChange",
    "electron_wavelength",
]


def _plane(img: np.ndarray) -> tuple[np.ndarray, bool]:
    squeeze = img.ndim == 3 and img.shape[2] == 1
    plane = img[..., 0] if squeeze else img
    if plane.ndim != 2:
        raise ValueError(f"expected a single-channel image (H, W) or (H, W, 1), got shape {img.shape}")
    return plane.astype(np.float32, copy=False), squeeze


def _restore(out: np.ndarray, like: np.ndarray, squeeze: bool) -> np.ndarray:
    out = out.astype(like.dtype if np.issubdtype(like.dtype, np.floating) else np.float32, copy=False)
    return out[..., None] if squeeze else out


def _keep_stats(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    sd_out = float(out.std())
    if sd_out == 0:
        return out
    return (out - out.mean()) * (float(ref.std()) / sd_out) + float(ref.mean())


class DefocusBlur(ImageOnlyTransform):
    """Blurred: a defocus-like blur, Gaussian (``sigma_range``, pixels) or a uniform disc
    (``radius_range``, pixels), chosen by ``kind`` (``gaussian``, ``disc`` or ``random``)."""

    def __init__(self, kind: str = "random", sigma_range: tuple[float, float] = (0.5, 1.5),
                 radius_range: tuple[float, float] = (1.0, 2.5), p: float = 0.5):
        super().__init__(p=p)
        if kind not in ("gaussian", "disc", "random"):
            raise ValueError(f"kind must be 'gaussian', 'disc' or 'random', not {kind!r}")
        self.kind = kind
        self.sigma_range = _range(sigma_range, "sigma_range")
        self.radius_range = _range(radius_range, "radius_range")

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("kind", "sigma_range", "radius_range")

    def get_params(self) -> dict[str, Any]:
        kind = self.kind if self.kind != "random" else ("gaussian" if self.py_random.random() < 0.5 else "disc")
        size = self.py_random.uniform(*(self.sigma_range if kind == "gaussian" else self.radius_range))
        return {"blur_kind": kind, "blur_size": size}

    def apply(self, img: np.ndarray, blur_kind: str, blur_size: float, **params: Any) -> np.ndarray:
        plane, squeeze = _plane(img)
        if blur_size <= 0:
            return img
        if blur_kind == "gaussian":
            out = cv2.GaussianBlur(plane, (0, 0), blur_size, borderType=cv2.BORDER_REFLECT_101)
        else:
            r = int(math.ceil(blur_size))
            yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
            kernel = (xx**2 + yy**2 <= blur_size**2).astype(np.float32)
            out = cv2.filter2D(plane, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT_101)
        return _restore(out, img, squeeze)


class TileDropout(ImageOnlyTransform):
    """Fragmented: replace a few square tiles (side = ``tile_fraction_range`` of the field) by
    noise with the image's mean and standard deviation (``fill="noise"``) or by its mean."""

    def __init__(self, n_tiles_range: tuple[int, int] = (1, 4), tile_fraction_range: tuple[float, float] = (0.05, 0.15),
                 fill: str = "noise", p: float = 0.5):
        super().__init__(p=p)
        lo, hi = (int(v) for v in n_tiles_range)
        if not 0 <= lo <= hi:
            raise ValueError(f"n_tiles_range must be 0 <= low <= high, got {n_tiles_range!r}")
        if fill not in ("noise", "mean"):
            raise ValueError(f"fill must be 'noise' or 'mean', not {fill!r}")
        self.n_tiles_range = (lo, hi)
        self.tile_fraction_range = _range(tile_fraction_range, "tile_fraction_range")
        if not 0 < self.tile_fraction_range[0] <= self.tile_fraction_range[1] <= 1:
            raise ValueError("tile_fraction_range must lie in (0, 1]")
        self.fill = fill

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("n_tiles_range", "tile_fraction_range", "fill")

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        tiles = []
        for _ in range(self.py_random.randint(*self.n_tiles_range)):
            side = max(1, round(self.py_random.uniform(*self.tile_fraction_range) * min(h, w)))
            tiles.append((self.py_random.randint(0, h - side), self.py_random.randint(0, w - side), side))
        return {"tiles": tiles, "fill_seed": self.py_random.getrandbits(32)}

    def apply(self, img: np.ndarray, tiles: list, fill_seed: int, **params: Any) -> np.ndarray:
        if not tiles:
            return img
        plane, squeeze = _plane(img)
        out = plane.copy()
        mean, sd = float(plane.mean()), float(plane.std())
        rng = np.random.default_rng(fill_seed)
        for y, x, side in tiles:
            if self.fill == "noise":
                out[y : y + side, x : x + side] = rng.normal(mean, sd, (side, side))
            else:
                out[y : y + side, x : x + side] = mean
        return _restore(out, img, squeeze)


class DoseResample(ImageOnlyTransform):
    """Shot-noise resampling at a lower dose (binomial thinning of the electron counts).

    The image is read as counts ``N = n0 (1 + k x)`` with ``n0 = electrons_per_pixel`` (at the
    cached pixel size; 40 e/A^2 at 4 A/px is 640) and ``k = relative_contrast`` (image standard
    deviation over mean counts). Keeping a fraction ``f`` of the electrons and scaling back adds
    noise of variance ``(1 - f) N / f`` counts (normal approximation of the binomial). The
    result is rescaled to the input's mean and standard deviation, as normalisation would.
    """

    def __init__(self, dose_fraction_range: tuple[float, float] = (0.5, 0.9), electrons_per_pixel: float = 640.0,
                 relative_contrast: float = 0.08, p: float = 0.5):
        super().__init__(p=p)
        self.dose_fraction_range = _range(dose_fraction_range, "dose_fraction_range")
        if not 0 < self.dose_fraction_range[0] <= self.dose_fraction_range[1] <= 1:
            raise ValueError("dose_fraction_range must lie in (0, 1]")
        if electrons_per_pixel <= 0 or relative_contrast <= 0:
            raise ValueError("electrons_per_pixel and relative_contrast must be positive")
        self.electrons_per_pixel = float(electrons_per_pixel)
        self.relative_contrast = float(relative_contrast)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("dose_fraction_range", "electrons_per_pixel", "relative_contrast")

    def get_params(self) -> dict[str, Any]:
        return {
            "dose_fraction": self.py_random.uniform(*self.dose_fraction_range),
            "noise_seed": self.py_random.getrandbits(32),
        }

    def apply(self, img: np.ndarray, dose_fraction: float, noise_seed: int, **params: Any) -> np.ndarray:
        f = dose_fraction
        if f >= 1.0:
            return img
        plane, squeeze = _plane(img)
        k, n0 = self.relative_contrast, self.electrons_per_pixel
        rel = np.maximum(1.0 + k * plane, 0.0)
        sigma = np.sqrt((1.0 - f) * rel / (f * n0)) / k
        noise = np.random.default_rng(noise_seed).standard_normal(plane.shape, dtype=np.float32)
        return _restore(_keep_stats(plane + sigma * noise, plane), img, squeeze)


class IceContrast(ImageOnlyTransform):
    """Ice-thickness contrast change: slightly thicker (or uneven) ice lowers the signal against
    the noise, and a thickness gradient shows as a slow ramp across the field.

    ``x' = c x + sqrt(1 - c^2) n + g * ramp`` with ``c`` from ``contrast_range`` (keep it near 1:
    strongly reduced contrast is "thick ice", a reason for 'bad'), white noise ``n`` of the
    image's standard deviation, and a linear ramp of amplitude ``g`` (in standard deviations)
    from ``gradient_range`` along a random direction. Mean and standard deviation are kept.
    """

    def __init__(
        self,
        contrast_range: tuple[float, float] = (0.8, 1.0),
        gradient_range: tuple[float, float] = (0.0, 0.2),
        p: float = 0.5,
    ):
        super().__init__(p=p)
        self.contrast_range = _range(contrast_range, "contrast_range")
        if not 0 < self.contrast_range[0] <= self.contrast_range[1] <= 1:
            raise ValueError("contrast_range must lie in (0, 1]")
        self.gradient_range = _range(gradient_range, "gradient_range")

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("contrast_range", "gradient_range")

    def get_params(self) -> dict[str, Any]:
        r = self.py_random
        return {"contrast": r.uniform(*self.contrast_range), "gradient": r.uniform(*self.gradient_range),
                "direction": r.uniform(0, 2 * math.pi), "noise_seed": r.getrandbits(32)}

    def apply(self, img: np.ndarray, contrast: float, gradient: float, direction: float, noise_seed: int,
              **params: Any) -> np.ndarray:
        plane, squeeze = _plane(img)
        mean, sd = float(plane.mean()), float(plane.std())
        out = contrast * (plane - mean)
        if contrast < 1.0:
            noise = np.random.default_rng(noise_seed).standard_normal(plane.shape, dtype=np.float32)
            out += math.sqrt(1.0 - contrast**2) * sd * noise
        if gradient:
            h, w = plane.shape
            yy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
            xx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
            out += gradient * sd * (math.cos(direction) * xx + math.sin(direction) * yy)
        return _restore(_keep_stats(out, plane), img, squeeze)


class GainStripes(ImageOnlyTransform):
    """Detector gain stripes: a residual gain-reference error, constant along rows or columns
    (``orientation``: ``rows``, ``columns`` or ``random``), in stripes ``stripe_width_range``
    pixels wide with offsets of ``amplitude_range`` standard deviations."""

    def __init__(
        self,
        amplitude_range: tuple[float, float] = (0.02, 0.08),
        stripe_width_range: tuple[int, int] = (1, 8),
        orientation: str = "random",
        p: float = 0.5,
    ):
        super().__init__(p=p)
        self.amplitude_range = _range(amplitude_range, "amplitude_range")
        lo, hi = (int(v) for v in stripe_width_range)
        if not 1 <= lo <= hi:
            raise ValueError(f"stripe_width_range must be 1 <= low <= high, got {stripe_width_range!r}")
        self.stripe_width_range = (lo, hi)
        if orientation not in ("rows", "columns", "random"):
            raise ValueError(f"orientation must be 'rows', 'columns' or 'random', not {orientation!r}")
        self.orientation = orientation

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("amplitude_range", "stripe_width_range", "orientation")

    def get_params(self) -> dict[str, Any]:
        r = self.py_random
        orient = self.orientation if self.orientation != "random" else r.choice(("rows", "columns"))
        return {"orient": orient, "amplitude": r.uniform(*self.amplitude_range),
                "width": r.randint(*self.stripe_width_range), "noise_seed": r.getrandbits(32)}

    def apply(self, img: np.ndarray, orient: str, amplitude: float, width: int, noise_seed: int,
              **params: Any) -> np.ndarray:
        plane, squeeze = _plane(img)
        n = plane.shape[0] if orient == "rows" else plane.shape[1]
        offsets = np.random.default_rng(noise_seed).standard_normal(-(-n // width)).astype(np.float32)
        profile = np.repeat(offsets, width)[:n] * (amplitude * float(plane.std()))
        out = plane + (profile[:, None] if orient == "rows" else profile[None, :])
        return _restore(_keep_stats(out, plane), img, squeeze)


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Angstrom (0.0197 A at 300 kV)."""
    v = voltage_kv * 1e3
    return 12.2643 / math.sqrt(v * (1 + 0.978466e-6 * v))


class DefocusChange(ImageOnlyTransform):
    """A small defocus change ``dz`` (Angstrom, from ``defocus_change_range``) applied to the image
    as the Fresnel propagator of that distance (its real part: the image's Fourier transform is
    multiplied by ``cos(pi lambda dz k^2)``). The absolute defocus is unknown, so the term that
    would need it is not modelled; at 4 A/px and |dz| <= 2000 A this is a gentle,
    frequency-dependent contrast change. ``pixel_size`` is the image's (A/px)."""

    def __init__(self, defocus_change_range: tuple[float, float] = (-2000.0, 2000.0), pixel_size: float = 4.0,
                 voltage_kv: float = 300.0, p: float = 0.5):
        super().__init__(p=p)
        self.defocus_change_range = _range(defocus_change_range, "defocus_change_range")
        if pixel_size <= 0 or voltage_kv <= 0:
            raise ValueError("pixel_size and voltage_kv must be positive")
        self.pixel_size = float(pixel_size)
        self.voltage_kv = float(voltage_kv)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("defocus_change_range", "pixel_size", "voltage_kv")

    def get_params(self) -> dict[str, Any]:
        return {"defocus_change": self.py_random.uniform(*self.defocus_change_range)}

    def apply(self, img: np.ndarray, defocus_change: float, **params: Any) -> np.ndarray:
        if defocus_change == 0:
            return img
        plane, squeeze = _plane(img)
        h, w = plane.shape
        k2 = _k_squared(h, w, self.pixel_size)
        factor = np.cos(np.float32(math.pi * electron_wavelength(self.voltage_kv) * defocus_change) * k2)
        out = scipy.fft.irfft2(scipy.fft.rfft2(plane) * factor, s=(h, w))
        return _restore(out, img, squeeze)


@functools.lru_cache(maxsize=16)
def _k_squared(h: int, w: int, pixel_size: float) -> np.ndarray:
    """|k|^2 (1/A^2) on the rfft2 grid of an (h, w) image, float32 (cached per shape)."""
    ky = np.fft.fftfreq(h, d=pixel_size)[:, None]
    kx = np.fft.rfftfreq(w, d=pixel_size)[None, :]
    k2 = (kx**2 + ky**2).astype(np.float32)
    k2.setflags(write=False)
    return k2
