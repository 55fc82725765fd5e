"""Temperature scaling lowers the calibration error of an over-confident model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from micrograde.models.calibration import (
    apply_temperature,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    reliability_curve,
)


def overconfident_logits(n=3000, true_t=3.0, seed=0):
    """Labels drawn from softmax(z); the model reports z * true_t (too sharp by a factor true_t)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, 3))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    return z * true_t, y


def test_temperature_recovers_the_overconfidence_and_lowers_ece():
    logits, y = overconfident_logits()
    t = fit_temperature(torch.from_numpy(logits), y)
    assert t == pytest.approx(3.0, rel=0.15)
    before = expected_calibration_error(apply_temperature(logits, 1.0), y)
    after = expected_calibration_error(apply_temperature(logits, t), y)
    assert before > 0.1 and after < before / 3
    summary = calibration_summary(logits, y)
    assert summary["ece_after"] < summary["ece_before"] and summary["nll_after"] < summary["nll_before"]
    # the argmax, and so every label, is unchanged
    assert (apply_temperature(logits, t).argmax(1) == logits.argmax(1)).all()


def test_calibrated_model_keeps_temperature_near_one():
    logits, y = overconfident_logits(true_t=1.0, seed=1)
    assert fit_temperature(logits, y) == pytest.approx(1.0, rel=0.15)


def test_ece_and_reliability_curve_on_a_hand_computed_case():
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    y = ["good", "medium", "good", "medium"]
    # bins of width 0.1: 0.9 -> bin 8 (acc 1/2, conf 0.9); 0.6 -> bin 5 (acc 1, conf .6); 0.7 -> bin 6 (acc 1, conf .7)
    ece = 2 / 4 * abs(0.5 - 0.9) + 1 / 4 * abs(1 - 0.6) + 1 / 4 * abs(1 - 0.7)
    assert expected_calibration_error(probs, y) == pytest.approx(ece)
    curve = reliability_curve(probs, y)
    assert curve["count"] == [0, 0, 0, 0, 0, 1, 1, 0, 2, 0]
    assert curve["accuracy"][8] == 0.5 and curve["confidence"][0] is None
