"""The per-pixel class code table of micrograph masks (one source of truth for every mask).

A mask is a uint8 label map of a micrograph's shape: each pixel holds the code of what covers it.
The simulator writes them as ground truth, the segmentation model predicts them, scientists paint
them, and reports and particle filtering read them; all of them use this table.

====  ===============  ============================================================
code  name             what it covers
====  ===============  ============================================================
0     usable           vitreous ice in the hole, with or without particles
1     carbon           the support film (holey carbon or gold foil) around the hole
2     contamination    ethane and ice balls, ice chunks, protein aggregates, debris
3     crystalline      crystalline-ice domains (hexagonal or cubic)
4     empty            no ice in the beam: vacuum over a broken or dry hole
====  ===============  ============================================================

Where classes overlap a pixel gets the class that comes first in :data:`PRECEDENCE`
(contamination > crystalline > carbon > empty): what lies on top of the specimen wins, and a
patch of crystalline ice reaching over the film edge stays crystalline. A hole without
particles over intact ice is *usable* here (nothing covers it); that it holds no particles is a
per-micrograph grade (reason ``empty``), as thick ice is. Continuous thin carbon over the whole
field (a few nm, a support that particles sit on) is not a region and is not masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MaskClass",
    "MASK_CLASSES",
    "MASK_CODES",
    "DEFECT_CLASSES",
    "PRECEDENCE",
    "MASK_DTYPE",
    "MASKS_FOLDER",
    "USABLE",
    "CARBON",
    "CONTAMINATION",
    "CRYSTALLINE",
    "EMPTY",
    "area_column",
    "compose_mask",
    "area_fractions",
    "resample_mask",
]


@dataclass(frozen=True)
class MaskClass:
    """One class of the code table."""

    code: int
    name: str
    description: str


MASK_CLASSES: tuple[MaskClass, ...] = (
    MaskClass(0, "usable", "vitreous ice in the hole, with or without particles"),
    MaskClass(1, "carbon", "support film (holey carbon or gold foil) around the hole"),
    MaskClass(2, "contamination", "ethane and ice balls, ice chunks, protein aggregates, debris"),
    MaskClass(3, "crystalline", "crystalline-ice domains (hexagonal or cubic)"),
    MaskClass(4, "empty", "no ice in the beam: vacuum over a broken or dry hole"),
)
#: class name -> code
MASK_CODES: dict[str, int] = {c.name: c.code for c in MASK_CLASSES}
USABLE, CARBON, CONTAMINATION, CRYSTALLINE, EMPTY = (c.code for c in MASK_CLASSES)
#: the classes that are not usable, in code order (``area_<name>`` columns are written for them)
DEFECT_CLASSES: tuple[str, ...] = tuple(c.name for c in MASK_CLASSES if c.code != USABLE)
#: where classes overlap, the first one listed wins
PRECEDENCE: tuple[str, ...] = ("contamination", "crystalline", "carbon", "empty")
#: dtype of a mask in memory (files: MRC mode 0)
MASK_DTYPE = np.uint8
#: name of the folder that holds mask files beside micrographs (never ingested as micrographs)
MASKS_FOLDER = "masks"


def area_column(name: str) -> str:
    """The table column of a class's area fraction: ``area_<name>``."""
    if name not in MASK_CODES:
        raise ValueError(f"unknown mask class {name!r}; expected one of {tuple(MASK_CODES)}")
    return f"area_{name}"


def compose_mask(shape: tuple[int, int], layers: Mapping[str, np.ndarray | None]) -> np.ndarray:
    """A label map of ``shape`` from boolean layers per class name, overlaps resolved by ``PRECEDENCE``.

    ``layers`` maps class names (not ``usable``) to boolean arrays of ``shape`` (or None: absent).
    """
    unknown = set(layers) - set(PRECEDENCE)
    if unknown:
        raise ValueError(f"unknown mask layers {sorted(unknown)}; expected some of {PRECEDENCE}")
    mask = np.full(shape, USABLE, dtype=MASK_DTYPE)
    for name in reversed(PRECEDENCE):  # lowest precedence first, so higher ones paint over it
        layer = layers.get(name)
        if layer is None:
            continue
        if layer.shape != tuple(shape):
            raise ValueError(f"layer {name!r} has shape {layer.shape}, expected {tuple(shape)}")
        mask[layer.astype(bool, copy=False)] = MASK_CODES[name]
    return mask


def area_fractions(mask: np.ndarray) -> dict[str, float]:
    """Fraction of the pixels of each non-usable class, keyed by ``area_<name>`` (code order)."""
    if mask.size == 0:
        raise ValueError("empty mask")
    counts = np.bincount(mask.ravel(), minlength=len(MASK_CLASSES))
    if counts.size > len(MASK_CLASSES):
        raise ValueError(f"mask holds codes above {len(MASK_CLASSES) - 1}: {np.flatnonzero(counts)[-1]}")
    return {area_column(name): float(counts[MASK_CODES[name]]) / mask.size for name in DEFECT_CLASSES}



def resample_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``mask`` brought to ``shape`` by nearest-neighbour sampling at pixel centres (codes are never
    blended). Upsampling then downsampling by the same factors gives the original back."""
    m = np.asarray(mask)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"expected a 2-D mask, got shape {m.shape}")
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ValueError(f"target shape must be positive, got {shape}")
    if (h, w) == m.shape:
        return m.astype(MASK_DTYPE, copy=True)
    rows = np.minimum(((np.arange(h) + 0.5) * (m.shape[0] / h)).astype(np.int64), m.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * (m.shape[1] / w)).astype(np.int64), m.shape[1] - 1)
    return m.astype(MASK_DTYPE, copy=False)[rows[:, None], cols[None, :]]
