"""The assess run's report: one self-contained ``report.html`` plus ``predictions.csv``/``.parquet``.

The page has no JavaScript and loads nothing from the network: plots and images are inline
``data:`` URIs and the style is inline. The only outgoing links are the review links to the
labelling app. Counts are machine-readable (``data-count`` attributes on the summary cells), so a
test or a script can compare them with ``predictions.csv``.

The page is laid out by the jinja2 templates in ``templates/`` (autoescaped: every value a user
or a file supplied is escaped); the functions of :mod:`.sections`, :mod:`.gallery` and :mod:`.oof`
compute what each section shows. Sections, in order (each an element with this id):
``summary``, ``out-of-fold`` (the model card's out-of-fold estimate), ``rejects``, ``warnings``,
``gallery-good``, ``gallery-medium``, ``gallery-bad``, ``scores``, ``timeline``, ``evaluation``
(against consensus labels in this run), ``model``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from micrograde.pipeline.config import LABELS
from micrograde.pipeline.features import feature_names
from micrograde.pipeline.io.atomic import atomic_write_bytes, atomic_write_text
from micrograde.pipeline.report.gallery import ImageGetter, gallery_view
from micrograde.pipeline.report.oof import oof_view
from micrograde.pipeline.report.render import fmt, render
from micrograde.pipeline.report.sections import (
    evaluation_view,
    model_view,
    rejects_view,
    scores_view,
    summary_view,
    timeline_view,
    warnings_view,
)

__all__ = [
    "SECTIONS",
    "SECTION_IDS",
    "PREDICTION_COLUMNS",
    "prediction_columns",
    "build_report",
    "write_report",
    "write_predictions",
    "prediction_frame",
    "check_predictions",
]

#: The page's sections in order: id, navigation name, template (in ``templates/``).
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("summary", "Summary", "summary.html.j2"),
    ("out-of-fold", "Out-of-fold", "oof.html.j2"),
    ("rejects", "Rejects", "rejects.html.j2"),
    ("warnings", "Warnings", "warnings.html.j2"),
    ("gallery-good", "Good", "gallery.html.j2"),
    ("gallery-medium", "Medium", "gallery.html.j2"),
    ("gallery-bad", "Bad", "gallery.html.j2"),
    ("scores", "Scores", "scores.html.j2"),
    ("timeline", "Timeline", "timeline.html.j2"),
    ("evaluation", "Evaluation", "evaluation.html.j2"),
    ("model", "Model", "model.html.j2"),
)
SECTION_IDS: tuple[str, ...] = tuple(sid for sid, _, _ in SECTIONS)
_LEADING = ("micrograph", "label", "p_good", "p_medium", "p_bad", "confidence", "session")
_TRAILING = ("consensus", "name", "micrograph_id", "acquired_at", "detector", "grid_material", "grid_maker",
             "pixel_size", "cache_key")


def prediction_columns() -> tuple[str, ...]:
    """Leading columns of predictions.csv, in order (other columns follow): the prediction, the session, every
    feature of the registry (pipeline/features.py; the CTF ones where imported), then the micrograph's details."""
    return (*_LEADING, *feature_names(), *_TRAILING)


#: :func:`prediction_columns` of the registry at import.
PREDICTION_COLUMNS: tuple[str, ...] = prediction_columns()
_REQUIRED = ("micrograph", "label", "p_good", "p_medium", "p_bad", "confidence")


def _check(predictions: pd.DataFrame) -> None:
    missing = [c for c in _REQUIRED if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {', '.join(missing)}")
    bad = sorted(set(predictions["label"].dropna().astype(str)) - set(LABELS))
    if bad:
        raise ValueError(f"predictions hold unknown label(s) {bad}; expected {LABELS}")


def check_predictions(predictions: pd.DataFrame) -> None:
    """Raise ``ValueError`` when ``predictions`` lacks a required column or holds an unknown label."""
    _check(predictions)


def _stamp(run_info: Mapping | None) -> list[tuple[str, str]]:
    info = dict(run_info or {})
    fields = [
        ("run", info.get("run_id")),
        ("created", info.get("created_at")),
        ("micrograde", info.get("micrograde_version")),
        ("model", info.get("model_id")),
        ("inputs digest", info.get("inputs_digest")),
    ]
    stamp = [(k, fmt(v)) for k, v in fields]
    if info.get("mask_model"):
        stamp.append(("mask model", str(info["mask_model"])))
    cmd = info.get("command_line")
    if cmd:
        stamp.append(("command", " ".join(map(str, cmd)) if isinstance(cmd, list | tuple) else str(cmd)))
    return stamp


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
    get_masks=None,
) -> str:
    """The report page as one HTML string (see the module docstring for its contents).

    ``get_images(cache_key) -> (thumbnail uint8, spectrum float32)`` supplies the gallery images;
    a failing call shows a placeholder. ``metrics`` overrides the metrics computed from the
    ``consensus`` column. ``review_url`` is the labelling app's base URL; each gallery item links to
    ``{review_url}/micrograph/{micrograph_id}?review=1``. ``card`` is the model card (its
    ``evaluation`` block fills the out-of-fold section). With a ``usable_area`` column (``--masks``) a
    Masks section follows the galleries; ``get_masks(cache_key) -> (thumbnail, mask)`` supplies its overlays.
    """
    _check(predictions)
    predictions = predictions.reset_index(drop=True)
    rejects = rejects if rejects is not None else pd.DataFrame(columns=["path", "reason", "detail"])
    views = {
        "summary": summary_view(predictions, rejects),
        "out-of-fold": oof_view(card),
        "rejects": rejects_view(rejects),
        "warnings": warnings_view(list(warnings or ())),
        **{
            f"gallery-{lab}": gallery_view(lab, predictions, get_images, review_url, gallery_per_class)
            for lab in LABELS
        },
        "scores": scores_view(predictions, card),
        "timeline": timeline_view(predictions),
        "evaluation": evaluation_view(predictions, metrics),
        "model": model_view(card),
    }
    sections = list(SECTIONS)
    if "usable_area" in predictions.columns:
        from micrograde.pipeline.report.masks import masks_view

        views["masks"] = masks_view(predictions, get_masks)
        sections.insert(SECTION_IDS.index("scores"), ("masks", "Masks", "masks.html.j2"))
    run_id = (run_info or {}).get("run_id")
    return render(
        "report.html.j2",
        {
            "title": f"micrograde report{f' - run {run_id}' if run_id else ''}",
            "stamp": _stamp(run_info),
            "total": len(predictions),
            "sections": [
                {"sid": sid, "nav": nav, "template": template, "view": views[sid]} for sid, nav, template in sections
            ],
        },
    )


def write_report(report_dir: str | os.PathLike, html: str) -> Path:
    """Write ``report_dir/report.html`` atomically; returns its path."""
    path = Path(report_dir) / "report.html"
    atomic_write_text(path, html)
    return path


def prediction_frame(predictions: pd.DataFrame) -> pd.DataFrame:
    """The predictions with :func:`prediction_columns` first (those present), then the rest."""
    lead = [c for c in prediction_columns() if c in predictions.columns]
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
