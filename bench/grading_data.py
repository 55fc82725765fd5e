"""Data for the grading benchmarks: simulated sessions of one rendering family, preprocessed into a
cache exactly as ingest does (same ``preprocess``, same cache layout), with their true labels.

Imported by ``bench_domain_shift.py`` and ``bench_learning_curve.py`` (``bench/`` is on sys.path when
a script runs). The catalogue is bypassed (no Prefect, no database): these benchmarks measure the
grading method, not the plumbing.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["prepare_family", "macro_f1", "draw_labels", "grade", "SEEDS", "DEV_SEEDS"]

#: Simulation seeds of the benchmark collections (never used while developing the method: the
#: development collections, ``dev_grading.py``, are DEV_SEEDS).
SEEDS = {"a": 7, "b": 8}
DEV_SEEDS = {"a": 1000, "b": 3000}


def _preprocess_one(args: tuple[str, str, str, float | None, float]) -> str:
    path, cache_dir, key, dose, pixel_size = args
    from micrograde.pipeline.catalogue.cache import entry_arrays, has_entry, save_entry
    from micrograde.pipeline.config import PreprocessConfig
    from micrograde.pipeline.io.readers import read_micrographs
    from micrograde.pipeline.signal.preprocess import preprocess

    if has_entry(Path(cache_dir), key):
        return key
    # the pixel size as a user gives it (--pixel-size): family b writes one session as TIFF files,
    # whose resolution tags are a print resolution, not a pixel size
    raw = read_micrographs(Path(path), pixel_size=pixel_size)[0]
    out = preprocess(raw.data, raw.pixel_size, PreprocessConfig(), dose=dose)
    save_entry(Path(cache_dir), key, **entry_arrays(out))
    return key


def prepare_family(root: Path, family: str, n: int, *, workers: int = 2, seed: int | None = None) -> pd.DataFrame:
    """Simulate ``n`` micrographs of ``family`` (its default sessions, balanced classes) under
    ``root/<family>/``, preprocess them into ``root/cache`` and embed them with the default embedder.
    Returns the truth table with ``path``, ``cache_key``, ``session``, ``label``. Reuses what exists.
    ``seed``: the simulation seed (default: the benchmark's, :data:`SEEDS`)."""
    from tqdm.auto import tqdm

    from micrograde.models.grading import Embedder, EmbeddingStore
    from micrograde.pipeline.sim.files import write_collection

    out = root / family
    truth_csv = out / "truth.csv"
    if truth_csv.is_file():
        truth = pd.read_csv(truth_csv)
    else:
        truth = write_collection(out, n, seed=SEEDS[family] if seed is None else seed, family=family, balance=True,
                                 progress=True)
    truth = truth.assign(path=[str(out / m) for m in truth["micrograph"]])
    truth["cache_key"] = [hashlib.sha256(f"{family}:{p}".encode()).hexdigest()[:32] for p in truth["micrograph"]]
    doses = {}
    for p in truth["path"]:
        meta = Path(p).parent / "session.json"
        doses[p] = json.loads(meta.read_text()).get("dose") if meta.is_file() else None
    cache = root / "cache"
    jobs = [(p, str(cache), k, doses[p], float(px))
            for p, k, px in zip(truth["path"], truth["cache_key"], truth["pixel_size"], strict=True)]
    with ProcessPoolExecutor(workers) as ex:
        list(tqdm(ex.map(_preprocess_one, jobs, chunksize=4), total=len(jobs), desc=f"preprocess {family}",
                  leave=False))
    EmbeddingStore(cache, Embedder()).ensure(list(truth["cache_key"]), progress=True)
    return truth


def draw_labels(table: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` rows spread evenly over the table's sessions, stratified by label within each session."""
    rng = np.random.default_rng(seed)
    sessions = sorted(table["session"].unique())
    per = [n // len(sessions) + (1 if i < n % len(sessions) else 0) for i in range(len(sessions))]
    picked = []
    for s, k in zip(sessions, per, strict=True):
        rows = table[table["session"] == s]
        order = rng.permutation(len(rows))
        # round-robin over labels keeps the draw stratified
        by_label = {lab: [i for i in order if rows["label"].iloc[i] == lab] for lab in ("good", "medium", "bad")}
        chosen: list[int] = []
        while len(chosen) < min(k, len(rows)):
            for lab in ("good", "medium", "bad"):
                if by_label[lab] and len(chosen) < k:
                    chosen.append(by_label[lab].pop(0))
        picked.append(rows.iloc[sorted(chosen)])
    return pd.concat(picked).reset_index(drop=True)


def macro_f1(y_true, y_pred) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(list(y_true), list(y_pred), labels=["good", "medium", "bad"], average="macro",
                          zero_division=0))


def grade(train: pd.DataFrame, test: pd.DataFrame, cache: Path, model_dir: Path, *, seed: int = 0,
          collection: pd.DataFrame | None = None) -> dict:
    """Train the default grader on ``train`` (its own cross-validation chooses the head), grade
    ``test``; the baseline head is refitted on the same labels and grades the same micrographs.
    ``collection``: every micrograph of the sessions concerned (``cache_key``, ``session``, in
    simulation order), of which the first ones stand for each session as they would in a workspace
    (:mod:`micrograde.models.grading.sessions`); default: ``train`` and ``test`` together."""
    from micrograde.models.grading import BASELINE, Grader, GraderConfig, train_grader
    from micrograde.models.grading.features import load_features
    from micrograde.models.grading.heads import fit_head
    from micrograde.models.grading.sessions import reference_keys
    from micrograde.pipeline.config import LABELS

    whole = collection if collection is not None else pd.concat([train, test]).drop_duplicates("cache_key")
    references = reference_keys(list(whole["cache_key"]), list(whole["session"]))
    cfg = GraderConfig(seed=seed)
    outcome = train_grader(train, cache, model_dir, cfg, model_id=model_dir.name, progress=False,
                           references=references)
    grader = Grader(model_dir)
    probs = grader.predict(list(test["cache_key"]), cache_dir=cache, sessions=list(test["session"]),
                           references=references)
    pred = [LABELS[i] for i in probs.argmax(1)]
    y = np.array([LABELS.index(v) for v in train["label"]])
    base = fit_head(BASELINE, load_features(list(train["cache_key"]), cache), y, seed=seed)
    base_pred = [LABELS[i] for i in base.predict_proba(load_features(list(test["cache_key"]), cache)).argmax(1)]
    per_session = {s: {"grader": macro_f1(test["label"][test["session"] == s], np.array(pred)[test["session"] == s]),
                       "baseline": macro_f1(test["label"][test["session"] == s],
                                            np.array(base_pred)[test["session"] == s])}
                   for s in sorted(test["session"].unique())}
    ev = outcome.card["evaluation"]
    return {
        "n_train": len(train),
        "n_test": len(test),
        "chosen": ev["chosen"],
        "oof_macro_f1": ev["oof"]["macro_f1"],
        "oof_chosen_macro_f1": (ev.get("chosen_oof") or ev["oof"])["macro_f1"],
        "oof_baseline_macro_f1": ev["baseline_oof"]["macro_f1"],
        "test_macro_f1": macro_f1(test["label"], pred),
        "test_baseline_macro_f1": macro_f1(test["label"], base_pred),
        "per_session": per_session,
    }
