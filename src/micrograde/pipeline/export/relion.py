"""RELION selection: ``selected.star`` with the micrographs graded good (and medium, when asked).

With the user's own micrographs star (``CtfFind/jobNNN/micrographs_ctf.star``,
``MotionCorr/jobNNN/corrected_micrographs.star``) the output keeps its ``data_optics`` block and
every column of ``data_micrographs`` verbatim (values are read as text, so nothing is reformatted)
and only drops rows. A RELION 3.0 star (one loop, no optics block) is filtered the same way and
keeps its 3.0 layout, which RELION 3.1+ still reads. Without a star the output is a minimal RELION
3.1+ micrographs star: one optics group per pixel size and ``_rlnMicrographName`` +
``_rlnOpticsGroup``.

Names are matched with :mod:`.names` (absolute vs relative paths, motion-correction suffixes).
"""

from __future__ import annotations

import io
import os
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
    "DEFAULT_OPTICS",
    "read_star",
    "match_names",
    "selected_labels",
    "prediction_idents",
    "selection_star",
    "write_star",
]

MICROGRAPH_COLUMN = "rlnMicrographName"
#: Optics values written when no star is given and nothing better is known: a 300 kV microscope
#: with Cs 2.7 mm (Titan Krios / Glacios class) and amplitude contrast 0.1, RELION's defaults.
DEFAULT_OPTICS: dict[str, float] = {"rlnVoltage": 300.0, "rlnSphericalAberration": 2.7, "rlnAmplitudeContrast": 0.1}
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


def _default_optics(pixel_sizes: Sequence[float]) -> pd.DataFrame:
    rows = []
    for i, ps in enumerate(pixel_sizes, start=1):
        rows.append(
            {
                "rlnOpticsGroupName": f"opticsGroup{i}",
                "rlnOpticsGroup": i,
                "rlnMicrographPixelSize": float(ps),
                **DEFAULT_OPTICS,
            }
        )
    return pd.DataFrame(rows)


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
    star of the selected predictions; one optics group per pixel size (``pixel_size`` overrides
    the predictions' ``pixel_size`` column; 1.0 A when neither is known), and no unmatched names.
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
    chosen = predictions.loc[predictions["label"].astype(str).isin(wanted).to_numpy()]
    if pixel_size is not None:
        sizes = pd.Series(float(pixel_size), index=chosen.index)
    elif "pixel_size" in chosen.columns:
        sizes = pd.to_numeric(chosen["pixel_size"], errors="coerce").fillna(1.0).round(4)
    else:
        sizes = pd.Series(1.0, index=chosen.index)
    distinct = sorted(set(sizes.tolist()))
    if not distinct:  # nothing selected: still a valid star, optics from what was assessed
        known = pd.to_numeric(predictions.get("pixel_size", pd.Series(dtype=float)), errors="coerce").dropna()
        distinct = [
            float(pixel_size) if pixel_size is not None else (round(float(known.iloc[0]), 4) if len(known) else 1.0)
        ]
    group_of = {ps: i for i, ps in enumerate(distinct, start=1)}
    mics = pd.DataFrame(
        {
            MICROGRAPH_COLUMN: idents.loc[chosen.index].to_numpy(dtype=object),
            "rlnOpticsGroup": [group_of[ps] for ps in sizes.tolist()],
        }
    )
    return {"optics": _default_optics(distinct), "micrographs": mics}, []


def write_star(path: str | os.PathLike, blocks: dict[str, pd.DataFrame]) -> None:
    """Write ``blocks`` with ``starfile`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.star")
    try:
        starfile.write(dict(blocks), tmp, float_format="%.6f")
        text = tmp.read_text(encoding="utf-8")
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(path, _with_relion_header(text) if "optics" in blocks else text)


def _with_relion_header(text: str) -> str:
    """Add RELION 3.1's ``# version 30001`` line before each ``data_`` block (3.1+ stars only;
    a RELION 3.0 layout is written without it)."""
    out = io.StringIO()
    for line in text.splitlines(keepends=True):
        if line.startswith("data_"):
            out.write("# version 30001\n\n")
        out.write(line)
    return out.getvalue()
