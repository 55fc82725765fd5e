"""Labels from calibrated probabilities under per-class minimum probabilities (numpy only).

:func:`apply_thresholds`: ``{"good": 0.7}`` means "only call good when
p_good >= 0.7". Rule: the classes are tried from the most to the least probable, and the first
whose probability reaches its threshold (0 when none is given) is the label. When no class
qualifies (every class has a threshold and none is met), the label is the most conservative
class, ``bad`` (the last of :data:`LABELS`): an uncertain micrograph is not selected. The
confidence is the calibrated probability of the chosen label.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from micrograde.pipeline.config import LABELS

__all__ = ["check_thresholds", "apply_thresholds"]


def check_thresholds(thresholds: Mapping[str, float] | None) -> dict[str, float]:
    """Validate ``{label: minimum probability}``; unknown labels or values outside [0, 1] raise."""
    out: dict[str, float] = {}
    for label, value in (thresholds or {}).items():
        if label not in LABELS:
            raise ValueError(f"threshold for unknown class {label!r}; classes are {', '.join(LABELS)}")
        v = float(value)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"threshold for {label} must be within [0, 1], got {value}")
        out[label] = v
    return out


def apply_thresholds(
    probs: np.ndarray, thresholds: Mapping[str, float] | None = None
) -> tuple[list[str], np.ndarray]:
    """Labels and confidences from probabilities (N, 3) under per-class minimum probabilities."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(LABELS):
        raise ValueError(f"probs must be (N, {len(LABELS)}), got {p.shape}")
    th = check_thresholds(thresholds)
    mins = np.array([th.get(label, 0.0) for label in LABELS])
    order = np.argsort(-p, axis=1, kind="stable")  # most probable first; ties keep LABELS order
    ok = np.take_along_axis(p, order, axis=1) >= np.take_along_axis(np.broadcast_to(mins, p.shape), order, axis=1)
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), -1)
    chosen = np.where(first >= 0, order[np.arange(len(p)), np.maximum(first, 0)], len(LABELS) - 1)
    return [LABELS[i] for i in chosen], p[np.arange(len(p)), chosen]
