"""Training augmentation: one typed configuration, one albumentations ``Compose``.

The Compose holds only micrograde's own transforms (``augment_geometry`` and ``augment_cryo``),
each a proper albumentations transform with its own parameters, seedable through the Compose
and serialisable with ``albumentations.to_dict`` / ``from_dict``. We write our own rather than
use the stock ones because albumentations 2.0.8 clips float images to [0, 1] in several
transforms, and our images are normalised (mean 0, standard deviation 1), and because stock
geometric transforms do not know how to move a power spectrum.

Call it on an image and its spectrum together: ``apply_augment(compose, image, spectrum)``.
Geometric transforms map both consistently (rotation rotates the spectrum, a shear ``A`` maps it
by ``A^-T``, a crop leaves it); image-only transforms leave the spectrum alone.

Order: geometry first (the specimen's orientation and magnification), then optics (blur,
defocus), specimen (ice) and detector (dose, gain stripes), then dropout.
"""

from __future__ import annotations

import os
from typing import Any, Literal

# albumentations checks PyPI for a newer version on import (a network call with a 2 s timeout);
# a facility pipeline must not phone home. Set only as a default: NO_ALBUMENTATIONS_UPDATE=0 wins.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A
import cv2
import numpy as np
from pydantic import Field

from micrograde.pipeline.config import FrozenModel
from micrograde.pipeline.data.augment_cryo import (
    DefocusBlur,
    DefocusChange,
    DoseResample,
    GainStripes,
    IceContrast,
    TileDropout,
)
from micrograde.pipeline.data.augment_geometry import FieldCrop, Shear, Stretch, Turn

__all__ = [
    "AugmentConfig",
    "build_augment",
    "apply_augment",
    "augment_to_dict",
    "augment_from_dict",
    "derive_seed",
    "reseed",
    "CUSTOM_TRANSFORMS",
]

#: Every custom transform class (registered with albumentations' serialisation on import).
CUSTOM_TRANSFORMS = (Turn, Shear, Stretch, FieldCrop, DefocusBlur, TileDropout, DoseResample, IceContrast,
                     GainStripes, DefocusChange)



class AugmentConfig(FrozenModel):
    """Probabilities and magnitudes of every augmentation (``*_p`` = probability per sample)."""

    enabled: bool = True
    seed: int = Field(0, description="Compose seed; the Dataset reseeds per (seed, epoch, index)")
    pixel_size: float = Field(4.0, gt=0, description="A/px of the cached image (for the defocus change)")
    interpolation: Literal["linear", "cubic"] = Field(
        "cubic", description="resampling of geometric transforms (cubic keeps more high-frequency noise power)"
    )
    # turned
    turn_p: float = Field(1.0, ge=0, le=1)
    quarter_turns: bool = True
    flip_p: float = Field(0.5, ge=0, le=1)
    rotate_p: float = Field(0.5, ge=0, le=1, description="free rotation, given a turn")
    angle_range: tuple[float, float] = (-180.0, 180.0)
    # skewed
    shear_p: float = Field(0.3, ge=0, le=1)
    shear_range: tuple[float, float] = (-8.0, 8.0)
    # stretched
    stretch_p: float = Field(0.3, ge=0, le=1)
    stretch_range: tuple[float, float] = (0.96, 1.04)
    scale_range: tuple[float, float] = (1.0, 1.0)
    # fragmented
    crop_p: float = Field(0.3, ge=0, le=1)
    crop_fraction_range: tuple[float, float] = (0.85, 1.0)
    dropout_p: float = Field(0.2, ge=0, le=1)
    dropout_tiles_range: tuple[int, int] = (1, 4)
    dropout_tile_fraction_range: tuple[float, float] = (0.05, 0.15)
    # blurred
    blur_p: float = Field(0.2, ge=0, le=1)
    blur_kind: str = "random"
    blur_sigma_range: tuple[float, float] = (0.5, 1.5)
    blur_radius_range: tuple[float, float] = (1.0, 2.5)
    # cryo-EM, label-preserving
    dose_p: float = Field(0.3, ge=0, le=1)
    dose_fraction_range: tuple[float, float] = (0.5, 0.9)
    electrons_per_pixel: float = Field(640.0, gt=0)
    relative_contrast: float = Field(0.08, gt=0)
    ice_p: float = Field(0.3, ge=0, le=1)
    ice_contrast_range: tuple[float, float] = (0.8, 1.0)
    ice_gradient_range: tuple[float, float] = (0.0, 0.2)
    stripes_p: float = Field(0.2, ge=0, le=1)
    stripes_amplitude_range: tuple[float, float] = (0.02, 0.08)
    stripes_width_range: tuple[int, int] = (1, 8)
    defocus_p: float = Field(0.2, ge=0, le=1)
    defocus_change_range: tuple[float, float] = (-2000.0, 2000.0)
    voltage_kv: float = Field(300.0, gt=0)


def build_augment(cfg: AugmentConfig) -> A.Compose:
    """The Compose for ``cfg`` (transforms with probability 0 are left out; empty when disabled)."""
    interp = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}[cfg.interpolation]
    candidates: list[tuple[float, Any]] = [
        (cfg.turn_p, lambda p: Turn(cfg.quarter_turns, cfg.flip_p, cfg.rotate_p, cfg.angle_range, interp, p=p)),
        (cfg.shear_p, lambda p: Shear(cfg.shear_range, interp, p=p)),
        (cfg.stretch_p, lambda p: Stretch(cfg.stretch_range, cfg.scale_range, interp, p=p)),
        (cfg.crop_p, lambda p: FieldCrop(cfg.crop_fraction_range, interp, p=p)),
        (cfg.blur_p, lambda p: DefocusBlur(cfg.blur_kind, cfg.blur_sigma_range, cfg.blur_radius_range, p=p)),
        (cfg.defocus_p, lambda p: DefocusChange(cfg.defocus_change_range, cfg.pixel_size, cfg.voltage_kv, p=p)),
        (cfg.ice_p, lambda p: IceContrast(cfg.ice_contrast_range, cfg.ice_gradient_range, p=p)),
        (
            cfg.dose_p,
            lambda p: DoseResample(cfg.dose_fraction_range, cfg.electrons_per_pixel, cfg.relative_contrast, p=p),
        ),
        (cfg.stripes_p, lambda p: GainStripes(cfg.stripes_amplitude_range, cfg.stripes_width_range, p=p)),
        (cfg.dropout_p, lambda p: TileDropout(cfg.dropout_tiles_range, cfg.dropout_tile_fraction_range, p=p)),
    ]
    transforms = [make(p) for p, make in candidates if cfg.enabled and p > 0]
    return A.Compose(transforms, p=1.0, seed=cfg.seed)


def apply_augment(
    compose: A.Compose, image: np.ndarray, spectrum: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Augment an image and its power spectrum together; returns float32 copies (same shapes).

    Values are never clipped: a normalised image keeps negative values and its scale.
    """
    data: dict[str, Any] = {"image": np.ascontiguousarray(image, dtype=np.float32)}
    if spectrum is not None:
        data["spectrum"] = np.ascontiguousarray(spectrum, dtype=np.float32)
    out = compose(**data)
    img = np.asarray(out["image"], dtype=np.float32)
    spec = None if spectrum is None else np.asarray(out["spectrum"], dtype=np.float32)
    return img, spec


def derive_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample, independent across (seed, epoch, index)."""
    return int(
        np.random.SeedSequence(
            [int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, int(index) & 0xFFFFFFFF]
        ).generate_state(1)[0]
    )


def reseed(compose: A.Compose, seed: int) -> None:
    """Reseed a Compose and every transform in it (one shared generator pair: cheap per sample)."""
    import random

    compose.set_random_state(np.random.default_rng(seed), random.Random(seed))


def augment_to_dict(compose: A.Compose) -> dict:
    """A JSON-serialisable description (``albumentations.to_dict``) for the model card."""
    return A.to_dict(compose)


def augment_from_dict(d: dict) -> A.Compose:
    """Load a Compose saved by :func:`augment_to_dict` (custom transforms are registered by this
    module's imports, so ``from_dict`` finds them)."""
    compose = A.from_dict(d)
    if not isinstance(compose, A.Compose):
        raise ValueError("the dictionary does not describe an albumentations Compose")
    return compose
