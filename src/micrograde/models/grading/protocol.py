"""Cross-validation for the regime facilities live in: 20-500 labels, 1-6 sessions, unbalanced classes.

Folds (:func:`make_folds`):

- three or more labelled sessions: leave one session out; each session is held out once, so every
  out-of-fold prediction is for a session the head never saw (as a new grid will be);
- one or two sessions: stratified K-fold over micrographs, stratified by session and label together
  (each fold holds a share of every session and class); K = 5, fewer with fewer than 20 labels or
  when no session-label pair has K micrographs (K is then the largest pair's count, at least 2).
  The note says that these figures are for new micrographs of the SAME sessions.

Every candidate head (:mod:`.heads`) is fitted in every fold; its out-of-fold (OOF) probabilities
are pooled over the folds and summarised (:func:`summarise`): macro-F1, accuracy, per-class recall
and precision, the confusion matrix, expected calibration error, log-loss, per session. The head
with the best OOF macro-F1 (:func:`choose`; ties go to the simpler head) is chosen only if it beats
the preferred head (:data:`PREFERRED`, the ``physics`` forest, which measures each micrograph
against its session too) by more than the noise, one bootstrap standard error of the paired
difference (:func:`choose_robust`); otherwise the preferred head ships. The choice, the temperature
and every figure come from OOF predictions only; the shipped head is then refitted on every label.

The chosen head's own OOF figures are optimistic: it was chosen because they were the best of
several, and with few labels the best of five noisy figures is well above what the choice delivers.
The estimate shipped as the honest one (:func:`selection_oof`) therefore repeats the choice inside
each fold: the head and temperature used for a fold's micrographs are chosen from the OOF
predictions of the OTHER folds only, so no micrograph's figure took part in choosing the head that
graded it. (Those other folds' predictions came from fits that saw the fold's labels, so the
correction is the usual cheap approximation of nested cross-validation, not a second full loop.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from micrograde.models.grading.features import Features
from micrograde.models.grading.heads import HEADS, fit_head
from micrograde.pipeline.config import LABELS
from micrograde.pipeline.data.metrics import classification_metrics, expected_calibration_error

__all__ = ["Folds", "Choice", "make_folds", "cross_validate", "summarise", "choose", "choose_robust", "selection_oof",
           "MAX_FOLDS", "PREFERRED"]

MAX_FOLDS = 5
#: The head that ships unless another beats it beyond the noise (docs/models.md, "Why the physics forest is
#: preferred"); before 2026-11-29 it was the ``blend``.
PREFERRED = "physics"
_EPS = 1e-6


@dataclass(frozen=True)
class Folds:
    protocol: str  # "leave-one-session-out" | "stratified-k-fold"
    note: str
    splits: tuple[tuple[np.ndarray, np.ndarray], ...]  # (train rows, held-out rows)
    group_by: str

    def __len__(self) -> int:
        return len(self.splits)


def make_folds(
    groups: Sequence | np.ndarray, y: Sequence[int] | np.ndarray, *, group_by: str = "session", seed: int = 0
) -> Folds:
    """Folds for ``y`` (class indices) grouped by ``groups`` (see the module docstring)."""
    groups = np.asarray([str(g) for g in groups], dtype=object)
    y = np.asarray(y, dtype=np.int64)
    names = sorted(set(groups))
    if len(names) >= 3:
        splits = tuple((np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in names)
        note = (f"{len(names)} labelled {group_by}s: each {group_by} is held out once (leave-one-{group_by}-out); "
                "every choice was made from the out-of-fold predictions")
        return Folds("leave-one-session-out", note, splits, group_by)
    k = int(max(2, min(MAX_FOLDS, len(y) // 4)))
    strata = np.array([f"{g}|{label}" for g, label in zip(groups, y, strict=True)])
    largest = max(np.unique(strata, return_counts=True)[1])
    if largest < 2:  # every session-label pair is a single micrograph: stratify by label alone
        strata = np.array([str(label) for label in y])
        largest = max(np.unique(strata, return_counts=True)[1])
    k = int(max(2, min(k, largest)))  # scikit-learn refuses more folds than the largest stratum has members
    with warnings.catch_warnings():  # a stratum smaller than k only makes that stratum uneven
        warnings.simplefilter("ignore", UserWarning)
        splits = tuple((tr, te) for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(y, strata))
    what = f"only {len(names)} labelled {group_by}" + ("s" if len(names) > 1 else "")
    note = (f"{what}: stratified {k}-fold cross-validation within the {group_by}"
            f"{'s' if len(names) > 1 else ''} (by {group_by} and label); the figures are for new micrographs of "
            f"the same {group_by}{'s' if len(names) > 1 else ''}, a new {group_by} may differ")
    return Folds("stratified-k-fold", note, splits, group_by)


def cross_validate(feats: Features, y: np.ndarray, folds: Folds, heads: Sequence[str], *, seed: int = 0,
                   on_fold: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Out-of-fold probabilities (N, 3) of every head in ``heads``."""
    y = np.asarray(y, dtype=np.int64)
    oof = {name: np.full((len(y), len(LABELS)), np.nan) for name in heads}
    for i, (train, held) in enumerate(folds.splits):
        part, rest = feats.take(train), feats.take(held)
        fitted: dict = {}  # a blend reuses its members' fits of this fold
        for name in heads:
            fitted[name] = fit_head(name, part, y[train], seed=seed, fitted=fitted)
            oof[name][held] = fitted[name].predict_proba(rest)
        if on_fold is not None:
            on_fold(i + 1, len(folds))
    return oof


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(p, _EPS, 1.0)
    return float(log_loss(y, q / q.sum(axis=1, keepdims=True), labels=list(range(len(LABELS)))))


def summarise(y: np.ndarray, probs: np.ndarray, groups: Sequence | np.ndarray | None = None) -> dict:
    """OOF figures of one head (plain JSON): macro-F1, accuracy, balanced accuracy, ECE, log-loss,
    per-class recall and precision, confusion matrix (rows = label, columns = predicted), per session."""
    y = np.asarray(y, dtype=np.int64)
    pred = probs.argmax(axis=1)
    m = classification_metrics(y, pred)
    out = {
        "labels": list(LABELS),
        "n": int(len(y)),
        "macro_f1": m["macro_f1"],
        "accuracy": m["accuracy"],
        "balanced_accuracy": m["balanced_accuracy"],
        "ece": expected_calibration_error(probs, y),
        "log_loss": _log_loss(y, probs),
        "recall": {c: m["per_class"][c]["recall"] if m["per_class"][c]["support"] else None for c in LABELS},
        "precision": {c: m["per_class"][c]["precision"] for c in LABELS},
        "confusion_matrix": m["confusion_matrix"],
    }
    if groups is not None:
        groups = np.asarray([str(g) for g in groups], dtype=object)
        per = []
        for g in sorted(set(groups)):
            rows = groups == g
            mg = classification_metrics(y[rows], pred[rows])
            per.append({"session": g, "n": int(rows.sum()), "macro_f1": mg["macro_f1"], "accuracy": mg["accuracy"]})
        out["per_session"] = per
    return out


def choose(summaries: dict[str, dict]) -> str:
    """The head with the best OOF macro-F1 (to 3 decimals); ties: lower log-loss, then the simpler head (registry
    order; the fine-tuned network, the costliest, last)."""
    order = [*HEADS, "finetune"]
    return min(summaries, key=lambda n: (-round(summaries[n]["macro_f1"] or 0.0, 3), round(summaries[n]["log_loss"], 3),
                                         order.index(n)))


def selection_oof(y: np.ndarray, oof: dict[str, np.ndarray], folds: Folds, *,
                  calibrate: bool = True) -> tuple[np.ndarray, list[str]]:
    """Out-of-fold probabilities of the whole procedure (choice of head and temperature included), and
    the head chosen for each fold: for fold k, :func:`choose` and the temperature see only the rows
    outside fold k (see the module docstring)."""
    from micrograde.models.calibration import apply_temperature, fit_temperature

    y = np.asarray(y, dtype=np.int64)
    out = np.full((len(y), len(LABELS)), np.nan)
    picks: list[str] = []
    for train, held in folds.splits:
        head = choose_robust(y[train], {name: p[train] for name, p in oof.items()}).head
        probs = oof[head][held]
        if calibrate:
            log_p = np.log(np.clip(probs, _EPS, 1.0))
            t = fit_temperature(np.log(np.clip(oof[head][train], _EPS, 1.0)), y[train])
            probs = apply_temperature(log_p, t)
        out[held] = probs
        picks.append(head)
    return out, picks


def _macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int = len(LABELS)) -> float:
    """Macro-F1 over ``n_classes`` (an absent class with no predictions counts 0), from a confusion count."""
    cm = np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(cm).astype(float)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    return float(np.mean(np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)))


@dataclass(frozen=True)
class Choice:
    """What :func:`choose_robust` chose: ``head``; the best head by OOF macro-F1 (``best``), its lead over
    the preferred head (``gap``) and one bootstrap standard error of that lead (``noise``); the last
    two are None when the best head is the preferred one or there is none."""

    head: str
    best: str
    gap: float | None = None
    noise: float | None = None

    @property
    def note(self) -> str | None:
        """A sentence for the training summary when the preferred head was kept over a better-looking one."""
        if self.head == self.best or self.gap is None:
            return None
        return (f"{self.head} ships: {self.best} led it by {self.gap:.3f} out-of-fold macro-F1, within the noise "
                f"(one bootstrap standard error of the lead: {self.noise:.3f})")


def choose_robust(y: np.ndarray, oof: dict[str, np.ndarray], *, prefer: str = PREFERRED, floor: str = "baseline",
                  n_boot: int = 200, seed: int = 0, summaries: dict[str, dict] | None = None) -> Choice:
    """:func:`choose`, but ``prefer`` is kept unless the best head beats it by more than the noise: the
    best head's OOF macro-F1 must exceed ``prefer``'s by more than one bootstrap standard error of the
    paired difference (``n_boot`` resamples of the labelled micrographs). ``prefer`` is never kept
    below ``floor`` (the baseline): a shipped head is never worse than the baseline out of fold.

    ``summaries``: :func:`summarise` of every head's ``oof`` on these ``y``, when the caller has them already."""
    y = np.asarray(y, dtype=np.int64)
    if summaries is None:
        summaries = {name: summarise(y, p) for name, p in oof.items()}
    elif set(summaries) != set(oof):
        raise ValueError(f"summaries are for {sorted(summaries)}, the predictions for {sorted(oof)}")
    best = choose(summaries)
    if prefer not in oof or best == prefer:
        return Choice(best, best)
    if floor in summaries and (summaries[prefer]["macro_f1"] or 0.0) < (summaries[floor]["macro_f1"] or 0.0):
        return Choice(best, best)
    a, b = oof[best].argmax(axis=1), oof[prefer].argmax(axis=1)
    gap = _macro_f1(y, a) - _macro_f1(y, b)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        diffs.append(_macro_f1(y[i], a[i]) - _macro_f1(y[i], b[i]))
    noise = float(np.std(diffs, ddof=1))
    return Choice(best if gap > noise else prefer, best, gap, noise)
