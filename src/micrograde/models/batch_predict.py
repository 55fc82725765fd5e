"""Batched prediction with a per-model cache, so re-assessing the same micrographs is free.

Probabilities are stored per (model, cache key) in ``CACHE/predictions/<model-id>.parquet``: a
cache key already names the content and the preprocessing, and a model id names the weights, so
an entry never goes stale. The file is rewritten atomically when new keys are added, under a
lock beside it (two assessments with one model at once, e.g. the watcher and a sweep, each add
their keys; neither loses the other's).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from micrograde.pipeline.config import LABELS
from micrograde.pipeline.io.atomic import atomic_write_bytes
from micrograde.pipeline.io.locks import file_lock

if TYPE_CHECKING:  # the network predictor imports torch; a grader with scikit-learn heads does not need it
    from micrograde.models.infer import Predictor

__all__ = ["predict_cached", "prediction_cache_path"]

_COLUMNS = [f"p_{label}" for label in LABELS]


def prediction_cache_path(cache_dir: Path, model_id: str) -> Path:
    return Path(cache_dir) / "predictions" / f"{model_id}.parquet"


def predict_cached(
    predictor: Predictor,
    cache_dir: Path,
    cache_keys: Sequence[str],
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = False,
    extra: pd.DataFrame | None = None,
    references: Mapping[str, Sequence[str]] | None = None,
) -> tuple[np.ndarray, int]:
    """Calibrated probabilities (N, 3) for ``cache_keys``; returns them and how many were cached.

    ``extra``: catalogue rows (``cache_key`` and feature columns) for a grader that reads features from the
    catalogue (``predictor.catalogue_features``, the user's CTF estimates); its stored probabilities are
    keyed by the cache key and a digest of those values, so an imported estimate that changes is graded again.
    ``references``: for a grader that measures each micrograph against its session (``predictor.needs_session``),
    the cache keys that stand for each session; ``extra`` then names each micrograph's ``session`` and, in
    ``session_reference``, a digest of its session's reference, which keys the stored probabilities likewise.
    """
    store = prediction_cache_path(cache_dir, predictor.model_id)
    known = _read(store)
    needed = tuple(getattr(predictor, "catalogue_features", ()) or ())
    stored = _store_keys([str(k) for k in cache_keys], extra, needed)
    by_store = dict(zip(stored, (str(k) for k in cache_keys), strict=True))
    keys = stored
    missing = sorted({k for k in keys if k not in known.index})
    if missing:
        probs = predictor.predict([by_store[k] for k in missing], cache_dir=cache_dir, batch_size=batch_size,
                                  num_workers=num_workers, progress=progress,
                                  **({"extra": extra} if needed else {}),
                                  **({"references": references} if getattr(predictor, "needs_session", False) else {}))
        fresh = pd.DataFrame(probs, columns=_COLUMNS, index=pd.Index(missing, name="cache_key"))
        with file_lock(store.with_name(store.name + ".lock")):
            current = _read(store)  # what others added meanwhile
            current = current.loc[~current.index.isin(fresh.index)]
            known = pd.concat([current, fresh]) if len(current) else fresh
            buf = io.BytesIO()
            known.rename_axis("cache_key").reset_index().to_parquet(buf, index=False)
            atomic_write_bytes(store, buf.getvalue())
    out = known.loc[keys, _COLUMNS].to_numpy(dtype=np.float64) if keys else np.zeros((0, len(LABELS)))
    return out, len(set(keys)) - len(missing)


def _store_keys(keys: list[str], extra: pd.DataFrame | None, needed: tuple[str, ...]) -> list[str]:
    """The prediction store's key of each cache key: itself, or with a digest of its catalogue feature values."""
    if not needed:
        return keys
    import hashlib

    rows = extra.drop_duplicates("cache_key", keep="last").set_index("cache_key") if extra is not None else None
    out = []
    for k in keys:
        values = [_value(rows.at[k, n]) if rows is not None and k in rows.index and n in rows.columns else float("nan")
                  for n in needed]
        text = ",".join(f"{n}={v!r}" for n, v in zip(needed, values, strict=True))
        out.append(f"{k}+{hashlib.sha256(text.encode()).hexdigest()[:12]}")
    return out


def _value(v) -> float | str:
    """A catalogue value as it enters the store key: a number as a float, a text (a digest) as it is."""
    return v if isinstance(v, str) else float(v)


def _read(store: Path) -> pd.DataFrame:
    return pd.read_parquet(store).set_index("cache_key") if store.is_file() else pd.DataFrame(columns=_COLUMNS)
