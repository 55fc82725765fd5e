"""Masks and particle filtering in an assessment (``micrograde assess --masks [--particles FILE]``).

:func:`compute_masks` loads the mask model ONCE for the run (the workspace's default model, built on
first use, or ``--mask-model ID``), reads each assessed micrograph at full resolution, predicts
its label map on the network's grid, and adds ``area_<class>`` and ``usable_area`` to the
predictions. :func:`write_mask_outputs` writes ``masks/<stem>.mrc`` (full resolution, MRC mode 0,
pixel size in the header), and with particle files ``particles_selected.<ext>`` and
``particles_summary.csv`` into the report folder. :func:`check_particle_inputs` reads the particle
files and matches their micrograph names to the sources before any work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from micrograde.pipeline.masks import MASK_CLASSES, USABLE, area_column, area_fractions

__all__ = [
    "MaskResult",
    "StoredMask",
    "ParticleInputError",
    "check_particle_inputs",
    "load_run_mask_model",
    "compute_masks",
    "write_mask_outputs",
]

_FRAME_RE = re.compile(r"^(\d+)@")


class ParticleInputError(ValueError):
    """A particle file is unreadable or names micrographs that are not assessed (a usage error)."""


@dataclass(frozen=True)
class MaskResult:
    """One micrograph's predicted mask, kept small (the network's grid) until it is written."""

    view: np.ndarray  # uint8 codes at the model's pixel size
    shape: tuple[int, int]  # full-resolution shape
    pixel_size: float  # full-resolution A/px
    stem: str  # file name of the mask without .mrc

    def full(self) -> np.ndarray:
        from micrograde.models.segmentation.inputs import mask_to_full

        return mask_to_full(self.view, self.shape)


@dataclass(frozen=True)
class StoredMask:
    """A mask already written to ``path`` (full resolution): what an assessment keeps of it per micrograph."""

    path: Path
    pixel_size: float
    stem: str

    def full(self) -> np.ndarray:
        from micrograde.pipeline.io.label_maps import read_label_map

        return read_label_map(self.path)[0]


def check_particle_inputs(paths: Sequence[str], micrographs: Sequence[str] | None = None):
    """Read every particle file; with ``micrographs``, match their names (unmatched -> error listing them)."""
    from micrograde.pipeline.export.particles import (
        ParticleFormatError,
        UnmatchedParticlesError,
        match_particles,
        read_particles,
    )

    try:
        files = [read_particles(p) for p in paths]
        if micrographs is not None:
            match_particles(files, micrographs)
    except (ParticleFormatError, UnmatchedParticlesError, FileNotFoundError) as exc:
        raise ParticleInputError(str(exc)) from exc
    return files


def load_run_mask_model(root: Path, model_id: str | None, *, progress: bool = False):
    """The run's mask model: ``mask_models/<model_id>``, or the default one (trained on first use)."""
    from micrograde.models.segmentation.default import ensure_default_mask_model, mask_model_dir
    from micrograde.models.segmentation.inputs import MaskInputConfig
    from micrograde.models.segmentation.store import load_mask_model

    if model_id is None:
        return ensure_default_mask_model(root, progress=progress)
    folder = mask_model_dir(root, model_id)
    return load_mask_model(folder, pixel_size=MaskInputConfig().pixel_size)


def _stem(row: pd.Series) -> str:
    stem = Path(str(row["micrograph"])).stem
    frame = _FRAME_RE.match(str(row.get("name", "")))
    return f"{stem}_{int(frame.group(1)):06d}" if frame else stem


def _read_full(row: pd.Series) -> tuple[np.ndarray, float]:
    from micrograde.pipeline.io.readers import read_micrographs

    frame = _FRAME_RE.match(str(row.get("name", "")))
    raw = read_micrographs(Path(str(row["micrograph"])), pixel_size=float(row["pixel_size"]))
    item = raw[int(frame.group(1)) - 1] if frame else raw[0]
    return item.data, float(item.pixel_size)


def compute_masks(model, predictions: pd.DataFrame, *, progress: bool = False, stems: dict[str, int] | None = None
                  ) -> tuple[pd.DataFrame, dict[str, MaskResult]]:
    """Predictions (``micrograph`` = the file path, ``name``, ``pixel_size``, ``cache_key``) with ``area_<class>``
    and ``usable_area``, and each micrograph's mask (by cache key). ``stems``: the mask file names used so far
    (and how often) when a run computes its masks chunk by chunk; updated."""
    results: dict[str, MaskResult] = {}
    areas = []
    stems = {} if stems is None else stems
    for _, row in tqdm(predictions.iterrows(), total=len(predictions), desc="masks", unit="micrograph",
                       disable=not progress):
        image, pixel_size = _read_full(row)
        view = model.predict_view(image, pixel_size)
        stem = _stem(row)
        stems[stem] = stems.get(stem, 0) + 1
        if stems[stem] > 1:  # two sources with one file name: keep both masks
            stem = f"{stem}_{stems[stem]}"
        results[str(row["cache_key"])] = MaskResult(view, tuple(image.shape), pixel_size, stem)
        fractions = area_fractions(view)
        fractions["usable_area"] = 1.0 - sum(fractions.values())
        areas.append(fractions)
    out = predictions.copy()
    table = pd.DataFrame(areas, index=out.index)
    for col in [*(area_column(c.name) for c in MASK_CLASSES if c.code != USABLE), "usable_area"]:
        out[col] = table[col].round(5) if len(table) else []
    return out, results


def write_mask_outputs(folder: Path, predictions: pd.DataFrame, results: Mapping[str, MaskResult | StoredMask], *,
                       particles: Sequence[str] = (), margin_A: float = 0.0,
                       write_masks: bool = True) -> pd.DataFrame | None:
    """Write ``masks/<stem>.mrc`` (unless ``write_masks`` is False: they are there already) and, with particle
    files, the kept picks and a summary; returns the summary."""
    from micrograde.pipeline.export.particles import (
        filter_particles,
        match_particles,
        read_particles,
        selected_name,
        write_particles,
    )
    from micrograde.pipeline.io.atomic import atomic_write_text
    from micrograde.pipeline.io.label_maps import write_label_map

    folder = Path(folder)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    for result in results.values() if write_masks else ():
        write_label_map(folder / "masks" / f"{result.stem}.mrc", result.full(), result.pixel_size)
    if not particles:
        return None
    files = [read_particles(p) for p in particles]
    idents = {str(p): str(k) for p, k in zip(predictions["micrograph"], predictions["cache_key"], strict=True)}
    assigned = match_particles(files, list(idents))
    summaries = []
    for pf, mics in zip(files, assigned, strict=True):
        masks = {}
        for mic in set(mics.tolist()):
            res = results[idents[mic]]
            masks[mic] = (res.full(), res.pixel_size)
        keep, summary = filter_particles(pf, mics, masks, margin_A)
        name = selected_name(pf) if len(files) == 1 else f"particles_selected/{pf.path.name}"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_particles(pf, keep, folder / name)
        summary.insert(1, "written_to", name)
        summaries.append(summary)
    table = pd.concat(summaries, ignore_index=True)
    atomic_write_text(folder / "particles_summary.csv", table.to_csv(index=False, lineterminator="\n"))
    return table
