"""Painted masks: label maps scientists paint in the labelling app (or import), stored append-only.

Each save is a new version and nothing is ever overwritten or deleted:
``WORKSPACE/painted_masks/<micrograph id>/<UTC time>_<annotator id>_<random>.mrc`` (a label map with
the codes of :mod:`micrograde.pipeline.masks`, at the micrograph's full resolution, its pixel size in
the header) beside a ``.json`` record (micrograph id and name, annotator name, id and expertise,
time, source ``web`` or ``import``, pixel counts per class). The latest version per annotator
counts; :func:`export_painted` writes, per micrograph, the latest mask of its most expert
annotator (ties: the latest) and a ``masks.csv`` (``micrograph,mask``) that ``micrograde masks
train --masks-csv`` reads to fine-tune a mask model.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from micrograde.pipeline.io.atomic import atomic_write_text
from micrograde.pipeline.io.label_maps import read_label_map, write_label_map
from micrograde.pipeline.masks import MASK_CLASSES, MASK_DTYPE, resample_mask

__all__ = ["PAINTED_DIR", "PaintedMask", "resize_codes", "save_painted", "painted_versions", "latest_painted",
           "export_painted"]

PAINTED_DIR = "painted_masks"
_EXPERTISE_ORDER = ("undergrad", "grad", "postdoc", "senior-scientist")


@dataclass(frozen=True)
class PaintedMask:
    """One stored version: its files and record."""

    path: Path
    record: dict

    def read(self) -> np.ndarray:
        return read_label_map(self.path)[0]


def resize_codes(codes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A label map brought to ``shape`` (nearest neighbour at pixel centres; see ``resample_mask``)."""
    return resample_mask(np.asarray(codes, dtype=MASK_DTYPE), shape)


def save_painted(root: str | os.PathLike, micrograph_id: int, micrograph_name: str, mask: np.ndarray,
                 pixel_size: float, *, annotator: str, annotator_id: int, expertise: str,
                 source: str = "web") -> PaintedMask:
    """Store a new version of ``annotator``'s mask of a micrograph (full resolution); returns it."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"a painted mask is a 2-D label map, got shape {mask.shape}")
    if mask.dtype.kind not in "iu" or int(mask.min()) < 0 or int(mask.max()) >= len(MASK_CLASSES):
        raise ValueError(f"painted mask codes must lie within 0..{len(MASK_CLASSES) - 1}")
    if expertise not in _EXPERTISE_ORDER:
        raise ValueError(f"unknown expertise {expertise!r}; expected one of {_EXPERTISE_ORDER}")
    folder = Path(root) / PAINTED_DIR / str(int(micrograph_id))
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    stem = f"{now:%Y%m%dT%H%M%S%fZ}_{int(annotator_id)}_{secrets.token_hex(3)}"
    path = folder / f"{stem}.mrc"
    counts = np.bincount(mask.astype(np.int64).ravel(), minlength=len(MASK_CLASSES))
    record = {"micrograph_id": int(micrograph_id), "micrograph": micrograph_name, "annotator": annotator,
              "annotator_id": int(annotator_id), "expertise": expertise, "source": source,
              "created_at": now.isoformat(timespec="microseconds"), "shape": list(mask.shape),
              "pixel_size": float(pixel_size), "pixels": {c.name: int(counts[c.code]) for c in MASK_CLASSES}}
    write_label_map(path, mask.astype(MASK_DTYPE), pixel_size)
    atomic_write_text(path.with_suffix(".json"), json.dumps(record, indent=1) + "\n")  # the record last
    return PaintedMask(path, record)


def painted_versions(root: str | os.PathLike, micrograph_id: int | None = None) -> list[PaintedMask]:
    """Every stored version (of one micrograph, or all), oldest first; a mask without its record is skipped."""
    base = Path(root) / PAINTED_DIR
    folders = [base / str(int(micrograph_id))] if micrograph_id is not None else sorted(base.glob("*"))
    out = []
    for folder in folders:
        for rec in folder.glob("*.json"):
            mrc = rec.with_suffix(".mrc")
            if mrc.is_file():
                out.append(PaintedMask(mrc, json.loads(rec.read_text(encoding="utf-8"))))
    return sorted(out, key=lambda p: (p.record["created_at"], p.path.name))


def latest_painted(root: str | os.PathLike, micrograph_id: int, annotator_id: int | None = None) -> PaintedMask | None:
    """The latest version of ``annotator_id`` (or of the most expert annotator, ties: the latest)."""
    versions = painted_versions(root, micrograph_id)
    if annotator_id is not None:
        versions = [v for v in versions if v.record["annotator_id"] == int(annotator_id)]
        return versions[-1] if versions else None
    latest: dict[int, PaintedMask] = {}
    for v in versions:
        latest[v.record["annotator_id"]] = v
    if not latest:
        return None
    return max(latest.values(), key=lambda v: (_EXPERTISE_ORDER.index(v.record["expertise"]), v.record["created_at"]))


def export_painted(root: str | os.PathLike, out: str | os.PathLike, paths: dict[int, str]) -> pd.DataFrame:
    """Write each painted micrograph's chosen mask to ``out/<stem>.mrc`` and ``out/masks.csv``
    (``micrograph`` = the path in ``paths`` {micrograph id: path}, ``mask``, ``annotator``, ``expertise``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    ids = sorted({v.record["micrograph_id"] for v in painted_versions(root)})
    for mid in ids:
        chosen = latest_painted(root, mid)
        if chosen is None or mid not in paths:
            continue
        target = out / f"{Path(paths[mid]).stem}_{mid}.mrc"
        write_label_map(target, chosen.read(), chosen.record["pixel_size"])
        rows.append({"micrograph": str(Path(paths[mid]).resolve()), "mask": target.name,
                     "annotator": chosen.record["annotator"], "expertise": chosen.record["expertise"]})
    table = pd.DataFrame(rows, columns=["micrograph", "mask", "annotator", "expertise"])
    atomic_write_text(out / "masks.csv", table.to_csv(index=False, lineterminator="\n"))
    return table
