"""Classification metrics (pipeline.metrics, scikit-learn) on a hand-computed case."""

from __future__ import annotations

import json

import numpy as np
import pytest

from micrograde.pipeline.data.metrics import as_indices, classification_metrics


def test_metrics_hand_computed():
    y_true = ["good", "good", "good", "medium", "medium", "bad"]
    y_pred = ["good", "good", "medium", "medium", "bad", "bad"]
    m = classification_metrics(y_true, y_pred)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recalls: good 2/3, medium 1/2, bad 1/1
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # precision: good 2/2, medium 1/2, bad 1/2; F1: good 0.8, medium 0.5, bad 2/3
    assert m["per_class"]["good"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert m["per_class"]["bad"]["precision"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]  # rows true, columns predicted
    assert "roc_auc" not in m


def test_roc_auc_per_class_and_nan_safe():
    y = [0, 0, 1, 1]
    probs = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.4, 0.5, 0.1], [0.7, 0.2, 0.1]])
    m = classification_metrics(y, probs.argmax(1), probs)
    # good vs rest: scores of positives 0.8, 0.6 vs negatives 0.4, 0.7 -> 3 of 4 pairs ordered
    assert m["roc_auc"]["good"] == pytest.approx(0.75)
    assert m["roc_auc"]["bad"] is None  # no bad micrograph: undefined, not NaN
    assert m["roc_auc_macro"] == pytest.approx((0.75 + 0.75) / 2)
    json.dumps(m, allow_nan=False)  # valid JSON for cards and reports
    only_good = classification_metrics([0, 0], [0, 1], np.array([[0.9, 0.1, 0], [0.4, 0.6, 0]]))
    assert only_good["roc_auc_macro"] is None and only_good["per_class"]["bad"]["support"] == 0


def test_labels_are_checked():
    assert as_indices(["bad", "good"]).tolist() == [2, 0]
    with pytest.raises(ValueError, match="unknown label"):
        classification_metrics(["great"], ["good"])
    with pytest.raises(ValueError, match="out of range"):
        classification_metrics([3], [0])
