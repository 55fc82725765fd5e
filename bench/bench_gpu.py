"""The grader and the mask model on a CUDA GPU with mixed precision: training and inference speed,
and what bf16 changes in the outputs.

Run by hand on a machine with a CUDA GPU (the figures in bench/README.md came from one H200):
    python bench/bench_gpu.py [--n 240] [--tmp DIR] [--mask-model DIR] [--json FILE]

Steps (each timed; a step that fails is reported and the others still run):
1. simulate ``--n`` micrographs of family a (its four sessions, benchmark seed) and preprocess them
   into a cache, on every CPU core (``grading_data.prepare_family``);
2. frozen embeddings of every micrograph on the GPU in fp32 (what the grader stores), the same
   micrographs' embeddings under bf16 autocast (speed, and the largest change of a vector), and a
   sample on the CPU for comparison;
3. ``train_grader`` with ``finetune="cv"``: leave-one-session-out cross-validation of every head
   AND of the fine-tuned network (fine-tuned once per fold on the GPU, bf16 autocast), the choice,
   the refit on every label; the out-of-fold macro-F1 of each candidate;
4. one fine-tuning of the network on every label (``train_model``) and the fine-tuned network's
   inference (``Predictor``, bf16 autocast) over every micrograph;
5. the mask model (``--mask-model``, e.g. a workspace's ``mask_models/default``) on K3-size
   (5760x4092) micrographs: input preparation on the CPU, the U-Net on the GPU in fp32 and bf16, and on
   the CPU; the share of pixels whose class bf16 changes (the product runs the U-Net in fp32: see
   ``MaskModel.probabilities``).

With no GPU it stops with a message, unless ``--allow-cpu`` (a smoke run of the script itself).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
from bench_common import write_result  # bench/ is on sys.path
from grading_data import prepare_family


def _timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_embeddings(res: dict, root: Path, keys: list[str], device: str) -> None:
    import shutil

    import torch

    from micrograde.models.grading import Embedder, EmbeddingStore
    from micrograde.models.training.loop import autocast
    from micrograde.pipeline.catalogue.cache import load_entry

    gpu = Embedder(device=device)
    store = EmbeddingStore(root / "cache", gpu)
    shutil.rmtree(store.root, ignore_errors=True)
    _, secs = _timed(store.ensure, keys, progress=True)
    _sync()
    ref = store.load(keys)
    entries = [load_entry(root / "cache", k) for k in keys]
    _, prep_s = _timed(lambda: [gpu.views(e) for e in entries])
    with autocast(torch.device(device)):
        bf16, bf16_s = _timed(gpu.embed, entries)
    _sync()
    sample = entries[:32]
    cpu_vec, cpu_s = _timed(Embedder(device="cpu").embed, sample)
    rel = np.abs(bf16 - ref).max(axis=1) / np.abs(ref).max(axis=1)
    cos = (bf16 * ref).sum(1) / (np.linalg.norm(bf16, axis=1) * np.linalg.norm(ref, axis=1))
    cpu_rel = np.abs(cpu_vec - ref[: len(sample)]).max(axis=1) / np.abs(ref[: len(sample)]).max(axis=1)
    res["embeddings"] = {
        "n": len(keys), "fp32_store_seconds": round(secs, 2), "fp32_per_s": round(len(keys) / secs, 1),
        "views_cpu_seconds": round(prep_s, 2),
        "bf16_seconds": round(bf16_s, 2), "bf16_per_s": round(len(keys) / bf16_s, 1),
        "bf16_max_rel_change": float(rel.max()), "bf16_min_cosine": float(cos.min()),
        "cpu_n": len(sample), "cpu_per_s": round(len(sample) / cpu_s, 1), "cpu_threads": torch.get_num_threads(),
        "cpu_vs_gpu_fp32_max_rel_change": float(cpu_rel.max()),
    }


def step_grader(res: dict, root: Path, table, device: str) -> None:
    from micrograde.models.grading import Grader, GraderConfig, train_grader

    model_dir = root / "models" / f"gpu-{int(time.time())}"
    outcome, secs = _timed(train_grader, table, root / "cache", model_dir, GraderConfig(finetune="cv"),
                           model_id=model_dir.name, progress=True, log=print)
    ev = outcome.card["evaluation"]
    grader = Grader(model_dir, device=device)
    _, grade_s = _timed(grader.predict, list(table["cache_key"]), cache_dir=root / "cache")
    res["grader"] = {
        "n_labels": len(table), "sessions": int(table["session"].nunique()),
        "train_with_cv_seconds": round(secs, 1), "chosen": ev["chosen"], "oof_macro_f1": ev["oof"]["macro_f1"],
        "candidates": {c["name"]: c["macro_f1"] for c in ev["candidates"]},
        "grade_from_cache_per_s": round(len(table) / grade_s, 1),
    }


def step_network(res: dict, root: Path, table, device: str) -> None:
    from micrograde.models.grading import GraderConfig
    from micrograde.models.grading.finetune import finetune_run_config
    from micrograde.models.infer import Predictor
    from micrograde.models.training.run import train_model

    cfg = finetune_run_config(GraderConfig())
    out = root / "models" / f"net-{int(time.time())}"
    _, secs = _timed(train_model, table, root / "cache", out, cfg, model_id=out.name, progress=True)
    predictor = Predictor(out, device=device)
    keys = list(table["cache_key"])
    predictor.predict(keys[:8], cache_dir=root / "cache")  # warm-up (cuDNN autotune, first launch)
    _sync()
    _, pred_s = _timed(predictor.predict, keys, cache_dir=root / "cache")
    card = json.loads((out / "card.json").read_text())
    res["network"] = {
        "n_labels": len(table), "fine_tune_seconds": round(secs, 1),
        "best_epoch": card.get("best_epoch"), "epochs_run": len(card.get("history") or []),
        "predict_per_s": round(len(keys) / pred_s, 1),
    }


def step_masks(res: dict, mask_dir: Path, repeats: int, device: str) -> None:
    import torch

    from micrograde.models.segmentation.inputs import mask_inputs
    from micrograde.models.segmentation.store import load_mask_model
    from micrograde.models.training.loop import autocast

    image = np.random.default_rng(0).standard_normal((4092, 5760), dtype=np.float32)
    px = 0.83
    gpu = load_mask_model(mask_dir, device=device)
    x, prep_s = _timed(mask_inputs, image, px, gpu.input_config)

    def passes(fn):
        fn()  # warm-up (cuDNN autotune, first launch)
        _sync()
        t = time.perf_counter()
        for _ in range(repeats):
            out = fn()
        _sync()
        return out, (time.perf_counter() - t) / repeats

    def amp_pass():
        with autocast(torch.device(device)):  # bf16 (else fp16) on a GPU; a no-op on CPU
            return gpu.probabilities(x)

    bf16, bf16_s = passes(amp_pass)
    p32, fp32_s = passes(lambda: gpu.probabilities(x))  # the product's path: fp32
    cpu = load_mask_model(mask_dir, device="cpu")
    cpu_p, cpu_s = _timed(cpu.probabilities, x)
    _, full_s = _timed(gpu.predict, image, px)
    res["masks"] = {
        "image": "5760x4092 float32 at 0.83 A/px", "view_shape": list(x.shape),
        "inputs_cpu_seconds": round(prep_s, 3), "unet_amp_seconds": round(bf16_s, 4),
        "unet_fp32_seconds": round(fp32_s, 4), "unet_cpu_seconds": round(cpu_s, 3),
        "predict_total_seconds": round(full_s, 3),
        "amp_pixels_changed": float((bf16.argmax(0) != p32.argmax(0)).mean()),
        "cpu_vs_device_fp32_pixels_changed": float((cpu_p.argmax(0) != p32.argmax(0)).mean()),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=240)
    p.add_argument("--tmp", default=None, help="scratch folder (kept and reused between runs)")
    p.add_argument("--mask-model", default=None, help="a mask model folder (step 5 is skipped without one)")
    p.add_argument("--repeats", type=int, default=5, help="U-Net passes timed per precision")
    p.add_argument("--steps", default="embeddings,grader,network,masks")
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--allow-cpu", action="store_true", help="run without a GPU (a smoke run of this script)")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        raise SystemExit("bench_gpu.py measures a CUDA GPU and none is visible (torch.cuda.is_available() is False)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    res: dict = {"machine": {
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None, "torch": torch.__version__,
        "cpus": os.cpu_count(), "platform": platform.platform(),
        "amp_dtype": "bfloat16" if device == "cuda" and torch.cuda.is_bf16_supported() else None}}
    root = Path(args.tmp or Path(tempfile.gettempdir()) / f"mg-bench-gpu-{args.n}")
    root.mkdir(parents=True, exist_ok=True)
    table, prep_s = _timed(prepare_family, root, "a", args.n, workers=os.cpu_count() or 2)
    res["prepare_seconds"] = round(prep_s, 1)
    keys = list(table["cache_key"])
    steps = {
        "embeddings": lambda: step_embeddings(res, root, keys, device),
        "grader": lambda: step_grader(res, root, table, device),
        "network": lambda: step_network(res, root, table, device),
        "masks": lambda: step_masks(res, Path(args.mask_model), args.repeats, device) if args.mask_model else None,
    }
    for name in args.steps.split(","):
        print(f"\n=== {name}", flush=True)
        t = time.perf_counter()
        try:
            steps[name]()
        except Exception:  # noqa: BLE001 - one failed step must not lose the others' figures
            res.setdefault("failed", {})[name] = traceback.format_exc()[-2000:]
            traceback.print_exc()
        res.setdefault("step_seconds", {})[name] = round(time.perf_counter() - t, 1)
        print(json.dumps({k: v for k, v in res.items() if k != "failed"}, indent=1), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    write_result(res, "gpu", device != "cuda", started)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
