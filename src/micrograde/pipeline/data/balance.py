"""Class balancing for good / medium / bad training sets (``micrograde train --balance``).

Strategies:

- ``oversample``: a weighted sampler draws each class equally often (weights 1 / class count);
  an epoch of ``n`` draws holds about ``n / k`` of each of the ``k`` classes present.
- ``undersample``: keep a random ``min count`` of every class present; each class then has
  exactly the smallest class's count.
- ``class-weights``: keep every example, weight the loss by ``n / (k * count)`` per class (the
  scikit-learn "balanced" weights) so every class contributes equally; an absent class gets 0.
- ``none``: nothing changes.

Labels may be given as names (``"good"``) or class indices in :data:`LABELS` order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from micrograde.pipeline.config import LABELS

__all__ = [
    "BALANCE_STRATEGIES",
    "BalanceError",
    "label_indices",
    "class_counts",
    "sample_weights",
    "undersample",
    "class_weights",
    "balanced_counts",
    "balance_report",
]

BALANCE_STRATEGIES: tuple[str, ...] = ("oversample", "undersample", "class-weights", "none")


class BalanceError(ValueError):
    """Unknown strategy or labels."""


def _check_strategy(strategy: str) -> None:
    if strategy not in BALANCE_STRATEGIES:
        raise BalanceError(f"unknown balance strategy {strategy!r}; choose one of {', '.join(BALANCE_STRATEGIES)}")


def label_indices(labels: Sequence | np.ndarray) -> np.ndarray:
    """Class indices (0 = good, 1 = medium, 2 = bad) from names or indices."""
    arr = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind in "iu":
        if arr.min() < 0 or arr.max() >= len(LABELS):
            raise BalanceError(f"class indices must be in 0..{len(LABELS) - 1}")
        return arr.astype(np.int64)
    out = []
    for v in arr:
        if v not in LABELS:
            raise BalanceError(f"unknown label {v!r}; labels are {', '.join(LABELS)}")
        out.append(LABELS.index(v))
    return np.asarray(out, dtype=np.int64)


def class_counts(labels: Sequence | np.ndarray) -> dict[str, int]:
    """Count per class, every class of :data:`LABELS` present (0 when absent)."""
    counts = np.bincount(label_indices(labels), minlength=len(LABELS))
    return {lab: int(c) for lab, c in zip(LABELS, counts, strict=False)}


def sample_weights(labels: Sequence | np.ndarray, strategy: str) -> np.ndarray | None:
    """Per-sample weights for a weighted random sampler (``oversample``), else ``None``."""
    _check_strategy(strategy)
    if strategy != "oversample":
        return None
    y = label_indices(labels)
    counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
    return (1.0 / counts[y]) if len(y) else np.zeros(0)


def undersample(indices: Sequence[int] | np.ndarray, labels: Sequence | np.ndarray, seed: int) -> np.ndarray:
    """The subset of ``indices`` (``labels`` aligned with them) with every present class cut to
    the smallest class's count, chosen at random by ``seed``; returned sorted."""
    idx = np.asarray(indices)
    y = label_indices(labels)
    if len(idx) != len(y):
        raise BalanceError(f"{len(idx)} indices but {len(y)} labels")
    if len(y) == 0:
        return idx
    counts = np.bincount(y, minlength=len(LABELS))
    keep_n = counts[counts > 0].min()
    rng = np.random.default_rng(seed)
    keep = [rng.choice(np.flatnonzero(y == c), size=keep_n, replace=False) for c in range(len(LABELS)) if counts[c]]
    return np.sort(idx[np.concatenate(keep)])


def class_weights(labels: Sequence | np.ndarray) -> np.ndarray:
    """Loss weights per class (length 3, LABELS order): ``n / (k * count)``, 0 for absent classes."""
    counts = np.bincount(label_indices(labels), minlength=len(LABELS)).astype(np.float64)
    present = counts > 0
    weights = np.zeros(len(LABELS))
    if present.any():
        weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def balanced_counts(labels: Sequence | np.ndarray, strategy: str) -> dict[str, float]:
    """The class counts a strategy promises for one epoch (``class-weights``: the weighted counts)."""
    _check_strategy(strategy)
    counts = class_counts(labels)
    n = sum(counts.values())
    present = [lab for lab in LABELS if counts[lab]]
    if strategy == "none" or not present:
        return {lab: float(c) for lab, c in counts.items()}
    if strategy == "oversample":
        return {lab: (n / len(present) if counts[lab] else 0.0) for lab in LABELS}
    if strategy == "undersample":
        m = min(counts[lab] for lab in present)
        return {lab: (float(m) if counts[lab] else 0.0) for lab in LABELS}
    w = class_weights(labels)
    return {lab: float(counts[lab] * w[i]) for i, lab in enumerate(LABELS)}


def _fmt(counts: Mapping[str, float]) -> str:
    def one(v: float) -> str:
        v = float(v)
        return str(int(v)) if v.is_integer() else f"{v:.1f}"

    return ", ".join(f"{lab} {one(counts.get(lab, 0))}" for lab in LABELS)


def balance_report(before: Mapping[str, float], after: Mapping[str, float], min_per_class: int = 10,
                   *, split_name: str = "train", strategy: str | None = None) -> list[str]:
    """Human lines: class counts before and after balancing, and a warning for every class with
    fewer than ``min_per_class`` examples in ``split_name`` (counted before balancing: copies made
    by oversampling or loss weights do not add information)."""
    how = f" ({strategy})" if strategy else ""
    lines = [f"{split_name} class counts before balancing: {_fmt(before)}",
             f"{split_name} class counts after balancing{how}: {_fmt(after)}"]
    for lab in LABELS:
        n = int(before.get(lab, 0))
        if n == 0:
            lines.append(f"WARNING: class '{lab}' has no examples in {split_name}: the model cannot learn it "
                         f"(label some '{lab}' micrographs)")
        elif n < min_per_class:
            lines.append(f"WARNING: class '{lab}' has only {n} example{'s' if n != 1 else ''} in {split_name} "
                         f"(need >= {min_per_class} to learn it)")
    return lines
