"""RELION selection: ``selected.star`` with the micrographs graded good (and medium, when asked).

With the user's own micrographs star (``CtfFind/jobNNN/micrographs_ctf.star``,
``MotionCorr/jobNNN/corrected_micrographs.star``) the output keeps its ``data_optics`` block and
every column of ``data_micrographs`` verbatim (values are read as text, so nothing is reformatted)
and only drops rows. A RELION 3.0 star (one loop, no optics block) is filtered the same way and
keeps its 3.0 layout, which RELION 3.1+ still reads. Without a star the output is a minimal RELION
3.1+ micrographs star: ``_rlnMicrographName`` + ``_rlnOpticsGroup``, and one optics group per
(pixel size, voltage) with only what is known: the pixel size of each micrograph and its voltage
where a header, session file or option gave one. Spherical aberration and amplitude contrast are
never invented; a comment at the top of the file says which optics values are missing (give your
own micrographs STAR with ``--star`` to keep your optics).

Names are matched with :mod:`.names` (absolute vs relative paths, motion-correction suffixes).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import starfile

from micrograde.pipeline.io.atomic import atomic_write_text
from micrograde.pipeline.io.names import match_names, match_names_detailed

__all__ = [
    "StarFormatError",
    "StarInput",
    "OPTICS_COLUMNS",
    "read_star",
    "match_names",
    "selected_labels",
    "prediction_idents",
    "selection_star",
    "write_star",
]

MICROGRAPH_COLUMN = "rlnMicrographName"
#: The optics values RELION's micrograph jobs read; those micrograde does not know are left out.
OPTICS_COLUMNS = ("rlnMicrographPixelSize", "rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast")
_MISSING_NOTE = "micrograde_missing_optics"  # DataFrame.attrs key: optics values not known (written as a comment)
_PARTICLE_COLUMNS = ("rlnImageName", "rlnCoordinateX", "rlnCoordinateY")


class StarFormatError(ValueError):
    """The star file is not a micrographs star micrograde can filter."""


@dataclass
class StarInput:
    """A parsed micrographs star. Values are kept as text to be written back unchanged."""

    path: Path
    micrographs: pd.DataFrame
    optics: pd.DataFrame | None = None
    micrographs_block: str = "micrographs"
    optics_block: str = "optics"
    blocks: dict[str, object] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [str(n) for n in self.micrographs[MICROGRAPH_COLUMN]]


def _columns(block: object) -> list[str]:
    if isinstance(block, pd.DataFrame):
        return [str(c) for c in block.columns]
    if isinstance(block, dict):
        return [str(k) for k in block]
    return []


def read_star(path: str | os.PathLike) -> StarInput:
    """Read a RELION micrographs star (3.1+ with ``data_optics``, or 3.0 with a single loop).

    Raises :class:`StarFormatError` when no block has ``_rlnMicrographName`` or the only such
    block is a particle list.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"star file not found: {path}")
    try:
        probe = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises assorted errors on malformed input
        raise StarFormatError(f"{path} is not a readable STAR file: {exc}") from exc
    text_columns = sorted({c for block in probe.values() for c in _columns(block)})
    blocks = starfile.read(path, always_dict=True, parse_as_string=text_columns)
    loops = {name: b for name, b in blocks.items() if isinstance(b, pd.DataFrame)}
    with_names = [name for name, b in loops.items() if MICROGRAPH_COLUMN in b.columns]
    if not with_names:
        found = "; ".join(f"data_{n}: {', '.join(_columns(b)[:6])}" for n, b in blocks.items()) or "no data blocks"
        raise StarFormatError(
            f"{path} has no _rlnMicrographName column, so it is not a micrographs star ({found}). "
            "Pass the micrographs star of a RELION job, e.g. CtfFind/job003/micrographs_ctf.star "
            "or MotionCorr/job002/corrected_micrographs.star."
        )
    if "micrographs" in with_names:
        mic_block = "micrographs"
    else:
        non_particle = [n for n in with_names if not any(c in loops[n].columns for c in _PARTICLE_COLUMNS)]
        if not non_particle:
            raise StarFormatError(
                f"{path} lists particles (block data_{with_names[0]} has _rlnImageName/_rlnCoordinateX), "
                "not micrographs; pass the micrographs star, e.g. CtfFind/job003/micrographs_ctf.star."
            )
        mic_block = non_particle[0]
    optics = loops.get("optics")
    return StarInput(
        path=path,
        micrographs=loops[mic_block].reset_index(drop=True),
        optics=None if optics is None else optics.reset_index(drop=True),
        micrographs_block=mic_block,
        optics_block="optics",
        blocks=dict(blocks),
    )


def selected_labels(include_medium: bool) -> tuple[str, ...]:
    return ("good", "medium") if include_medium else ("good",)


def prediction_idents(predictions: pd.DataFrame) -> pd.Series:
    """One identifier per prediction row for name matching: the micrograph path, or
    ``'000003@/path/stack.mrcs'`` for a frame of a stack (its ``name`` holds the frame number)."""
    paths = predictions["micrograph"].astype(str)
    if "name" not in predictions.columns:
        return paths
    names = predictions["name"].astype(str)
    frames = names.str.extract(r"^(\d+)@", expand=False)
    return paths.where(frames.isna(), frames.fillna("") + "@" + paths)


def _known_optics(groups: Sequence[tuple[float | None, float | None]]) -> pd.DataFrame:
    """One optics group per (pixel size, voltage), with the columns some group knows; missing ones noted."""
    rows = []
    for i, (ps, volt) in enumerate(groups, start=1):
        row: dict = {"rlnOpticsGroupName": f"opticsGroup{i}", "rlnOpticsGroup": i}
        if ps is not None:
            row["rlnMicrographPixelSize"] = float(ps)
        if volt is not None:
            row["rlnVoltage"] = float(volt)
        rows.append(row)
    optics = pd.DataFrame(rows)
    known = [c for c in OPTICS_COLUMNS if c in optics.columns and optics[c].notna().all()]
    optics = optics[["rlnOpticsGroupName", "rlnOpticsGroup", *known]]
    optics.attrs[_MISSING_NOTE] = [c for c in OPTICS_COLUMNS if c not in known]
    return optics


def _known_column(frame: pd.DataFrame, name: str, digits: int) -> pd.Series:
    values = pd.to_numeric(frame[name], errors="coerce") if name in frame.columns else pd.Series(index=frame.index)
    return values.round(digits).astype(object).where(values.notna(), None)


def selection_star(
    predictions: pd.DataFrame,
    *,
    include_medium: bool = False,
    star: StarInput | None = None,
    pixel_size: float | None = None,
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Blocks of ``selected.star`` and the list of names that matched no prediction.

    With ``star``: its optics block unchanged and its micrograph rows whose match is graded
    ``good`` (or ``medium`` with ``include_medium``), all columns kept; the unmatched list holds
    the star's names with no (or an ambiguous) prediction. Without ``star``: a minimal RELION 3.1+
    star of the selected predictions; one optics group per (pixel size, voltage) with only the known
    values (``pixel_size`` overrides the predictions' ``pixel_size`` column; ``voltage_kv`` is used
    where known), and no unmatched names.
    """
    wanted = set(selected_labels(include_medium))
    idents = prediction_idents(predictions)
    labels = dict(zip(idents, predictions["label"].astype(str), strict=True))
    if star is not None:
        match = match_names_detailed(star.names, list(labels))
        keep = [(hit := match.mapping.get(name)) is not None and labels[hit] in wanted for name in star.names]
        mics = star.micrographs.loc[keep].reset_index(drop=True)
        blocks: dict[str, pd.DataFrame] = {}
        if star.optics is not None:
            blocks[star.optics_block] = star.optics
        blocks[star.micrographs_block] = mics
        return blocks, match.unmatched
    frame = predictions if pixel_size is None else predictions.assign(pixel_size=float(pixel_size))
    keys = list(zip(_known_column(frame, "pixel_size", 4), _known_column(frame, "voltage_kv", 1), strict=True))
    chosen = predictions["label"].astype(str).isin(wanted).to_numpy()
    chosen_keys = [k for k, c in zip(keys, chosen, strict=True) if c]
    # nothing selected: still a valid star, its optics from the first micrograph assessed
    distinct = sorted(set(chosen_keys), key=lambda k: tuple(-1.0 if v is None else v for v in k)) or keys[:1] or [
        (None, None)]
    group_of = {k: i for i, k in enumerate(distinct, start=1)}
    mics = pd.DataFrame(
        {
            MICROGRAPH_COLUMN: idents.loc[chosen].to_numpy(dtype=object),
            "rlnOpticsGroup": [group_of[k] for k in chosen_keys],
        }
    )
    return {"optics": _known_optics(distinct), "micrographs": mics}, []


def write_star(path: str | os.PathLike, blocks: dict[str, pd.DataFrame]) -> None:
    """Write ``blocks`` with ``starfile`` to ``path`` atomically (a temporary file of its own, then rename).

    Optics micrograde did not know (see :func:`selection_star`) are named in a comment at the top.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        scratch = Path(tmp) / path.name
        starfile.write(dict(blocks), scratch, float_format="%.6f")
        text = scratch.read_text(encoding="utf-8")
    if "optics" in blocks:
        text = _with_relion_header(text)
    missing = blocks["optics"].attrs.get(_MISSING_NOTE) if "optics" in blocks else None
    if missing:
        text = (f"# micrograde: optics not known, not written: {', '.join(missing)}.\n"
                "# Give your own micrographs STAR (--star) to keep your optics.\n\n") + text
    atomic_write_text(path, text)


def _with_relion_header(text: str) -> str:
    """Add RELION 3.1's ``# version 30001`` line before each ``data_`` block (3.1+ stars only;
    a RELION 3.0 layout is written without it)."""
    out = io.StringIO()
    for line in text.splitlines(keepends=True):
        if line.startswith("data_"):
            out.write("# version 30001\n\n")
        out.write(line)
    return out.getvalue()
