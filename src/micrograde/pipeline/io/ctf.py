"""Reading the user's CTF estimates: a RELION CtfFind micrographs STAR or cryoSPARC Patch CTF exposures.

Both readers return a :class:`CtfTable`: one row per micrograph named as in the file, with one
float column per ``ctf`` feature of the registry (:mod:`micrograde.pipeline.features`; NaN where
the file has no value). The file is read and checked completely before anything is returned, so a
caller learns of a bad file before any work.

RELION (``ctf_from_star``): the micrographs block of a CtfFind job's STAR (RELION 3.1+ with
``data_optics``, or 3.0 with a single loop), via :func:`micrograde.pipeline.export.relion.read_star`.

=========================  ==============================================
feature                    STAR column
=========================  ==============================================
``ctf_resolution_A``       ``_rlnCtfMaxResolution``
``ctf_figure_of_merit``    ``_rlnCtfFigureOfMerit``
``ctf_astigmatism_A``      ``_rlnCtfAstigmatism``
``ctf_defocus_um``         (``_rlnDefocusU`` + ``_rlnDefocusV``) / 2 / 10^4
``ctf_ice_ring_density``   ``_rlnCtfIceRingDensity`` (RELION 5)
=========================  ==============================================

cryoSPARC (``ctf_from_cs``): an exposures dataset (Patch CTF's ``exposures_ctf_estimated``) read
with ``cryosparc-tools``: ``ctf/ctf_fit_to_A`` (or ``ctf_stats/ctf_fit_to_A``) -> resolution,
``ctf/df1_A`` and ``ctf/df2_A`` -> defocus and astigmatism, ``ctf_stats/ice_thickness_rel`` ->
relative ice thickness.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas loads when a file is read: a command given no CTF file does not import it
    import pandas as pd

__all__ = ["CtfFormatError", "NoCtfColumnsError", "CtfTable", "STAR_COLUMNS", "CS_FIELDS", "ctf_from_star",
           "ctf_from_cs", "read_ctf"]

#: STAR column of each CTF feature read directly (the defocus is the mean of U and V).
STAR_COLUMNS: dict[str, str] = {
    "ctf_resolution_A": "rlnCtfMaxResolution",
    "ctf_figure_of_merit": "rlnCtfFigureOfMerit",
    "ctf_astigmatism_A": "rlnCtfAstigmatism",
    "ctf_ice_ring_density": "rlnCtfIceRingDensity",
}
_DEFOCUS_UV = ("rlnDefocusU", "rlnDefocusV")
#: cryoSPARC exposure fields read (first present wins for the resolution).
CS_FIELDS: dict[str, tuple[str, ...]] = {
    "ctf_resolution_A": ("ctf/ctf_fit_to_A", "ctf_stats/ctf_fit_to_A"),
    "defocus": ("ctf/df1_A", "ctf/df2_A"),
    "ctf_ice_thickness": ("ctf_stats/ice_thickness_rel",),
}
_CS_PATH = "micrograph_blob/path"


class CtfFormatError(ValueError):
    """The file cannot be read as CTF estimates (unreadable, wrong kind, or without CTF columns)."""


class NoCtfColumnsError(CtfFormatError):
    """A readable micrographs file that holds no CTF estimate (e.g. a motion-correction STAR)."""


@dataclass(frozen=True)
class CtfTable:
    """CTF estimates by micrograph: ``table`` has ``micrograph`` (the name in the file) and one float
    column per ``ctf`` feature; ``source`` is the file; ``columns`` the features it actually gave."""

    source: Path
    table: pd.DataFrame
    columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.table)


def _ctf_names() -> tuple[str, ...]:
    from micrograde.pipeline.features import feature_names

    return feature_names("ctf")


def _table(source: Path, names: list[str], values: dict[str, np.ndarray]) -> CtfTable:
    n = len(names)
    columns: dict[str, list[str] | np.ndarray] = {"micrograph": [str(v) for v in names]}
    for name in _ctf_names():
        got = values.get(name)
        columns[name] = np.full(n, np.nan) if got is None else np.asarray(got, dtype=float)
    given = tuple(k for k in _ctf_names() if k in values)
    import pandas as pd

    return CtfTable(source, pd.DataFrame(columns), given)


def _numeric(frame: pd.DataFrame, column: str, source: Path) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        raise CtfFormatError(f"{source}: column _{column} holds values that are not numbers "
                             f"(e.g. {frame[column][bad].iloc[0]!r})")
    return values.to_numpy(dtype=float)


def ctf_from_star(path: str | os.PathLike) -> CtfTable:
    """The CTF estimates of a RELION micrographs STAR (see the module docstring for the columns).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CtfFormatError: not a readable micrographs STAR, or a CTF column holds text;
            :class:`NoCtfColumnsError` when none of the CTF columns is present.
    """
    from micrograde.pipeline.export.relion import MICROGRAPH_COLUMN, StarFormatError, read_star

    path = Path(path)
    try:
        star = read_star(path)
    except StarFormatError as exc:
        raise CtfFormatError(str(exc)) from exc
    mics = star.micrographs
    present = {str(c) for c in mics.columns}
    values: dict[str, np.ndarray] = {}
    for name, column in STAR_COLUMNS.items():
        if column in present:
            values[name] = _numeric(mics, column, path)
    if all(c in present for c in _DEFOCUS_UV):
        u, v = (_numeric(mics, c, path) for c in _DEFOCUS_UV)
        values["ctf_defocus_um"] = (u + v) / 2 / 1e4
    if not values:
        wanted = ", ".join(f"_{c}" for c in (*STAR_COLUMNS.values(), *_DEFOCUS_UV))
        raise NoCtfColumnsError(f"{path} has no CTF columns (expected some of {wanted}; found "
                             f"{', '.join('_' + c for c in sorted(present)) or 'none'}). Pass the micrographs STAR "
                             "of a CtfFind job, e.g. CtfFind/job003/micrographs_ctf.star.")
    return _table(path, [str(n) for n in mics[MICROGRAPH_COLUMN]], values)


def ctf_from_cs(path: str | os.PathLike) -> CtfTable:
    """The CTF estimates of a cryoSPARC exposures ``.cs`` (Patch CTF; see the module docstring).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CtfFormatError: not a cryoSPARC dataset, or no ``micrograph_blob/path`` field;
            :class:`NoCtfColumnsError` when it has no CTF field.
    """
    from cryosparc.dataset import Dataset
    from cryosparc.errors import DatasetLoadError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such cryoSPARC dataset: {path}")
    try:
        dset = Dataset.load(path)
    except (DatasetLoadError, ValueError, OSError) as exc:
        raise CtfFormatError(f"{path} is not a cryoSPARC .cs dataset: {exc.__cause__ or exc}") from exc
    fields = set(dset.fields())
    if _CS_PATH not in fields:
        raise CtfFormatError(f"{path} has no field {_CS_PATH!r}, so it is not an exposures dataset; pass the "
                             "exposures .cs of a Patch CTF job")
    values: dict[str, np.ndarray] = {}
    found = next((f for f in CS_FIELDS["ctf_resolution_A"] if f in fields), None)
    if found:
        values["ctf_resolution_A"] = np.asarray(dset[found], dtype=float)
    if all(f in fields for f in CS_FIELDS["defocus"]):
        df1, df2 = (np.asarray(dset[f], dtype=float) for f in CS_FIELDS["defocus"])
        values["ctf_defocus_um"] = (df1 + df2) / 2 / 1e4
        values["ctf_astigmatism_A"] = np.abs(df1 - df2)
    if CS_FIELDS["ctf_ice_thickness"][0] in fields:
        values["ctf_ice_thickness"] = np.asarray(dset[CS_FIELDS["ctf_ice_thickness"][0]], dtype=float)
    if not values:
        wanted = ", ".join(f for group in CS_FIELDS.values() for f in group)
        raise NoCtfColumnsError(f"{path} has no CTF fields (expected some of {wanted}); pass the exposures .cs of a "
                             "Patch CTF job")
    names = [v.decode() if isinstance(v, bytes) else str(v) for v in dset[_CS_PATH]]
    return _table(path, names, values)


def read_ctf(star: str | os.PathLike | None = None, cs: str | os.PathLike | None = None, *,
             strict: bool = True) -> list[CtfTable]:
    """The tables of the files given (a STAR, a ``.cs`` or both), each read and checked.

    ``strict``: a file without CTF columns raises :class:`NoCtfColumnsError`; otherwise it is left out
    (assess's selection STAR may be a motion-correction STAR). Other errors are raised either way.
    """
    out = []
    for path, reader in ((star, ctf_from_star), (cs, ctf_from_cs)):
        if not path:
            continue
        try:
            out.append(reader(path))
        except NoCtfColumnsError:
            if strict:
                raise
    return out
