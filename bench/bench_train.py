"""Training benchmark (issue 5): accuracy on an unseen session, fine-tuning time, inference speed.

Steps (all inside ONE Prefect flow, with a private PREFECT_HOME in the scratch folder):

1. simulate ``--n`` labelled micrographs spread over the training sessions (the default simulator
   sessions except ``--held-out``) and ``--n-held-out`` micrographs of the held-out session
   (``pipeline.simulate_io.write_collection``, fixed seeds, balanced classes);
2. ingest every session with the Prefect ingest flow (default preprocessing);
3. import the TRUE labels of the training sessions as a senior scientist (``import_labels``);
4. fine-tune with the default recipe (``TrainRunConfig()`` defaults: default backbone and input
   size, default epochs unless ``--epochs-head/--epochs-finetune``), split by session with no test
   side (``SplitConfig(test_fraction=0.0)``): the held-out session is the test set. The wall time
   of this step alone (the train flow) is the "fine-tuning on N cached micrographs" figure;
5. import the held-out session's true labels under another annotator and run ``evaluate_flow``
   on that session only: macro-F1, accuracy, per-class recall, confusion matrix;
6. inference from the cache: ``predict_cached`` on every cached micrograph with a fresh
   prediction cache (model loaded once, timed separately) -> micrographs per second.

Targets (issue 5, on 2 CPU cores): held-out macro-F1 >= 0.95; fine-tuning on 1,000 cached
micrographs <= 15 min; inference >= 20 micrographs/s from cache. The figures are reported as
measured, met or not.

Run by hand (never in the test suite), on a quiet machine:
    .venv/bin/python bench/bench_train.py                  # full: 1,000 training + 250 held-out
    .venv/bin/python bench/bench_train.py --quick          # smoke run (120 + 30, 2 + 1 epochs)
Options: --n, --n-held-out, --held-out NAME, --epochs-head, --epochs-finetune, --seed, --threads,
--workers, --tmp DIR, --keep (keep the scratch workspace and print its path).
Writes bench/results/train.json (train-quick.json with --quick) and prints a Markdown table for
bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench_common import write_result  # bench/ (this script's folder) is on sys.path

QUICK = {"n": 120, "n_held_out": 30, "epochs_head": 2, "epochs_finetune": 1}
SENIOR = ("bench-senior-sim", "senior-scientist")
EVALUATOR = ("bench-heldout-truth", "senior-scientist")
TOTAL_STEPS = 6


def step(i: int, text: str) -> None:
    print(f"[{i}/{TOTAL_STEPS}] {text}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from micrograde.pipeline.sim.physics import DEFAULT_SESSIONS

    names = [s.name for s in DEFAULT_SESSIONS]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK} unless given explicitly")
    p.add_argument("--n", type=int, default=None, help="labelled micrographs for training (default 1000)")
    p.add_argument("--n-held-out", type=int, default=None, help="micrographs of the held-out session (default 250)")
    p.add_argument("--held-out", default=names[-1], choices=names, help="simulated session kept for the test")
    p.add_argument("--epochs-head", type=int, default=None, help="override the recipe's head epochs")
    p.add_argument("--epochs-finetune", type=int, default=None, help="override the recipe's fine-tuning epochs")
    p.add_argument("--seed", type=int, default=0, help="simulation seed (held-out session: seed + 1)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--workers", type=int, default=2, help="ingest threads (Prefect thread pool)")
    p.add_argument("--batch-size", type=int, default=64, help="inference batch size (the assess default)")
    p.add_argument("--tmp", default=None, help="parent of the scratch folder (needs ~3 MB per micrograph)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (workspace, simulation)")
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else {"n": 1000, "n_held_out": 250}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    train_sessions = [s for s in DEFAULT_SESSIONS if s.name != args.held_out]
    if args.n < 3 * len(train_sessions) or args.n_held_out < 3:
        p.error(f"--n must be >= {3 * len(train_sessions)} and --n-held-out >= 3 (three classes per session)")
    for key in ("epochs_head", "epochs_finetune", "threads"):
        if getattr(args, key) is not None and getattr(args, key) < (1 if key == "threads" else 0):
            p.error(f"--{key.replace('_', '-')} out of range")
    return args


def labels_csv(path: Path, truth) -> Path:
    from micrograde.pipeline.io.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, truth[["micrograph", "label"]].to_csv(index=False))
    return path


def simulate(sim: Path, args: argparse.Namespace):
    from micrograde.pipeline.sim.physics import DEFAULT_SESSIONS
    from micrograde.pipeline.sim.files import write_collection

    held = [s for s in DEFAULT_SESSIONS if s.name == args.held_out]
    train_sessions = [s for s in DEFAULT_SESSIONS if s.name != args.held_out]
    tables = []
    for sub, n, sessions, seed in (("train", args.n, train_sessions, args.seed),
                                   ("held-out", args.n_held_out, held, args.seed + 1)):
        truth = write_collection(sim / sub, n, seed=seed, sessions=sessions, balance=True, progress=True)
        tables.append(truth.assign(micrograph=[str((sim / sub / m).resolve()) for m in truth["micrograph"]]))
    folders = [str(sim / "train" / s.name) for s in train_sessions] + [str(sim / "held-out" / held[0].name)]
    return tables[0], tables[1], folders


def train_config(args: argparse.Namespace):
    from micrograde.models.training.recipe import TrainConfig
    from micrograde.models.training.run import TrainRunConfig
    from micrograde.pipeline.data.splits import SplitConfig

    overrides = {k: v for k, v in (("epochs_head", args.epochs_head), ("epochs_finetune", args.epochs_finetune))
                 if v is not None}
    return TrainRunConfig(train=TrainConfig(**overrides), split=SplitConfig(test_fraction=0.0))


def run_benchmark(root: Path, args: argparse.Namespace) -> dict:
    """Everything in one Prefect flow; returns the result record."""
    import torch
    from prefect import flow

    from micrograde.flows.context import RunContext
    from micrograde.flows.ingest import ingest_flow
    from micrograde.flows.runners import make_task_runner, subflow
    from micrograde.flows.train import evaluate_flow, train_flow
    from micrograde.labeling.store import import_labels
    from micrograde.models.batch_predict import predict_cached, prediction_cache_path
    from micrograde.models.infer import Predictor
    from micrograde.pipeline.config import IngestConfig
    from micrograde.pipeline.catalogue.query import micrograph_table

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = train_config(args)

    @flow(name="bench-train", validate_parameters=False, task_runner=make_task_runner(threads=args.workers))
    def bench_flow() -> dict:
        seconds: dict[str, float] = {}
        ctx = RunContext(root=root / "ws", command="bench_train", progress=True)
        ws = ctx.workspace()

        step(1, f"simulating {args.n} training + {args.n_held_out} held-out ({args.held_out}) micrographs")
        t = time.perf_counter()
        train_truth, held_truth, folders = simulate(root / "sim", args)
        seconds["simulate"] = time.perf_counter() - t

        step(2, f"ingesting {len(folders)} sessions")
        t = time.perf_counter()
        summary = subflow(ingest_flow)(folders, ctx, IngestConfig())
        seconds["ingest"] = time.perf_counter() - t
        print(f"      ingested {summary.ingested}, already present {summary.skipped}, rejected {summary.rejected}")
        if summary.rejected:
            raise RuntimeError(f"{summary.rejected} simulated micrographs were rejected by ingest")

        step(3, f"importing {len(train_truth)} true labels of the training sessions ({SENIOR[0]})")
        res = import_labels(ws, labels_csv(root / "labels" / "train.csv", train_truth), *SENIOR)
        print(f"      {res.n_written} labels written")

        step(4, f"fine-tuning (default recipe: {cfg.train.backbone}, {cfg.train.epochs_head} + "
                f"{cfg.train.epochs_finetune} epochs, torch threads {torch.get_num_threads()})")
        t = time.perf_counter()
        outcome = train_flow(ctx, cfg)
        seconds["train"] = time.perf_counter() - t
        print(f"      model {outcome.model_id} trained in {seconds['train'] / 60:.1f} min")

        step(5, f"evaluating model {outcome.model_id} on the held-out session {args.held_out}")
        res = import_labels(ws, labels_csv(root / "labels" / "held-out.csv", held_truth), *EVALUATOR)
        t = time.perf_counter()
        evaluation = evaluate_flow(ctx, outcome.model_id, sessions=[args.held_out])
        seconds["evaluate"] = time.perf_counter() - t

        keys = list(micrograph_table(ws)["cache_key"])
        step(6, f"inference from cache on {len(keys)} micrographs (fresh prediction cache)")
        prediction_cache_path(ws.cache_dir, outcome.model_id).unlink(missing_ok=True)
        t = time.perf_counter()
        predictor = Predictor(ws.models_dir / outcome.model_id)
        seconds["model_load"] = time.perf_counter() - t
        t = time.perf_counter()
        _probs, n_cached = predict_cached(predictor, ws.cache_dir, keys, batch_size=args.batch_size, progress=True)
        seconds["inference"] = time.perf_counter() - t
        if n_cached:
            raise RuntimeError(f"the prediction cache was not fresh ({n_cached} hits)")
        # the same again with the prediction cache removed: warm process (oneDNN kernels built)
        prediction_cache_path(ws.cache_dir, outcome.model_id).unlink()
        t = time.perf_counter()
        predict_cached(predictor, ws.cache_dir, keys, batch_size=args.batch_size)
        seconds["inference_warm"] = time.perf_counter() - t
        t = time.perf_counter()
        _again, n_cached = predict_cached(predictor, ws.cache_dir, keys, batch_size=args.batch_size)
        seconds["inference_cached_rerun"] = time.perf_counter() - t
        if n_cached != len(set(keys)):
            raise RuntimeError(f"the prediction cache answered {n_cached} of {len(set(keys))} micrographs")
        return {"seconds": seconds, "outcome": outcome, "evaluation": evaluation, "n_inference": len(keys)}

    r = bench_flow()
    outcome, ev = r["outcome"], r["evaluation"]
    m = ev["metrics"]
    history = outcome.card.get("history", [])
    s = r["seconds"]
    return {
        "quick": bool(args.quick),
        "n_train_labelled": int(outcome.card["training"]["n_labelled"]),
        "n_held_out": int(ev["n"]),
        "held_out": args.held_out,
        "recipe": {"backbone": cfg.train.backbone, "input_size": outcome.card["input"]["size"],
                   "epochs_head": cfg.train.epochs_head, "epochs_finetune": cfg.train.epochs_finetune,
                   "batch_size": cfg.train.batch_size, "split": cfg.split.model_dump()},
        "head": {k: outcome.card.get("head", {}).get(k) for k in ("kind", "boosting_iterations", "pca_components",
                                                                   "validation", "fusion_rejected")},
        "epochs_run": {stage: sum(1 for h in history if h.get("stage") == stage) for stage in ("head", "finetune")},
        "accuracy": {
            "macro_f1": m.get("macro_f1"),
            "accuracy": m.get("accuracy"),
            "balanced_accuracy": m.get("balanced_accuracy"),
            "recall": {k: v["recall"] for k, v in m.get("per_class", {}).items()},
            "confusion_matrix": m.get("confusion_matrix"),
            "labels": m.get("labels"),
            "evaluated_on": ev["evaluated_on"],
            "validation_metrics_during_training": {k: outcome.metrics.get(k) for k in ("macro_f1", "accuracy")},
            "target_macro_f1": 0.95,
        },
        "speed": {
            "train_seconds": round(s["train"], 1),
            "train_minutes": round(s["train"] / 60, 2),
            "target_minutes_for_1000": 15,
            "inference_n": r["n_inference"],
            "inference_seconds": round(s["inference"], 2),
            "inference_per_s": round(r["n_inference"] / s["inference"], 1),
            "inference_warm_per_s": round(r["n_inference"] / s["inference_warm"], 1),
            "model_load_seconds": round(s["model_load"], 2),
            "inference_cached_rerun_seconds": round(s["inference_cached_rerun"], 3),
            "target_inference_per_s": 20,
        },
        "seconds": {k: round(v, 1) for k, v in s.items()},
        "train_log": outcome.lines,
        "warnings": list(outcome.warnings),
        "model_id": outcome.model_id,
    }


def machine_info() -> dict:
    import torch

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": bool(torch.cuda.is_available())}


def markdown(res: dict) -> str:
    a, sp = res["accuracy"], res["speed"]
    rec = ", ".join(f"{k} {v:.3f}" for k, v in a["recall"].items())
    lines = [
        f"Held-out session `{res['held_out']}` ({res['n_held_out']} micrographs); trained on "
        f"{res['n_train_labelled']} labelled micrographs; {res['machine']['cpus']} CPUs, "
        f"torch threads {res['machine']['torch_threads']}" + (" (QUICK smoke run)" if res["quick"] else ""),
        "",
        "| figure | measured | target |",
        "|---|---|---|",
        f"| held-out macro-F1 (grading head: {res['head']['kind']}) | {a['macro_f1']:.3f} | >= 0.95 |",
        f"| held-out accuracy | {a['accuracy']:.3f} | |",
        f"| held-out recall | {rec} | |",
        f"| confusion matrix (rows true {'/'.join(a['labels'])}) | {a['confusion_matrix']} | |",
        f"| fine-tuning wall time ({res['n_train_labelled']} cached, epochs run head {res['epochs_run']['head']} + "
        f"fine-tune {res['epochs_run']['finetune']}) | {sp['train_minutes']} min | <= 15 min for 1,000 |",
        f"| inference from cache ({sp['inference_n']} micrographs, first call / warm) | "
        f"{sp['inference_per_s']} / {sp['inference_warm_per_s']} /s | >= 20 /s |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-train-", dir=args.tmp)).resolve()
    os.environ["PREFECT_HOME"] = str(root / "prefect-home")
    from micrograde.flows.runtime import configure_prefect

    configure_prefect()  # before prefect is imported (inside run_benchmark)
    t0 = time.perf_counter()
    try:
        res = run_benchmark(root, args)
    except Exception as exc:  # noqa: BLE001 - a benchmark reports and exits
        traceback.print_exc()
        print(f"\nbench_train FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept the scratch folder {root} (workspace: {root / 'ws'})")
        else:
            shutil.rmtree(root, ignore_errors=True)
    res["machine"] = machine_info()
    write_result(res, "train", args.quick, t0)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
