"""Writing simulated micrographs and whole simulated collections (with ground truth) to disk.

Layout written by ``write_collection(out, n)``::

    out/<session>/<stem>.mrc ...           one file per micrograph (``.tif`` for TIFF sessions; the
                                           stem is <session>_0000 or, for EPU-like sessions,
                                           FoilHole_<hole>_Data_<template>_<n>_<date>_<time>)
    out/<session>/masks/<stem>.mrc         its ground-truth mask (``pipeline.masks`` codes, MRC mode 0)
    out/<session>/session.json             acquisition metadata (the keys of ``SessionMeta``), where
                                           the session writes one
    out/truth.csv                          family, label, reasons, mask, area fractions and every
                                           simulation parameter

The same seed gives byte-identical files; re-running into the same folder overwrites only the
simulator's own outputs (micrographs and masks listed in the previous ``truth.csv`` that the new
run does not write again are removed, so the folder always matches ``truth.csv``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import tifffile
from tqdm.auto import tqdm

from micrograde.pipeline.config import LABELS
from micrograde.pipeline.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from micrograde.pipeline.io.label_maps import write_label_map
from micrograde.pipeline.masks import DEFECT_CLASSES, MASKS_FOLDER, area_column, area_fractions
from micrograde.pipeline.sim.families import FAMILY_CHOICES, family_sessions, get_family
from micrograde.pipeline.sim.model import MODE_DTYPES, SimSession

__all__ = ["MODE_DTYPES", "TRUTH_BASE_COLUMNS", "truth_columns", "write_micrograph", "write_collection", "noisy_labels"]

#: The leading columns of ``truth.csv`` (every family's parameters follow them).
TRUTH_BASE_COLUMNS: tuple[str, ...] = (
    "micrograph",
    "session",
    "family",
    "label",
    "reasons",
    "mask",
    *(area_column(name) for name in DEFECT_CLASSES),
    "pixel_size",
    "acquired_at",
)
_EPOCH = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


def _as_mode(data: np.ndarray, mode: int) -> np.ndarray:
    dtype = np.dtype(MODE_DTYPES[mode])
    if not np.isfinite(data).all():
        raise ValueError("micrograph contains NaN or Inf values")
    if dtype.kind in "iu":
        info = np.iinfo(dtype.str)
        return np.clip(np.rint(data) if data.dtype.kind == "f" else data, info.min, info.max).astype(dtype)
    return data.astype(dtype)


def _write_mrc(path: Path, data: np.ndarray, session: SimSession, label: str) -> None:
    """mrcfile into a temporary file beside ``path``, then an atomic rename over ``path``."""
    with atomic_path(path) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(_as_mode(data, session.mrc_mode))
        mrc.voxel_size = session.pixel_size
        mrc.header.label[0] = label.encode("ascii")[:80]
        mrc.header.nlabl = 1


def write_micrograph(path: Path, data: np.ndarray, session: SimSession, *, acquired_at: datetime) -> None:
    """Write one micrograph atomically in the session's format.

    MRC (``.mrc``): the session's mode (0 int8, 1 int16, 2 float32, 6 uint16, 12 float16; integer
    modes round and saturate), voxel size = pixel size, and a header label naming the session and
    acquisition time. TIFF (``.tif``/``.tiff``): uint16 counts with the pixel size as the resolution
    tag (pixels per cm) and the acquisition time as DateTime. The file's modification time is set
    to ``acquired_at`` in both cases.
    """
    path = Path(path)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D micrograph, got shape {data.shape}")
    if acquired_at.tzinfo is None:
        acquired_at = acquired_at.replace(tzinfo=UTC)
    stamp = acquired_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    label = f"micrograde simulate {session.name} acquired {stamp}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if session.suffix == ".mrc":
        _write_mrc(path, data, session, label)
    else:
        per_cm = 1e8 / session.pixel_size
        buf = io.BytesIO()
        tifffile.imwrite(
            buf,
            _as_mode(data, 6),
            resolution=(per_cm, per_cm),
            resolutionunit="CENTIMETER",
            datetime=acquired_at.astimezone(UTC).replace(tzinfo=None),
            description=label,
            software="micrograde",
            metadata=None,
        )
        atomic_write_bytes(path, buf.getvalue())
    ts = acquired_at.timestamp()
    os.utime(path, (ts, ts))


def _session_plan(n: int, n_sessions: int) -> list[int]:
    """How many micrographs each session gets (as even as possible, earlier sessions first)."""
    return [n // n_sessions + (1 if i < n % n_sessions else 0) for i in range(n_sessions)]


def _remove_stale(out: Path, written: set[str]) -> None:
    """Delete files (micrographs, masks) the previous truth.csv listed that this run did not write again."""
    old = out / "truth.csv"
    if not old.is_file():
        return
    with contextlib.suppress(Exception):
        table = pd.read_csv(old, dtype=str, keep_default_na=False)
        columns = [c for c in ("micrograph", "mask") if c in table.columns]
        for rel in (r for c in columns for r in table[c] if r):
            target = (out / rel).resolve()
            if rel not in written and out.resolve() in target.parents and target.is_file():
                target.unlink()


def _stem(session: SimSession, j: int, when: datetime) -> str:
    """File name (without suffix) of micrograph ``j`` of a session: plain, or EPU-like."""
    if not session.epu_names:
        return f"{session.name}_{j:04d}"
    hole, template = 3_104_000 + 37 * (j // 2), 5_200_000 + 11 * (j // 8)
    return f"FoilHole_{hole}_Data_{template}_{j + 1}_{when:%Y%m%d_%H%M%S}"


def _resolve_sessions(family: str | None, sessions: Sequence[SimSession] | None) -> tuple[SimSession, ...]:
    if family is not None and family not in FAMILY_CHOICES:
        raise ValueError(f"family must be one of {FAMILY_CHOICES}, got {family!r}")
    if sessions is None:
        return family_sessions(family or "a")
    chosen = tuple(sessions)
    if not chosen:
        raise ValueError("at least one session is needed")
    for session in chosen:
        get_family(session.family)
        if family not in (None, "both", session.family):
            raise ValueError(f"session {session.name!r} belongs to family {session.family}, not {family}")
    names = [s.name for s in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"session names must be unique, got {names}")
    return chosen


def truth_columns(families: Sequence[str]) -> tuple[str, ...]:
    """Columns of ``truth.csv`` for a collection of these families: the common ones, then parameters."""
    params: list[str] = []
    for name in families:
        params.extend(c for c in get_family(name).columns if c not in params)
    return (*TRUTH_BASE_COLUMNS, *params)


def write_collection(
    out: Path,
    n: int,
    *,
    seed: int = 0,
    family: str | None = None,
    sessions: Sequence[SimSession] | None = None,
    balance: bool = True,
    masks: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Simulate ``n`` micrographs spread over ``sessions`` into ``out``; return the truth table.

    ``sessions`` default to the default sessions of ``family`` (``a``, ``b`` or ``both``;
    default ``a``); each session is rendered by its own family. With ``balance`` each session
    gets the three labels in (as nearly as possible) equal numbers, in a shuffled order; without
    it labels follow the natural frequencies of its family's sampler. Micrograph ``i`` (over all
    sessions) is drawn from its own child of ``SeedSequence(seed)``. With ``masks`` each
    micrograph's ground-truth mask is written to ``<session>/masks/<stem>.mrc``; the area
    fractions are in the table either way.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    chosen = _resolve_sessions(family, sessions)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    children = np.random.SeedSequence(seed).spawn(n)
    plan = _session_plan(n, len(chosen))
    rows: list[dict[str, object]] = []
    bar = tqdm(total=n, desc="simulate", unit="micrograph", disable=not progress)
    index = 0
    for si, (session, count) in enumerate(zip(chosen, plan, strict=True)):
        if count == 0:
            continue
        fam = get_family(session.family)
        folder = out / session.name
        folder.mkdir(parents=True, exist_ok=True)
        if session.session_json:
            atomic_write_text(folder / "session.json", json.dumps(session.meta(), indent=2) + "\n")
        order_rng = np.random.default_rng([seed, si, 1])
        targets: list[str | None] = [None] * count
        if balance:
            targets = [LABELS[(j + si) % len(LABELS)] for j in range(count)]
            order_rng.shuffle(targets)
        when = _EPOCH + timedelta(days=si)
        for j in range(count):
            rng = np.random.default_rng(children[index])
            params = fam.sample(rng, session, targets[j])
            image, mask = fam.render(params, session, rng)
            when += timedelta(seconds=int(order_rng.integers(60, 150)))
            stem = _stem(session, j, when)
            rel = f"{session.name}/{stem}{session.suffix}"
            write_micrograph(out / rel, image, session, acquired_at=when)
            rel_mask = ""
            if masks:
                rel_mask = f"{session.name}/{MASKS_FOLDER}/{stem}.mrc"
                write_label_map(out / rel_mask, mask, session.pixel_size)
            label, reasons = fam.label(params)
            rows.append(
                {
                    "micrograph": rel,
                    "session": session.name,
                    "family": fam.name,
                    "label": label,
                    "reasons": ";".join(reasons),
                    "mask": rel_mask,
                    **{k: round(v, 6) for k, v in area_fractions(mask).items()},
                    "pixel_size": session.pixel_size,
                    "acquired_at": when.isoformat(),
                    **fam.row(params),
                }
            )
            index += 1
            bar.update()
    bar.close()
    truth = pd.DataFrame(rows, columns=list(truth_columns(list(dict.fromkeys(s.family for s in chosen)))))
    _remove_stale(out, set(truth["micrograph"]) | set(truth["mask"]))
    atomic_write_text(out / "truth.csv", truth.to_csv(index=False))
    return truth


_NEIGHBOURS = {"good": ("medium",), "medium": ("good", "bad"), "bad": ("medium",)}


def noisy_labels(truth: pd.DataFrame, *, flip_rate: float, seed: int) -> pd.DataFrame:
    """``(micrograph, label)`` with ``round(flip_rate * n)`` labels moved to a neighbouring class.

    good and bad flip to medium; medium flips to good or bad at random. It imitates a less
    reliable annotator (the demo imports it as a second, junior annotator).
    """
    if not 0.0 <= flip_rate <= 1.0:
        raise ValueError(f"flip_rate must be within 0..1, got {flip_rate}")
    missing = {"micrograph", "label"} - set(truth.columns)
    if missing:
        raise ValueError(f"truth table lacks columns {sorted(missing)}")
    rng = np.random.default_rng(seed)
    labels = truth["label"].astype(str).tolist()
    unknown = set(labels) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown labels {sorted(unknown)}; expected {LABELS}")
    flips = rng.choice(len(labels), size=int(round(flip_rate * len(labels))), replace=False)
    for i in sorted(flips.tolist()):
        options = _NEIGHBOURS[labels[i]]
        labels[i] = options[int(rng.integers(len(options)))]
    return pd.DataFrame({"micrograph": truth["micrograph"].to_numpy(), "label": labels})
