"""The grader's inputs for a set of cached micrographs, as named blocks of columns.

Blocks (each a float32 matrix, one row per micrograph, NaN where a value is not defined):

- ``level`` and ``ripple``: the spectrum profile on a fixed 1/A grid
  (:func:`micrograde.pipeline.signal.profile.spectrum_profile`), from the cached rotational average
  of the full-resolution power spectrum;
- ``scores``: the registry's ``score`` features (:mod:`micrograde.pipeline.features`: ice ring,
  Thon-ring reach, anisotropy, contrast, dark fraction), from the cache entry;
- ``measures``: the registry's ``measure`` features (crystalline area, transmission, carbon area,
  directional power, defocus...), from the cache entry, and its ``ctf`` features (the user's CTF
  estimates), from catalogue rows given as ``extra``. A value a micrograph lacks is NaN: the heads'
  random forests route missing values natively (scikit-learn >= 1.4), and a column missing in every
  training row is left out;
- ``embedding``: frozen pretrained image features (:mod:`.embedding`), when an embedding store is
  given;
- ``session``: the physical columns (:data:`RELATIVE_BLOCKS`) minus their median over a reference
  set of the micrograph's own session (:func:`with_session_block`): how a micrograph differs from
  its session's typical one. Detector, voltage, dose and pixel size shift the absolute values from
  one session to the next; the difference from the session's own median carries over.

Cache entries are opened lazily: only the small arrays a block needs are read.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from micrograde.pipeline.catalogue.cache import CacheMissError, cache_path, entry_measures
from micrograde.pipeline.features import ctf_columns_with_values, feature_names
from micrograde.pipeline.signal.profile import profile_names, spectrum_profile

__all__ = ["BLOCKS", "RELATIVE_BLOCKS", "SESSION_BLOCK", "Features", "load_features", "default_measure_names",
           "reference_median", "with_session_block"]

#: Every block a head may read.
BLOCKS: tuple[str, ...] = ("level", "ripple", "scores", "measures", "local", "embedding", "session")
#: The blocks the ``session`` block takes relative to the session's median, in this order.
RELATIVE_BLOCKS: tuple[str, ...] = ("level", "ripple", "scores", "measures", "local")
SESSION_BLOCK = "session"


@dataclass
class Features:
    """Named blocks of per-micrograph columns (rows in the order of ``keys``)."""

    keys: list[str]
    blocks: dict[str, np.ndarray]
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, rows: np.ndarray) -> Features:
        """The same blocks for a subset of rows."""
        return Features([self.keys[i] for i in rows], {b: m[rows] for b, m in self.blocks.items()}, self.names)

    def matrix(self, blocks: Sequence[str]) -> np.ndarray:
        missing = [b for b in blocks if b not in self.blocks]
        if missing:
            raise KeyError(f"feature block(s) {', '.join(missing)} not loaded")
        return np.hstack([self.blocks[b] for b in blocks]).astype(np.float32, copy=False)


def default_measure_names(extra: pd.DataFrame | None = None) -> tuple[str, ...]:
    """The ``measures`` columns: every registry ``measure``, then the ``ctf`` features with a value in ``extra``."""
    return (*feature_names("measure"), *(ctf_columns_with_values(extra) if extra is not None else ()))


def _extra_values(keys: list[str], extra: pd.DataFrame | None, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Columns ``names`` of ``extra`` (catalogue rows with ``cache_key``) aligned with ``keys`` (NaN where absent)."""
    if extra is None or not len(names):
        return {}
    rows = extra.drop_duplicates("cache_key", keep="last").set_index("cache_key")
    out = {}
    for name in names:
        if name in rows.columns:
            col = pd.to_numeric(rows[name], errors="coerce")
            out[name] = np.array([col.get(k, np.nan) for k in keys], dtype=np.float32)
    return out


def load_features(keys: Sequence[str], cache_dir: Path, *, embeddings=None, measure_names: Sequence[str] | None = None,
                  extra: pd.DataFrame | None = None, progress: bool = False) -> Features:
    """The feature blocks of cache entries ``keys``.

    ``embeddings``: an :class:`~.embedding.EmbeddingStore` (missing vectors are computed first), or
    ``None`` for no ``embedding`` block. ``measure_names``: the ``measures`` columns (default:
    :func:`default_measure_names`); a name an entry lacks is NaN. ``extra``: catalogue rows
    (``cache_key`` and feature columns, e.g. ``pipeline.catalogue.query.micrograph_table``) for the
    features not cached with the image (the ``ctf`` group).
    """
    keys = [str(k) for k in keys]
    profiles, physical = [], []
    for key in keys:
        path = cache_path(Path(cache_dir), key)
        try:
            with np.load(path) as npz:
                profiles.append(spectrum_profile(npz["radial"], npz["radial_freq"]))
                physical.append(entry_measures(npz) or {})
        except FileNotFoundError as exc:
            raise CacheMissError(f"cache entry {key} is missing ({path}); re-run `micrograde ingest`") from exc
    if measure_names is None:
        measure_names = default_measure_names(extra)
    scores = feature_names("score")
    local = feature_names("local")
    n_prof = len(profile_names()) // 2
    prof = np.array(profiles, dtype=np.float32).reshape(len(keys), 2 * n_prof)
    table = {name: np.array([p.get(name, np.nan) for p in physical], dtype=np.float32)
             for name in (*scores, *measure_names, *local)}
    imported = set(feature_names("ctf"))
    table.update(_extra_values(keys, extra, [n for n in measure_names if n in imported]))
    names = {"level": profile_names()[:n_prof], "ripple": profile_names()[n_prof:], "scores": tuple(scores),
             "measures": tuple(measure_names), "local": tuple(local)}
    blocks = {
        "level": prof[:, :n_prof],
        "ripple": prof[:, n_prof:],
        "scores": np.stack([table[n] for n in scores], axis=1) if keys else np.zeros((0, len(scores))),
        "measures": (np.stack([table[n] for n in measure_names], axis=1) if keys and measure_names
                     else np.zeros((len(keys), len(measure_names)), np.float32)),
        "local": np.stack([table[n] for n in local], axis=1) if keys else np.zeros((0, len(local))),
    }
    if embeddings is not None:
        blocks["embedding"] = embeddings.load(keys, progress=progress)
        names["embedding"] = tuple(f"embedding_{i}" for i in range(blocks["embedding"].shape[1]))
    return Features(keys, {b: np.asarray(m, dtype=np.float32) for b, m in blocks.items()}, names)


def reference_median(feats: Features) -> np.ndarray:
    """The median of every :data:`RELATIVE_BLOCKS` column over the rows of ``feats`` (NaN where no row has a value)."""
    x = feats.matrix(RELATIVE_BLOCKS)
    if len(x) == 0:
        return np.full(x.shape[1], np.nan, dtype=np.float32)
    with warnings.catch_warnings():  # a column no micrograph has is NaN, as it is in the rows
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=0).astype(np.float32)


def with_session_block(feats: Features, medians: Sequence[np.ndarray] | np.ndarray) -> Features:
    """``feats`` with the ``session`` block: each row's :data:`RELATIVE_BLOCKS` columns minus ``medians[i]``, the
    :func:`reference_median` of row i's session (one row per micrograph, or one vector for every row)."""
    x = feats.matrix(RELATIVE_BLOCKS)
    ref = np.asarray(medians, dtype=np.float32)
    if ref.ndim == 1:
        ref = np.broadcast_to(ref, x.shape)
    if ref.shape != x.shape:
        raise ValueError(f"session medians have shape {ref.shape}, the physical columns {x.shape}")
    names = dict(feats.names)
    names[SESSION_BLOCK] = tuple(f"{n}-session" for b in RELATIVE_BLOCKS for n in feats.names.get(b, ()))
    return Features(feats.keys, {**feats.blocks, SESSION_BLOCK: (x - ref).astype(np.float32)}, names)
