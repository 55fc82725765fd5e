"""Grader files: heads saved without pickle, refused when altered, outside the folder, or of untrusted types."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skops.io as sio
from helpers_grading import by_session

from micrograde.models.grading.features import Features
from micrograde.models.grading.grader import GraderFileError, load_grader, load_heads, save_heads
from micrograde.models.grading.heads import HEADS, fit_head


def _features(n: int = 60, seed: int = 0) -> tuple[Features, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    blocks = {
        "level": (rng.normal(size=(n, 31)) + y[:, None]).astype(np.float32),
        "ripple": rng.normal(size=(n, 31)).astype(np.float32),
        "scores": rng.normal(size=(n, 5)).astype(np.float32),
        "measures": np.c_[rng.normal(size=(n, 2)), np.full(n, np.nan)].astype(np.float32),  # one never measured
        "local": rng.normal(size=(n, 4)).astype(np.float32),
        # classes differ in which features respond (a direction, as network features do), not only in scale
        "embedding": (np.abs(rng.normal(size=(n, 40))) + 2.0 * (np.arange(40)[None, :] % 3 == y[:, None])).astype(
            np.float32),
    }
    # four sessions, each measured against its own median
    return by_session(Features([f"k{i}" for i in range(n)], blocks), [f"s{i % 4}" for i in range(n)]), y


@pytest.mark.parametrize("name", list(HEADS))
def test_every_head_learns_separable_data_and_round_trips_through_skops(tmp_path, name):
    feats, y = _features()
    head = fit_head(name, feats.take(np.arange(0, 60, 2)), y[::2])
    probs = head.predict_proba(feats.take(np.arange(1, 60, 2)))
    assert probs.shape == (30, 3) and np.allclose(probs.sum(axis=1), 1.0)
    assert (probs.argmax(1) == y[1::2]).mean() > 0.8
    entry = save_heads(tmp_path, {name: head})
    again = load_heads(tmp_path, entry)[name]
    assert np.allclose(again.predict_proba(feats), head.predict_proba(feats))
    assert not (tmp_path / "heads.skops").read_bytes().startswith(b"\x80")  # not a pickle stream


def test_a_head_saved_by_0_2_0_without_its_blocks_reads_the_blocks_it_was_fitted_on(tmp_path, monkeypatch):
    """0.2.0's physics head had no ``local`` block and its file does not name its blocks: it still loads and
    reads exactly the columns it was fitted on, when the features now carry a ``local`` block too."""
    import hashlib

    from micrograde.models.grading import heads

    feats, y = _features()
    legacy = heads.HeadSpec("physics", "0.2.0", heads.LEGACY_PHYSICAL_BLOCKS, "forest")
    monkeypatch.setitem(heads.HEADS, "physics", legacy)
    head = fit_head("physics", feats, y)
    assert head.physical_blocks == heads.LEGACY_PHYSICAL_BLOCKS
    expected = head.predict_proba(feats)
    monkeypatch.undo()
    assert "local" in HEADS["physics"].blocks
    data = sio.dumps({"physics": {"name": "physics", "classes": head.classes, "keep": head.keep,
                                  "forest": head.forest, "linear": None, "pca": None}})  # as 0.2.0 wrote it
    (tmp_path / "heads.skops").write_bytes(data)
    again = load_heads(tmp_path, {"file": "heads.skops", "sha256": hashlib.sha256(data).hexdigest()})["physics"]
    assert again.physical_blocks == heads.LEGACY_PHYSICAL_BLOCKS
    assert np.allclose(again.predict_proba(feats), expected)
    fresh = fit_head("physics", feats, y)  # a head fitted now reads the local and session blocks, and says so
    assert fresh.physical_blocks[-2:] == ("local", "session")
    assert load_heads(tmp_path, save_heads(tmp_path, {"physics": fresh}))["physics"].physical_blocks == \
        fresh.physical_blocks


def test_a_class_missing_from_training_gets_probability_zero():
    feats, y = _features()
    rows = np.flatnonzero(y != 1)
    probs = fit_head("physics", feats.take(rows), y[rows]).predict_proba(feats)
    assert np.all(probs[:, 1] == 0) and np.allclose(probs.sum(axis=1), 1.0)


def test_altered_escaping_or_untrusted_files_are_refused(tmp_path):
    feats, y = _features()
    entry = save_heads(tmp_path, {"baseline": fit_head("baseline", feats, y)})
    path = tmp_path / "heads.skops"
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(GraderFileError, match="does not match the SHA-256"):
        load_heads(tmp_path, entry)
    path.write_bytes(data)
    with pytest.raises(GraderFileError, match="not a file of the model folder"):
        load_heads(tmp_path, {"file": "../heads.skops", "sha256": entry["sha256"]})
    import hashlib

    from sklearn.preprocessing import FunctionTransformer

    hostile = sio.dumps({"baseline": {"f": FunctionTransformer(eval)}})  # would run code when used
    path.write_bytes(hostile)
    with pytest.raises(GraderFileError, match="does not trust"):
        load_heads(tmp_path, {"file": "heads.skops", "sha256": hashlib.sha256(hostile).hexdigest()})


def test_a_pickled_fused_head_of_version_0_1_is_refused_with_advice(tmp_path):
    (tmp_path / "card.json").write_text(json.dumps({"id": "old", "classes": ["good", "medium", "bad"],
                                                    "head": {"kind": "fusion", "fusion": {"file": "fusion.joblib"}}}))
    with pytest.raises(GraderFileError, match="retrain"):
        load_grader(tmp_path)


def test_a_blend_averages_its_members_and_cross_validation_fits_each_member_once_per_fold(monkeypatch):
    from micrograde.models.grading import heads
    from micrograde.models.grading.protocol import cross_validate, make_folds

    feats, y = _features()
    train, held = np.arange(0, 60, 2), np.arange(1, 60, 2)
    blend = fit_head("blend", feats.take(train), y[train])
    members = [fit_head(m, feats.take(train), y[train]) for m in HEADS["blend"].members]
    expected = np.mean([m.predict_proba(feats.take(held)) for m in members], axis=0)
    assert np.allclose(blend.predict_proba(feats.take(held)), expected)

    calls: list[str] = []
    real = heads.fit_head

    def counting(name, *args, **kwargs):
        calls.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr("micrograde.models.grading.protocol.fit_head", counting)
    groups = np.repeat(["s1", "s2", "s3"], 20)
    folds = make_folds(groups, y)
    oof = cross_validate(feats, y, folds, ["physics", "embedding", "blend"])
    assert calls == ["physics", "embedding", "blend"] * len(folds)  # the blend reused the fold's member fits
    assert np.allclose(oof["blend"], (oof["physics"] + oof["embedding"]) / 2)


def test_the_train_command_names_every_candidate_head_in_its_help():
    from micrograde.flows.cli.train import train_cmd

    text = next(p.help for p in train_cmd.params if p.name == "heads")
    assert f"default: {','.join(HEADS)};" in text


def test_reading_a_grader_imports_neither_torch_nor_all_of_scikit_learn_and_trusts_only_the_heads_types(tmp_path):
    """In a fresh process (as every command is), loading forest and linear heads leaves torch unimported and
    scikit-learn's estimator list untouched; a heads file with another scikit-learn estimator (one skops itself
    would trust) is refused."""
    import subprocess
    import sys

    feats, y = _features()
    save_heads(tmp_path, {"physics": fit_head("physics", feats, y), "embedding": fit_head("embedding", feats, y)})
    from sklearn.svm import SVC

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "heads.skops").write_bytes(sio.dumps({"baseline": {"forest": SVC().fit(feats.blocks["level"], y)}}))
    script = f"""
import hashlib, sys
from pathlib import Path
from micrograde.models.grading.grader import GraderFileError, load_heads
def entry(folder):
    return {{"file": "heads.skops", "sha256": hashlib.sha256((folder / "heads.skops").read_bytes()).hexdigest()}}
heads = load_heads(Path({str(tmp_path)!r}), entry(Path({str(tmp_path)!r})))
assert sorted(heads) == ["embedding", "physics"], sorted(heads)
import sklearn.utils
assert sklearn.utils.all_estimators.__name__ == "all_estimators"  # restored after skops loaded
assert "torch" not in sys.modules, "torch was imported"
try:
    load_heads(Path({str(foreign)!r}), entry(Path({str(foreign)!r})))
except GraderFileError as exc:
    assert "does not trust" in str(exc) and "SVC" in str(exc), exc
else:
    raise AssertionError("a heads file holding an SVC was loaded")
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
