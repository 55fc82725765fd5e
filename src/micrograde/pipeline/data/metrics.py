"""Classification and calibration metrics (scikit-learn and numpy; no torch).

Labels may be class indices into :data:`LABELS` or label strings. Every result is plain JSON:
floats, lists and dicts; an undefined value (e.g. ROC-AUC of a class absent from ``y_true``) is
``None``, never NaN, so model cards and reports stay valid JSON.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from micrograde.pipeline.config import LABELS

__all__ = [
    "as_indices",
    "classification_metrics",
    "expected_calibration_error",
    "reliability_curve",
]


def as_indices(y: Sequence | np.ndarray, labels: Sequence[str] = LABELS) -> np.ndarray:
    """Class indices (int64) from label strings or indices; unknown labels raise ValueError."""
    arr = np.asarray(y)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() >= len(labels)):
            raise ValueError(f"class index out of range 0..{len(labels) - 1}")
        return arr.astype(np.int64)
    lookup = {name: i for i, name in enumerate(labels)}
    try:
        return np.array([lookup[str(v)] for v in arr.ravel()], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"unknown label {exc.args[0]!r}; expected one of {list(labels)}") from None


def _clean(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def classification_metrics(
    y_true: Sequence | np.ndarray,
    y_pred: Sequence | np.ndarray,
    probs: np.ndarray | None = None,
    *,
    labels: Sequence[str] = LABELS,
) -> dict:
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall/F1/support, confusion
    matrix (rows = true, columns = predicted, in ``labels`` order) and, given ``probs`` (N, C),
    one-vs-rest ROC-AUC per class and their macro mean over classes present in ``y_true``.

    Macro-F1 averages over every class in ``labels`` (an absent class with no predictions
    counts as 0). Balanced accuracy averages recall over the classes present in ``y_true``.
    """
    t = as_indices(y_true, labels)
    p = as_indices(y_pred, labels)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} entries, y_pred {p.size}")
    idx = list(range(len(labels)))
    out: dict = {"labels": list(labels), "n": int(t.size)}
    if t.size == 0:
        raise ValueError("no samples to evaluate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["accuracy"] = float(accuracy_score(t, p))
        out["balanced_accuracy"] = float(balanced_accuracy_score(t, p))
        out["macro_f1"] = float(f1_score(t, p, labels=idx, average="macro", zero_division=0))
        prec, rec, f1, sup = precision_recall_fscore_support(t, p, labels=idx, zero_division=0)
    out["per_class"] = {
        name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(sup[i])}
        for i, name in enumerate(labels)
    }
    out["confusion_matrix"] = confusion_matrix(t, p, labels=idx).tolist()
    if probs is not None:
        out.update(_roc_auc(t, np.asarray(probs, dtype=np.float64), labels))
    return out


def _roc_auc(t: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> dict:
    if probs.shape != (t.size, len(labels)):
        raise ValueError(f"probs must have shape ({t.size}, {len(labels)}), got {probs.shape}")
    per: dict[str, float | None] = {}
    for i, name in enumerate(labels):
        positives = t == i
        if positives.all() or not positives.any() or not np.isfinite(probs[:, i]).all():
            per[name] = None  # undefined: one class only in y_true for this split
        else:
            per[name] = _clean(roc_auc_score(positives, probs[:, i]))
    defined = [v for v in per.values() if v is not None]
    return {"roc_auc": per, "roc_auc_macro": float(np.mean(defined)) if defined else None}


def reliability_curve(probs: np.ndarray, y_true: Sequence | np.ndarray, n_bins: int = 10) -> dict:
    """Confidence (max probability) binned into ``n_bins`` equal-width bins.

    Returns ``{"bin_edges", "confidence", "accuracy", "count"}``; empty bins have
    ``None`` confidence/accuracy. Plot accuracy against confidence; the diagonal is perfect.
    """
    probs = np.asarray(probs, dtype=np.float64)
    t = as_indices(y_true)
    if probs.ndim != 2 or probs.shape[0] != t.size:
        raise ValueError("probs must be (N, C) with N = len(y_true)")
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == t
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    confidence, accuracy, count = [], [], []
    for b in range(n_bins):
        sel = which == b
        count.append(int(sel.sum()))
        confidence.append(float(conf[sel].mean()) if sel.any() else None)
        accuracy.append(float(correct[sel].mean()) if sel.any() else None)
    return {"bin_edges": edges.tolist(), "confidence": confidence, "accuracy": accuracy, "count": count}


def expected_calibration_error(probs: np.ndarray, y_true: Sequence | np.ndarray, n_bins: int = 10) -> float:
    """ECE: sum over confidence bins of (bin share) * |accuracy - mean confidence|."""
    curve = reliability_curve(probs, y_true, n_bins)
    n = sum(curve["count"])
    if n == 0:
        raise ValueError("no samples")
    return float(
        sum(
            c / n * abs(a - m)
            for c, a, m in zip(curve["count"], curve["accuracy"], curve["confidence"], strict=True)
            if c
        )
    )
