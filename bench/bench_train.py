"""Training and grading-speed benchmark of the grader (issue 11): training on 1,000 cached micrographs
with its cross-validation, and grading from the cache.

Steps: simulate ``--n`` micrographs of family a (its four sessions, balanced classes) and preprocess
them into a cache as ingest does (``grading_data.prepare_family``, reused between runs); then, timed:

1. the frozen embeddings of every micrograph from scratch (the backbone's pass over the views; done
   once per micrograph, kept in the cache; also measured per micrograph);
2. ``train_grader`` on every label: leave-one-session-out cross-validation of every candidate head,
   the choice, the refit on all labels, calibration, saving (embeddings already cached);
3. grading from the cache: ``Grader`` loaded once, ``predict`` on every micrograph (embeddings cached).

Targets (issue 11, 2 CPU cores): training with cross-validation on 1,000 cached micrographs <= 15 min;
grading from cache >= 20 micrographs/s.

Run by hand, on a quiet machine:
    .venv/bin/python bench/bench_train.py [--n 1000] [--tmp DIR]
Writes bench/results/train.json and prints a Markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from bench_common import write_result  # bench/ is on sys.path
from grading_data import prepare_family


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--tmp", default=None, help="scratch folder (kept and reused between runs)")
    p.add_argument("--quick", action="store_true", help="smoke run: --n 60")
    args = p.parse_args(argv)
    if args.quick:
        args.n = 60
    import torch

    from micrograde.models.grading import Embedder, EmbeddingStore, Grader, GraderConfig, train_grader
    from micrograde.models.grading.sessions import reference_keys

    started = time.perf_counter()
    root = Path(args.tmp or Path(tempfile.gettempdir()) / f"mg-bench-train-{args.n}")
    root.mkdir(parents=True, exist_ok=True)
    table = prepare_family(root, "a", args.n)
    keys = list(table["cache_key"])
    store = EmbeddingStore(root / "cache", Embedder())
    shutil.rmtree(store.root, ignore_errors=True)  # step 1 starts from no embeddings
    t = time.perf_counter()
    store.ensure(keys, progress=True)
    embed_s = time.perf_counter() - t
    model_dir = root / "models" / f"bench-{int(time.time())}"
    t = time.perf_counter()
    # each session's first micrographs stand for it, as in a workspace (models/grading/sessions.py)
    references = reference_keys(keys, list(table["session"]))
    outcome = train_grader(table, root / "cache", model_dir, GraderConfig(), model_id=model_dir.name, progress=True,
                           log=print, references=references)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    grader = Grader(model_dir)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    grader.predict(keys, cache_dir=root / "cache", sessions=list(table["session"]), references=references)
    predict_s = time.perf_counter() - t
    ev = outcome.card["evaluation"]
    res = {
        "n": len(keys),
        "embed_seconds": round(embed_s, 1), "embed_ms_per_micrograph": round(1000 * embed_s / len(keys), 1),
        "train_seconds": round(train_s, 1), "train_minutes": round(train_s / 60, 2),
        "train_with_embeddings_minutes": round((train_s + embed_s) / 60, 2),
        "model_load_seconds": round(load_s, 2),
        "grade_from_cache_per_s": round(len(keys) / predict_s, 1),
        "chosen": ev["chosen"], "oof_macro_f1": ev["oof"]["macro_f1"],
        "candidates": {c["name"]: c["macro_f1"] for c in ev["candidates"]},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch_threads": torch.get_num_threads()},
    }
    print("\n| figure | measured | target |\n|---|---|---|")
    print(f"| embeddings of {res['n']} micrographs from scratch | {res['embed_seconds']} s "
          f"({res['embed_ms_per_micrograph']} ms each) | |")
    print(f"| training with cross-validation ({res['n']} cached, embeddings cached) | {res['train_minutes']} min | "
          f"<= 15 min |")
    print(f"| the same, embeddings computed too | {res['train_with_embeddings_minutes']} min | <= 15 min |")
    print(f"| grading from cache (model loaded once: {res['model_load_seconds']} s) | "
          f"{res['grade_from_cache_per_s']} /s | >= 20 /s |")
    write_result(res, "train", args.quick, started)


if __name__ == "__main__":
    main()
