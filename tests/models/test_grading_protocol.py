"""The grader's protocol: folds grouped by session, every candidate in the same folds, the choice and
every figure from out-of-fold predictions, the shipped head refitted on every label."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers_grading import by_session, cached_collection

from micrograde.models.grading import Grader, GraderConfig, make_folds, train_grader
from micrograde.models.grading.grader import GraderFileError, read_training_rows
from micrograde.models.grading.protocol import choose, selection_oof, summarise
from micrograde.pipeline.config import LABELS
from micrograde.pipeline.data.metrics import classification_metrics
from micrograde.pipeline.sim.model import DEFAULT_SESSIONS

HELD_OUT = DEFAULT_SESSIONS[3].name


def test_three_or_more_sessions_are_held_out_whole_one_at_a_time():
    groups = np.repeat(["s1", "s2", "s3", "s4"], [5, 7, 3, 6])
    y = np.arange(len(groups)) % 3
    folds = make_folds(groups, y)
    assert folds.protocol == "leave-one-session-out" and len(folds) == 4
    held = []
    for train, test in folds.splits:
        assert set(groups[train]).isdisjoint(groups[test])  # no session on both sides
        assert len(set(groups[test])) == 1
        assert len(train) + len(test) == len(groups)
        held.extend(test)
    assert sorted(held) == list(range(len(groups)))  # every micrograph predicted exactly once


@pytest.mark.parametrize("sessions", [["s1"], ["s1", "s2"]])
def test_one_or_two_sessions_give_stratified_folds_within_the_sessions(sessions):
    groups = np.array([sessions[i % len(sessions)] for i in range(40)])
    y = np.arange(40) % 3
    folds = make_folds(groups, y, seed=3)
    assert folds.protocol == "stratified-k-fold" and len(folds) == 5
    assert "same session" in folds.note
    held = np.concatenate([test for _train, test in folds.splits])
    assert sorted(held) == list(range(40))
    for train, test in folds.splits:
        assert set(np.unique(y[test])) == {0, 1, 2}  # stratified: every class in every fold
        assert set(groups[test]) == set(sessions)
        assert np.intersect1d(train, test).size == 0


@pytest.mark.parametrize(("n", "sessions"), [(24, 2), (20, 2), (9, 2), (12, 1), (10, 2)])
def test_small_balanced_sets_in_one_or_two_sessions_still_get_folds(n, sessions):
    """Few labels spread over sessions and classes leave every session-label stratum smaller than the wanted
    number of folds (24 labels, 2 sessions: 6 strata of 4 against 5 folds): fewer folds, never an error."""
    groups = np.array([f"s{i % sessions}" for i in range(n)])
    y = (np.arange(n) // sessions) % 3
    folds = make_folds(groups, y, seed=1)
    assert folds.protocol == "stratified-k-fold" and 2 <= len(folds) <= 5
    held = np.concatenate([test for _train, test in folds.splits])
    assert sorted(held) == list(range(n))  # every micrograph held out exactly once
    for train, test in folds.splits:
        assert len(test) and len(train) and np.intersect1d(train, test).size == 0


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Four simulated sessions (12 micrographs each, 4 per class) preprocessed into a cache."""
    out = tmp_path_factory.mktemp("grading")
    table = cached_collection(out, 48, seed=21)
    return out, table


@pytest.fixture(scope="module")
def trained(collection):
    out, table = collection
    labelled = table[table["session"] != HELD_OUT].reset_index(drop=True)
    outcome = train_grader(labelled, out / "cache", out / "model", GraderConfig(), model_id="m1",
                           command_line="pytest", progress=False)
    return out, table, labelled, outcome


@pytest.mark.slow
def test_card_shows_out_of_fold_figures_and_ships_a_model_fitted_on_every_label(trained):
    out, _table, labelled, outcome = trained
    card = json.loads((out / "model" / "card.json").read_text())
    ev = card["evaluation"]
    assert ev["protocol"] == "leave-one-session-out" and ev["n_folds"] == 3
    assert ev["n_labelled"] == len(labelled) == card["training"]["n_fitted"]
    # the shipped model's training set is every labelled micrograph
    rows = read_training_rows(out / "model", card)
    assert sorted(rows["cache_key"]) == sorted(labelled["cache_key"])
    names = [c["name"] for c in ev["candidates"]]
    assert names[0] == "baseline" and ev["chosen"] in names
    chosen = next(c for c in ev["candidates"] if c["name"] == ev["chosen"])
    base = next(c for c in ev["candidates"] if c["name"] == "baseline")
    # the baseline ran in the same folds and the chosen head is never below it out of fold
    assert base["macro_f1"] is not None and chosen["macro_f1"] >= base["macro_f1"]
    assert set(ev["oof"]) >= {"macro_f1", "recall", "confusion_matrix", "ece", "per_session"}
    assert sum(map(sum, ev["oof"]["confusion_matrix"])) == len(labelled)
    assert {s["session"] for s in ev["oof"]["per_session"]} == set(labelled["session"])
    finetune = next(c for c in ev["candidates"] if c["name"] == "finetune")
    assert finetune["skipped"] and finetune["macro_f1"] is None  # no GPU here, and it says so
    assert card["kind"] == "grader" and card["command_line"] == "pytest"
    assert outcome.metrics["macro_f1"] == ev["oof"]["macro_f1"]
    # the estimate repeats the choice inside each fold; the chosen head's own figures are kept beside it
    assert len(ev["fold_choices"]) == ev["n_folds"] and set(ev["fold_choices"]) <= set(names)
    assert ev["chosen_oof"]["macro_f1"] == pytest.approx(chosen["macro_f1"], abs=0.02)  # temperature only
    # the card says what was preferred and why another head shipped, if one did
    rule = ev["choice"]
    assert rule["preferred"] == "physics" and rule["best_out_of_fold"] in names
    assert ev["chosen"] in (rule["preferred"], rule["best_out_of_fold"], "baseline")
    if ev["chosen"] == rule["best_out_of_fold"] != rule["preferred"] and rule["lead_over_preferred"] is not None:
        assert rule["lead_over_preferred"] > rule["noise"]


@pytest.mark.slow
def test_fine_tuning_is_a_candidate_in_the_same_folds_when_asked(collection, tmp_path):
    from micrograde.models.training.recipe import TrainConfig

    out, table = collection
    # a table built outside the catalogue has no preprocess_key column: the fine-tuning in each fold
    # takes it as current, as the other heads do (it raised KeyError before)
    labelled = table[table["session"] != HELD_OUT].drop(columns="preprocess_key").reset_index(drop=True)
    recipe = TrainConfig(epochs_head=1, epochs_finetune=1, batch_size=16, patience=1, seed=3)
    lines = []
    outcome = train_grader(labelled, out / "cache", tmp_path / "m", GraderConfig(
        heads=("baseline", "physics"), finetune="cv", recipe=recipe), model_id="ft", progress=False, log=lines.append)
    ev = outcome.card["evaluation"]
    finetune = next(c for c in ev["candidates"] if c["name"] == "finetune")
    assert not finetune.get("skipped") and 0.0 <= finetune["macro_f1"] <= 1.0
    assert sum(line.startswith("fine-tuning: fold") for line in lines) == ev["n_folds"] == 3
    assert ((tmp_path / "m" / "network").is_dir()) == (ev["chosen"] == "finetune")


@pytest.mark.slow
def test_chosen_head_beats_a_constant_grade_on_a_session_it_never_saw(trained):
    out, table, _labelled, _outcome = trained
    held = table[table["session"] == HELD_OUT]
    probs = Grader(out / "model").predict(list(held["cache_key"]), cache_dir=out / "cache")
    assert probs.shape == (len(held), 3) and np.allclose(probs.sum(axis=1), 1.0)
    f1 = classification_metrics(list(held["label"]), [LABELS[i] for i in probs.argmax(1)])["macro_f1"]
    constant = max(classification_metrics(list(held["label"]), [c] * len(held))["macro_f1"] for c in LABELS)
    assert f1 >= constant + 0.25, (f1, constant)


@pytest.mark.slow
def test_one_labelled_session_trains_with_stratified_folds_and_says_so(collection, tmp_path):
    out, table = collection
    one = table[table["session"] == DEFAULT_SESSIONS[0].name].reset_index(drop=True)
    lines = []
    outcome = train_grader(one, out / "cache", tmp_path / "m", GraderConfig(heads=("baseline", "physics")),
                           model_id="one", progress=False, log=lines.append)
    ev = outcome.card["evaluation"]
    assert ev["protocol"] == "stratified-k-fold"
    assert any("only 1 labelled session" in line and "same session" in line for line in lines)


@pytest.mark.slow
def test_a_class_with_two_labels_is_reported_plainly_and_still_trains(collection, tmp_path):
    out, table = collection
    labelled = table[table["session"] != HELD_OUT]
    medium = labelled[labelled["label"] == "medium"].index[:2]
    few = pd.concat([labelled[labelled["label"] != "medium"], labelled.loc[medium]]).reset_index(drop=True)
    lines = []
    outcome = train_grader(few, out / "cache", tmp_path / "m", GraderConfig(heads=("baseline",)),
                           model_id="few", progress=False, log=lines.append)
    assert any("only 2 'medium' labels" in w for w in outcome.warnings)
    assert any(line.startswith("WARNING: only 2 'medium' labels") for line in lines)
    assert outcome.card["evaluation"]["class_counts"]["medium"] == 2
    probs = Grader(tmp_path / "m").predict(list(few["cache_key"][:3]), cache_dir=out / "cache")
    assert probs.shape == (3, 3)


@pytest.mark.slow
def test_too_few_labels_or_one_class_are_clear_errors(collection, tmp_path):
    from micrograde.models.grading import TrainDataError

    out, table = collection
    with pytest.raises(TrainDataError, match="label at least 9"):
        train_grader(table.iloc[:5], out / "cache", tmp_path / "a", model_id="a", progress=False)
    bad = table[table["label"] == "bad"]
    with pytest.raises(TrainDataError, match="label at least two classes"):
        train_grader(bad, out / "cache", tmp_path / "b", model_id="b", progress=False)


@pytest.mark.slow
def test_ctf_estimates_reach_the_heads_inputs_with_missing_values_tolerated(collection, tmp_path):
    from micrograde.models.batch_predict import predict_cached
    from micrograde.models.grading.features import load_features
    from micrograde.models.grading.heads import fit_head

    out, table = collection
    labelled = table[table["session"] != HELD_OUT].reset_index(drop=True)
    rng = np.random.default_rng(0)
    # the user's CTF fit resolution: worse for worse grades, missing for a third of the micrographs
    res = np.array([{"good": 3.0, "medium": 5.0, "bad": 9.0}[lab] for lab in labelled["label"]])
    res = res + rng.normal(0, 0.3, len(labelled))
    res[rng.random(len(labelled)) < 0.33] = np.nan
    labelled = labelled.assign(ctf_resolution_A=res, ctf_defocus_um=np.nan)  # a column with no value stays out
    outcome = train_grader(labelled, out / "cache", tmp_path / "m", GraderConfig(heads=("baseline", "physics")),
                           model_id="ctf", progress=False)
    card = outcome.card
    assert card["input"]["measures"][-1] == "ctf_resolution_A" and "ctf_defocus_um" not in card["input"]["measures"]
    listed = {f["name"]: f for f in card["input"]["features"]}
    assert listed["ctf_resolution_A"]["unit"] == "A" and listed["ctf_resolution_A"]["group"] == "ctf"
    assert listed["ice_ring_score"]["group"] == "score" and listed["defocus_um"]["unit"] == "um"

    feats = by_session(load_features(list(labelled["cache_key"]), out / "cache", extra=labelled,
                                     measure_names=card["input"]["measures"]), labelled["session"])
    column = feats.blocks["measures"][:, -1]
    assert np.array_equal(np.isnan(column), np.isnan(res)) and np.allclose(column[~np.isnan(res)],
                                                                           res[~np.isnan(res)], atol=1e-4)

    grader = Grader(tmp_path / "m")
    assert grader.catalogue_features == ("ctf_resolution_A", *(("session_reference",) if grader.needs_session else ()))
    held = table[table["session"] == HELD_OUT].reset_index(drop=True)
    missing = grader.predict(list(held["cache_key"]), cache_dir=out / "cache")  # no estimates: all missing
    assert np.isfinite(missing).all() and np.allclose(missing.sum(axis=1), 1.0)
    # the physics head's forest reads the column (missing values routed natively): the estimates change grades
    y = np.array([LABELS.index(v) for v in labelled["label"]])
    head = fit_head("physics", feats, y)
    j = sum(feats.blocks[b].shape[1] for b in ("level", "ripple", "scores", "measures")) - 1  # the CTF column
    assert head.physical_blocks.index("measures") == 3
    assert head.keep[j] and head._inputs(feats).shape[1] == int(head.keep.sum())
    assert np.isnan(head._inputs(feats)[:, int(head.keep[:j].sum())]).sum() == int(np.isnan(res).sum())
    blank = by_session(load_features(list(held["cache_key"]), out / "cache", measure_names=card["input"]["measures"]),
                       held["session"])
    worst = by_session(load_features(list(held["cache_key"]), out / "cache", measure_names=card["input"]["measures"],
                                     extra=held.assign(ctf_resolution_A=12.0)), held["session"])
    p_blank, p_worst = head.predict_proba(blank), head.predict_proba(worst)
    assert np.isfinite(p_blank).all() and not np.allclose(p_blank, p_worst)
    # stored predictions are keyed by the estimates too: a changed estimate is graded again
    first, n1 = predict_cached(grader, out / "cache", list(held["cache_key"]), extra=held.assign(ctf_resolution_A=3.0))
    again, n2 = predict_cached(grader, out / "cache", list(held["cache_key"]), extra=held.assign(ctf_resolution_A=3.0))
    other, n3 = predict_cached(grader, out / "cache", list(held["cache_key"]), extra=held.assign(ctf_resolution_A=9.0))
    assert (n1, n2, n3) == (0, len(held), 0) and np.allclose(first, again)


def _probs(pred: np.ndarray, confidence: float = 0.8) -> np.ndarray:
    p = np.full((len(pred), len(LABELS)), (1 - confidence) / (len(LABELS) - 1))
    p[np.arange(len(pred)), pred] = confidence
    return p


def test_the_estimate_never_grades_a_fold_with_a_head_chosen_on_that_fold():
    groups = np.repeat(["s1", "s2", "s3", "s4"], 30)
    y = np.arange(120) % 3
    folds = make_folds(groups, y)
    rng = np.random.default_rng(0)
    lucky = rng.integers(0, 3, 120)
    lucky[groups == "s1"] = y[groups == "s1"]  # perfect on s1 only, chance elsewhere
    steady = np.where(rng.random(120) < 0.7, y, (y + 1) % 3)  # right 70 % of the time everywhere
    oof = {"baseline": _probs(steady), "physics": _probs(lucky)}
    probs, picks = selection_oof(y, oof, folds, calibrate=False)
    s1 = [i for i, (_tr, te) in enumerate(folds.splits) if groups[te[0]] == "s1"][0]
    assert picks[s1] == "baseline"  # physics' perfect s1 predictions played no part in choosing for s1
    rows = groups == "s1"
    np.testing.assert_array_equal(probs[rows], oof["baseline"][rows])
    assert not np.isnan(probs).any()
    # with one candidate the estimate is that candidate's own out-of-fold predictions
    alone, picks = selection_oof(y, {"baseline": oof["baseline"]}, folds, calibrate=False)
    np.testing.assert_array_equal(alone, oof["baseline"])
    assert picks == ["baseline"] * len(folds)


def test_the_estimate_is_calibrated_with_a_temperature_fitted_outside_the_fold():
    groups = np.repeat(["s1", "s2", "s3"], 40)
    y = np.arange(120) % 3
    folds = make_folds(groups, y)
    over = _probs(np.where(np.arange(120) % 4 == 0, (y + 1) % 3, y), confidence=0.99)  # 75 % right, 99 % sure
    probs, _ = selection_oof(y, {"baseline": over}, folds)
    assert probs.max() < 0.99 and np.allclose(probs.sum(axis=1), 1.0)
    assert (probs.argmax(axis=1) == over.argmax(axis=1)).all()  # a temperature never changes the grade


def test_the_robust_choice_keeps_the_preferred_head_unless_another_beats_it_beyond_the_noise():
    from micrograde.models.grading.protocol import PREFERRED, choose_robust

    assert PREFERRED == "physics"
    y = np.arange(90) % 3
    wrong = (y + 1) % 3
    preferred = _probs(np.where(np.arange(90) < 63, y, wrong))  # right on the first 63
    close = _probs(np.where(np.arange(90) >= 25, y, wrong))  # right on the last 65: two more, elsewhere
    assert choose({"physics": summarise(y, preferred), "combined": summarise(y, close)}) == "combined"
    kept = choose_robust(y, {"physics": preferred, "combined": close})
    assert kept.head == "physics" and kept.best == "combined" and 0 < kept.gap < kept.noise
    assert "physics ships: combined led it by" in kept.note
    perfect = choose_robust(y, {"physics": preferred, "combined": _probs(y)})
    assert perfect.head == "combined" and perfect.note is None  # far beyond the noise
    assert choose_robust(y, {"baseline": preferred, "combined": close}).head == "combined"  # no physics: plain choice
    # the preference can be named: the blend, as before 2026-11-29
    assert choose_robust(y, {"blend": preferred, "combined": close}, prefer="blend").head == "blend"
    # never below the baseline: a preferred head within the noise of the best but under the baseline does not ship
    under = choose_robust(y, {"baseline": close, "physics": preferred, "combined": close})
    assert under.head == "baseline"


def test_the_robust_choice_reuses_the_callers_summaries_and_refuses_ones_for_other_heads():
    from micrograde.models.grading.protocol import choose_robust

    y = np.arange(90) % 3
    wrong = (y + 1) % 3
    oof = {"physics": _probs(np.where(np.arange(90) < 63, y, wrong)), "combined": _probs(y)}
    given = {name: summarise(y, p, np.repeat(["s1", "s2", "s3"], 30)) for name, p in oof.items()}
    assert choose_robust(y, oof, summaries=given) == choose_robust(y, oof)
    # the summaries decide the best head: swapped, the choice follows them, not a recomputation
    swapped = {"physics": given["combined"], "combined": given["physics"]}
    assert choose_robust(y, oof, summaries=swapped).head == "physics"
    with pytest.raises(ValueError, match="summaries are for"):
        choose_robust(y, oof, summaries={"physics": given["physics"]})


def test_the_bootstrap_macro_f1_agrees_with_the_reported_one():
    from micrograde.models.grading.protocol import _macro_f1

    rng = np.random.default_rng(9)
    for _ in range(20):
        y, pred = rng.integers(0, 3, 30), rng.integers(0, 2, 30)  # class 2 never predicted, sometimes absent
        y[rng.random(30) < 0.5] = 0
        expected = classification_metrics([LABELS[i] for i in y], [LABELS[i] for i in pred])["macro_f1"]
        assert _macro_f1(y, pred) == pytest.approx(expected)


@pytest.mark.slow
def test_a_grader_measuring_sessions_keeps_its_fallback_and_grades_by_the_reference_it_is_given(
        collection, tmp_path, monkeypatch):
    from micrograde.models.grading import run
    from micrograde.models.grading.protocol import Choice
    from micrograde.models.grading.sessions import MIN_REFERENCE, reference_keys

    out, table = collection
    labelled = table[table["session"] != HELD_OUT].reset_index(drop=True)
    monkeypatch.setattr(run, "choose_robust", lambda y, oof, **kw: Choice("physics", "physics"))  # ship physics
    outcome = train_grader(labelled, out / "cache", tmp_path / "m", GraderConfig(heads=("baseline", "physics")),
                           model_id="sessions", progress=False)
    ref = outcome.card["input"]["session_reference"]
    assert ref["min_micrographs"] == MIN_REFERENCE and len(ref["fallback"]) > 0
    assert any("measured against its session's median" in line for line in outcome.lines)
    grader = Grader(tmp_path / "m")
    assert grader.needs_session and grader.catalogue_features[-1] == "session_reference"
    held = table[table["session"] == HELD_OUT].reset_index(drop=True)
    keys, sessions = list(held["cache_key"]), list(held["session"])
    own = grader.predict(keys, cache_dir=out / "cache", sessions=sessions, references=reference_keys(keys, sessions))
    by_extra = grader.predict(keys, cache_dir=out / "cache", extra=held)  # the session read from the rows
    fallback = grader.predict(keys, cache_dir=out / "cache")  # no session known: the training median
    tiny = grader.predict(keys, cache_dir=out / "cache", sessions=sessions,
                          references={HELD_OUT: keys[: MIN_REFERENCE - 1]})
    np.testing.assert_allclose(own, by_extra)
    np.testing.assert_allclose(tiny, fallback)
    assert not np.allclose(own, fallback)
    # a model whose card lost its fallback is refused when it needs one, with the reason
    del grader.card["input"]["session_reference"]
    with pytest.raises(GraderFileError, match="keeps no session_reference"):
        grader.predict(keys, cache_dir=out / "cache")
