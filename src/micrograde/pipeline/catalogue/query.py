"""Read-only views of the catalogue as pandas tables (for splits, reports and status)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import select

from micrograde.pipeline.catalogue.schema import Micrograph, ModelRow, Reject, SessionRow
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.features import feature_names

__all__ = ["ModelNotFoundError", "latest_model_id", "micrograph_table", "micrograph_paths", "session_cache_keys",
           "spread_features", "features_present", "reject_table", "reject_counts"]

_SESSION_COLUMNS = ("microscope", "detector", "grid_material", "grid_maker", "dose")


def _by_id(stmt, ids: Sequence[int] | None):
    """``stmt`` over micrographs joined to their session, in id order, limited to ``ids`` when given."""
    stmt = stmt.join(SessionRow, Micrograph.session_id == SessionRow.id).order_by(Micrograph.id)
    return stmt if ids is None else stmt.where(Micrograph.id.in_([int(i) for i in ids]))


def micrograph_table(ws: Workspace, ids: list[int] | None = None, *,
                     cache_keys: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per micrograph (of ``ids``, and/or with one of ``cache_keys``, when given) with its session's
    metadata.

    Columns: every ``micrographs`` column (``id``, ``path``, ``name``, ``frame``, ``digest``,
    ``pixel_size``, ``cache_key``, ...) except ``features``, which is spread into one float column per
    registry feature (``ice_ring_score``, ..., ``ctf_resolution_A``, ...; NaN where a micrograph has
    no value), plus ``session`` (the session name) and the session's ``microscope``, ``detector``,
    ``grid_material``, ``grid_maker``, ``dose``.
    """
    cols = [c for c in Micrograph.__table__.columns if c.name != "features"]
    stmt = _by_id(select(*cols, SessionRow.name.label("session"), *(getattr(SessionRow, c) for c in _SESSION_COLUMNS)),
                  ids).add_columns(Micrograph.features)
    if cache_keys is not None:
        stmt = stmt.where(Micrograph.cache_key.in_([str(k) for k in cache_keys]))
    with ws.session() as s:
        rows = s.execute(stmt).mappings().all()
    names = [c.name for c in cols] + ["session", *_SESSION_COLUMNS]
    table = pd.DataFrame([{n: r[n] for n in names} for r in rows], columns=names)
    return spread_features(table, [r["features"] for r in rows])


def micrograph_paths(ws: Workspace, ids: Sequence[int] | None = None, *, sessions: Sequence[str] | None = None,
                     preprocess_key: str | None = None) -> pd.DataFrame:
    """``id``, ``path`` and ``session`` of micrographs (``ids``, and/or those of ``sessions`` ingested with
    ``preprocess_key``), in id order: a narrow query for choosing what to assess, without the features."""
    stmt = _by_id(select(Micrograph.id, Micrograph.path, SessionRow.name.label("session")), ids)
    if sessions is not None:
        stmt = stmt.where(SessionRow.name.in_(list(sessions)))
    if preprocess_key is not None:
        stmt = stmt.where(Micrograph.preprocess_key == preprocess_key)
    with ws.session() as s:
        rows = s.execute(stmt).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["id", "path", "session"])


def session_cache_keys(ws: Workspace, sessions: Sequence[str], *, limit: int,
                       preprocess_key: str | None = None) -> dict[str, list[str]]:
    """The cache keys of the first ``limit`` micrographs (in ingest order) of each of ``sessions`` that have a
    cache entry (made with ``preprocess_key``, when given): what stands for a session when a micrograph is
    measured against its session's median (:mod:`micrograde.models.grading.sessions`)."""
    out: dict[str, list[str]] = {}
    for name in sorted({str(n) for n in sessions}):
        stmt = _by_id(select(Micrograph.cache_key), None).where(SessionRow.name == name)
        stmt = stmt.where(Micrograph.cache_key.is_not(None))
        if preprocess_key is not None:
            stmt = stmt.where(Micrograph.preprocess_key == preprocess_key)
        with ws.session() as s:
            keys = s.execute(stmt.limit(4 * limit)).scalars().all()
        out[name] = list(dict.fromkeys(str(k) for k in keys))[:limit]  # one file ingested twice counts once
    return out


def spread_features(table: pd.DataFrame, features: list[dict | None]) -> pd.DataFrame:
    """``table`` with one float column per registry feature, from each row's ``features`` dict."""
    def value(values: dict | None, name: str) -> float:
        v = (values or {}).get(name)
        return np.nan if v is None else float(v)

    columns = {name: np.array([value(f, name) for f in features], dtype=float) for name in feature_names()}
    return pd.concat([table, pd.DataFrame(columns, index=table.index)], axis=1)


def features_present(ws: Workspace, ids: Sequence[int], names: Sequence[str], *, chunk_size: int = 1000) -> set[str]:
    """Which of feature ``names`` at least one micrograph of ``ids`` has a finite value for.

    Reads only the stored ``features`` of ``chunk_size`` micrographs at a time, and stops as soon
    as every name is found: memory does not grow with ``len(ids)``."""
    want, found = set(names), set[str]()
    ids = list(ids)
    for start in range(0, len(ids), max(1, int(chunk_size))):
        part = ids[start : start + chunk_size]
        with ws.session() as s:
            for values in s.execute(select(Micrograph.features).where(Micrograph.id.in_(part))).scalars():
                for name in want - found:
                    v = (values or {}).get(name)
                    if v is not None and math.isfinite(float(v)):
                        found.add(name)
        if found == want:
            break
    return found


def reject_table(ws: Workspace) -> pd.DataFrame:
    """The latest current reject per path (none once a later ingest of the path succeeded):
    ``path, reason, detail, created_at``."""
    with ws.session() as s:
        rows = s.execute(select(Reject).where(Reject.superseded_at.is_(None)).order_by(Reject.created_at, Reject.id)
                         ).scalars().all()
    df = pd.DataFrame(
        [{"path": r.path, "reason": r.reason, "detail": r.detail, "created_at": r.created_at} for r in rows],
        columns=["path", "reason", "detail", "created_at"],
    )
    return df.drop_duplicates("path", keep="last").reset_index(drop=True)


def reject_counts(ws: Workspace) -> dict[str, int]:
    """Number of distinct rejected paths per reason (latest current reason per path)."""
    df = reject_table(ws)
    return {str(k): int(v) for k, v in df["reason"].value_counts().sort_index().items()}


class ModelNotFoundError(LookupError):
    """No trained model (or not the one asked for) in the workspace."""


def latest_model_id(ws: Workspace, model_id: str | None = None) -> str:
    """``model_id`` when the workspace has it, else its most recent model; :class:`ModelNotFoundError` if none."""
    with ws.session() as s:
        if model_id:
            if s.get(ModelRow, model_id) is None:
                known = s.execute(select(ModelRow.id)).scalars().all()
                raise ModelNotFoundError(f"no model {model_id!r} in {ws.root} (have: {', '.join(known) or 'none'})")
            return model_id
        row = s.execute(select(ModelRow).order_by(ModelRow.created_at.desc())).scalars().first()
    if row is None:
        raise ModelNotFoundError(f"no trained model in {ws.root}: run `micrograde train --workspace {ws.root}` first")
    return row.id
