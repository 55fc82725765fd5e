"""Mask benchmark (issue 12): IoU per class on held-out simulated sessions, and time per K3 micrograph.

IoU: a mask model is trained with the DEFAULT training config (``MaskTrainConfig()``, the default
number of simulated micrographs) on the default sessions of both families EXCEPT the last session
of each family, which are held out. It is then tested on ``--n-test`` micrographs of each held-out
session (fresh seeds), at full resolution (prediction brought back to the micrograph's grid,
against the simulator's ground truth), per family. ``--cross`` also trains on family a only (all
its sessions) and tests on every family-b session (the other rendering family). ``--regions`` also
tests the held-out model on micrographs of the same sessions drawn region by region (one natural
draw, then carbon, contamination, crystalline ice and vacuum in turn), since natural draws hold
almost no vacuum (none at all in family a's held-out session). IoU is pooled over
the test micrographs (one confusion matrix per family); a class absent from truth and prediction
is "n/a".

Timing: ``MaskModel.predict`` on a K3-size float32 micrograph (5760 x 4092, 0.83 A/px; noise: the
cost does not depend on the content), split into the input (Fourier crop to 8 A + lattice power
map at full resolution), the network, and the return to full resolution; median of ``--repeat``.
Torch threads: each of ``--threads`` (default 1 and 2); the IoU evaluation uses 1.

Run by hand (never in the test suite):
    nice .venv/bin/python bench/bench_masks.py --n-test 12 --cross --regions
    nice .venv/bin/python bench/bench_masks.py --quick       # smoke run: tiny training, 2 tests each
Writes bench/results/masks.json and prints Markdown tables for bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def _render(session, seed: int, i: int):
    from micrograde.pipeline.sim.families import get_family

    fam = get_family(session.family)
    rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
    params = fam.sample(rng, session, ("bad", "medium", "good")[i % 3])
    r = fam.render(params, session, rng)
    return r.image, r.mask


def train_on(folder: Path, sessions, cfg, n: int, label: str) -> dict:
    from micrograde.models.segmentation.default import build_mask_model
    from micrograde.models.segmentation.train import simulated_examples

    t0 = time.perf_counter()
    examples = list(simulated_examples(n, seed=cfg.seed, family="both", cfg=cfg.input, sessions=sessions,
                                       balance_regions=cfg.balance_regions))
    t1 = time.perf_counter()
    build_mask_model(folder, cfg, examples, data_source=label, progress=True)
    return {"simulate_and_inputs_s": round(t1 - t0, 1), "train_s": round(time.perf_counter() - t1, 1)}


def _render_region(session, seed: int, i: int):
    from micrograde.models.segmentation.train import REGION_CYCLE
    from micrograde.pipeline.sim.families import get_family, sample_with_region

    rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
    r = get_family(session.family).render(sample_with_region(rng, session, REGION_CYCLE[i % len(REGION_CYCLE)]),
                                          session, rng)
    return r.image, r.mask


def evaluate_iou(model, sessions, n_test: int, seed: int, regions: bool = False) -> dict:
    from micrograde.models.segmentation.metrics import class_iou, confusion

    conf = 0
    for s in sessions:
        for i in range(n_test):
            image, mask = (_render_region if regions else _render)(s, seed, i)
            conf = conf + confusion(model.predict(image, s.pixel_size), mask)
    return {"iou": class_iou(conf), "confusion": np.asarray(conf).tolist(),
            "sessions": [s.name for s in sessions], "n": n_test * len(sessions)}


def _timing(model, repeat: int) -> dict:
    import torch

    from micrograde.models.segmentation.inputs import mask_inputs, mask_to_full

    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 10.0, (4092, 5760)).astype(np.float32)
    parts = {"inputs_s": [], "network_s": [], "to_full_s": [], "total_s": []}
    for _ in range(repeat):
        t0 = time.perf_counter()
        x = mask_inputs(image, 0.83, model.input_config)
        t1 = time.perf_counter()
        view = model.probabilities(x).argmax(axis=0).astype(np.uint8)
        t2 = time.perf_counter()
        mask_to_full(view, image.shape)
        t3 = time.perf_counter()
        for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
            v_list = parts[k]
            v_list.append(v)
    return {k: round(float(np.median(v)), 3) for k, v in parts.items()} | {
        "view_shape": list(x.shape[1:]), "torch_threads": torch.get_num_threads(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)}


def _table(title: str, results: dict) -> str:
    from micrograde.pipeline.masks import MASK_CLASSES

    names = [c.name for c in MASK_CLASSES]
    lines = [f"**{title}**", "", "| test set | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for key, r in results.items():
        cells = ["n/a" if r["iou"][n] is None else f"{r['iou'][n]:.2f}" for n in names]
        lines.append(f"| {key} | {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-test", type=int, default=12, help="test micrographs per held-out session")
    ap.add_argument("--seed-test", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads for prediction (each timed)")
    ap.add_argument("--cross", action="store_true", help="also train on family a only and test on family b")
    ap.add_argument("--regions", action="store_true",
                    help="also test on micrographs drawn region by region (REGION_CYCLE), so every class has pixels")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()

    import torch

    from micrograde.models.segmentation.default import DEFAULT_SIM_COUNT
    from micrograde.models.segmentation.store import load_mask_model
    from micrograde.models.segmentation.train import MaskTrainConfig
    from micrograde.pipeline.sim.families import family_sessions

    started = time.time()
    cfg = MaskTrainConfig(steps=4, batch_size=2) if args.quick else MaskTrainConfig()
    n_train = 6 if args.quick else DEFAULT_SIM_COUNT
    n_test = 2 if args.quick else args.n_test
    a, b = family_sessions("a"), family_sessions("b")
    res: dict = {"config": cfg.model_dump(), "n_train": n_train, "machine": platform.platform(),
                 "python": platform.python_version(), "torch": torch.__version__, "command": " ".join(sys.argv)}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        held = {"a": a[-1], "b": b[-1]}
        train_sessions = a[:-1] + b[:-1]
        res["held_out"] = {"train": train_on(Path(tmp) / "held", train_sessions, cfg, n_train,
                                           f"bench: {n_train} simulated, sessions {[s.name for s in train_sessions]}")}
        torch.set_num_threads(1)
        model = load_mask_model(Path(tmp) / "held")
        evals = {f"family {f}, held-out session {s.name}": evaluate_iou(model, [s], n_test, args.seed_test)
                 for f, s in held.items()}
        res["held_out"]["eval"] = evals
        print(
            _table(
                f"Trained on {n_train} simulated micrographs of sessions {', '.join(s.name for s in train_sessions)}"
                f" ({cfg.steps} steps); tested on held-out sessions",
                evals,
            )
        )
        if args.regions:
            evals_r = {f"family {f}, held-out session {s.name}, region draws": evaluate_iou(model, [s], n_test,
                                                                                       args.seed_test, True)
                       for f, s in held.items()}
            res["held_out"]["eval_regions"] = evals_r
            print("\n" + _table("The same model on region draws (each defect class in turn)", evals_r))
        res["timing_k3"] = []
        for threads in args.threads:
            torch.set_num_threads(threads)
            res["timing_k3"].append(_timing(model, 1 if args.quick else args.repeat))
            print("\nK3 (5760x4092, 0.83 A/px) per micrograph:", json.dumps(res["timing_k3"][-1]))
        torch.set_num_threads(1)
        if args.cross:
            res["cross"] = {"train": train_on(Path(tmp) / "cross", a, cfg, n_train, "bench: family a only")}
            model = load_mask_model(Path(tmp) / "cross")
            evals = {"family b (all sessions)": evaluate_iou(model, b, max(1, n_test // 2), args.seed_test)}
            res["cross"]["eval"] = evals
            print("\n" + _table(f"Trained on family a only ({n_train} micrographs); tested on family b", evals))
    res["seconds"] = round(time.time() - started, 1)
    out = HERE / "results" / ("masks-quick.json" if args.quick else "masks.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"\nwrote {out} ({res['seconds']} s)")


if __name__ == "__main__":
    main()
