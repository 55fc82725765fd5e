"""View models of the report's sections other than the galleries and the out-of-fold estimate.

Each ``*_view`` function returns plain dicts and lists (numbers formatted, plots as inline
images) that the section's template in ``templates/`` lays out; see :mod:`.page` for the page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from micrograde.pipeline.config import LABELS
from micrograde.pipeline.data.metrics import classification_metrics, reliability_curve
from micrograde.pipeline.features import GROUPS, features_of
from micrograde.pipeline.report import plots
from micrograde.pipeline.report.render import NA, fmt, image

__all__ = [
    "summary_view",
    "rejects_view",
    "warnings_view",
    "scores_view",
    "timeline_view",
    "evaluation_view",
    "model_view",
    "labelled_rows",
    "evaluation_metrics",
]

MAX_REJECT_ROWS = 300


def _counts(series: Mapping | pd.Series, total: int) -> list[dict]:
    return [{"label": lab, "n": int(series.get(lab, 0))} for lab in LABELS] + [{"label": "total", "n": int(total)}]


def summary_view(predictions: pd.DataFrame, rejects: pd.DataFrame) -> dict:
    counts = predictions["label"].value_counts()
    total = len(predictions)
    sessions = predictions["session"].fillna("(no session)").astype(str)
    per = pd.crosstab(sessions, predictions["label"]).reindex(columns=list(LABELS), fill_value=0)
    plot = (
        image(plots.class_counts_bar(per, title="Micrographs per class and session"), "class counts per session")
        if len(per) > 1
        else None
    )
    return {
        "labels": list(LABELS),
        "cards": [
            {"label": lab, "n": int(counts.get(lab, 0)), "share": f"{(counts.get(lab, 0) / total if total else 0):.0%}"}
            for lab in LABELS
        ],
        "n_rejected": len(rejects),
        "overall": _counts(counts, total),
        "sessions": [{"name": str(name), "counts": _counts(r, r.sum())} for name, r in per.iterrows()],
        "plot": plot,
    }


def rejects_view(rejects: pd.DataFrame) -> dict:
    if rejects is None or rejects.empty:
        return {"n": 0}
    reasons = rejects["reason"].fillna("unknown").astype(str).value_counts()
    shown = rejects.head(MAX_REJECT_ROWS)
    return {
        "n": len(rejects),
        "reasons": [{"reason": k, "n": int(v)} for k, v in reasons.items()],
        "rows": [
            [str(r.get("path", "")), str(r.get("reason", "")), str(r.get("detail", "") or "")]
            for _, r in shown.iterrows()
        ],
        "more": len(rejects) - len(shown),
    }


def _warning_text(w: object) -> dict[str, str]:
    if isinstance(w, Mapping):
        return {"session": str(w.get("session", "")), "message": str(w.get("message", w))}
    if hasattr(w, "message"):
        return {"session": str(getattr(w, "session", "")), "message": str(w.message)}
    return {"session": "", "message": str(w)}


def warnings_view(warnings: Sequence) -> dict:
    return {"warnings": [_warning_text(w) for w in warnings or ()]}


_GROUP_ALT = {"score": "score histograms by class", "measure": "physical measure histograms by class",
              "local": "local statistic histograms by class",
              "ctf": "CTF estimate histograms by class"}


def _present(predictions: pd.DataFrame, name: str) -> bool:
    return name in predictions.columns and pd.to_numeric(predictions[name], errors="coerce").notna().any()


def scores_view(predictions: pd.DataFrame, card: Mapping | None = None) -> dict:
    """Histograms by class of every registry feature with values (one figure per group), and a table: per
    feature, its unit, which direction is worse, the model's training range (1st-99th percentile, from the
    card) with the share of micrographs outside it, and each class's median (10th to 90th percentile)."""
    training = (card or {}).get("training") or {}
    ranges = (card or {}).get("score_ranges") or training.get("score_ranges") or {}
    figures, rows = [], []
    for group in GROUPS:
        names = [f.name for f in features_of(group) if _present(predictions, f.name)]
        if not names:
            continue
        figures.append(image(plots.score_histograms(predictions, names, ranges=ranges), _GROUP_ALT[group]))
        for f in features_of(group):
            if f.name not in names:
                continue
            name = f.name
            values = pd.to_numeric(predictions[name], errors="coerce")
            bounds = ranges.get(name)
            if bounds is not None and len(bounds) == 2 and values.notna().any():
                lo, hi = (float(b) for b in bounds)
                known = values.dropna()
                outside = float(((known < lo) | (known > hi)).mean())
                trained = f"{fmt(lo)} to {fmt(hi)} ({outside:.0%} outside)"
            else:
                trained = NA
            worse = {"high": "higher", "low": "lower"}.get(f.worse or "", NA)
            cells = [name, f.unit or NA, worse, trained]
            for lab in LABELS:
                v = values[predictions["label"] == lab].dropna()
                cells.append(f"{fmt(v.median())} ({fmt(v.quantile(0.1))} to {fmt(v.quantile(0.9))})" if len(v) else NA)
            rows.append(cells)
    header = ["feature", "unit", "worse when", "training range",
              *(f"{lab}: median (10th to 90th pct)" for lab in LABELS)]
    return {"plots": figures, "header": header, "rows": rows}


def timeline_view(predictions: pd.DataFrame) -> dict:
    has_time = (
        "acquired_at" in predictions and pd.to_datetime(predictions["acquired_at"], errors="coerce").notna().any()
    )
    note = (
        "Fraction of good / medium / bad micrographs along each session's acquisition time"
        + ("" if has_time else " (no timestamps: ingest order instead)")
        + ". A rising red band is a quality collapse during the session."
    )
    return {"note": note, "plot": image(plots.class_fraction_over_time(predictions), "class fraction over time")}


def labelled_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    if "consensus" not in predictions.columns:
        return predictions.iloc[0:0]
    c = predictions["consensus"]
    return predictions.loc[c.notna() & c.astype(str).isin(LABELS)]


def _probs(rows: pd.DataFrame) -> np.ndarray:
    return rows[[f"p_{lab}" for lab in LABELS]].apply(pd.to_numeric, errors="coerce").fillna(0.0).to_numpy()


def evaluation_metrics(rows: pd.DataFrame) -> dict:
    """Metrics of predictions against consensus labels (:func:`.metrics.classification_metrics`)."""
    return classification_metrics(
        rows["consensus"].astype(str).to_numpy(), rows["label"].astype(str).to_numpy(), _probs(rows)
    )


def _scalar_metrics(metrics: Mapping) -> dict[str, object]:
    return {
        k: v
        for k, v in metrics.items()
        if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
    }


def evaluation_view(predictions: pd.DataFrame, metrics: Mapping | None) -> dict:
    rows = labelled_rows(predictions)
    if rows.empty:
        return {"n_labelled": 0}
    metrics = dict(metrics) if metrics else evaluation_metrics(rows)
    per_class = metrics.get("per_class")
    figures = []
    cm = metrics.get("confusion") or metrics.get("confusion_matrix")
    if cm is not None:
        png = plots.confusion_matrix_plot(np.asarray(cm), LABELS, title="Confusion matrix (this run)")
        figures.append(image(png, "confusion matrix"))
    curve = reliability_curve(_probs(rows), rows["consensus"].astype(str).to_numpy())
    png = plots.calibration_plot(curve, title="Calibration on these labelled micrographs")
    figures.append(image(png, "calibration curve"))
    return {
        "n_labelled": len(rows),
        "n_total": len(predictions),
        "metrics": [(k.replace("_", " "), fmt(v)) for k, v in _scalar_metrics(metrics).items()],
        "per_class": [
            [lab, fmt(v.get("precision")), fmt(v.get("recall")), fmt(v.get("f1")), fmt(v.get("support"))]
            for lab, v in (per_class.items() if isinstance(per_class, Mapping) else ())
            if isinstance(v, Mapping)
        ],
        "figures": figures,
    }


def _card_value(d: Mapping | None, *path: str, default: object = NA) -> object:
    """``d[path[0]][path[1]]...``, or ``default`` where a key is missing or the value is None."""
    cur: object = d
    for key in path:
        if not isinstance(cur, Mapping) or key not in cur:
            return default
        cur = cur[key]
    return default if cur is None else cur


def _model_summary(card: Mapping) -> list[tuple[str, str]]:
    classes = _card_value(card, "classes")
    counts = _card_value(card, "training", "class_counts", default={}) or {}
    if not isinstance(counts, dict):
        counts = {}
    summary: dict[str, object] = {
        "model id": _card_value(card, "id"),
        "created": _card_value(card, "created_at"),
        "backbone": _card_value(card, "backbone"),
        "weights": (
            f"{fmt(_card_value(card, 'weights', 'source'))} "
            f"(pretrained: {fmt(_card_value(card, 'weights', 'pretrained'))})"
        ),
        "classes": ", ".join(map(str, classes)) if isinstance(classes, list | tuple) else classes,
        "input": (
            f"{fmt(_card_value(card, 'input', 'layout'))}, {fmt(_card_value(card, 'input', 'size'))} px at "
            f"{fmt(_card_value(card, 'input', 'target_pixel_size'))} A/px"
        ),
        "training class counts": ", ".join(f"{k}: {v}" for k, v in counts.items()) or NA,
        "calibration temperature": _card_value(card, "calibration", "temperature"),
        "ECE before / after calibration": (
            f"{fmt(_card_value(card, 'calibration', 'ece_before'))} / "
            f"{fmt(_card_value(card, 'calibration', 'ece_after'))}"
        ),
    }
    metrics = _card_value(card, "metrics", default={})
    for k, v in _scalar_metrics(metrics if isinstance(metrics, Mapping) else {}).items():
        summary[f"validation {k.replace('_', ' ')}"] = v
    versions = _card_value(card, "versions", default={})
    if isinstance(versions, Mapping) and versions:
        summary["versions"] = ", ".join(f"{k} {v}" for k, v in versions.items())
    return [(k, fmt(v)) for k, v in summary.items()]


def _model_figures(card: Mapping, notes: list[str]) -> list[dict]:
    history = _card_value(card, "history", default=[])
    figures = []
    if isinstance(history, list) and history:
        figures.append(image(plots.training_curves(history), "training curves"))
    else:
        notes.append("The model card has no training history.")
    curve = _card_value(card, "calibration", "curve", default=None)
    if curve:
        try:
            png = plots.calibration_plot(curve, title="Calibration on the validation split")
            figures.append(image(png, "validation calibration"))
        except (ValueError, TypeError):
            notes.append("The calibration curve in the model card could not be read.")
    cm = _card_value(card, "metrics", "confusion", default=None) or _card_value(
        card, "metrics", "confusion_matrix", default=None
    )
    if cm:
        try:
            png = plots.confusion_matrix_plot(np.asarray(cm), LABELS, title="Confusion matrix (validation split)")
            figures.append(image(png, "validation confusion matrix"))
        except (ValueError, TypeError, IndexError):
            pass
    return figures


def model_view(card: Mapping | None) -> dict:
    if not card:
        return {"present": False}
    diversity = _card_value(card, "training", "diversity", default=[])
    cols = ["detector", "grid_material", "grid_maker", "pixel_size", *LABELS]
    ranges = _card_value(card, "score_ranges", default={})
    notes: list[str] = []
    figures = _model_figures(card, notes)
    return {
        "present": True,
        "id": fmt(_card_value(card, "id")),
        "summary": _model_summary(card),
        "diversity": (
            {
                "header": cols,
                "rows": [[fmt(rec.get(c)) for c in cols] for rec in diversity if isinstance(rec, Mapping)],
            }
            if isinstance(diversity, list) and diversity
            else None
        ),
        "ranges": [
            [k, fmt(v[0]), fmt(v[1])]
            for k, v in (ranges.items() if isinstance(ranges, Mapping) else ())
            if isinstance(v, list | tuple) and len(v) == 2
        ],
        "notes": notes,
        "figures": figures,
    }
