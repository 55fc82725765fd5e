"""One full-resolution micrograph -> cached model inputs, display thumbnail and features.

Order of work (docs/preprocessing.md):

1. Robust statistics on a subsample; hot/dead pixels beyond 6 robust sigma are clipped in one
   float32 copy of the full image (the only full-size copy).
2. Power spectrum from that FULL-resolution image; every feature of the registry
   (:mod:`micrograde.pipeline.features`) from the image, the spectrum and the crop of step 3.
3. One Fourier crop of the full image to an intermediate size that is fine enough for every
   smaller product; the model image, the thumbnail and the low-passed images of the real-space
   scores are Fourier crops of that intermediate (cropping twice equals cropping once).
4. Model image: square, ``cfg.image_size``. Non-square detectors are never distorted: the image
   is Fourier-cropped so that its SHORT side becomes ``image_size`` (isotropic pixel size), and the
   long side is centre-cropped to a square. The pixel size is ``target_pixel_size`` or coarser,
   never finer, and never finer than the raw data (no upsampling); when the field at that pixel
   size is smaller than ``image_size`` the square is padded with zeros (the mean). The power
   spectrum, the scores and the thumbnail cover the whole field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from micrograde.pipeline.config import PreprocessConfig
from micrograde.pipeline.features import ImageInputs, feature, image_features
from micrograde.pipeline.signal.display import to_uint8
from micrograde.pipeline.signal.fourier import fourier_crop
from micrograde.pipeline.signal.measures import DIRECTION_PIXEL_A
from micrograde.pipeline.signal.normalise import ConstantImageError, robust_normalise, robust_stats
from micrograde.pipeline.signal.scores import CONTRAST_LOWPASS_A
from micrograde.pipeline.signal.spectrum import power_spectrum

__all__ = ["Preprocessed", "preprocess", "model_image_geometry", "view_geometry", "HOT_PIXEL_SIGMA"]

#: Full-resolution pixels further than this many robust sigmas from the median are clipped.
HOT_PIXEL_SIGMA = 6.0


@dataclass(frozen=True)
class Preprocessed:
    """What ingest caches and catalogues for one micrograph."""

    image: np.ndarray  # float32 (image_size, image_size), robust-normalised, at ``pixel_size``
    view: np.ndarray  # float16, the whole field at ``view_pixel_size``, robust-normalised
    view_pixel_size: float  # A/px of ``view``: cfg.view_pixel_size, or coarser (raw data or view_max_side)
    spectrum: np.ndarray  # float32 (spectrum_size, spectrum_size) = PowerSpectrum.image
    thumbnail: np.ndarray  # uint8, longest side <= thumbnail_size, aspect ratio kept
    radial: np.ndarray
    radial_freq: np.ndarray
    features: dict[str, float]  # every image feature of the registry (pipeline/features.py), in its order
    spectrum_available: bool
    pixel_size: float  # A/px of ``image``

    def _group(self, group: str) -> dict[str, float]:
        return {n: v for n, v in self.features.items() if (f := feature(n)) is not None and f.group == group}

    @property
    def scores(self) -> dict[str, float]:
        """The ``score`` features."""
        return self._group("score")

    @property
    def measures(self) -> dict[str, float]:
        """The ``measure`` features."""
        return self._group("measure")


def model_image_geometry(
    shape: tuple[int, int], pixel_size: float, cfg: PreprocessConfig
) -> tuple[tuple[int, int], float]:
    """(shape to Fourier-crop the full image to, its pixel size) for the model image.

    The short side becomes ``image_size`` if the field allows it at ``target_pixel_size`` or
    coarser; otherwise the field is kept at max(target_pixel_size, pixel_size) (to be padded).
    """
    h, w = shape
    base = max(cfg.target_pixel_size, pixel_size)
    short_px_at_base = min(h, w) * pixel_size / base
    if short_px_at_base > cfg.image_size:
        scale = cfg.image_size / min(h, w)  # output px per input px, same on both axes
    else:
        scale = pixel_size / base
    out = (min(h, max(1, int(round(h * scale)))), min(w, max(1, int(round(w * scale)))))
    if min(h, w) * scale > cfg.image_size - 0.5:  # make the short side exactly image_size
        out = (cfg.image_size, out[1]) if h <= w else (out[0], cfg.image_size)
    actual = pixel_size * 0.5 * (h / out[0] + w / out[1])
    return out, float(actual)


def view_geometry(shape: tuple[int, int], pixel_size: float, cfg: PreprocessConfig) -> tuple[tuple[int, int], float]:
    """(shape, pixel size) of the whole-field view: ``cfg.view_pixel_size`` (never finer than the raw
    data), further cropped so that the longest side is at most ``cfg.view_max_side``."""
    h, w = shape
    target = max(cfg.view_pixel_size, pixel_size, pixel_size * max(h, w) / cfg.view_max_side)
    out = (min(h, max(1, int(round(h * pixel_size / target)))), min(w, max(1, int(round(w * pixel_size / target)))))
    return out, float(pixel_size * 0.5 * (h / out[0] + w / out[1]))


def _thumbnail_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
    h, w = shape
    scale = min(1.0, size / max(h, w))
    return min(h, max(1, int(round(h * scale)))), min(w, max(1, int(round(w * scale))))


def _centre_square(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[y0 : y0 + side, x0 : x0 + side]


def _pad_square(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape
    if (h, w) == (side, side):
        return img
    out = np.zeros((side, side), dtype=np.float32)
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = img
    return out


def preprocess(img: np.ndarray, pixel_size: float, cfg: PreprocessConfig, *, dose: float | None = None,
               voltage_kv: float = 300.0) -> Preprocessed:
    """Preprocess one full-resolution micrograph (2-D array, ``pixel_size`` in A/px; ``dose`` in
    e/A^2 when known, for the transmission measure; ``voltage_kv`` for the defocus measure).

    Raises ValueError (ConstantImageError for a constant image) on unusable input.
    """
    a = np.asarray(img)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D micrograph, got shape {a.shape}")
    if not (isinstance(pixel_size, (int, float, np.floating)) and pixel_size > 0 and math.isfinite(pixel_size)):
        raise ValueError(f"pixel_size must be a positive number, got {pixel_size!r}")
    pixel_size = float(pixel_size)
    if min(a.shape) < 32:
        raise ValueError(f"micrograph {a.shape} is too small (needs >= 32 px per side)")

    full = a.astype(np.float32)  # the one full-size copy (never modify the caller's array)
    if not math.isfinite(float(np.sum(full, dtype=np.float64))):
        raise ValueError("the micrograph contains NaN or Inf pixels")
    med, sigma = robust_stats(full)
    lo, hi = np.float32(med - HOT_PIXEL_SIGMA * sigma), np.float32(med + HOT_PIXEL_SIGMA * sigma)
    np.clip(full, lo, hi, out=full)

    spec = power_spectrum(
        full, pixel_size, tile=cfg.spectrum_tile, size=cfg.spectrum_size, max_freq=cfg.spectrum_max_freq
    )

    model_shape, model_ps = model_image_geometry(full.shape, pixel_size, cfg)
    thumb_shape = _thumbnail_shape(full.shape, cfg.thumbnail_size)
    lowpass_ps = min(CONTRAST_LOWPASS_A / 2, DIRECTION_PIXEL_A)  # finest pixel size a score/measure needs
    lowpass_shape = tuple(
        min(n, max(1, int(round(n * pixel_size / lowpass_ps)))) if pixel_size < lowpass_ps else n
        for n in full.shape
    )
    view_shape, view_ps = view_geometry(full.shape, pixel_size, cfg)
    inter_shape = tuple(max(s) for s in zip(model_shape, thumb_shape, lowpass_shape, view_shape, strict=True))
    inter = fourier_crop(full, inter_shape)
    inter_ps = pixel_size * 0.5 * (full.shape[0] / inter_shape[0] + full.shape[1] / inter_shape[1])

    features = image_features(ImageInputs(full, pixel_size, spec, coarse=(inter, inter_ps), dose=dose,
                                          voltage_kv=voltage_kv))

    model = _centre_square(fourier_crop(inter, model_shape), cfg.image_size)
    try:
        model = robust_normalise(model, cfg.clip_sigma)
    except ConstantImageError:
        model = np.zeros(model.shape, np.float32)  # a featureless centre of a non-constant image
    image = _pad_square(model, cfg.image_size)
    thumbnail = to_uint8(fourier_crop(inter, thumb_shape))
    try:
        view = robust_normalise(fourier_crop(inter, view_shape), cfg.clip_sigma)
    except ConstantImageError:
        view = np.zeros(view_shape, np.float32)

    return Preprocessed(
        image=np.ascontiguousarray(image, dtype=np.float32),
        view=view.astype(np.float16),
        view_pixel_size=view_ps,
        spectrum=spec.image,
        thumbnail=thumbnail,
        radial=spec.radial,
        radial_freq=spec.radial_freq,
        features=features,
        spectrum_available=spec.available,
        pixel_size=model_ps,
    )
