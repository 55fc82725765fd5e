"""cryoSPARC selection: a filtered exposures ``.cs`` file plus the ``.csg`` result group.

The ``.cs`` files are read and written by ``cryosparc-tools`` (:class:`cryosparc.dataset.Dataset`):
it reads both of cryoSPARC's dataset formats (the NumPy ``.npy`` layout and the newer compressed
one) and writes the NumPy layout every cryoSPARC version imports. Exposure datasets carry ``uid``
and prefixed fields such as ``micrograph_blob/path``, ``micrograph_blob/psize_A``, ``ctf/df1_A``.
The selection keeps every field of the user's dataset and drops the rows whose
``micrograph_blob/path`` is not graded good (or medium, when asked).

The ``.csg`` file is the YAML "result group" that cryoSPARC's *Import Result Group* job reads.
cryosparc-tools has no writer for it; its layout, as cryoSPARC exports it (e.g. a v4.4.1
``J350_particles_exported.csg``), is::

    created: <timestamp>
    group: {description, name, title, type: exposure}
    results:
      <slot>:                        # one per field prefix of the .cs, e.g. micrograph_blob, ctf
        metafile: '>selected.cs'     # '>' = path relative to the .csg file
        num_items: <rows>
        type: exposure.<result type> # the slot's result type, e.g. exposure.ctf
    version: <cryoSPARC version string>

A slot's result type is its name, except for the exposure slots listed in
:data:`EXPOSURE_SLOT_TYPES` (from cryosparc-tools' output specifications, e.g. ``background_blob``
holds a ``stat_blob``).

Without an exposures ``.cs``, :func:`selection_paths_csv` writes a plain CSV list of paths.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from cryosparc.dataset import Dataset
from cryosparc.errors import DatasetLoadError

from micrograde.pipeline.export.relion import prediction_idents, selected_labels
from micrograde.pipeline.io.atomic import atomic_write_bytes, atomic_write_text
from micrograde.pipeline.io.names import match_names_detailed

__all__ = [
    "CsFormatError",
    "PATH_FIELD",
    "CSG_VERSION",
    "EXPOSURE_SLOT_TYPES",
    "read_cs",
    "select_cs",
    "write_cs",
    "write_csg",
    "result_slots",
    "selection_paths_csv",
]

PATH_FIELD = "micrograph_blob/path"
#: ``version`` written into the ``.csg`` (the format seen in v4.x exports).
CSG_VERSION = "v4.4.1"
#: Exposure slots whose result type is not their name (cryosparc-tools' ``ExposureElement`` model
#: and the motion-correction output specification it documents); other slots are their own type.
EXPOSURE_SLOT_TYPES: dict[str, str] = {
    "background_blob": "stat_blob",
    "micrograph_blob_non_dw": "micrograph_blob",
    "micrograph_blob_thumb": "micrograph_blob",
}


class CsFormatError(ValueError):
    """The file is not a cryoSPARC exposures dataset micrograde can filter."""


def read_cs(path: str | os.PathLike) -> Dataset:
    """Load a cryoSPARC ``.cs`` dataset that has ``micrograph_blob/path`` (every field kept).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CsFormatError: the file is not a cryoSPARC dataset, or not one of exposures.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such cryoSPARC dataset: {path}")
    try:
        dset = Dataset.load(path)
    except DatasetLoadError as exc:
        cause = exc.__cause__ or exc
        raise CsFormatError(f"{path} is not a cryoSPARC .cs dataset: {cause}") from exc
    fields = dset.fields()
    if PATH_FIELD not in fields:
        hint = " (it looks like a particle dataset; pass an exposures .cs)" if "blob/path" in fields else ""
        raise CsFormatError(f"{path} has no field {PATH_FIELD!r}{hint}; fields: {', '.join(fields[:8])}")
    return dset


def _as_dataset(data: Dataset | np.ndarray) -> Dataset:
    return data if isinstance(data, Dataset) else Dataset(np.asarray(data))


def _text(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes | np.bytes_) else str(value)


def select_cs(
    cs: Dataset | np.ndarray, predictions: pd.DataFrame, include_medium: bool = False
) -> tuple[Dataset, list[str]]:
    """Rows of ``cs`` whose ``micrograph_blob/path`` matches a prediction graded good (and
    medium with ``include_medium``), every field kept. Also returns the paths that matched nothing."""
    dset = _as_dataset(cs)
    if PATH_FIELD not in dset.fields():
        raise CsFormatError(f"dataset has no field {PATH_FIELD!r}")
    wanted = set(selected_labels(include_medium))
    idents = prediction_idents(predictions)
    labels = dict(zip(idents, predictions["label"].astype(str), strict=True))
    names = [_text(v) for v in dset[PATH_FIELD]]
    match = match_names_detailed(names, list(labels))
    keep = np.array([(hit := match.mapping.get(n)) is not None and labels[hit] in wanted for n in names], dtype=bool)
    return dset.mask(keep), match.unmatched


def write_cs(path: str | os.PathLike, dataset: Dataset | np.ndarray) -> None:
    """Save ``dataset`` (cryoSPARC's NumPy layout) under exactly ``path``, which must end with
    ``.cs``, atomically."""
    path = Path(path)
    if path.suffix != ".cs":
        raise ValueError(f"a cryoSPARC dataset file name must end with .cs, got {path.name!r}")
    buf = io.BytesIO()
    _as_dataset(dataset).save(buf)
    atomic_write_bytes(path, buf.getvalue())


def result_slots(dataset: Dataset | np.ndarray) -> list[str]:
    """Field prefixes (result slots) of a dataset: ``micrograph_blob/path`` -> ``micrograph_blob``."""
    return list(_as_dataset(dataset).prefixes())


def write_csg(
    path: str | os.PathLike,
    cs_filename: str,
    dataset: Dataset | np.ndarray,
    *,
    group_name: str = "exposures_selected",
    title: str = "Exposures selected by micrograde",
    description: str = "Micrographs graded by micrograde",
) -> None:
    """Write the cryoSPARC result group (YAML) describing ``cs_filename`` (a file name next to
    ``path``) with one result per field prefix of ``dataset``; see the module docstring."""
    name = Path(cs_filename).name
    dset = _as_dataset(dataset)
    doc = {
        "created": _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f"),
        "group": {"description": description, "name": group_name, "title": title, "type": "exposure"},
        "results": {
            slot: {
                "metafile": f">{name}",
                "num_items": len(dset),
                "type": f"exposure.{EXPOSURE_SLOT_TYPES.get(slot, slot)}",
            }
            for slot in result_slots(dset)
        },
        "version": CSG_VERSION,
    }
    atomic_write_text(path, yaml.safe_dump(doc, sort_keys=True, default_flow_style=False))


def selection_paths_csv(path: str | os.PathLike, predictions: pd.DataFrame, include_medium: bool = False) -> int:
    """Without an exposures ``.cs``: write a CSV (``micrograph,label,confidence``) of the selected
    micrographs' paths, for cryoSPARC's *Import Micrographs* (or any script). Returns the row count."""
    wanted = set(selected_labels(include_medium))
    chosen = predictions.loc[predictions["label"].astype(str).isin(wanted).to_numpy()]
    out = pd.DataFrame({"micrograph": prediction_idents(chosen).to_numpy(), "label": chosen["label"].to_numpy()})
    if "confidence" in chosen.columns:
        out["confidence"] = chosen["confidence"].to_numpy()
    atomic_write_text(path, out.to_csv(index=False, lineterminator="\n"))
    return len(out)
