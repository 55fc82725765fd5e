"""Mask files: a uint8 label map (codes of :mod:`micrograde.pipeline.masks`) as an MRC file.

MRC mode 0 (8-bit; the codes 0-4 read the same signed or unsigned), full resolution (the
micrograph's shape), the voxel size set to the micrograph's pixel size and a header label naming
the code table, e.g. ``micrograde mask 0=usable 1=carbon 2=contamination 3=crystalline 4=empty``.
Writes are atomic.
"""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np

from micrograde.pipeline.io.atomic import atomic_path
from micrograde.pipeline.masks import MASK_CLASSES, MASK_DTYPE

__all__ = ["MASK_HEADER_LABEL", "write_label_map", "read_label_map"]

#: the first header label of every mask file (names the code table)
MASK_HEADER_LABEL = "micrograde mask " + " ".join(f"{c.code}={c.name}" for c in MASK_CLASSES)


def write_label_map(path: str | os.PathLike, mask: np.ndarray, pixel_size: float) -> None:
    """Write ``mask`` (2-D, codes of the table) to ``path`` atomically as MRC mode 0."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask is 2-D, got shape {mask.shape}")
    if mask.dtype.kind not in "iu" or mask.size == 0:
        raise ValueError(f"a mask holds integer codes, got dtype {mask.dtype}")
    if mask.min() < 0 or mask.max() >= len(MASK_CLASSES):
        raise ValueError(f"mask codes must lie within 0..{len(MASK_CLASSES) - 1}")
    if not pixel_size > 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size}")
    with atomic_path(path) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(mask.astype(np.int8))
        mrc.voxel_size = pixel_size
        mrc.header.label[0] = MASK_HEADER_LABEL.encode("ascii")[:80]
        mrc.header.nlabl = 1


def read_label_map(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """(mask as uint8, pixel size in A) of a mask file; raises ValueError for anything else."""
    path = Path(path)
    with mrcfile.open(path) as mrc:
        if int(mrc.header.mode) != 0 or mrc.data.ndim != 2:
            raise ValueError(f"{path}: not a mask (MRC mode {int(mrc.header.mode)}, shape {mrc.data.shape})")
        data = np.asarray(mrc.data)
        pixel_size = float(mrc.voxel_size.x)
    if data.min() < 0 or data.max() >= len(MASK_CLASSES):
        raise ValueError(f"{path}: codes outside 0..{len(MASK_CLASSES) - 1}")
    return data.astype(MASK_DTYPE), pixel_size
