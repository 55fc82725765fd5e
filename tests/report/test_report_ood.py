"""Out-of-distribution warnings against the model card's diversity table and score ranges."""

from __future__ import annotations

from helpers_report import make_card, make_predictions

from micrograde.pipeline.report.ood import ood_warnings


def _kinds(warnings, session=None):
    return sorted(w.kind for w in warnings if session is None or w.session == session)


def test_in_distribution_sessions_give_no_warning():
    preds = make_predictions(20)  # K3, Au, 0.83 A, scores inside the card's ranges
    assert ood_warnings(preds, make_card()) == []


def test_unseen_detector_pixel_size_and_grid_are_named_per_session():
    preds = make_predictions(20, sessions=("ok", "new"))
    new = preds["session"] == "new"
    preds.loc[new, "detector"] = "Falcon 4"
    preds.loc[new, "pixel_size"] = 0.5  # 40% below 0.83: unseen
    preds.loc[new, "grid_material"] = "graphene oxide"
    warnings = ood_warnings(preds, make_card())
    assert _kinds(warnings, "ok") == []
    assert _kinds(warnings, "new") == ["detector", "grid_material", "pixel_size"]
    text = " ".join(w.message for w in warnings)
    assert "'Falcon 4'" in text and "K3" in text and "0.5 A" in text and "graphene oxide" in text
    assert all(w.message.startswith("Session 'new'") for w in warnings)


def test_pixel_size_within_ten_percent_counts_as_seen_and_case_is_ignored():
    preds = make_predictions(10)
    preds["pixel_size"] = 0.88  # 6% above 0.83
    preds["detector"] = "falcon 4I"
    assert ood_warnings(preds, make_card()) == []


def test_scores_outside_training_range_for_more_than_a_fifth():
    preds = make_predictions(20, sessions=("a", "b"))
    b_rows = preds.index[preds["session"] == "b"]
    preds.loc[b_rows[:3], "ice_ring_score"] = 50.0  # 3 of 10 = 30% > 20%
    a_rows = preds.index[preds["session"] == "a"]
    preds.loc[a_rows[:2], "thon_reach_A"] = 40.0  # 2 of 10 = 20%: not more than a fifth
    warnings = ood_warnings(preds, make_card())
    assert [(w.session, w.kind, w.values) for w in warnings] == [("b", "score", ("ice_ring_score",))]
    assert "3 of 10" in warnings[0].message and "ice-ring" in warnings[0].message


def test_card_without_diversity_table_says_so():
    card = make_card()
    card["training"] = {"class_counts": {"good": 1}}
    warnings = ood_warnings(make_predictions(6), card)
    assert [w.kind for w in warnings] == ["card"]
    assert ood_warnings(make_predictions(6), None) == []


def test_several_features_outside_their_range_give_one_warning_per_session_naming_them():
    preds = make_predictions(20, sessions=("a", "b"))
    b_rows = preds.index[preds["session"] == "b"]
    preds.loc[b_rows[:3], "ice_ring_score"] = 50.0  # 3 of 10
    preds.loc[b_rows[:6], "thon_reach_A"] = 40.0  # 6 of 10
    warnings = ood_warnings(preds, make_card())
    assert [(w.session, w.kind) for w in warnings] == [("b", "score")]
    assert warnings[0].values == ("thon_reach_A", "ice_ring_score")  # the most often outside first
    text = warnings[0].message
    assert text.startswith("Session 'b': 2 features") and "6 of 10" in text and "3 of 10" in text
