"""Peak memory of `micrograde assess` against the number of micrographs (issue 14): flat from 100 to 10,000?

Setup (not timed): a workspace whose grader is trained on ``--train-n`` small noise micrographs
(``--heads``, default ``baseline``: no torch model, so the figure is micrograde's own bookkeeping,
not the backbone's weights; ``--heads embedding`` loads the backbone and embeds every micrograph,
about 0.2 s of CPU each). Then, for each count N of ``--counts`` (default 100 1000 10000): N small
float32 micrographs (``--size`` pixels square, 1 A/px, shot noise, two session folders, distinct
bytes) are written, and one `micrograde assess SRC --workspace COPY` runs on a fresh copy of the
trained workspace, in a child process whose peak RSS (ru_maxrss of the command's process tree: its
largest process) and seconds are recorded. Every command shares one Prefect home whose local API a
warm-up command started (as successive commands of a facility session do).

Run by hand (never in the test suite); 10,000 micrographs take about half an hour on 2 cores:
    .venv/bin/python bench/bench_memory.py                       # counts 100 1000 10000
    .venv/bin/python bench/bench_memory.py --counts 50 200       # a smoke run
Writes bench/results/memory.json and prints a Markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import write_result  # bench/ is on sys.path
from bench_throughput import BenchError, assess_once

HERE = Path(__file__).resolve().parent


def write_noise(folder: Path, n: int, size: int, seed: int) -> None:
    """``n`` float32 MRC files of ``size`` x ``size`` shot noise (1 A/px) in two session folders."""
    import mrcfile
    import numpy as np

    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = folder / f"session_{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        with mrcfile.new(sub / f"m_{i:05d}.mrc") as m:
            m.set_data(rng.poisson(30.0 * (1 + 0.2 * (i % 3)), size=(size, size)).astype(np.float32))
            m.voxel_size = 1.0


def setup(root: str, train_n: int, size: int, heads: str, seed: int) -> str:
    """Child process: ingest ``train_n`` noise micrographs into ``root/ws``, label them by their level
    (three classes) and train a grader with ``heads``; returns the model id."""
    from micrograde.flows.runtime import configure_prefect

    configure_prefect()
    import pandas as pd

    from micrograde.flows.context import RunContext
    from micrograde.flows.ingest import ingest_flow
    from micrograde.flows.train import train_flow
    from micrograde.labeling.store import import_labels
    from micrograde.models.grading import GraderConfig

    base = Path(root)
    write_noise(base / "train", train_n, size, seed)
    ctx = RunContext(root=base / "ws", command="bench_memory setup")
    ingest_flow([str(base / "train")], ctx)
    files = sorted((base / "train").rglob("*.mrc"))
    labels = pd.DataFrame({"micrograph": [str(f.resolve()) for f in files],
                           "label": [("good", "medium", "bad")[int(f.stem.split("_")[1]) % 3] for f in files]})
    labels.to_csv(base / "labels.csv", index=False)
    import_labels(ctx.workspace(), base / "labels.csv", "bench", "senior-scientist")
    return train_flow(ctx, GraderConfig(heads=tuple(heads.split(",")), finetune="never", seed=seed)).model_id


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--counts", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--size", type=int, default=128, help="micrograph side, pixels")
    p.add_argument("--heads", default="baseline", help="the grader's candidate heads (comma-separated)")
    p.add_argument("--train-n", type=int, default=36)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=args.tmp)).resolve()
    home = root / "prefect-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(home)}
    res: dict = {"size": args.size, "heads": args.heads, "rows": []}
    try:
        code = ("import sys;sys.path.insert(0,%r);import bench_memory as b;print('MODEL', b.setup(%r,%d,%d,%r,%d))"
                % (str(HERE), str(root / "base"), args.train_n, args.size, args.heads, args.seed))
        done = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        found = [ln.split()[1] for ln in done.stdout.splitlines() if ln.startswith("MODEL ")]
        if done.returncode != 0 or not found:
            raise BenchError("the setup (ingest, labels, training) failed; see the output above")
        res["model_id"] = found[-1]
        for i, n in enumerate(args.counts):
            src = root / f"src-{n}"
            print(f"[{n}] writing {n} micrographs of {args.size}x{args.size}", flush=True)
            write_noise(src, n, args.size, args.seed + 1 + i)
            row = assess_once(src, root / "base" / "ws", root / f"ws-{n}", 2, n, home)
            print("  assess", row, flush=True)
            res["rows"].append(row)
            shutil.rmtree(src, ignore_errors=True)
            shutil.rmtree(root / f"ws-{n}", ignore_errors=True)
    except BenchError as exc:
        print(f"\nbench_memory FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        from micrograde.flows.prefect_api import stop_shared_api

        stop_shared_api(home)
        shutil.rmtree(root, ignore_errors=True)
    from bench_assess import machine_info

    res["machine"] = machine_info()
    write_result(res, "memory", False, t0)
    first = res["rows"][0]["peak_rss_mb"]
    print(f"heads {args.heads}; {args.size}x{args.size} float32 micrographs\n")
    print("| micrographs | seconds | micrographs/s | CPU (s) | peak RSS (MB) | vs the first row |")
    print("|---|---|---|---|---|---|")
    for r in res["rows"]:
        print(f"| {r['n']} | {r['seconds']} | {r['micrographs_per_s']} | {r['cpu_s']} | {r['peak_rss_mb']} | "
              f"{(r['peak_rss_mb'] - first) / first:+.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
