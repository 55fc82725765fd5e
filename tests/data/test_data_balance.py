"""Each balancing strategy gives the class counts it promises; too-few warnings are clear."""

from __future__ import annotations

import numpy as np
import pytest

from micrograde.models.training.dataset import BalancedSampler, make_sampler
from micrograde.pipeline.config import LABELS
from micrograde.pipeline.data.balance import (
    BALANCE_STRATEGIES,
    BalanceError,
    balance_report,
    balanced_counts,
    class_counts,
    class_weights,
    sample_weights,
    undersample,
)

LABELS_300 = ["good"] * 200 + ["medium"] * 80 + ["bad"] * 20


def test_class_counts_lists_every_class() -> None:
    assert class_counts(["good", "good", "medium"]) == {"good": 2, "medium": 1, "bad": 0}
    assert class_counts(np.array([2, 2, 0])) == {"good": 1, "medium": 0, "bad": 2}
    assert class_counts([]) == {"good": 0, "medium": 0, "bad": 0}
    with pytest.raises(BalanceError, match="great"):
        class_counts(["great"])


def test_oversample_draws_every_class_equally_often() -> None:
    w = sample_weights(LABELS_300, "oversample")
    y = np.array(LABELS_300)
    per_class = [w[y == c].sum() for c in LABELS]
    np.testing.assert_allclose(per_class, per_class[0])
    sampler = make_sampler(LABELS_300, "oversample", seed=3)
    assert isinstance(sampler, BalancedSampler) and len(sampler) == 300
    drawn = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        drawn += list(sampler)
    counts = class_counts(y[drawn])
    promised = balanced_counts(LABELS_300, "oversample")
    for c in LABELS:
        assert promised[c] == pytest.approx(100.0)
        assert abs(counts[c] / 20 - promised[c]) < 10, counts  # ~6000 draws: within a few sigma


def test_oversample_is_reproducible_and_changes_per_epoch() -> None:
    a, b = make_sampler(LABELS_300, "oversample", 1), make_sampler(LABELS_300, "oversample", 1)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)


def test_undersample_cuts_every_class_to_the_smallest() -> None:
    idx = np.arange(1000, 1300)
    kept = undersample(idx, LABELS_300, seed=0)
    y = dict(zip(idx, LABELS_300, strict=False))
    assert class_counts([y[i] for i in kept]) == {"good": 20, "medium": 20, "bad": 20}
    assert balanced_counts(LABELS_300, "undersample") == {"good": 20.0, "medium": 20.0, "bad": 20.0}
    assert set(kept) <= set(idx) and len(set(kept)) == 60
    np.testing.assert_array_equal(kept, undersample(idx, LABELS_300, seed=0))
    assert not np.array_equal(kept, undersample(idx, LABELS_300, seed=1))
    sampler = make_sampler(LABELS_300, "undersample", seed=0)
    assert len(sampler) == 60 and class_counts(np.array(LABELS_300)[list(sampler)]) == {
        "good": 20,
        "medium": 20,
        "bad": 20,
    }


def test_undersample_ignores_absent_classes() -> None:
    labels = ["good"] * 9 + ["bad"] * 4
    kept = undersample(np.arange(13), labels, seed=0)
    assert class_counts(np.array(labels)[kept]) == {"good": 4, "medium": 0, "bad": 4}


def test_class_weights_equalise_the_weighted_counts() -> None:
    w = class_weights(LABELS_300)
    assert w.shape == (3,)
    counts = np.array([200, 80, 20])
    np.testing.assert_allclose(w * counts, 100.0)
    assert (w * counts).sum() == pytest.approx(300)
    assert make_sampler(LABELS_300, "class-weights", 0) is None
    assert sample_weights(LABELS_300, "class-weights") is None
    w2 = class_weights(["good", "good", "medium"])
    assert w2[2] == 0.0 and w2[0] * 2 == pytest.approx(w2[1] * 1)


def test_none_changes_nothing() -> None:
    assert make_sampler(LABELS_300, "none", 0) is None
    assert sample_weights(LABELS_300, "none") is None
    assert balanced_counts(LABELS_300, "none") == {"good": 200.0, "medium": 80.0, "bad": 20.0}


def test_unknown_strategy_is_an_error() -> None:
    assert BALANCE_STRATEGIES == ("oversample", "undersample", "class-weights", "none")
    with pytest.raises(BalanceError, match="oversample"):
        sample_weights(LABELS_300, "smote")
    with pytest.raises(ValueError):
        make_sampler(LABELS_300, "smote", 0)


def test_report_shows_counts_and_warns_about_too_few() -> None:
    before = class_counts(["good"] * 50 + ["medium"] * 12 + ["bad"] * 3)
    after = balanced_counts(["good"] * 50 + ["medium"] * 12 + ["bad"] * 3, "undersample")
    lines = balance_report(before, after, min_per_class=10, strategy="undersample")
    assert lines[0] == "train class counts before balancing: good 50, medium 12, bad 3"
    assert lines[1] == "train class counts after balancing (undersample): good 3, medium 3, bad 3"
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert warnings == ["WARNING: class 'bad' has only 3 examples in train (need >= 10 to learn it)"]
    none = balance_report({"good": 40, "medium": 0, "bad": 15}, {"good": 40, "medium": 0, "bad": 15}, split_name="val")
    assert any("class 'medium' has no examples in val" in line for line in none)
    ok = balance_report({"good": 40, "medium": 20, "bad": 15}, {"good": 25.0, "medium": 25.0, "bad": 25.0})
    assert not any(line.startswith("WARNING") for line in ok)
