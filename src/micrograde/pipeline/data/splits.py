"""Train / validation / test splits that never leak a group across sides.

Micrographs of one session (or one grid, one grid maker: any catalogue column) are neighbours:
they share ice, defocus range and detector, so a model that has seen some of them will look
better on the others than on a new session. The split therefore keeps every group whole and,
within that constraint, stratifies by label (scikit-learn ``StratifiedGroupKFold``).

How the fractions are met: the test side is one fold of ``round(1 / test_fraction)`` folds of the
groups, the validation side one fold of ``round((1 - test_fraction) / val_fraction)`` folds of
the rest; folds are capped at the number of groups. So with few groups the sides are as near the
fractions as whole groups allow, and :attr:`Split.note` says what happened.

Decisions where groups run short:

- one group: a stratified split without groups (``StratifiedShuffleSplit``), and the note says
  that validation micrographs share a session with training ones;
- two groups: one for training, one for validation; the test side is EMPTY (note says so);
- a side would lack a class: allowed (the balance report warns), never silently moved.

Missing group values count as one group ``"(missing)"``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

from micrograde.pipeline.config import LABELS, FrozenModel

__all__ = ["SplitConfig", "Split", "SplitError", "SplitLeakError", "make_split", "check_no_leak", "split_counts",
           "MISSING_GROUP"]

MISSING_GROUP = "(missing)"


class SplitError(ValueError):
    """The table cannot be split as asked (missing column, unknown labels, too few rows)."""


class SplitLeakError(SplitError):
    """A group (session, grid...) has micrographs on two sides of a split."""


class SplitConfig(FrozenModel):
    group_by: str = Field("session", description="catalogue column whose values must not straddle sides")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, ge=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave something to train on")
        return self


@dataclass(frozen=True)
class Split:
    """Row POSITIONS (``table.iloc``) of each side, sorted."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    group_by: str
    grouped: bool
    note: str

    def sides(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _groups(table: pd.DataFrame, group_by: str) -> np.ndarray:
    if group_by not in table.columns:
        raise SplitError(f"cannot group by {group_by!r}: no such column (have: {', '.join(map(str, table.columns))})")
    col = table[group_by]
    return np.array([MISSING_GROUP if pd.isna(v) else str(v) for v in col], dtype=object)


def _label_index(table: pd.DataFrame, label_col: str) -> np.ndarray:
    if label_col not in table.columns:
        raise SplitError(f"the table has no label column {label_col!r}")
    bad = sorted({str(v) for v in table[label_col] if v not in LABELS})
    if bad:
        raise SplitError(
            f"labels must be one of {', '.join(LABELS)}; found {', '.join(bad)} (drop unlabelled rows first)"
        )
    return np.array([LABELS.index(v) for v in table[label_col]], dtype=np.int64)


def _n_folds(fraction: float, n_groups: int) -> int:
    return int(min(max(round(1.0 / fraction), 2), n_groups))


def _group_fold(
    positions: np.ndarray, y: np.ndarray, groups: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held) positions: one fold of StratifiedGroupKFold, the fold nearest ``fraction``."""
    n_groups = len(set(groups[positions]))
    k = _n_folds(fraction, n_groups)
    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has fewer members than n_splits"
        warnings.simplefilter("ignore", UserWarning)
        folds = list(sgkf.split(positions, y[positions], groups[positions]))
    # the fold nearest the wanted size AND class mix, then refined by moving whole groups
    wanted = fraction * np.bincount(y[positions], minlength=len(LABELS))
    rest, held = min(folds, key=lambda f: _misfit(np.bincount(y[positions[f[1]]], minlength=len(LABELS)), wanted))
    held_groups = _refine(set(groups[positions[held]]), positions, y, groups, wanted)
    mask = np.isin(groups[positions], list(held_groups))
    return positions[~mask], positions[mask]


def _misfit(counts: np.ndarray, wanted: np.ndarray) -> float:
    diff = np.abs(counts - wanted)
    return float(diff.max() + 1e-3 * diff.sum())


def _refine(held: set, positions: np.ndarray, y: np.ndarray, groups: np.ndarray, wanted: np.ndarray,
            max_moves: int = 100) -> set:
    """Greedy improvement of the held-out groups: swap, add or drop one group while that brings
    the held side's class counts nearer ``wanted``; a side never becomes empty, nor everything."""
    g, inverse = np.unique(groups[positions], return_inverse=True)
    counts = np.zeros((len(g), len(LABELS)))
    np.add.at(counts, (inverse, y[positions]), 1)
    index = {name: i for i, name in enumerate(g)}
    inside = np.zeros(len(g), dtype=bool)
    inside[[index[h] for h in held]] = True
    current = counts[inside].sum(axis=0)
    for _ in range(max_moves):
        best, move = _misfit(current, wanted), None
        ins, outs = np.flatnonzero(inside), np.flatnonzero(~inside)
        # one representative group per distinct class-count vector keeps this cheap
        ins_u = {tuple(counts[i]): int(i) for i in ins}
        outs_u = {tuple(counts[i]): int(i) for i in outs}
        candidates: list[tuple[int | None, int | None]] = [(i, None) for i in ins_u.values() if len(ins) > 1]
        candidates += [(None, o) for o in outs_u.values() if len(outs) > 1]
        candidates += [(i, o) for i in ins_u.values() for o in outs_u.values()]
        for i, o in candidates:
            v = current - (counts[i] if i is not None else 0) + (counts[o] if o is not None else 0)
            m = _misfit(v, wanted)
            if m < best - 1e-9:
                best, move = m, (i, o)
        if move is None:
            break
        i, o = move
        if i is not None:
            inside[i] = False
            current = current - counts[i]
        if o is not None:
            inside[o] = True
            current = current + counts[o]
    return {g[i] for i in np.flatnonzero(inside)}


def _stratified(
    positions: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(rest, held, stratified?) without groups."""
    n_held = int(round(fraction * len(positions)))
    if n_held == 0 or n_held >= len(positions):
        return positions, positions[:0], True
    counts = np.bincount(y[positions], minlength=len(LABELS))
    present = counts[counts > 0]
    can_stratify = present.min() >= 2 and n_held >= len(present) and len(positions) - n_held >= len(present)
    if can_stratify:
        sss = StratifiedShuffleSplit(n_splits=1, test_size=n_held, random_state=seed)
        rest, held = next(sss.split(positions, y[positions]))
    else:
        perm = np.random.default_rng(seed).permutation(len(positions))
        rest, held = perm[n_held:], perm[:n_held]
    return positions[rest], positions[held], bool(can_stratify)


def make_split(table: pd.DataFrame, cfg: SplitConfig, *, label_col: str = "label") -> Split:
    """Split labelled rows into train / val / test, grouped by ``cfg.group_by``, stratified by label.

    Reproducible: the same table (same row order) and seed give the same split.
    """
    if len(table) < 2:
        raise SplitError(f"need at least 2 labelled micrographs to split, have {len(table)}")
    y = _label_index(table, label_col)
    groups = _groups(table, cfg.group_by)
    positions = np.arange(len(table))
    n_groups = len(set(groups))
    empty = positions[:0]

    if n_groups == 1:
        rest, test, s1 = (
            _stratified(positions, y, cfg.test_fraction, cfg.seed) if cfg.test_fraction else (positions, empty, True)
        )
        val_frac = cfg.val_fraction / (1.0 - cfg.test_fraction)
        train, val, s2 = _stratified(rest, y, val_frac, cfg.seed + 1)
        how = "stratified split" if (s1 and s2) else "random split (a class has fewer than 2 examples, cannot stratify)"
        note = (f"only one {cfg.group_by} ({groups[0]!r}): {how} without groups; validation micrographs share "
                f"a {cfg.group_by} with training ones, so validation scores are optimistic")
        return Split(np.sort(train), np.sort(val), np.sort(test), cfg.group_by, False, note)

    if n_groups == 2 or cfg.test_fraction == 0:
        rest, test = positions, empty
        reason = (f"only 2 {cfg.group_by} groups: one for training, one for validation, no test side"
                  if n_groups == 2 and cfg.test_fraction > 0 else "no test side asked for")
    else:
        rest, test = _group_fold(positions, y, groups, cfg.test_fraction, cfg.seed)
        reason = ""
    val_frac = cfg.val_fraction / (1.0 - cfg.test_fraction) if len(test) else cfg.val_fraction
    train, val = _group_fold(rest, y, groups, val_frac, cfg.seed + 1)
    counts = {name: len(set(groups[side])) for name, side in (("train", train), ("val", val), ("test", test))}
    note = (f"grouped by {cfg.group_by}: {n_groups} groups -> train {counts['train']}, val {counts['val']}, "
            f"test {counts['test']} groups ({len(train)}/{len(val)}/{len(test)} micrographs)")
    if reason:
        note += f"; {reason}"
    split = Split(np.sort(train), np.sort(val), np.sort(test), cfg.group_by, True, note)
    check_no_leak(table, split, cfg.group_by)
    return split


def check_no_leak(table: pd.DataFrame, split: Split, group_by: str) -> None:
    """Raise :class:`SplitLeakError` when a row or a ``group_by`` value sits on two sides.

    A split made by the one-group fallback (``split.grouped`` False for this ``group_by``) is
    checked for shared rows only: its single group is on every side by construction (its note
    says so).
    """
    groups = _groups(table, group_by)
    check_groups = split.grouped or split.group_by != group_by
    sides = {name: idx for name, idx in split.sides().items() if len(idx)}
    names = list(sides)
    problems = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rows = np.intersect1d(sides[a], sides[b])
            if len(rows):
                problems.append(f"{len(rows)} micrograph(s) on both {a} and {b}")
            shared = sorted(set(groups[sides[a]]) & set(groups[sides[b]])) if check_groups else []
            if shared:
                shown = ", ".join(repr(g) for g in shared[:10]) + (" ..." if len(shared) > 10 else "")
                problems.append(f"{group_by} {shown} on both {a} and {b}")
    if problems:
        raise SplitLeakError("split leaks: " + "; ".join(problems))


def split_counts(table: pd.DataFrame, split: Split, *, label_col: str = "label") -> dict[str, dict[str, int]]:
    """Class counts per side: ``{"train": {"good": n, "medium": n, "bad": n}, ...}``."""
    labels = table[label_col].to_numpy()
    return {name: {lab: int((labels[idx] == lab).sum()) for lab in LABELS} for name, idx in split.sides().items()}
