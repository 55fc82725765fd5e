"""Grouped, stratified, reproducible splits that never leak a group across sides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers_data import labelled_table

from micrograde.pipeline.config import LABELS
from micrograde.pipeline.data.splits import (
    Split,
    SplitConfig,
    SplitError,
    SplitLeakError,
    check_no_leak,
    make_split,
    split_counts,
)


def _groups_of(table: pd.DataFrame, idx: np.ndarray, col: str) -> set:
    return set(table[col].iloc[idx])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("group_by", ["session", "grid_maker"])
def test_no_group_on_two_sides_and_every_row_once(seed: int, group_by: str) -> None:
    rng = np.random.default_rng(seed)
    table = labelled_table(list(rng.integers(1, 12, 40)), seed=seed)
    table["grid_maker"] = [f"maker{int(s[1:]) % 7}" for s in table["session"]]
    split = make_split(table, SplitConfig(group_by=group_by, seed=seed))
    assert split.grouped
    sides = [split.train, split.val, split.test]
    assert sorted(np.concatenate(sides).tolist()) == list(range(len(table)))
    for i in range(3):
        for j in range(i + 1, 3):
            assert not _groups_of(table, sides[i], group_by) & _groups_of(table, sides[j], group_by)
    check_no_leak(table, split, group_by)  # does not raise


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_stratified_within_one_per_class_with_many_small_groups(seed: int) -> None:
    table = labelled_table([2] * 150, seed=10 + seed)
    split = make_split(table, SplitConfig(seed=seed))
    labels = table["label"].to_numpy()
    frac = {c: float((labels == c).mean()) for c in LABELS}
    for side in (split.val, split.test):
        assert 0.15 * len(table) <= len(side) <= 0.25 * len(table)
        for c in LABELS:
            expected = len(side) * frac[c]
            assert abs(int((labels[side] == c).sum()) - expected) <= 1.0, (c, expected)


def test_reproducible_by_seed() -> None:
    table = labelled_table([3] * 60, seed=5)
    a = make_split(table, SplitConfig(seed=7))
    b = make_split(table, SplitConfig(seed=7))
    c = make_split(table, SplitConfig(seed=8))
    for x, y in zip((a.train, a.val, a.test), (b.train, b.val, b.test), strict=False):
        np.testing.assert_array_equal(x, y)
    assert not all(
        np.array_equal(x, y) for x, y in zip((a.train, a.val, a.test), (c.train, c.val, c.test), strict=False)
    )


def test_one_group_falls_back_to_stratified_split_and_says_so() -> None:
    table = labelled_table([200], seed=1)
    split = make_split(table, SplitConfig(seed=0))
    assert not split.grouped
    assert "only one session" in split.note and "stratified" in split.note
    labels = table["label"].to_numpy()
    for side in (split.val, split.test):
        assert len(side) == 40
        for c in LABELS:
            assert abs(int((labels[side] == c).sum()) - 40 * (labels == c).mean()) <= 1.0
    check_no_leak(table, split, "session")  # the one group is expected on every side


def test_two_groups_give_train_and_val_but_no_test() -> None:
    table = labelled_table([30, 20], seed=2)
    split = make_split(table, SplitConfig(seed=0))
    assert len(split.test) == 0 and len(split.train) and len(split.val)
    assert "only 2 session groups" in split.note and "no test side" in split.note
    assert not _groups_of(table, split.train, "session") & _groups_of(table, split.val, "session")


def test_missing_group_values_form_one_group() -> None:
    table = labelled_table([5] * 20, seed=3)
    table.loc[table.index[:12], "session"] = None
    split = make_split(table, SplitConfig(seed=1))
    sides_with_missing = [name for name, idx in split.sides().items() if table["session"].iloc[idx].isna().any()]
    assert len(sides_with_missing) == 1


def test_leak_is_refused_and_named() -> None:
    table = labelled_table([4, 4, 4], seed=0)
    bad = Split(train=np.array([0, 1, 2, 4]), val=np.array([3, 5, 6, 7]), test=np.array([8, 9, 10, 11]),
                group_by="session", grouped=True, note="")
    with pytest.raises(SplitLeakError) as err:
        check_no_leak(table, bad, "session")
    assert "'s000'" in str(err.value) and "'s001'" in str(err.value) and "train and val" in str(err.value)


def test_bad_inputs_raise_clear_errors() -> None:
    table = labelled_table([4, 4, 4], seed=0)
    with pytest.raises(SplitError, match="no such column"):
        make_split(table, SplitConfig(group_by="grid"))
    t2 = table.copy()
    t2.loc[0, "label"] = "great"
    with pytest.raises(SplitError, match="great"):
        make_split(t2, SplitConfig())
    with pytest.raises(ValueError):
        SplitConfig(val_fraction=0.6, test_fraction=0.5)


def test_split_counts_add_up() -> None:
    table = labelled_table([3] * 30, seed=4)
    split = make_split(table, SplitConfig(seed=0))
    counts = split_counts(table, split)
    for c in LABELS:
        assert sum(counts[s][c] for s in counts) == int((table["label"] == c).sum())
