"""Ground-truth label rules and label-targeted parameter sampling."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_simulate import SMALL_SESSIONS, clean_params

from micrograde.pipeline.config import LABELS, REASON_TAGS
from micrograde.pipeline.sim.physics import RULES, label_for, sample_params


def expected_label(p) -> str:
    """The documented rule, written out independently of the implementation."""
    bad = (
        p.crystalline_fraction > 0.15
        or p.ice_thickness > 0.8
        or p.contamination > 0.15
        or p.drift_A > 30
        or p.carbon_fraction > 0.5
        or p.vacuum_fraction > 0.25
        or p.empty
        or p.n_particles == 0
    )
    medium = (
        p.crystalline_fraction > 0.03
        or p.ice_thickness > 0.6
        or p.contamination > 0.05
        or p.drift_A > 10
        or p.carbon_fraction > 0.2
        or p.vacuum_fraction > 0.05
        or p.defocus_um > 3.0
    )
    return "bad" if bad else "medium" if medium else "good"


@pytest.mark.parametrize(
    ("changes", "label", "reasons"),
    [
        ({}, "good", ()),
        ({"crystalline_fraction": 0.03, "crystal_spacings_A": (3.9,)}, "good", ()),  # thresholds are strict
        ({"crystalline_fraction": 0.08, "crystal_spacings_A": (3.9,)}, "medium", ("crystalline-ice",)),
        ({"crystalline_fraction": 0.2, "crystal_spacings_A": (3.9,)}, "bad", ("crystalline-ice",)),
        ({"ice_thickness": 0.7}, "medium", ("thick-ice",)),
        ({"ice_thickness": 0.81}, "bad", ("thick-ice",)),
        ({"contamination": 0.1}, "medium", ("contamination",)),
        ({"contamination": 0.16}, "bad", ("contamination",)),
        ({"drift_A": 20.0}, "medium", ("drift",)),
        ({"drift_A": 31.0}, "bad", ("drift",)),
        ({"carbon_fraction": 0.3}, "medium", ("carbon",)),
        ({"carbon_fraction": 0.6}, "bad", ("carbon",)),
        ({"defocus_um": 3.5}, "medium", ("other",)),
        ({"empty": True, "n_particles": 0}, "bad", ("empty",)),
        ({"n_particles": 0}, "bad", ("empty",)),
        ({"vacuum_fraction": 0.1}, "medium", ("empty",)),
        ({"vacuum_fraction": 0.3, "empty": True, "n_particles": 0}, "bad", ("empty",)),
        # bad-level reasons come first, then medium-level ones
        ({"drift_A": 15.0, "ice_thickness": 0.9}, "bad", ("thick-ice", "drift")),
        ({"drift_A": 15.0, "contamination": 0.07}, "medium", ("contamination", "drift")),
    ],
)
def test_label_rules_on_hand_made_parameters(changes, label, reasons):
    params = clean_params(**changes)
    assert label_for(params) == (label, reasons)
    assert expected_label(params) == label


def test_rules_table_uses_known_reason_tags():
    assert {r.tag for r in RULES} <= set(REASON_TAGS)
    for rule in RULES:
        if rule.bad_above is not None and rule.medium_above is not None:
            assert rule.medium_above < rule.bad_above


@pytest.mark.parametrize("target", LABELS)
def test_sample_params_hits_the_target_label(target):
    for seed in range(60):
        session = SMALL_SESSIONS[seed % len(SMALL_SESSIONS)]
        params = sample_params(np.random.default_rng(seed), session, target)
        label, reasons = label_for(params)
        assert label == target == expected_label(params)
        assert set(reasons) <= set(REASON_TAGS)
        assert (len(reasons) == 0) == (target == "good")
        assert params.n_particles > 0 or params.empty
        assert bool(params.crystal_spacings_A) == (params.crystalline_fraction > 0)


def test_sampled_values_keep_a_margin_from_every_threshold():
    """Classes must differ visibly: sampled values stay away from the rule thresholds."""
    margins = {"crystalline_fraction": 0.015, "ice_thickness": 0.04, "contamination": 0.015, "drift_A": 4.0,
               "carbon_fraction": 0.05, "defocus_um": 0.3, "vacuum_fraction": 0.05}
    for seed in range(150):
        params = sample_params(np.random.default_rng(seed), SMALL_SESSIONS[0], LABELS[seed % 3])
        for rule in RULES:
            value = getattr(params, rule.parameter)
            for threshold in (rule.medium_above, rule.bad_above):
                if threshold is not None:
                    assert abs(value - threshold) >= margins[rule.parameter], (rule.parameter, value)


def test_untargeted_sampling_gives_every_label_and_mostly_good():
    labels = [label_for(sample_params(np.random.default_rng(s), SMALL_SESSIONS[0]))[0] for s in range(300)]
    counts = {lab: labels.count(lab) for lab in LABELS}
    assert all(counts.values())
    assert counts["good"] > counts["medium"] > counts["bad"]


def test_unknown_target_label_is_an_error():
    with pytest.raises(ValueError, match="target_label"):
        sample_params(np.random.default_rng(0), SMALL_SESSIONS[0], "excellent")
