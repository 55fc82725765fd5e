"""The assess run's report: one self-contained ``report.html`` plus ``predictions.csv``/``.parquet``.

The page has no JavaScript and loads nothing from the network: plots and images are inline
``data:`` URIs and the style is inline. The only outgoing links are the review links to the
labelling app. Counts are machine-readable (``data-count`` attributes on the summary cells), so a
test or a script can compare them with ``predictions.csv``.

Sections (each an element with this id): ``summary``, ``rejects``, ``warnings``,
``gallery-good``, ``gallery-medium``, ``gallery-bad``, ``scores``, ``timeline``, ``evaluation``,
``model``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from micrograde.pipeline.io.atomic import atomic_write_bytes, atomic_write_text
from micrograde.pipeline.config import LABELS
from micrograde.pipeline.report.gallery import ImageGetter, gallery_section
from micrograde.pipeline.report.html import STYLE, esc, fmt
from micrograde.pipeline.report.sections import (
    evaluation_section,
    model_section,
    rejects_section,
    scores_section,
    summary_section,
    timeline_section,
    warnings_section,
)

__all__ = [
    "SECTION_IDS",
    "PREDICTION_COLUMNS",
    "build_report",
    "write_report",
    "write_predictions",
    "prediction_frame",
]

SECTION_IDS: tuple[str, ...] = (
    "summary",
    "rejects",
    "warnings",
    "gallery-good",
    "gallery-medium",
    "gallery-bad",
    "scores",
    "timeline",
    "evaluation",
    "model",
)
#: Leading columns of predictions.csv, in order; other columns follow.
PREDICTION_COLUMNS: tuple[str, ...] = (
    "micrograph",
    "label",
    "p_good",
    "p_medium",
    "p_bad",
    "confidence",
    "session",
    "ice_ring_score",
    "thon_reach_A",
    "anisotropy",
    "contrast",
    "dark_fraction",
    "consensus",
    "name",
    "micrograph_id",
    "acquired_at",
    "detector",
    "grid_material",
    "grid_maker",
    "pixel_size",
    "cache_key",
)
_NAV = {
    "summary": "Summary",
    "rejects": "Rejects",
    "warnings": "Warnings",
    "gallery-good": "Good",
    "gallery-medium": "Medium",
    "gallery-bad": "Bad",
    "scores": "Scores",
    "timeline": "Timeline",
    "evaluation": "Evaluation",
    "model": "Model",
}
_REQUIRED = ("micrograph", "label", "p_good", "p_medium", "p_bad", "confidence")


def _check(predictions: pd.DataFrame) -> None:
    missing = [c for c in _REQUIRED if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {', '.join(missing)}")
    bad = sorted(set(predictions["label"].dropna().astype(str)) - set(LABELS))
    if bad:
        raise ValueError(f"predictions hold unknown label(s) {bad}; expected {LABELS}")


def _stamp(run_info: Mapping | None) -> str:
    info = dict(run_info or {})
    fields = [
        ("run", info.get("run_id")),
        ("created", info.get("created_at")),
        ("micrograde", info.get("micrograde_version")),
        ("model", info.get("model_id")),
        ("inputs digest", info.get("inputs_digest")),
    ]
    items = "".join(f"<span>{esc(k)}: <code>{esc(fmt(v))}</code></span>" for k, v in fields)
    cmd = info.get("command_line")
    if cmd:
        cmd = " ".join(map(str, cmd)) if isinstance(cmd, list | tuple) else str(cmd)
        items += f"<span>command: <code>{esc(cmd)}</code></span>"
    return f'<div class="stamp">{items}</div>'


def build_report(
    predictions: pd.DataFrame,
    *,
    card: Mapping | None,
    rejects: pd.DataFrame | None,
    get_images: ImageGetter | None,
    run_info: Mapping | None,
    metrics: Mapping | None = None,
    warnings: Sequence = (),
    review_url: str | None = None,
    gallery_per_class: int = 24,
) -> str:
    """The report page as one HTML string (see the module docstring for its contents).

    ``get_images(cache_key) -> (thumbnail uint8, spectrum float32)`` supplies the gallery images;
    a failing call shows a placeholder. ``metrics`` overrides the metrics computed from the
    ``consensus`` column. ``review_url`` is the labelling app's base URL; each gallery item links to
    ``{review_url}/micrograph/{micrograph_id}?review=1``.
    """
    _check(predictions)
    predictions = predictions.reset_index(drop=True)
    rejects = rejects if rejects is not None else pd.DataFrame(columns=["path", "reason", "detail"])
    run_id = (run_info or {}).get("run_id")
    title = f"micrograde report{f' - run {run_id}' if run_id else ''}"
    parts = [
        summary_section(predictions, rejects),
        rejects_section(rejects),
        warnings_section(list(warnings or ())),
        *(gallery_section(lab, predictions, get_images, review_url, gallery_per_class) for lab in LABELS),
        scores_section(predictions),
        timeline_section(predictions),
        evaluation_section(predictions, metrics),
        model_section(card),
    ]
    nav = "".join(f'<a href="#{sid}">{esc(_NAV[sid])}</a>' for sid in SECTION_IDS)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{esc(title)}</h1>{_stamp(run_info)}</header><nav>{nav}</nav>"
        f'<main data-total="{len(predictions)}">{"".join(parts)}</main></body></html>\n'
    )


def write_report(report_dir: str | os.PathLike, html: str) -> Path:
    """Write ``report_dir/report.html`` atomically; returns its path."""
    path = Path(report_dir) / "report.html"
    atomic_write_text(path, html)
    return path


def prediction_frame(predictions: pd.DataFrame) -> pd.DataFrame:
    """The predictions with :data:`PREDICTION_COLUMNS` first (those present), then the rest."""
    lead = [c for c in PREDICTION_COLUMNS if c in predictions.columns]
    rest = [c for c in predictions.columns if c not in lead]
    return predictions.loc[:, lead + rest].reset_index(drop=True)


def write_predictions(report_dir: str | os.PathLike, predictions: pd.DataFrame) -> tuple[Path, Path]:
    """Write ``predictions.csv`` and ``predictions.parquet`` in ``report_dir`` atomically."""
    _check(predictions)
    frame = prediction_frame(predictions)
    report_dir = Path(report_dir)
    csv_path, pq_path = report_dir / "predictions.csv", report_dir / "predictions.parquet"
    atomic_write_text(csv_path, frame.to_csv(index=False, lineterminator="\n"))
    buf = io.BytesIO()
    pq_frame = frame.copy()
    for col in pq_frame.columns:  # mixed object columns (e.g. None + str) as text for Arrow
        if pq_frame[col].dtype == object:
            pq_frame[col] = pq_frame[col].map(
                lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v)
            )
    pq_frame.to_parquet(buf, index=False)
    atomic_write_bytes(pq_path, buf.getvalue())
    return csv_path, pq_path
