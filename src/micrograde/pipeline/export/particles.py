"""Particle picks filtered by micrograph masks, written back in the picker's own format.

Inputs (the format from the file name ending):

- RELION STAR (``.star``): a coordinate file (one loop with ``_rlnCoordinateX/Y``, e.g.
  ``<micrograph>_autopick.star``) or a particle STAR (3.1+ with ``data_optics`` and
  ``data_particles``). With ``_rlnMicrographName`` each row names its micrograph; without it the
  file is one micrograph's, matched by the file name (``x_autopick.star`` -> ``x.mrc``).
- cryoSPARC particles (``.cs``, cryosparc-tools ``Dataset``): ``location/micrograph_path`` and
  ``location/center_x_frac`` / ``center_y_frac`` (fractions of the micrograph's width / height).
- plain coordinates: ``.box`` (EMAN: x y width height, the box's corner) and ``.txt`` / ``.coords``
  (x y ... centres), whitespace separated; one micrograph per file, matched by the file name.

Coordinates are in pixels of the full-resolution micrograph, x along a row and y the row index
(as the file stores the image). A pick is removed when its pixel, or any pixel within the margin,
is masked (any non-usable code); the class recorded is the one at the pick, else the first by
:data:`~micrograde.pipeline.masks.PRECEDENCE` within the margin. Picks outside the image are
kept and counted (``outside``). The output keeps every column (STAR and .cs: every block and
field; .box/.txt: the original lines).

Names that match no assessed micrograph raise :class:`UnmatchedParticlesError` listing them,
checked before any filtering.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from micrograde.pipeline.io.atomic import atomic_write_bytes, atomic_write_text
from micrograde.pipeline.io.names import match_names_detailed
from micrograde.pipeline.masks import MASK_CLASSES, MASK_CODES, PRECEDENCE, USABLE

__all__ = [
    "PARTICLE_SUFFIXES",
    "ParticleFormatError",
    "UnmatchedParticlesError",
    "ParticleFile",
    "read_particles",
    "match_particles",
    "pick_codes",
    "filter_particles",
    "write_particles",
    "selected_name",
]

PARTICLE_SUFFIXES: tuple[str, ...] = (".star", ".cs", ".box", ".txt", ".coords")
_PICK_SUFFIX_RE = re.compile(r"(_(auto|manual)?pick(ed)?|_coords?|_particles|_picks)$", re.IGNORECASE)
_CS_PATH, _CS_X, _CS_Y, _CS_SHAPE = ("location/micrograph_path", "location/center_x_frac", "location/center_y_frac",
                                     "location/micrograph_shape")


class ParticleFormatError(ValueError):
    """A particle file that cannot be read as the format its name says."""


class UnmatchedParticlesError(LookupError):
    """Picks name micrographs that were not assessed."""

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        shown = ", ".join(self.names[:20]) + (f" ... ({len(self.names)} in all)" if len(self.names) > 20 else "")
        super().__init__(f"{len(self.names)} micrograph names in the particle file(s) match no assessed micrograph: "
                         f"{shown}")


@dataclass
class ParticleFile:
    """Picks read from one file, with what is needed to write the kept ones back unchanged."""

    path: Path
    kind: str  # star | cs | box | txt
    names: np.ndarray  # micrograph reference per pick ('' -> the file's own name)
    x: np.ndarray  # pixels, or fractions of the width when ``fractions``
    y: np.ndarray
    fractions: bool = False
    star_blocks: dict = field(default_factory=dict)
    star_block: str | None = None
    dataset: Any = None  # a cryosparc.dataset.Dataset for .cs files
    lines: list[str] = field(default_factory=list)  # box/txt: the data lines (one per pick)
    header: list[str] = field(default_factory=list)  # box/txt: comment lines before the data

    def __len__(self) -> int:
        return len(self.x)

    @property
    def file_micrograph(self) -> str:
        """The micrograph name this file stands for when picks name none: its stem minus a pick suffix."""
        stem = self.path.name
        for ext in PARTICLE_SUFFIXES:
            if stem.lower().endswith(ext):
                stem = stem[: -len(ext)]
                break
        return _PICK_SUFFIX_RE.sub("", stem) + ".mrc"


def _read_star(path: Path) -> ParticleFile:
    import starfile

    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # noqa: BLE001 - starfile raises assorted errors
        raise ParticleFormatError(f"{path} is not a readable STAR file: {exc}") from exc
    loops = [n for n, b in blocks.items() if isinstance(b, pd.DataFrame)
             and {"rlnCoordinateX", "rlnCoordinateY"} <= set(b.columns)]
    if not loops:
        raise ParticleFormatError(
            f"{path}: no block has _rlnCoordinateX and _rlnCoordinateY (not a pick/particle STAR)"
        )
    name = "particles" if "particles" in loops else loops[0]
    table = blocks[name]
    names = (table["rlnMicrographName"].astype(str).to_numpy() if "rlnMicrographName" in table.columns
             else np.full(len(table), "", dtype=object))
    return ParticleFile(path, "star", names, pd.to_numeric(table["rlnCoordinateX"]).to_numpy(float),
                        pd.to_numeric(table["rlnCoordinateY"]).to_numpy(float), star_blocks=dict(blocks),
                        star_block=name)


def _read_cs(path: Path) -> ParticleFile:
    from cryosparc.dataset import Dataset

    try:
        dset = Dataset.load(path)
    except Exception as exc:  # noqa: BLE001
        raise ParticleFormatError(f"{path} is not a cryoSPARC .cs dataset: {exc}") from exc
    missing = [f for f in (_CS_PATH, _CS_X, _CS_Y) if f not in dset.fields()]
    if missing:
        raise ParticleFormatError(f"{path} lacks the particle location fields {missing} (not a particle .cs)")
    names = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in dset[_CS_PATH]], dtype=object)
    return ParticleFile(path, "cs", names, np.asarray(dset[_CS_X], dtype=float), np.asarray(dset[_CS_Y], dtype=float),
                        fractions=True, dataset=dset)


def _read_text(path: Path, kind: str) -> ParticleFile:
    header: list[str] = []
    lines: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = raw.split()
        if not parts:
            continue
        try:
            values = [float(p) for p in parts[: 4 if kind == "box" else 2]]
        except ValueError:
            if lines:
                raise ParticleFormatError(f"{path}: line {raw!r} is not numeric") from None
            header.append(raw)
            continue
        need = 4 if kind == "box" else 2
        if len(values) < need:
            raise ParticleFormatError(f"{path}: {kind} lines need {need} numbers, got {raw!r}")
        x, y = values[0], values[1]
        if kind == "box":
            x, y = x + values[2] / 2.0, y + values[3] / 2.0
        xs.append(x)
        ys.append(y)
        lines.append(raw)
    return ParticleFile(path, kind, np.full(len(xs), "", dtype=object), np.asarray(xs, float), np.asarray(ys, float),
                        lines=lines, header=header)


def read_particles(path: str | os.PathLike) -> ParticleFile:
    """Read a pick/particle file (format from its name ending; see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"particle file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".star":
        return _read_star(path)
    if suffix == ".cs":
        return _read_cs(path)
    if suffix in (".box", ".txt", ".coords"):
        return _read_text(path, "box" if suffix == ".box" else "txt")
    raise ParticleFormatError(f"{path}: unknown particle format {suffix!r}; expected one of {PARTICLE_SUFFIXES}")


def match_particles(files: Sequence[ParticleFile], micrographs: Sequence[str]) -> list[np.ndarray]:
    """Per file, the assessed micrograph (one of ``micrographs``) of each pick; raises
    :class:`UnmatchedParticlesError` naming every reference that matches none (or several)."""
    refs = sorted({str(n) if n else f.file_micrograph for f in files for n in set(f.names.tolist())})
    match = match_names_detailed(refs, list(micrographs))
    if match.unmatched:
        raise UnmatchedParticlesError(match.unmatched)
    return [np.array([match.mapping[str(n) if n else f.file_micrograph] for n in f.names], dtype=object)
            for f in files]


def _offsets(margin_px: float) -> np.ndarray:
    if margin_px <= 0:
        return np.zeros((1, 2), dtype=int)
    step = max(1.0, margin_px / 4.0)
    r = np.arange(-margin_px, margin_px + step / 2, step)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    keep = dy**2 + dx**2 <= margin_px**2 + 1e-9
    return np.rint(np.stack([dy[keep], dx[keep]], axis=1)).astype(int)


def pick_codes(x: np.ndarray, y: np.ndarray, mask: np.ndarray, margin_px: float = 0.0) -> np.ndarray:
    """Mask code under each pick (pixel coordinates), or the highest-precedence code within
    ``margin_px``; -1 for picks outside the image."""
    h, w = mask.shape
    xi, yi = np.floor(np.asarray(x, float)).astype(int), np.floor(np.asarray(y, float)).astype(int)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    codes = np.full(len(xi), -1, dtype=int)
    codes[inside] = mask[yi[inside], xi[inside]]
    if margin_px > 0:
        rank = {MASK_CODES[n]: i for i, n in enumerate(PRECEDENCE)}
        for k in np.flatnonzero(inside & (codes == USABLE)):
            pts = _offsets(margin_px) + (yi[k], xi[k])
            ok = (pts[:, 0] >= 0) & (pts[:, 0] < h) & (pts[:, 1] >= 0) & (pts[:, 1] < w)
            near = set(mask[pts[ok, 0], pts[ok, 1]].tolist()) - {USABLE}
            if near:
                codes[k] = min(near, key=lambda c: rank.get(c, 99))
    return codes


def filter_particles(pf: ParticleFile, assigned: np.ndarray, masks: Mapping[str, tuple[np.ndarray, float]],
                     margin_A: float = 0.0) -> tuple[np.ndarray, pd.DataFrame]:
    """(keep per pick, summary per micrograph) of ``pf`` whose picks belong to ``assigned``
    micrographs, each with its (full-resolution mask, pixel size in A)."""
    if margin_A < 0:
        raise ValueError(f"the particle margin must be >= 0 A, got {margin_A}")
    keep = np.ones(len(pf), dtype=bool)
    rows = []
    for mic in dict.fromkeys(assigned.tolist()):
        idx = np.flatnonzero(assigned == mic)
        mask, pixel_size = masks[mic]
        x, y = pf.x[idx], pf.y[idx]
        if pf.fractions:
            x, y = x * mask.shape[1], y * mask.shape[0]
        codes = pick_codes(x, y, mask, margin_A / pixel_size if margin_A else 0.0)
        keep[idx] = codes <= USABLE
        row = {"particle_file": pf.path.name, "micrograph": mic, "picks": len(idx), "kept": int(keep[idx].sum()),
               "outside": int((codes < 0).sum())}
        row |= {f"removed_{c.name}": int((codes == c.code).sum()) for c in MASK_CLASSES if c.code != USABLE}
        rows.append(row)
    return keep, pd.DataFrame(rows)


def selected_name(pf: ParticleFile) -> str:
    """File name of the kept picks: ``particles_selected.<extension of the input>``."""
    return f"particles_selected{pf.path.suffix.lower()}"


def write_particles(pf: ParticleFile, keep: np.ndarray, out: str | os.PathLike) -> Path:
    """Write the kept picks of ``pf`` to ``out`` in the input's format (atomically)."""
    out = Path(out)
    keep = np.asarray(keep, dtype=bool)
    if pf.kind == "star":
        from micrograde.pipeline.export.relion import write_star

        blocks = dict(pf.star_blocks)
        blocks[pf.star_block] = blocks[pf.star_block].loc[keep].reset_index(drop=True)
        write_star(out, blocks)
    elif pf.kind == "cs":
        buf = io.BytesIO()
        pf.dataset.mask(keep).save(buf)
        atomic_write_bytes(out, buf.getvalue())
    else:
        kept = [line for line, k in zip(pf.lines, keep, strict=True) if k]
        atomic_write_text(out, "".join(f"{line}\n" for line in [*pf.header, *kept]))
    return out
