"""Writing simulated micrographs and whole simulated collections (with ground truth) to disk.

Layout written by ``write_collection(out, n)``::

    out/<session>/<session>_0000.mrc ...   one file per micrograph (``.tif`` for TIFF sessions)
    out/<session>/session.json             acquisition metadata (the keys of ``SessionMeta``)
    out/truth.csv                          label, reasons and every simulation parameter

The same seed gives byte-identical files; re-running into the same folder overwrites only the
simulator's own outputs (files listed in the previous ``truth.csv`` that the new run does not
write again are removed, so the folder always matches ``truth.csv``).
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

from micrograde.pipeline.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from micrograde.pipeline.config import LABELS
from micrograde.pipeline.sim.physics import DEFAULT_SESSIONS, SimSession, label_for, sample_params, simulate_micrograph
from micrograde.pipeline.sim.model import SimParams, params_to_row

__all__ = ["MODE_DTYPES", "write_micrograph", "write_collection", "noisy_labels", "TRUTH_COLUMNS"]

#: numpy dtype of each MRC mode written.
MODE_DTYPES: dict[int, type] = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}
#: Columns of ``truth.csv``, in order.
TRUTH_COLUMNS: tuple[str, ...] = (
    "micrograph",
    "session",
    "label",
    "reasons",
    *SimParams.field_names(),
    "pixel_size",
    "acquired_at",
)
_EPOCH = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


def _as_mode(data: np.ndarray, mode: int) -> np.ndarray:
    dtype = np.dtype(MODE_DTYPES[mode])
    if not np.isfinite(data).all():
        raise ValueError("micrograph contains NaN or Inf values")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
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
    """Delete files the previous run listed in truth.csv that this run did not write again."""
    old = out / "truth.csv"
    if not old.is_file():
        return
    with contextlib.suppress(Exception):
        previous = pd.read_csv(old, usecols=["micrograph"])["micrograph"].astype(str)
        for rel in previous:
            target = (out / rel).resolve()
            if rel not in written and out.resolve() in target.parents and target.is_file():
                target.unlink()


def write_collection(
    out: Path,
    n: int,
    *,
    seed: int = 0,
    sessions: Sequence[SimSession] = DEFAULT_SESSIONS,
    balance: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Simulate ``n`` micrographs spread over ``sessions`` into ``out``; return the truth table.

    With ``balance`` each session gets the three labels in (as nearly as possible) equal numbers,
    in a shuffled order; without it labels follow the natural frequencies of ``sample_params``.
    Micrograph ``i`` (over all sessions) is drawn from its own child of ``SeedSequence(seed)``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not sessions:
        raise ValueError("at least one session is needed")
    names = [s.name for s in sessions]
    if len(set(names)) != len(names):
        raise ValueError(f"session names must be unique, got {names}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    children = np.random.SeedSequence(seed).spawn(n)
    plan = _session_plan(n, len(sessions))
    rows: list[dict[str, object]] = []
    bar = tqdm(total=n, desc="simulate", unit="micrograph", disable=not progress)
    index = 0
    for si, (session, count) in enumerate(zip(sessions, plan, strict=True)):
        if count == 0:
            continue
        folder = out / session.name
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "session.json", json.dumps(session.meta(), indent=2) + "\n")
        order_rng = np.random.default_rng([seed, si, 1])
        targets: list[str | None] = [None] * count
        if balance:
            targets = [LABELS[(j + si) % len(LABELS)] for j in range(count)]
            order_rng.shuffle(targets)
        when = _EPOCH + timedelta(days=si)
        for j in range(count):
            rng = np.random.default_rng(children[index])
            params = sample_params(rng, session, targets[j])
            data = simulate_micrograph(params, session, rng)
            when += timedelta(seconds=int(order_rng.integers(60, 150)))
            rel = f"{session.name}/{session.name}_{j:04d}{session.suffix}"
            write_micrograph(out / rel, data, session, acquired_at=when)
            label, reasons = label_for(params)
            rows.append(
                {
                    "micrograph": rel,
                    "session": session.name,
                    "label": label,
                    "reasons": ";".join(reasons),
                    **params_to_row(params),
                    "pixel_size": session.pixel_size,
                    "acquired_at": when.isoformat(),
                }
            )
            index += 1
            bar.update()
    bar.close()
    truth = pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))
    _remove_stale(out, set(truth["micrograph"]))
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
