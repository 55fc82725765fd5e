"""cryoSPARC selection: a filtered exposures ``.cs`` file plus the ``.csg`` result group.

A cryoSPARC ``.cs`` file is a NumPy structured array saved in ``.npy`` format under a ``.cs``
name; exposure datasets carry ``uid`` and prefixed fields such as ``micrograph_blob/path``
(bytes), ``micrograph_blob/psize_A``, ``ctf/df1_A``. The selection keeps the input dtype and drops
rows whose ``micrograph_blob/path`` is not graded good (or medium, when asked).

The ``.csg`` file is the YAML "result group" that cryoSPARC's *Import Result Group* job reads. Its
layout, as found in public material (the ``.csg`` excerpt of a cryoSPARC v4.4.1 export quoted in
github.com/reichow-lab/subunit_enrichment README.md, and a ``.csg`` test fixture with
``metafile: '>particles_selected.cs'``), is::

    created: <timestamp>
    group: {description, name, title, type: exposure}
    results:
      <prefix>:                      # one per field prefix of the .cs, e.g. micrograph_blob, ctf
        metafile: '>selected.cs'     # '>' = path relative to the .csg file
        num_items: <rows>
        type: exposure.<prefix>
    version: <cryoSPARC version string>

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

from micrograde.pipeline.io.atomic import atomic_write_bytes, atomic_write_text
from micrograde.pipeline.export.relion import prediction_idents, selected_labels
from micrograde.pipeline.io.names import match_names_detailed

__all__ = [
    "CsFormatError",
    "PATH_FIELD",
    "CSG_VERSION",
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


class CsFormatError(ValueError):
    """The file is not a cryoSPARC exposures dataset micrograde can filter."""


def read_cs(path: str | os.PathLike) -> np.ndarray:
    """Load a cryoSPARC ``.cs`` dataset (structured array) with ``micrograph_blob/path``."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CsFormatError(f"{path} is not a cryoSPARC .cs file (NumPy structured array): {exc}") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.names is None:
        raise CsFormatError(f"{path} holds no structured array, so it is not a cryoSPARC dataset")
    if PATH_FIELD not in arr.dtype.names:
        hint = " (it looks like a particle dataset; pass an exposures .cs)" if "blob/path" in arr.dtype.names else ""
        raise CsFormatError(f"{path} has no field {PATH_FIELD!r}{hint}; fields: {', '.join(arr.dtype.names[:8])}")
    return arr


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes | np.bytes_) else str(value)


def select_cs(cs: np.ndarray, predictions: pd.DataFrame, include_medium: bool = False) -> tuple[np.ndarray, list[str]]:
    """Rows of ``cs`` whose ``micrograph_blob/path`` matches a prediction graded good (and
    medium with ``include_medium``); same dtype. Also returns the paths that matched nothing."""
    if cs.dtype.names is None or PATH_FIELD not in cs.dtype.names:
        raise CsFormatError(f"dataset has no field {PATH_FIELD!r}")
    wanted = set(selected_labels(include_medium))
    idents = prediction_idents(predictions)
    labels = dict(zip(idents, predictions["label"].astype(str), strict=True))
    names = [_decode(v) for v in cs[PATH_FIELD]]
    match = match_names_detailed(names, list(labels))
    keep = np.array([(hit := match.mapping.get(n)) is not None and labels[hit] in wanted for n in names], dtype=bool)
    return cs[keep].copy(), match.unmatched


def write_cs(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Save ``arr`` in ``.npy`` format under exactly ``path`` (which must end with ``.cs``), atomically."""
    path = Path(path)
    if path.suffix != ".cs":
        raise ValueError(f"a cryoSPARC dataset file name must end with .cs, got {path.name!r}")
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)  # a file object: no '.npy' appended
    atomic_write_bytes(path, buf.getvalue())


def result_slots(dtype: np.dtype) -> list[str]:
    """Field prefixes of a dataset (``micrograph_blob/path`` -> ``micrograph_blob``), in order."""
    names = dtype.names or ()
    return list(dict.fromkeys(n.split("/", 1)[0] for n in names if "/" in n))


def write_csg(
    path: str | os.PathLike,
    cs_filename: str,
    arr: np.ndarray,
    *,
    group_name: str = "exposures_selected",
    title: str = "Exposures selected by micrograde",
    description: str = "Micrographs graded by micrograde",
) -> None:
    """Write the cryoSPARC result group (YAML) describing ``cs_filename`` (a file name next to
    ``path``) with one result per field prefix of ``arr``; see the module docstring."""
    name = Path(cs_filename).name
    doc = {
        "created": _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f"),
        "group": {"description": description, "name": group_name, "title": title, "type": "exposure"},
        "results": {
            slot: {"metafile": f">{name}", "num_items": int(len(arr)), "type": f"exposure.{slot}"}
            for slot in result_slots(arr.dtype)
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
