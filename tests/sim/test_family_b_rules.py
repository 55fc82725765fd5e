"""Family b's label rules (hand-made parameters around each threshold) and its sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers_simulate import clean_b, small_b_sessions

from micrograde.pipeline.config import LABELS, REASON_TAGS
from micrograde.pipeline.sim.family_b import B_RULES, BORDERLINE_SHARE, label_b, sample_b
from micrograde.pipeline.sim.family_b.model import inelastic_mean_free_path_nm

SESSIONS = small_b_sessions()


def thickness_for(transmission: float, voltage_kv: float = 300.0) -> float:
    return -inelastic_mean_free_path_nm(voltage_kv) * math.log(transmission)


def expected_label(p) -> str:
    """The documented rule table, written out independently of the implementation."""
    bad = (p.crystalline_area > 0.15 or p.transmission < 0.70 or p.contamination_area > 0.15
           or p.drift_path_A > 36 or p.carbon_area > 0.5 or p.vacuum_area > 0.25 or p.n_particles == 0)  # fmt: skip
    medium = (p.crystalline_area > 0.03 or p.transmission < 0.80 or p.contamination_area > 0.05
              or p.drift_path_A > 12 or p.carbon_area > 0.2 or p.vacuum_area > 0.05 or p.defocus_um > 3.0)  # fmt: skip
    return "bad" if bad else "medium" if medium else "good"


@pytest.mark.parametrize(
    ("changes", "label", "reasons"),
    [
        ({}, "good", ()),
        ({"crystalline_area": 0.03}, "good", ()),  # thresholds are strict
        ({"crystalline_area": 0.031}, "medium", ("crystalline-ice",)),
        ({"crystalline_area": 0.149}, "medium", ("crystalline-ice",)),
        ({"crystalline_area": 0.151}, "bad", ("crystalline-ice",)),
        ({"ice_thickness_nm": thickness_for(0.805)}, "good", ()),
        ({"ice_thickness_nm": thickness_for(0.795)}, "medium", ("thick-ice",)),
        ({"ice_thickness_nm": thickness_for(0.705)}, "medium", ("thick-ice",)),
        ({"ice_thickness_nm": thickness_for(0.695)}, "bad", ("thick-ice",)),
        # the same ice is thicker in transmission terms at 200 kV (shorter mean free path)
        ({"ice_thickness_nm": 110.0, "voltage_kv": 300.0}, "medium", ("thick-ice",)),
        ({"ice_thickness_nm": 110.0, "voltage_kv": 200.0}, "bad", ("thick-ice",)),
        ({"contamination_area": 0.06, "contaminants": ("ball",)}, "medium", ("contamination",)),
        ({"contamination_area": 0.16, "contaminants": ("debris",)}, "bad", ("contamination",)),
        ({"drift_path_A": 12.5}, "medium", ("drift",)),
        ({"drift_path_A": 36.5}, "bad", ("drift",)),
        ({"carbon_area": 0.21}, "medium", ("carbon",)),
        ({"carbon_area": 0.51}, "bad", ("carbon",)),
        ({"vacuum_area": 0.06}, "medium", ("empty",)),
        ({"vacuum_area": 0.26}, "bad", ("empty",)),
        ({"defocus_um": 3.1}, "medium", ("other",)),
        ({"n_particles": 0, "particle_cover": 0.0}, "bad", ("empty",)),
        ({"drift_path_A": 20.0, "carbon_area": 0.6}, "bad", ("carbon", "drift")),  # bad-level reasons first
        ({"drift_path_A": 20.0, "contamination_area": 0.07, "contaminants": ("ball",)}, "medium",
         ("contamination", "drift")),
    ],
)
def test_label_rules_on_hand_made_parameters(changes, label, reasons):
    params = clean_b(**changes)
    assert label_b(params) == (label, reasons)
    assert expected_label(params) == label


def test_rule_table_tags_and_directions():
    assert {r.tag for r in B_RULES} <= set(REASON_TAGS)
    by_name = {r.parameter: r for r in B_RULES}
    assert by_name["transmission"].lower_is_worse and by_name["transmission"].bad_above < 0.8
    for rule in B_RULES:
        if rule.bad_above is not None and not rule.lower_is_worse:
            assert rule.medium_above < rule.bad_above


@pytest.mark.parametrize("target", LABELS)
def test_sampler_hits_the_target_label_with_feasible_areas(target):
    for seed in range(80):
        session = SESSIONS[seed % len(SESSIONS)]
        params = sample_b(np.random.default_rng(seed), session, target)
        label, reasons = label_b(params)
        assert label == target == expected_label(params)
        assert (len(reasons) == 0) == (target == "good")
        assert params.carbon_area + params.vacuum_area <= 0.9
        assert params.crystalline_area <= 0.8 * (1 - params.carbon_area - params.vacuum_area) + 1e-9
        assert params.voltage_kv == session.voltage_kv and params.cs_mm == session.cs_mm
        assert 0.5 <= params.defocus_um <= 3.5 and params.astig_um <= 0.3
        assert bool(params.contaminants) == (params.contamination_area > 0)


def _near_threshold(params) -> bool:
    """Is any rule's value within 3 % of the threshold's scale (the borderline window)?"""
    widths = {"crystalline_area": 0.012, "transmission": 0.015, "contamination_area": 0.012, "drift_path_A": 3.0,
              "carbon_area": 0.04, "vacuum_area": 0.015, "defocus_um": 0.12}  # fmt: skip
    for rule in B_RULES:
        value = float(getattr(params, rule.parameter))
        for threshold in (rule.medium_above, rule.bad_above):
            if threshold is not None and abs(value - threshold) <= widths[rule.parameter]:
                return True
    return False


def test_a_share_of_borderline_values_and_balanced_sampling():
    draws = [sample_b(np.random.default_rng(s), SESSIONS[s % 4], LABELS[s % 3]) for s in range(450)]
    share = np.mean([_near_threshold(p) for p in draws])
    assert 0.6 * BORDERLINE_SHARE < share < 1.6 * BORDERLINE_SHARE
    # ... and not a band of values all at one side: every label has borderline members
    for label in LABELS:
        assert any(_near_threshold(p) for p in draws if label_b(p)[0] == label)
    natural = [label_b(sample_b(np.random.default_rng(s), SESSIONS[0]))[0] for s in range(300)]
    counts = [natural.count(lab) for lab in LABELS]
    assert counts[0] > counts[1] > counts[2] > 0


def test_unknown_target_and_inconsistent_parameters_are_errors():
    with pytest.raises(ValueError, match="target_label"):
        sample_b(np.random.default_rng(0), SESSIONS[0], "excellent")
    with pytest.raises(ValueError, match="carbon_area"):
        clean_b(carbon_area=0.7, vacuum_area=0.3)
    with pytest.raises(ValueError, match="contaminant"):
        clean_b(contamination_area=0.1)
    with pytest.raises(ValueError, match="molecule"):
        clean_b(molecule="blob")
