"""The labelling queue: what an annotator sees next.

Order: micrographs this annotator has not labelled first, then the ones they have. Among the
unlabelled, once a model has graded micrographs, the least confident prediction comes first
(active learning); micrographs without a prediction follow in catalogue order. Labelled ones
come last in catalogue order, so arrows can still revisit them.

Model confidence comes from a callable returning ``micrograph_id, confidence``; by default the
``predictions.csv`` (columns ``micrograph,confidence,...``, micrograph = the path as ingested) of
the most recent assessment run is read (by the time the run was recorded, so a rolling session
report and a one-off assessment compete on when they were written, not on their folder names),
matched to catalogue ids by path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from micrograde.pipeline.catalogue.schema import AssessRun, Micrograph
from micrograde.pipeline.catalogue.workspace import Workspace

__all__ = ["ModelProbs", "latest_predictions_file", "predictions_confidence", "build_queue"]

ModelProbs = Callable[[], pd.DataFrame]


def latest_predictions_file(ws: Workspace) -> Path | None:
    """The ``predictions.csv`` of the most recent assessment run whose folder still has one, or None."""
    with ws.session() as s:
        folders = s.execute(select(AssessRun.report_dir).order_by(AssessRun.created_at.desc(), AssessRun.id.desc())
                            ).scalars().all()
    for folder in folders:
        path = Path(folder) / "predictions.csv"
        if path.is_file():
            return path
    return None


def predictions_confidence(ws: Workspace) -> pd.DataFrame:
    """``micrograph_id, confidence`` from the latest predictions file (empty if none or unreadable)."""
    empty = pd.DataFrame({"micrograph_id": pd.Series(dtype=int), "confidence": pd.Series(dtype=float)})
    path = latest_predictions_file(ws)
    if path is None:
        return empty
    try:
        pred = pd.read_csv(path, usecols=["micrograph", "confidence"])
    except (ValueError, OSError, pd.errors.ParserError):
        return empty
    with ws.session() as s:
        ids = {str(p): int(i) for i, p in s.execute(select(Micrograph.id, Micrograph.path))}
    pred["micrograph_id"] = pred["micrograph"].astype(str).map(ids)
    pred = pred.dropna(subset=["micrograph_id", "confidence"])
    pred["micrograph_id"] = pred["micrograph_id"].astype(int)
    return pred[["micrograph_id", "confidence"]].drop_duplicates("micrograph_id", keep="last")


def build_queue(all_ids: list[int], labelled: set[int], confidence: pd.DataFrame | None = None) -> list[int]:
    """Queue order (see module docstring) of ``all_ids`` for an annotator who labelled ``labelled``."""
    conf: dict[int, float] = {}
    if confidence is not None and not confidence.empty:
        conf = {
            int(m): float(c)
            for m, c in zip(confidence["micrograph_id"], confidence["confidence"], strict=False)
            if c == c
        }
    todo = [i for i in all_ids if i not in labelled]
    scored = sorted((i for i in todo if i in conf), key=lambda i: (conf[i], i))
    unscored = [i for i in todo if i not in conf]
    done = [i for i in all_ids if i in labelled]
    return scored + unscored + done
