"""Development comparison of the grader's candidate heads, on the development collections only.

This is where a change to the grading method is decided, never on the benchmarks
(``bench_learning_curve.py``, ``bench_domain_shift.py``, whose collections use other seeds). The
development collections: 320 micrographs of each rendering family, simulated with
``grading_data.DEV_SEEDS`` (family a seed 1000, family b seed 3000).

Scenarios (each a training set and the micrographs it is graded on):

- ``<family>-loso<N>``: N labels from three sessions (evenly, stratified), graded on the fourth
  session; each session held out in turn (N = 50, 100);
- ``<family>-one30``: 30 labels of one session, graded on its other micrographs; each session in turn;
- ``a->b``, ``b->a``: 160 labels of one family, graded on all of the other.

For each, every candidate head is fitted on the training labels and grades the test micrographs;
``chosen`` is what the grader ships (:func:`~micrograde.models.grading.protocol.choose_robust`: the
preferred head, ``physics`` since 2026-11-29 and ``blend`` before, unless another head beats it by
more than the noise in the grader's own cross-validation),
``best-oof`` the head with the best out-of-fold macro-F1 (the grader's choice before 2026-11-28).
Printed: mean macro-F1 per scenario kind and over all of them.

``--areas``: also the mask model's area fractions as inputs ("segmentation for classification",
issue 12): each micrograph is segmented by the default mask model (built on first use), and two
more candidates are tried, ``physics+areas`` (the physics forest's blocks, its session block included,
and the areas) and ``baseline+areas`` (forests), with
``chosen+areas`` the grader's choice among all of them.

Run by hand (about 5 minutes on 2 CPU cores once the collections are cached; ``--areas`` adds the
mask model's build and about 4 minutes of segmentation the first time):
    .venv/bin/python bench/dev_grading.py [--tmp DIR] [--areas] [--embedder layout=field ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from grading_data import DEV_SEEDS, draw_labels, macro_f1, prepare_family  # bench/ is on sys.path

AREA_HEADS = ("physics+areas", "baseline+areas")


def evaluate(features, positions, train: pd.DataFrame, test: pd.DataFrame) -> dict[str, float]:
    """Macro-F1 on ``test`` of every candidate head fitted on ``train``, and of the head the grader chooses."""
    from micrograde.models.grading.heads import HEADS, fit_head
    from micrograde.models.grading.protocol import choose, choose_robust, cross_validate, make_folds, summarise
    from micrograde.pipeline.config import LABELS

    ftr = features.take(np.array([positions[k] for k in train["cache_key"]]))
    fte = features.take(np.array([positions[k] for k in test["cache_key"]]))
    y = np.array([LABELS.index(v) for v in train["label"]])
    heads = list(HEADS)
    oof = cross_validate(ftr, y, make_folds(train["session"].to_numpy(), y), heads)
    fitted: dict = {}
    out = {}
    for h in heads:
        fitted[h] = fit_head(h, ftr, y, fitted=fitted)
        out[h] = macro_f1(test["label"], [LABELS[i] for i in fitted[h].predict_proba(fte).argmax(1)])
    summaries = {h: summarise(y, oof[h]) for h in heads}
    out["best-oof"] = out[choose({h: s for h, s in summaries.items() if h not in AREA_HEADS})]
    out["chosen"] = out[choose_robust(y, {h: p for h, p in oof.items() if h not in AREA_HEADS}).head]
    if any(h in HEADS for h in AREA_HEADS):
        out["chosen+areas"] = out[choose_robust(y, oof).head]
    return out


def area_block(root: Path, data: dict[str, pd.DataFrame]) -> np.ndarray:
    """Area fractions (carbon, contamination, crystalline, empty) of every micrograph, by the default mask
    model; cached in ``root/areas.csv``."""
    from micrograde.models.segmentation.default import ensure_default_mask_model
    from micrograde.pipeline.io.readers import read_micrographs
    from micrograde.pipeline.masks import area_fractions

    cached = root / "areas.csv"
    keys = [k for f in ("a", "b") for k in data[f]["cache_key"]]
    if not cached.is_file():
        from tqdm.auto import tqdm

        model = ensure_default_mask_model(root / "mask-workspace", progress=True)
        rows = []
        for fam in ("a", "b"):
            table = data[fam]
            for key, path, px in tqdm(list(zip(table["cache_key"], table["path"], table["pixel_size"], strict=True)),
                                      desc=f"segment {fam}"):
                raw = read_micrographs(Path(path), pixel_size=float(px))[0]
                rows.append({"cache_key": key, **area_fractions(model.predict_view(raw.data, raw.pixel_size))})
        pd.DataFrame(rows).to_csv(cached, index=False)
    areas = pd.read_csv(cached).set_index("cache_key")
    return areas.loc[keys].to_numpy(np.float32)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=320, help="micrographs simulated per family (4 sessions)")
    p.add_argument("--tmp", default=None, help="scratch folder (kept and reused between runs)")
    p.add_argument("--areas", action="store_true", help="also try the mask model's area fractions as inputs")
    p.add_argument("--embedder", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="embedder settings other than the defaults (EmbedderConfig), e.g. layout=field pixel_size=4")
    args = p.parse_args(argv)
    from micrograde.models.grading import Embedder, EmbedderConfig, EmbeddingStore
    from micrograde.models.grading.features import load_features

    started = time.perf_counter()
    root = Path(args.tmp or Path(tempfile.gettempdir()) / "mg-dev-grading")
    data = {f: prepare_family(root, f, args.n, seed=DEV_SEEDS[f]) for f in ("a", "b")}
    keys = [k for f in ("a", "b") for k in data[f]["cache_key"]]
    features = load_features(keys, root / "cache", embeddings=EmbeddingStore(root / "cache", Embedder(EmbedderConfig(
        **dict(item.split("=", 1) for item in args.embedder)))))
    from micrograde.models.grading.features import reference_median
    from micrograde.models.grading.sessions import add_session_block, reference_keys

    sessions = [s for f in ("a", "b") for s in data[f]["session"]]
    features, _ = add_session_block(features, sessions, reference_keys(keys, sessions),
                                    load=lambda more: load_features(more, root / "cache"),  # not called: all are here
                                    fallback=reference_median(features))
    positions = {k: i for i, k in enumerate(keys)}
    extra = {}
    if args.areas:
        from micrograde.models.grading.heads import HEADS, HeadSpec

        features.blocks["areas"] = area_block(root, data)
        # the physics forest's own blocks (its session block included), and the area fractions
        extra = {"physics+areas": HeadSpec("physics+areas", "", (*HEADS["physics"].physical, "areas"), "forest"),
                 "baseline+areas": HeadSpec("baseline+areas", "", ("level", "scores", "areas"), "forest")}
    from unittest import mock

    from micrograde.models.grading.heads import HEADS

    with mock.patch.dict(HEADS, extra):  # the extra candidates, for this run only
        rows = scenarios(features, positions, data)
    table = pd.DataFrame(rows).groupby("scenario").mean()
    table.loc["mean"] = table.mean()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3))
    print(f"{time.perf_counter() - started:.0f} s")


def scenarios(features, positions, data: dict[str, pd.DataFrame]) -> list[dict]:
    rows = []
    for fam, table in data.items():
        sessions = sorted(table["session"].unique())
        for n in (50, 100):
            for held in sessions:
                train = draw_labels(table[table["session"] != held], n, seed=n + 11)
                rows.append({"scenario": f"{fam}-loso{n}",
                             **evaluate(features, positions, train, table[table["session"] == held])})
        for s in sessions:
            one = table[table["session"] == s]
            train = draw_labels(one, 30, seed=5)
            rows.append({"scenario": f"{fam}-one30",
                         **evaluate(features, positions, train, one[~one["cache_key"].isin(train["cache_key"])])})
    for src, dst in (("a", "b"), ("b", "a")):
        rows.append({"scenario": f"{src}->{dst}",
                     **evaluate(features, positions, draw_labels(data[src], 160, seed=3), data[dst])})
    return rows


if __name__ == "__main__":
    main()
