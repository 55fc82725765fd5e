"""Throughput and memory of `micrograde assess` (issue 14), with the peer miffi beside it.

Setup (not timed): a workspace with a grader trained on ``--train-n`` simulated labelled
micrographs (``GraderConfig()`` defaults, fine-tuning off), in a child process.

Measures, each `micrograde assess SRC --workspace WS --workers W` in a fresh child process on a
fresh copy of the trained workspace (so every micrograph is ingested and predicted). All share one
``PREFECT_HOME``: a warm-up command (4 small micrographs, reported apart) creates its database and
starts the shared local API server, which the measured commands reuse, as successive commands of
a facility session do (a fresh home per command would time Prefect's database migrations instead):

- ``--k3`` counts (default 6 50): K3-size (5760 x 4092, 0.83 A/px) float32 files written fresh by
  this script (bench_assess.make_k3_files: a few simulated micrographs, each file shifted so its
  bytes are distinct), their pages dropped from the page cache before the run (posix_fadvise);
  seconds, micrographs/s, peak RSS (ru_maxrss of the child: its largest process);
- ``--tiny`` counts (default 100 1000): small float32 micrographs (680 x 960, shot noise; the
  simulator would take a second each): seconds, micrographs/s, peak RSS, to see whether the peak
  stays flat with the count;
- ingest per micrograph against its floor, in this process on ``--floor-n`` K3 files (default 3):
  ``ingest_file`` per file (read + digest + preprocess + cache + catalogue, no Prefect) against
  reading the bytes plus one full-resolution ``scipy.fft.rfft2`` of the float32 image;
- the peer: miffi's ``inference --use-cpu`` (ConvNeXt-S, a random state dict: speed does not
  depend on weights) on the same K3 files, installed into a separate virtual environment under
  the scratch folder (``pip install --no-deps miffi``; the rest is this environment's packages,
  torchvision included, through a ``.pth`` file that also applies micrograde's torchvision shim).
  Never a micrograde dependency.
  When it cannot be installed (offline), the table says "not measured" and the reason.

Run by hand (never in the test suite):
    .venv/bin/python bench/bench_throughput.py                       # k3 6 50, tiny 100 1000
    .venv/bin/python bench/bench_throughput.py --quick               # k3 2, tiny 20 60, no peer
    .venv/bin/python bench/bench_throughput.py --k3 6 50 --tiny --no-peer --dask-workers 2   # threads vs Dask
Options: --k3, --tiny, --workers, --dask-workers, --train-n, --floor-n, --no-peer, --tmp DIR, --keep.
Writes bench/results/throughput.json and prints a Markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_assess import K3_PIXEL_SIZE, evict, link_subset, machine_info, make_k3_files  # bench/ is on sys.path
from bench_common import write_result

HERE = Path(__file__).resolve().parent


class BenchError(RuntimeError):
    """A benchmark step failed."""


def setup_model(root: str, train_n: int, seed: int) -> str:
    """Child process: bench_assess's setup (simulate, ingest, label, train the default grader); "model_id head"."""
    from bench_assess import setup_grader

    out = setup_grader(root, train_n, seed)
    return f"{out.model_id} {out.card['head']['kind']}"


def run_measured(cmd: list[str], env: dict) -> dict:
    """Run ``cmd`` from a fresh Python child so RUSAGE_CHILDREN covers only it: seconds, peak RSS, output."""
    code = ("import json,resource,subprocess,sys,time;cmd=json.loads(sys.argv[1]);env=json.loads(sys.argv[2]);"
            "t=time.perf_counter();d=subprocess.run(cmd,env=env,capture_output=True,text=True);"
            "s=time.perf_counter()-t;u=resource.getrusage(resource.RUSAGE_CHILDREN);r=u.ru_maxrss/1024;"
            "print(json.dumps({'seconds':s,'rss_mb':r,'cpu_s':u.ru_utime+u.ru_stime,'rc':d.returncode,"
            "'out':d.stdout[-200000:],'err':d.stderr[-200000:]}))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(cmd), json.dumps(env)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise BenchError(f"the timing child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def assess_once(folder: Path, base_ws: Path, ws: Path, workers: int, n: int, home: Path,
                dask_workers: int | None = None) -> dict:
    """One measured `micrograde assess` on a fresh copy of the trained workspace; every run uses the
    same Prefect home, whose shared local API server the warm-up command started (see ``bench``).
    ``dask_workers``: run on a local Dask cluster of that many worker processes instead of threads."""
    shutil.copytree(base_ws, ws, ignore=shutil.ignore_patterns(".prefect"))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(home)}
    runner = ["--dask-workers", str(dask_workers)] if dask_workers else ["--workers", str(workers)]
    res = run_measured([sys.executable, "-m", "micrograde", "assess", str(folder), "--workspace", str(ws),
                        *runner], env)
    if res["rc"] != 0:
        raise BenchError(f"`micrograde assess` exited {res['rc']}:\n{res['err']}")
    said = re.search(r"assessed (\d+) micrographs", res["err"] + res["out"])
    if not said or int(said.group(1)) != n:
        raise BenchError(f"expected {n} micrographs assessed: {res['err'][-1500:]}")
    return {"n": n, "seconds": round(res["seconds"], 2), "micrographs_per_s": round(n / res["seconds"], 2),
            "cpu_s": round(res["cpu_s"], 1), "peak_rss_mb": round(res["rss_mb"]), "load": os.getloadavg()[0],
            "runner": f"dask {dask_workers} workers" if dask_workers else f"threads {workers}"}


def dask_start(workers: int) -> float:
    """Seconds to start and close a local Dask cluster of ``workers`` processes (part of every Dask run)."""
    code = ("import time;from distributed import Client,LocalCluster;t=time.perf_counter();"
            f"c=LocalCluster(n_workers={workers},threads_per_worker=1,processes=True,dashboard_address=None);"
            "cl=Client(c);cl.close();c.close();print(time.perf_counter()-t)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"a local Dask cluster did not start:\n{done.stderr[-2000:]}")
    return round(float(done.stdout.strip().splitlines()[-1]), 2)


def ingest_floor(files: list[Path], root: Path) -> dict:
    """Per-file ingest (no Prefect) against reading the bytes plus one full-resolution rfft2."""
    import mrcfile
    import numpy as np
    import scipy.fft as sfft

    from micrograde.pipeline.catalogue.ingest import ingest_file
    from micrograde.pipeline.catalogue.workspace import Workspace
    from micrograde.pipeline.config import IngestConfig

    ws = Workspace.open(root / "ws-floor")
    ingest_file(ws, files[0], IngestConfig())  # imports, first-use costs
    ingest_s, floor_s = [], []
    for f in files[1:]:
        evict([f])
        t = time.perf_counter()
        ingest_file(ws, f, IngestConfig())
        ingest_s.append(time.perf_counter() - t)
        evict([f])
        t = time.perf_counter()
        data = f.read_bytes()
        with mrcfile.open(f, permissive=True) as m:  # from the page cache now: the bytes were just read
            img = np.asarray(m.data, dtype=np.float32)
        sfft.rfft2(img, workers=1)
        floor_s.append(time.perf_counter() - t)
        del data, img
    ingest, floor = float(np.median(ingest_s)), float(np.median(floor_s))
    return {"files": len(ingest_s), "ingest_s": round(ingest, 3), "floor_s": round(floor, 3),
            "ratio": round(ingest / floor, 1)}


def peer_env(root: Path) -> tuple[Path | None, str]:
    """A virtual environment with miffi (see the module docstring): (its python, '') or (None, why not)."""
    import site

    venv = root / "miffi-venv"
    py = venv / "bin" / "python"
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
        purelib = subprocess.run([str(py), "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        # this environment's packages (torch, timm, torchvision, mrcfile...) as site dirs, and micrograde's
        # torchvision shim applied at start-up: the PyPI torchvision wheel is a CUDA build that does not
        # import against a +cpu torch without it (docs/models.md, "torchvision on CPU torch")
        dirs = "; ".join(f"site.addsitedir({d!r})" for d in site.getsitepackages())
        Path(purelib, "zz_micrograde_env.pth").write_text(
            f"import site; {dirs}; import micrograde.models.backbones.tv_shim as _tv; _tv.ensure_torchvision()\n")
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "--target",
               purelib]
        subprocess.run([*pip, "miffi"], check=True, capture_output=True, text=True, timeout=600)
        subprocess.run([str(py), "-c", "import miffi.inference, torchvision, timm"], check=True, capture_output=True,
                       text=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return None, f"miffi could not be installed: {str(detail).strip().splitlines()[-1][:200]}"
    return py, ""


def peer_once(py: Path, folder: Path, root: Path, n: int, workers: int) -> dict:
    sd = root / "convnext_small_random.pt"
    if not sd.is_file():
        code = ("import torch,timm,sys;from miffi.parameters import DEFAULT_LABEL_NAMES as L;"
                "m=timm.create_model('convnext_small',pretrained=False,in_chans=2,num_classes=len(sum(L,[])));"
                "torch.save(m.state_dict(),sys.argv[1])")
        subprocess.run([str(py), "-c", code, str(sd)], check=True, capture_output=True, text=True)
    out = root / f"miffi-out-{n}"
    out.mkdir()
    res = run_measured([str(py), "-m", "miffi", "inference", "--micdir", str(folder), "--wildcard", "*.mrc",
                        "--datapath", str(folder), "--outdir", str(out), "--sd", str(sd), "--use-cpu",
                        "--num-workers", str(workers), "--pixel-size", str(K3_PIXEL_SIZE)], dict(os.environ))
    if res["rc"] != 0:
        return {"n": n, "error": res["err"].strip().splitlines()[-1][:300] if res["err"].strip() else "failed"}
    return {"n": n, "seconds": round(res["seconds"], 2), "micrographs_per_s": round(n / res["seconds"], 2),
            "cpu_s": round(res["cpu_s"], 1), "peak_rss_mb": round(res["rss_mb"]), "load": os.getloadavg()[0]}


SMALL_SHAPE = (680, 960)


def write_small(folder: Path, n: int, seed: int) -> None:
    """``n`` small float32 MRC files (680 x 960, 1 A/px, shot noise around a gradient) in two session folders:
    quick to write (the simulator takes about a second per micrograph), distinct bytes."""
    import mrcfile
    import numpy as np

    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 60, SMALL_SHAPE[1], dtype=np.float32)[None, :]
    for i in range(n):
        sub = folder / f"session_{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        with mrcfile.new(sub / f"small_{i:05d}.mrc") as m:
            m.set_data(rng.poisson(ramp * (1 + 0.2 * (i % 3)), size=SMALL_SHAPE).astype(np.float32))
            m.voxel_size = 1.0


def bench(root: Path, args: argparse.Namespace) -> dict:
    base = root / "base"
    (base / "ws" / ".prefect").mkdir(parents=True)
    print(f"[setup] training the grader on {args.train_n} simulated micrographs", flush=True)
    code = ("import sys;sys.path.insert(0,%r);import bench_throughput as b;print('MODEL', b.setup_model(%r,%d,%d))"
            % (str(HERE), str(base), args.train_n, args.seed))
    env = {**os.environ, "PREFECT_HOME": str(base / "ws" / ".prefect")}
    done = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    lines = [ln.split()[1:] for ln in done.stdout.splitlines() if ln.startswith("MODEL ")]
    if done.returncode != 0 or not lines:
        raise BenchError("training the setup model failed; see the output above")
    model_id, head = lines[-1]
    res: dict = {"model_id": model_id, "head": head, "workers": args.workers, "k3": [], "tiny": [], "peer": [],
                 "k3_dask": []}
    home = root / "prefect-home"  # one Prefect home for every measured command (as a facility's session)
    home.mkdir()
    print("[warm-up] one assess of 4 small micrographs: creates the Prefect database, starts the shared API",
          flush=True)
    write_small(root / "warm-up", 4, args.seed + 99)
    res["warm_up"] = assess_once(root / "warm-up", base / "ws", root / "ws-warm-up", args.workers, 4, home)
    print("  warm-up", json.dumps(res["warm_up"]), flush=True)

    if args.k3:
        n_max = max(args.k3)
        print(f"[k3] writing {n_max} K3-size float32 files", flush=True)
        files = make_k3_files(root / "k3-all", n_max, min(args.distinct, n_max), args.seed)
        for i, n in enumerate(args.k3):
            folder = link_subset(files[:n], root / f"k3-{i}-{n}")
            evict(files[:n])
            row = assess_once(folder, base / "ws", root / f"ws-k3-{i}-{n}", args.workers, n, home)
            print("  assess", json.dumps(row), flush=True)
            res["k3"].append(row)
            if args.dask_workers:  # the same files on a local Dask cluster
                evict(files[:n])
                row = assess_once(folder, base / "ws", root / f"ws-k3-dask-{i}-{n}", args.workers, n, home,
                                  dask_workers=args.dask_workers)
                print("  assess (dask)", json.dumps(row), flush=True)
                res["k3_dask"].append(row)
        if args.dask_workers:
            res["dask_start_s"] = dask_start(args.dask_workers)
            print("  dask cluster start + close", res["dask_start_s"], "s", flush=True)
        if args.floor_n > 1:
            res["ingest_floor"] = ingest_floor(files[: args.floor_n], root)
            print("  ingest floor", json.dumps(res["ingest_floor"]), flush=True)
        if args.peer:
            py, why = peer_env(root)
            res["peer_note"] = why or "miffi inference --use-cpu, ConvNeXt-S, random state dict"
            for i, n in enumerate(args.k3 if py else []):
                evict(files[:n])
                row = peer_once(py, root / f"k3-{i}-{n}", root, n, args.workers)
                print("  miffi", json.dumps(row), flush=True)
                res["peer"].append(row)
        else:
            res["peer_note"] = "not run (--no-peer)"
        shutil.rmtree(root / "k3-all", ignore_errors=True)
    for i, n in enumerate(args.tiny):
        print(f"[tiny] {n} small micrographs", flush=True)
        src = root / f"tiny-{n}"
        write_small(src, n, args.seed + 1 + i)
        row = assess_once(src, base / "ws", root / f"ws-tiny-{n}", args.workers, n, home)
        print("  assess", json.dumps(row), flush=True)
        res["tiny"].append(row)
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(root / f"ws-tiny-{n}", ignore_errors=True)
    return res


def markdown(res: dict) -> str:
    peer = {r["n"]: r for r in res["peer"]}
    lines = [f"model head: {res['head']}; --workers {res['workers']}; {res['machine']['cpus']} CPUs", "",
             "| input | runner | micrographs | seconds | micrographs/s | CPU (s) | peak RSS (MB) | load | "
             "miffi seconds | miffi /s | micrograde / miffi (rate) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in [*res["k3"], *res.get("k3_dask", [])]:
        p = peer.get(r["n"], {})
        if "seconds" in p:
            cells = f"{p['seconds']} | {p['micrographs_per_s']} | {r['micrographs_per_s'] / p['micrographs_per_s']:.2f}"
        else:
            cells = "not measured | | "
        lines.append(f"| K3 float32 | {r.get('runner', '')} | {r['n']} | {r['seconds']} | {r['micrographs_per_s']} | "
                     f"{r['cpu_s']} | {r['peak_rss_mb']} | {r['load']:.1f} | {cells} |")
    for r in res["tiny"]:
        lines.append(f"| small 680x960 | {r.get('runner', '')} | {r['n']} | {r['seconds']} | "
                     f"{r['micrographs_per_s']} | {r['cpu_s']} | "
                     f"{r['peak_rss_mb']} | {r['load']:.1f} | | | |")
    w = res.get("warm_up") or {}
    lines.append(f"\nWarm-up (first command: Prefect database created, shared API started; not in the table): "
                 f"{w.get('seconds')} s for 4 small micrographs.")
    lines.append(f"Peer: {res.get('peer_note') or 'not run (no K3 counts)'}")
    if "dask_start_s" in res:
        lines.append(f"A local Dask cluster of {res['k3_dask'][0]['runner'].split()[1]} worker processes starts and "
                     f"stops in {res['dask_start_s']} s, part of each Dask run.")
    if "ingest_floor" in res:
        f = res["ingest_floor"]
        lines.append(f"Ingest per K3 micrograph (median of {f['files']}): {f['ingest_s']} s; floor (read + one "
                     f"full-resolution rfft2): {f['floor_s']} s; ratio {f['ratio']}.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: k3 2, tiny 20 60, no peer")
    p.add_argument("--k3", type=int, nargs="*", default=None, help="K3 file counts (default 6 50)")
    p.add_argument("--tiny", type=int, nargs="*", default=None, help="small micrograph counts (default 100 1000)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--distinct", type=int, default=3, help="distinct simulated K3 micrographs")
    p.add_argument("--train-n", type=int, default=36)
    p.add_argument("--floor-n", type=int, default=3, help="K3 files for the ingest floor ratio (first is warm-up)")
    p.add_argument("--no-peer", dest="peer", action="store_false")
    p.add_argument("--dask-workers", type=int, default=0,
                   help="also assess the K3 files on a local Dask cluster of N worker processes (0: not)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.k3 = [2] if args.k3 is None else args.k3
        args.tiny = [20, 60] if args.tiny is None else args.tiny
        args.peer = False
    args.k3 = [6, 50] if args.k3 is None else args.k3
    args.tiny = [100, 1000] if args.tiny is None else args.tiny
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-throughput-", dir=args.tmp)).resolve()
    t0 = time.perf_counter()
    try:
        res = bench(root, args)
    except BenchError as exc:
        print(f"\nbench_throughput FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        from micrograde.flows.prefect_api import stop_shared_api

        if (root / "prefect-home").is_dir():
            stop_shared_api(root / "prefect-home")
        if args.keep:
            print(f"kept the scratch folder {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    res["machine"] = machine_info()
    res["rusage_note"] = "peak RSS is ru_maxrss of the measured command's process tree (its largest process)"
    write_result(res, "throughput", args.quick, t0)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
