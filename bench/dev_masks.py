"""Development collections for the mask model (issue 12): where its training choices are made.

Not a benchmark: ``bench_masks.py`` holds out the LAST default session of each rendering family and
tests on seed 1000; this script holds out the FIRST session of each family instead and tests on
seed 5000, so a choice made here is never made on the benchmark's test micrographs. A mask model is
trained with ``MaskTrainConfig()`` changed by ``--set FIELD=VALUE`` (repeatable) on the other default
sessions, then tested on ``--n-test`` micrographs of each held-out session drawn region by region
(``REGION_CYCLE``: one natural draw, then one showing carbon, contamination, crystalline ice and
vacuum in turn), so that every class has pixels to score. IoU per class, pooled over a session's
micrographs, at full resolution against the simulator's ground truth.

The score a choice is judged by: the mean IoU of the four defect classes over the two held-out
sessions ("defect mean"), with the usable class's IoU beside it.

    PYTHONPATH=src nice .venv/bin/python bench/dev_masks.py --set balance_regions=false --set focus_crops=0
    PYTHONPATH=src nice .venv/bin/python bench/dev_masks.py           # the defaults
Prints one Markdown row per held-out session and the defect mean; writes bench/results/dev_masks-<tag>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def _value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a MaskTrainConfig field")
    ap.add_argument("--n-train", type=int, default=None, help="simulated training micrographs (default: the default)")
    ap.add_argument("--n-test", type=int, default=10, help="test micrographs per held-out session")
    ap.add_argument("--seed-test", type=int, default=5000)
    ap.add_argument("--train-family", choices=("both", "a", "b"), default="both",
                    help="train on the other sessions of this family only (a or b: the other family's held-out "
                         "session then measures a change of rendering family)")
    args = ap.parse_args()

    import torch
    from bench_masks import evaluate_iou, train_on  # bench/ is on sys.path

    from micrograde.models.segmentation.default import DEFAULT_SIM_COUNT
    from micrograde.models.segmentation.store import load_mask_model
    from micrograde.models.segmentation.train import MaskTrainConfig
    from micrograde.pipeline.masks import DEFECT_CLASSES, MASK_CLASSES
    from micrograde.pipeline.sim.families import family_sessions

    updates = dict(item.split("=", 1) for item in args.set)
    cfg = MaskTrainConfig(**{k: _value(v) for k, v in updates.items()})
    n_train = args.n_train or DEFAULT_SIM_COUNT
    a, b = family_sessions("a"), family_sessions("b")
    held, train = (a[0], b[0]), {"both": a[1:] + b[1:], "a": a[1:], "b": b[1:]}[args.train_family]
    started = time.time()
    torch.set_num_threads(cfg.threads)
    with tempfile.TemporaryDirectory() as tmp:
        train_on(Path(tmp) / "m", train, cfg, n_train, "dev_masks")
        model = load_mask_model(Path(tmp) / "m")
        results = {s.name: evaluate_iou(model, [s], args.n_test, args.seed_test, regions=True) for s in held}
    rows = {name: r["iou"] for name, r in results.items()}
    names = [c.name for c in MASK_CLASSES]
    tag = ",".join(args.set) or "defaults"
    if args.train_family != "both":
        tag += f",train-{args.train_family}"
    print(f"\n**{tag}** (n_train {n_train}, {cfg.steps} steps, trained on family {args.train_family})\n")
    print("| held-out session | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for name, iou in rows.items():
        print(f"| {name} | " + " | ".join("n/a" if iou[n] is None else f"{iou[n]:.2f}" for n in names) + " |")
    defect = [iou[n] or 0.0 for iou in rows.values() for n in DEFECT_CLASSES]
    usable = [iou["usable"] or 0.0 for iou in rows.values()]
    summary = {"defect_mean": round(float(np.mean(defect)), 3), "usable_mean": round(float(np.mean(usable)), 3)}
    print(f"\ndefect mean {summary['defect_mean']:.3f}, usable {summary['usable_mean']:.3f} "
          f"({time.time() - started:.0f} s)")
    out = HERE / "results" / f"dev_masks-{tag.replace('=', '-').replace(',', '_')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"set": updates, "n_train": n_train, "iou": rows, **summary,
                               "confusion": {name: r["confusion"] for name, r in results.items()},
                               "config": cfg.model_dump(), "seconds": round(time.time() - started, 1)}, indent=2))


if __name__ == "__main__":
    main()
