"""Assessment outputs: the predictions table and every file of a report folder.

``prediction_table`` joins catalogue rows, model probabilities and consensus labels into the
``predictions.csv`` layout; ``write_outputs`` writes the report folder (report.html,
predictions.csv/.parquet, selected.star, selected.cs + .csg or selected_micrographs.csv).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from micrograde.pipeline.config import LABELS
from micrograde.pipeline.export.cryosparc import read_cs, select_cs, selection_paths_csv, write_cs, write_csg
from micrograde.pipeline.export.relion import read_star, selection_star, write_star
from micrograde.pipeline.features import ctf_columns_with_values, feature_names
from micrograde.pipeline.report.page import build_report, write_predictions, write_report

__all__ = ["prediction_table", "OutputFiles", "write_outputs"]

_META = ("detector", "grid_material", "grid_maker", "pixel_size", "voltage_kv")


def prediction_table(
    rows: pd.DataFrame,
    probs: np.ndarray,
    labels: Sequence[str],
    confidence: np.ndarray,
    consensus: pd.DataFrame | None = None,
    ctf_columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per micrograph: ``micrograph, label, p_good, p_medium, p_bad, confidence, session``, one
    column per registry feature (``ice_ring_score, thon_reach_A, ...``; a ``ctf`` feature only when some
    micrograph has a value), the micrograph's details, and ``consensus`` (empty where unlabelled).

    ``rows``: catalogue rows (``pipeline.query.micrograph_table``), aligned with ``probs``.
    ``ctf_columns``: the CTF features to include whatever these rows hold (one set for every chunk of a
    run: the assess flow asks the catalogue, ``pipeline.catalogue.query.features_present``); by default
    those some row has a value for (:func:`~micrograde.pipeline.features.ctf_columns_with_values`).
    """
    if len(rows) != len(probs):
        raise ValueError(f"{len(rows)} micrographs but {len(probs)} predictions")
    rows = rows.reset_index(drop=True)
    out = pd.DataFrame(
        {
            "micrograph": rows["path"],
            "label": list(labels),
            **{f"p_{lab}": np.asarray(probs)[:, i] for i, lab in enumerate(LABELS)},
            "confidence": np.asarray(confidence, dtype=float),
            "session": rows["session"],
            **{c: _column(rows, c) for c in _feature_columns(rows, ctf_columns)},
            "name": rows["name"],
            "micrograph_id": rows["id"],
            "acquired_at": pd.to_datetime(rows["acquired_at"], utc=True),
            **{c: rows[c] for c in _META},
            "cache_key": rows["cache_key"],
        }
    )
    cons = {} if consensus is None else dict(zip(consensus["micrograph_id"], consensus["label"], strict=False))
    out["consensus"] = [cons.get(i, "") for i in out["micrograph_id"]]
    return out


def _column(rows: pd.DataFrame, name: str) -> pd.Series:
    if name in rows.columns:
        return pd.to_numeric(rows[name], errors="coerce")
    return pd.Series(np.nan, index=rows.index, dtype=float)


def _feature_columns(rows: pd.DataFrame, ctf_columns: Sequence[str] | None = None) -> list[str]:
    """Every image feature; the CTF features ``ctf_columns`` (default: those some row has a value for)."""
    imported = set(feature_names("ctf"))
    ctf = set(ctf_columns_with_values(rows) if ctf_columns is None else ctf_columns)
    return [n for n in feature_names() if n not in imported or n in ctf]


@dataclass
class OutputFiles:
    report: Path
    predictions_csv: Path
    predictions_parquet: Path
    star: Path
    cryosparc: list[Path] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def write_outputs(
    report_dir: Path,
    predictions: pd.DataFrame,
    *,
    card: Mapping | None,
    rejects: pd.DataFrame,
    get_images: Callable,
    run_info: Mapping,
    warnings: Sequence = (),
    review_url: str | None = None,
    star: str | Path | None = None,
    cs: str | Path | None = None,
    include_medium: bool = False,
    get_masks: Callable | None = None,
    predictions_written: bool = False,
) -> OutputFiles:
    """Write every file of an assessment into ``report_dir`` (each atomically).

    ``predictions_written``: ``predictions.csv``/``.parquet`` are already there (streamed chunk by
    chunk, :class:`~micrograde.pipeline.report.stream.PredictionSink`); ``predictions`` then needs only
    the report columns.
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    if predictions_written:
        csv_path, pq_path = report_dir / "predictions.csv", report_dir / "predictions.parquet"
    else:
        csv_path, pq_path = write_predictions(report_dir, predictions)
    star_in = read_star(star) if star else None
    blocks, unmatched = selection_star(predictions, include_medium=include_medium, star=star_in)
    star_path = report_dir / "selected.star"
    write_star(star_path, blocks)
    cryosparc: list[Path] = []
    if cs:
        selected, unmatched_cs = select_cs(read_cs(cs), predictions, include_medium)
        write_cs(report_dir / "selected.cs", selected)
        write_csg(report_dir / "selected.csg", "selected.cs", selected)
        cryosparc += [report_dir / "selected.cs", report_dir / "selected.csg"]
        unmatched += [n for n in unmatched_cs if n not in unmatched]
    else:
        selection_paths_csv(report_dir / "selected_micrographs.csv", predictions, include_medium)
        cryosparc.append(report_dir / "selected_micrographs.csv")
    html = build_report(predictions, card=card, rejects=rejects, get_images=get_images, run_info=run_info,
                        warnings=list(warnings), review_url=review_url, get_masks=get_masks)
    report = write_report(report_dir, html)
    counts = {lab: int((predictions["label"] == lab).sum()) for lab in LABELS}
    return OutputFiles(report, csv_path, pq_path, star_path, cryosparc, unmatched, counts)
