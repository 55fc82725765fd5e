"""Ingest benchmark: K3-size float32 micrographs (5760x4092) through `micrograde ingest`.

Measures, for each count N (default 10 and 50):
- micrographs per second of the whole ingest command (Prefect flow, 2 workers by default),
- the ratio to a plain read of the same bytes (cold-ish: after the files were written),
- peak RSS of the ingest process (ru_maxrss of the child, which includes its worker threads).

Run by hand (never in the test suite):
    .venv/bin/python bench/bench_ingest.py --counts 10 50 --workers 2
Writes bench/results/ingest.json and prints a Markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np
from bench_common import rate_row  # bench/ (this script's folder) is on sys.path

SHAPE = (4092, 5760)  # K3: 5760 x 4092 pixels (x, y)


def make_files(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 1.0, size=SHAPE).astype(np.float32)
    files = []
    for i in range(n):
        data = np.roll(base, shift=i * 37, axis=1) + np.float32(i * 1e-3)
        path = folder / f"k3_{i:04d}.mrc"
        with mrcfile.new(path, overwrite=True) as m:
            m.set_data(data)
            m.voxel_size = 0.83
        files.append(path)
    return files


def plain_read(files: list[Path]) -> float:
    t0 = time.perf_counter()
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(16 << 20):
                pass
    return time.perf_counter() - t0


def run_ingest(folder: Path, workspace: Path, workers: int) -> tuple[float, float, str]:
    cmd = [
        sys.executable,
        "-m",
        "micrograde",
        "ingest",
        str(folder),
        "--workspace",
        str(workspace),
        "--workers",
        str(workers),
    ]
    env = {**os.environ, "PREFECT_HOME": str(workspace.parent / "prefect-home")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak_kib, before) / 1024, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tmp", default=None, help="scratch folder (needs ~100 MB per micrograph)")
    args = parser.parse_args()
    rows = []
    for n in args.counts:
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            tmp = Path(tmp)
            folder = tmp / "k3"
            folder.mkdir()
            files = make_files(folder, n)
            read_s = plain_read(files)
            # each count runs in a fresh child process so ru_maxrss is that run's own peak
            seconds, rss_mb, out = run_ingest_isolated(folder, tmp / "ws", args.workers)
            rows.append(rate_row(n, seconds, read_s, rss_mb) | {"summary": out.strip().splitlines()})
            print(json.dumps(rows[-1]), flush=True)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    out = Path(__file__).parent / "results" / "ingest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "workers": args.workers, "rows": rows}, indent=2))
    print("\n| micrographs | seconds | micrographs/s | plain read (s) | ratio | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']} | {r['seconds']} | {r['micrographs_per_s']} | {r['plain_read_s']} | "
            f"{r['ratio_to_plain_read']} | {r['peak_rss_mb']} |"
        )
    if len(rows) >= 2:  # steady state: the extra micrographs over the extra time (start-up cancels out)
        a, b = rows[0], rows[-1]
        print(
            f"\nmarginal rate ({a['n']} -> {b['n']}): "
            f"{(b['n'] - a['n']) / (b['seconds'] - a['seconds']):.2f} micrographs/s"
        )


def run_ingest_isolated(folder: Path, workspace: Path, workers: int) -> tuple[float, float, str]:
    """Run the ingest from a fresh Python child so RUSAGE_CHILDREN measures only this run."""
    code = (
        "import json,sys;sys.path.insert(0,%r);import bench_ingest as b;from pathlib import Path;"
        "print(json.dumps(b.run_ingest(Path(%r),Path(%r),%d)))"
        % (str(Path(__file__).parent), str(folder), str(workspace), workers)
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, rss, out = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds, rss, out


if __name__ == "__main__":
    main()
