"""Development check of the grader on 8-bit PNG exports, in the regime of a small real labelled set.

A facility's labelled micrographs may exist only as 8-bit PNG exports at about 7.5 A/px (no header,
a contrast stretch, the ice ring and Thon rings far beyond Nyquist), one folder per session, a few
dozen in all. This script makes such a set from the DEVELOPMENT collections (``grading_data.DEV_SEEDS``;
never the benchmarks'): each micrograph Fourier-cropped to ``--pixel-size``, stretched between its
0.5 and 99.5 percentiles and written as an 8-bit PNG, then preprocessed as ingest does with that pixel
size. Scenario: ``--per-session`` micrographs from each of three sessions of one family (a share
``--bad`` of them bad, the rest good and medium alike); each session held out in turn, the grader
trained on the other two (leave-one-session-out as a user would, 2 labelled sessions: stratified folds
within them) and graded on the held-out one; ``--draws`` draws per family.

For each fit: macro-F1 (good / medium / bad) and good-vs-bad accuracy (micrographs labelled good or bad)
of every candidate head, of the head the grader ships (``chosen``: :func:`choose_robust` with the
preferred head), of what the out-of-fold figures alone would pick (``best-oof``), of ``choose_robust``
preferring ``blend`` instead, and of the constant "bad" answer. Mean over all fits per family.

Run by hand (about 17 minutes on 2 CPU cores the first time, the collections' simulation included):
    .venv/bin/python bench/dev_png.py [--tmp DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from grading_data import DEV_SEEDS, macro_f1, prepare_family  # bench/ is on sys.path


def _export_one(args: tuple[str, float, str, float]) -> None:
    """One micrograph as an 8-bit PNG at ``target`` A/px (skipped when it exists)."""
    path, pixel_size, out, target = args
    if Path(out).is_file():
        return
    import cv2

    from micrograde.pipeline.io.readers import read_micrographs
    from micrograde.pipeline.signal.views import resample_view

    raw = read_micrographs(Path(path), pixel_size=pixel_size)[0]
    view = resample_view(np.asarray(raw.data, dtype=np.float32), raw.pixel_size, target)
    lo, hi = np.percentile(view, [0.5, 99.5])
    img = np.clip((view - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(out, img)


def _preprocess_png(args: tuple[str, str, str, float]) -> None:
    path, cache_dir, key, pixel_size = args
    from micrograde.pipeline.catalogue.cache import entry_arrays, has_entry, save_entry
    from micrograde.pipeline.config import PreprocessConfig
    from micrograde.pipeline.io.readers import read_micrographs
    from micrograde.pipeline.signal.preprocess import preprocess

    if has_entry(Path(cache_dir), key):
        return
    raw = read_micrographs(Path(path), pixel_size=pixel_size)[0]
    save_entry(Path(cache_dir), key, **entry_arrays(preprocess(raw.data, raw.pixel_size, PreprocessConfig())))


def png_family(root: Path, family: str, n: int, target: float) -> pd.DataFrame:
    """The development collection of ``family`` exported as PNG and cached; truth table with PNG keys."""
    from tqdm.auto import tqdm

    from micrograde.models.grading import Embedder, EmbeddingStore

    truth = prepare_family(root, family, n, seed=DEV_SEEDS[family])
    out = root / f"png-{family}"
    pngs = [str(out / s / (Path(m).stem + ".png")) for s, m in zip(truth["session"], truth["micrograph"], strict=True)]
    with ProcessPoolExecutor(2) as ex:
        list(tqdm(ex.map(_export_one, [(p, float(px), o, target) for p, px, o in
                                       zip(truth["path"], truth["pixel_size"], pngs, strict=True)], chunksize=4),
                  total=len(pngs), desc=f"png {family}", leave=False))
    keys = [hashlib.sha256(f"png:{target}:{p}".encode()).hexdigest()[:32] for p in pngs]
    jobs = [(p, str(root / "cache"), k, target) for p, k in zip(pngs, keys, strict=True)]
    with ProcessPoolExecutor(2) as ex:
        list(tqdm(ex.map(_preprocess_png, jobs, chunksize=4), total=len(pngs), desc=f"preprocess png {family}",
                  leave=False))
    EmbeddingStore(root / "cache", Embedder()).ensure(keys, progress=True)
    return truth.assign(path=pngs, cache_key=keys)


def draw_set(table: pd.DataFrame, per_session: int, bad: float, rng: np.random.Generator) -> pd.DataFrame:
    """Three sessions, ``per_session`` micrographs each, a share ``bad`` of them bad."""
    sessions = rng.choice(sorted(table["session"].unique()), 3, replace=False)
    n_bad = int(round(per_session * bad))
    rows = []
    for s in sessions:
        t = table[table["session"] == s]
        bads = t[t["label"] == "bad"].sample(n_bad, random_state=int(rng.integers(1 << 31)))
        rest = t[t["label"] != "bad"].sample(per_session - n_bad, random_state=int(rng.integers(1 << 31)))
        rows.append(pd.concat([bads, rest]))
    return pd.concat(rows).reset_index(drop=True)


def evaluate(features, train: pd.DataFrame, test: pd.DataFrame) -> dict[str, float]:
    from micrograde.models.grading.heads import HEADS, fit_head
    from micrograde.models.grading.protocol import choose, choose_robust, cross_validate, make_folds, summarise
    from micrograde.pipeline.config import LABELS

    pos = {k: i for i, k in enumerate(features.keys)}
    ftr = features.take(np.array([pos[k] for k in train["cache_key"]]))
    fte = features.take(np.array([pos[k] for k in test["cache_key"]]))
    y = np.array([LABELS.index(v) for v in train["label"]])
    heads = list(HEADS)
    oof = cross_validate(ftr, y, make_folds(train["session"].to_numpy(), y), heads)
    preds: dict[str, list[str]] = {}
    fitted: dict = {}
    for h in heads:
        fitted[h] = fit_head(h, ftr, y, fitted=fitted)
        preds[h] = [LABELS[i] for i in fitted[h].predict_proba(fte).argmax(1)]
    summaries = {h: summarise(y, oof[h]) for h in heads}
    preds["chosen"] = preds[choose_robust(y, oof, summaries=summaries).head]
    preds["best-oof"] = preds[choose(summaries)]
    preds["blend-preferred"] = preds[choose_robust(y, oof, prefer="blend", summaries=summaries).head]
    preds["always-bad"] = ["bad"] * len(test)
    truth = test["label"].to_numpy()
    gb = np.isin(truth, ["good", "bad"])
    out = {}
    for name, p in preds.items():
        p = np.asarray(p)
        out[f"{name}|f1"] = macro_f1(truth, p)
        out[f"{name}|acc"] = float(np.mean(p[gb] == truth[gb])) if gb.any() else np.nan
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tmp", default=None, help="scratch folder (kept and reused; may be dev_grading.py's)")
    p.add_argument("--n", type=int, default=320, help="micrographs simulated per family (4 sessions)")
    p.add_argument("--pixel-size", type=float, default=7.5)
    p.add_argument("--per-session", type=int, default=10)
    p.add_argument("--bad", type=float, default=0.6, help="share of bad micrographs in each session")
    p.add_argument("--draws", type=int, default=8)
    args = p.parse_args(argv)
    from micrograde.models.grading import Embedder, EmbeddingStore
    from micrograde.models.grading.features import load_features, reference_median
    from micrograde.models.grading.sessions import add_session_block, reference_keys

    started = time.perf_counter()
    root = Path(args.tmp or Path(tempfile.gettempdir()) / "mg-dev-grading")
    rows = []
    for fam in ("a", "b"):
        table = png_family(root, fam, args.n, args.pixel_size)
        rng = np.random.default_rng(17)
        for draw in range(args.draws):
            chosen = draw_set(table, args.per_session, args.bad, rng)
            keys, sessions = list(chosen["cache_key"]), list(chosen["session"])
            feats = load_features(keys, root / "cache", embeddings=EmbeddingStore(root / "cache", Embedder()))
            # every micrograph of the set is in the workspace: each session stands for itself
            feats, _ = add_session_block(feats, sessions, reference_keys(keys, sessions),
                                         load=lambda more: load_features(more, root / "cache"),
                                         fallback=reference_median(feats))
            for held in sorted(set(sessions)):
                res = evaluate(feats, chosen[chosen["session"] != held], chosen[chosen["session"] == held])
                rows.append({"family": fam, "draw": draw, **res})
    table = pd.DataFrame(rows).drop(columns="draw").groupby("family").mean().T
    table["mean"] = table.mean(axis=1)
    table.index = pd.MultiIndex.from_tuples([tuple(i.split("|")) for i in table.index], names=["head", "measure"])
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        print(table.unstack("measure").round(3))
    print(f"{len(rows)} fits, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
