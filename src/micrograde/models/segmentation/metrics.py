"""Agreement of label maps: intersection over union per class."""

from __future__ import annotations

import numpy as np

from micrograde.pipeline.masks import MASK_CLASSES

__all__ = ["confusion", "class_iou"]


def confusion(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(C, C) pixel counts, rows = truth code, columns = predicted code."""
    p, t = np.asarray(pred).ravel(), np.asarray(truth).ravel()
    if p.shape != t.shape:
        raise ValueError(f"prediction and truth differ in size: {np.asarray(pred).shape} vs {np.asarray(truth).shape}")
    n = len(MASK_CLASSES)
    return np.bincount(t.astype(np.int64) * n + p.astype(np.int64), minlength=n * n)[: n * n].reshape(n, n)


def class_iou(conf: np.ndarray) -> dict[str, float | None]:
    """IoU per class name from a confusion matrix (None where the class is in neither map)."""
    out: dict[str, float | None] = {}
    for c in MASK_CLASSES:
        tp = conf[c.code, c.code]
        union = conf[c.code].sum() + conf[:, c.code].sum() - tp
        out[c.name] = float(tp / union) if union else None
    return out
