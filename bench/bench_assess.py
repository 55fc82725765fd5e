"""Assess benchmark (issue 6): `micrograde assess` end to end on K3-size float32 micrographs.

Setup (not timed): a workspace with the default grader (frozen EfficientNet-Lite0 embeddings and
the candidate heads, chosen by cross-validation) trained on ``--train-n`` simulated labelled
micrographs (its quality does not matter for speed), in a child process. Then ``--distinct``
K3-size (5760 x 4092, 0.83 A/px) float32 micrographs are simulated with the simulator's
``simulate_micrograph`` (realistic content and spectra, about 6 s each) and every file written is
one of them shifted along x by a multiple of 37 px (the simulation is periodic, so the content
stays seamless and every file's bytes are distinct).
The folder has a ``session.json`` (K3, Au UltrAuFoil), as a facility's would.

Measures, for each count N (default 10 and 50), on a fresh copy of the trained workspace:

- wall time of ``micrograde assess K3FOLDER --workspace WS --workers W`` in a fresh process
  (Python start, imports, Prefect's local server, ingest, prediction, report) -> micrographs/s,
- the ratio to a plain read of the same bytes; both start cold: the files' pages are dropped from
  the page cache (``posix_fadvise DONTNEED``) before the read and again before the assess
  (``--warm`` keeps them cached, as bench_ingest.py does),
- peak RSS of the assess process (ru_maxrss of the child: the largest of its processes),
- with two or more counts, the marginal rate between the smallest and the largest count
  ((N2 - N1) / (t2 - t1)), which leaves out the fixed start-up cost.

The workspace's Prefect home is copied from the setup run, so its database is already created
(as on any run after a workspace's first). Target (issue 6, 2 CPU cores): >= 1 micrograph/s.

Run by hand (never in the test suite), on a quiet machine:
    .venv/bin/python bench/bench_assess.py --counts 10 50 --workers 2
    .venv/bin/python bench/bench_assess.py --quick        # smoke run: counts 2 4
Options: --counts, --workers, --distinct, --train-n, --seed,
--warm, --tmp DIR (needs ~100 MB per micrograph of the largest count), --keep.
Writes bench/results/assess.json (assess-quick.json with --quick) and prints a Markdown table for
bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import rate_row, write_result  # bench/ (this script's folder) is on sys.path
from bench_ingest import plain_read

K3_SHAPE = (4092, 5760)  # (y, x): K3 is 5760 x 4092 pixels
K3_PIXEL_SIZE = 0.83
SHIFT_PX = 37
HERE = Path(__file__).resolve().parent


class BenchError(RuntimeError):
    """A benchmark step failed (the message says which and shows the command's output)."""


def k3_session():
    from micrograde.pipeline.sim.physics import SimSession

    return SimSession(name="k3_float32", detector="K3", shape=K3_SHAPE, pixel_size=K3_PIXEL_SIZE, mrc_mode=2,
                      dose=50.0, microscope="Titan Krios G3i", grid_material="Au", grid_maker="UltrAuFoil")


def make_k3_files(folder: Path, n: int, distinct: int, seed: int = 0) -> list[Path]:
    """``n`` K3-size float32 MRC files from ``distinct`` simulated micrographs (see the module doc)."""
    import datetime as dt

    import numpy as np
    from tqdm.auto import tqdm

    from micrograde.pipeline.config import LABELS
    from micrograde.pipeline.io.atomic import atomic_write_text
    from micrograde.pipeline.sim.files import write_micrograph
    from micrograde.pipeline.sim.physics import sample_params, simulate_micrograph

    session = k3_session()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "session.json", json.dumps(session.meta(), indent=2) + "\n")
    distinct = max(1, min(distinct, n))
    if (n - 1) // distinct * SHIFT_PX >= K3_SHAPE[1]:
        raise BenchError(f"{n} files from {distinct} distinct micrographs repeat content: raise --distinct")
    bases = []
    for i in tqdm(range(distinct), desc="simulate K3", unit="micrograph"):
        rng = np.random.default_rng([seed, i])
        bases.append(simulate_micrograph(sample_params(rng, session, LABELS[i % len(LABELS)]), session, rng))
    start = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)
    files = []
    for i in tqdm(range(n), desc="write K3", unit="file"):
        data = np.roll(bases[i % distinct], shift=(i // distinct) * SHIFT_PX, axis=1)
        path = folder / f"k3_{i:04d}.mrc"
        write_micrograph(path, data, session, acquired_at=start + dt.timedelta(seconds=90 * i))
        files.append(path)
    return files


def link_subset(files: list[Path], folder: Path) -> Path:
    """A folder holding the first files (hard links where possible) and the session.json."""
    folder.mkdir(parents=True)
    for f in [files[0].parent / "session.json", *files]:
        try:
            os.link(f, folder / f.name)
        except OSError:
            shutil.copy2(f, folder / f.name)
    return folder


def evict(files: list[Path]) -> None:
    """Drop the files' pages from the page cache (fsync, then POSIX_FADV_DONTNEED; no root needed)."""
    if not hasattr(os, "posix_fadvise"):
        return
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def setup_model(root: str, train_n: int, seed: int) -> str:
    """Child process: simulate, ingest, label (truth) and train the default grader; its model id."""
    return setup_grader(root, train_n, seed).model_id


def setup_grader(root: str, train_n: int, seed: int):
    """Simulate ``train_n`` labelled micrographs under ``root``, ingest them into ``root/ws``, import
    their true labels and train the default grader (no fine-tuning); the training outcome."""
    from micrograde.flows.runtime import configure_prefect

    configure_prefect()
    from prefect import flow

    from micrograde.flows.context import RunContext
    from micrograde.flows.ingest import ingest_flow
    from micrograde.flows.train import train_flow
    from micrograde.labeling.store import import_labels
    from micrograde.models.grading import GraderConfig
    from micrograde.pipeline.config import IngestConfig
    from micrograde.pipeline.io.atomic import atomic_write_text
    from micrograde.pipeline.sim.files import write_collection

    base = Path(root)

    @flow(name="bench-assess-setup", validate_parameters=False)
    def setup():
        ctx = RunContext(root=base / "ws", command="bench setup", progress=True)
        truth = write_collection(base / "sim", train_n, seed=seed, balance=True, progress=True)
        truth = truth.assign(micrograph=[str((base / "sim" / m).resolve()) for m in truth["micrograph"]])
        folders = sorted({str(Path(m).parent) for m in truth["micrograph"]})
        summary = ingest_flow(folders, ctx, IngestConfig())
        if summary.rejected:
            raise BenchError(f"{summary.rejected} simulated micrographs were rejected by ingest")
        csv = base / "labels.csv"
        atomic_write_text(csv, truth[["micrograph", "label"]].to_csv(index=False))
        import_labels(ctx.workspace(), csv, "bench-truth", "senior-scientist")
        return train_flow(ctx, GraderConfig(seed=seed, finetune="never"))

    return setup()


def run_setup_isolated(base: Path, args: argparse.Namespace) -> str:
    code = (
        "import sys;sys.path.insert(0,%r);import bench_assess as b;"
        "print('MODEL-ID', b.setup_model(%r,%d,%d))"
        % (str(HERE), str(base), args.train_n, args.seed)
    )
    home = base / "ws" / ".prefect"  # where `micrograde` puts it; Prefect creates no missing parents
    home.mkdir(parents=True)
    env = {**os.environ, "PREFECT_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise BenchError(f"training the setup model failed (exit {done.returncode}); see the output above")
    ids = [ln.split()[1] for ln in done.stdout.splitlines() if ln.startswith("MODEL-ID ")]
    if not ids:
        raise BenchError("the setup child printed no model id:\n" + done.stdout[-2000:])
    return ids[-1]


def run_assess(folder: Path, workspace: Path, workers: int) -> tuple[float, float, str, str, int]:
    """Run `micrograde assess` as a child: (seconds, peak RSS MB, stdout, stderr, exit code)."""
    cmd = [sys.executable, "-m", "micrograde", "assess", str(folder), "--workspace", str(workspace),
           "--workers", str(workers)]
    home = workspace / ".prefect"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, peak_kib / 1024, done.stdout, done.stderr, done.returncode


def run_assess_isolated(folder: Path, workspace: Path, workers: int) -> tuple[float, float, str, str]:
    """Run the assess from a fresh Python child so RUSAGE_CHILDREN measures only this run."""
    code = (
        "import json,sys;sys.path.insert(0,%r);import bench_assess as b;from pathlib import Path;"
        "print(json.dumps(b.run_assess(Path(%r),Path(%r),%d)))" % (str(HERE), str(folder), str(workspace), workers)
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"the timing child failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    seconds, rss, out, err, rc = json.loads(done.stdout.strip().splitlines()[-1])
    if rc != 0:
        raise BenchError(f"`micrograde assess` exited {rc}:\n{err[-3000:]}")
    return seconds, rss, out, err


def summary_lines(stderr: str) -> list[str]:
    """The assess command's own messages (not its progress bars)."""
    lines = [ln.split("\r")[-1].strip() for ln in stderr.splitlines()]
    return [ln for ln in lines if ln.startswith(("assessed", "WARNING", "error"))]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: counts 2 4, 2 distinct micrographs")
    p.add_argument("--counts", type=int, nargs="+", default=None, help="micrographs per run (default 10 50)")
    p.add_argument("--workers", type=int, default=2, help="`micrograde assess --workers`")
    p.add_argument("--distinct", type=int, default=None, help="distinct simulated K3 micrographs (default 6)")
    p.add_argument("--train-n", type=int, default=36, help="simulated labelled micrographs for the setup model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None, help="parent of the scratch folder (~100 MB per K3 micrograph)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (workspaces, files, reports)")
    p.add_argument("--warm", action="store_true",
                   help="leave the files in the page cache (default: evict them before the read and the assess)")
    args = p.parse_args(argv)
    args.counts = args.counts or ([2, 4] if args.quick else [10, 50])
    args.distinct = args.distinct or (2 if args.quick else 6)
    if min(args.counts) < 1 or args.workers < 1 or args.distinct < 1:
        p.error("--counts, --workers and --distinct must be positive")
    if args.train_n < 12:
        p.error("--train-n must be >= 12 (3 classes x 4 sessions)")
    return args


def machine_info() -> dict:
    import torch

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def bench(root: Path, args: argparse.Namespace) -> dict:
    base = root / "base"
    print(f"[1/3] training the setup model (the default grader on {args.train_n} simulated micrographs)",
          flush=True)
    t = time.perf_counter()
    model_id = run_setup_isolated(base, args)
    setup_s = time.perf_counter() - t
    print(f"      model {model_id} ({setup_s:.0f} s)", flush=True)

    n_max = max(args.counts)
    print(f"[2/3] writing {n_max} K3-size float32 micrographs ({args.distinct} simulated)", flush=True)
    t = time.perf_counter()
    files = make_k3_files(root / "k3-all", n_max, args.distinct, args.seed)
    make_s = time.perf_counter() - t

    rows = []
    for i, n in enumerate(args.counts):
        print(f"[3/3] ({i + 1}/{len(args.counts)}) micrograde assess on {n} micrographs", flush=True)
        folder = link_subset(files[:n], root / f"k3-{i}-{n}")
        ws = root / f"ws-{i}-{n}"
        shutil.copytree(base / "ws", ws)
        if not args.warm:
            evict(files[:n])
        read_s = plain_read(files[:n])
        if not args.warm:
            evict(files[:n])
        seconds, rss_mb, out, err = run_assess_isolated(folder, ws, args.workers)
        messages = summary_lines(err)
        if not any(m.startswith(f"assessed {n} micrographs") for m in messages):
            raise BenchError(f"expected {n} micrographs assessed, the command said: {messages or err[-2000:]}")
        rows.append(rate_row(n, seconds, read_s, rss_mb) | {
            "summary": messages,
            "report_dir": out.strip().splitlines()[-1] if out.strip() else None,
        })
        print("      " + json.dumps({k: v for k, v in rows[-1].items() if k != "summary"}), flush=True)
    marginal = None
    if len(rows) >= 2:
        lo, hi = min(rows, key=lambda r: r["n"]), max(rows, key=lambda r: r["n"])
        if hi["n"] > lo["n"] and hi["seconds"] > lo["seconds"]:
            marginal = round((hi["n"] - lo["n"]) / (hi["seconds"] - lo["seconds"]), 2)
    return {"quick": bool(args.quick), "model_id": model_id, "setup_seconds": round(setup_s, 1),
            "make_files_seconds": round(make_s, 1), "workers": args.workers, "distinct": args.distinct,
            "shape_yx": list(K3_SHAPE), "dtype": "float32", "rows": rows,
            "page_cache": "warm" if args.warm else "cold (evicted before the plain read and before the assess)",
            "marginal_micrographs_per_s": marginal, "target_micrographs_per_s": 1.0}


def markdown(res: dict) -> str:
    head = (f"K3 {res['shape_yx'][1]}x{res['shape_yx'][0]} float32, default model, --workers {res['workers']}, "
            f"{res['machine']['cpus']} CPUs, page cache {res['page_cache'].split()[0]}"
            + (" (QUICK smoke run)" if res["quick"] else ""))
    lines = [head, "", "| micrographs | seconds | micrographs/s | plain read (s) | ratio | peak RSS (MB) |",
             "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['n']} | {r['seconds']} | {r['micrographs_per_s']} | {r['plain_read_s']} | "
                     f"{r['ratio_to_plain_read']} | {r['peak_rss_mb']} |")
    if res["marginal_micrographs_per_s"] is not None:
        lines.append(f"\nMarginal rate (start-up excluded): {res['marginal_micrographs_per_s']} micrographs/s "
                     "(target >= 1/s).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-assess-", dir=args.tmp)).resolve()
    t0 = time.perf_counter()
    try:
        res = bench(root, args)
    except BenchError as exc:
        print(f"\nbench_assess FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept the scratch folder {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    res["machine"] = machine_info()
    write_result(res, "assess", args.quick, t0)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
