"""Start-up benchmark: what a one-file `micrograde ingest` or `assess` costs before and around its work.

For each command it times the whole process (`python -m micrograde ...`, wall clock) and, in this
process, the library work the command does for that one file (read, preprocess and catalogue the
micrograph; for assess also load the model, grade and write the report folder). Overhead is the
difference: interpreter and imports, opening the workspace, the Prefect API and flow runs, exit.

Ways the Prefect API is reached (src/micrograde/flows/prefect_api.py):
- ``shared, cold``: no local server running (the command starts the shared one and waits for it);
- ``shared, warm``: the server started by an earlier command is reused (the usual case);
- ``private``: Prefect's own per-process server (``MICROGRADE_PREFECT_API=private``, the behaviour
  before the shared server).

Also `micrograde --help` and `micrograde status` (no flow, no Prefect), and the import of the model
code (torch, timm), which assess needs for its work. Every figure is the median of ``--repeat``
runs; each ingest/assess run gets a micrograph the workspace has not seen. Besides the wall clock,
the CPU time of the command process (user + system, its own children included, a shared server it
starts excluded) is recorded: on a machine shared with other work the wall clock stretches, the
CPU time much less, so it is the better guide to a quiet machine.

Run by hand (never in the test suite):
    .venv/bin/python bench/bench_startup.py --repeat 3
Writes bench/results/startup.json and prints a Markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_common import write_result  # bench/ (this script's folder) is on sys.path

SHAPE = (4092, 5760)  # one K3 micrograph, float32
PIXEL_SIZE = 0.83


def write_micrograph(path: Path, seed: int) -> Path:
    import mrcfile

    data = np.random.default_rng(seed).normal(100.0, 10.0, size=SHAPE).astype(np.float32)
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = PIXEL_SIZE
    return path


def command_env(home: Path, mode: str) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(home), "MICROGRADE_PREFECT_API": mode}
    env.pop("PREFECT_API_URL", None)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one command."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, cpu


def setup_model(root: Path, home: Path) -> str:
    """A workspace with a small trained grader (the baseline head: a random forest, no torch) on a few labelled
    simulated micrographs."""
    os.environ.update({"PREFECT_HOME": str(home), "MICROGRADE_PREFECT_API": "shared"})
    os.environ.pop("PREFECT_API_URL", None)
    from micrograde.flows.runtime import prefect_session

    with prefect_session(root / "ws"):
        from micrograde.flows.context import RunContext
        from micrograde.flows.ingest import ingest_flow
        from micrograde.flows.train import train_flow
        from micrograde.labeling.store import import_labels
        from micrograde.models.grading import GraderConfig
        from micrograde.pipeline.sim.files import write_collection

        truth = write_collection(root / "sim", 12, seed=3)
        labels = truth.assign(micrograph=[str((root / "sim" / m).resolve()) for m in truth["micrograph"]])
        labels[["micrograph", "label"]].to_csv(root / "labels.csv", index=False)
        ctx = RunContext(root=root / "ws", command="bench_startup setup")
        ingest_flow([str(root / "sim")], ctx)
        import_labels(ctx.workspace(), root / "labels.csv", "bench", "senior-scientist")
        return train_flow(ctx, GraderConfig(heads=("baseline",), finetune="never")).model_id


def _timed_work(fn) -> tuple[float, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - cpu0


def ingest_work(path: Path, root: Path) -> tuple[float, float]:
    """The library work of a one-file ingest, timed in this (warm) process."""
    from micrograde.pipeline.catalogue.ingest import ingest_file
    from micrograde.pipeline.catalogue.workspace import Workspace
    from micrograde.pipeline.config import IngestConfig

    with Workspace.open(root) as ws:
        return _timed_work(lambda: ingest_file(ws, path, IngestConfig()))


def assess_work(path: Path, root: Path, model_root: Path, model_id: str) -> tuple[float, float]:
    """The library work of a one-file assess (ingest, model load, grading, report folder), in this process."""
    import shutil

    from micrograde.pipeline.catalogue.workspace import Workspace

    shutil.copytree(model_root / "models" / model_id, root / "models" / model_id, dirs_exist_ok=True)
    with Workspace.open(root) as ws:
        return _timed_work(lambda: _assess_one(ws, path, model_id))


def _assess_one(ws, path: Path, model_id: str) -> None:
    from micrograde.flows.assess import model_preprocess
    from micrograde.labeling.consensus import consensus_table
    from micrograde.models.batch_predict import predict_cached
    from micrograde.models.grading.grader import load_grader
    from micrograde.models.infer import apply_thresholds
    from micrograde.pipeline.catalogue.cache import load_entry
    from micrograde.pipeline.catalogue.ingest import ingest_file
    from micrograde.pipeline.catalogue.query import micrograph_table, reject_table
    from micrograde.pipeline.config import IngestConfig
    from micrograde.pipeline.report.outputs import prediction_table, write_outputs

    cfg = IngestConfig(preprocess=model_preprocess(ws.models_dir / model_id))
    outcome = ingest_file(ws, path, cfg)
    predictor = load_grader(ws.models_dir / model_id)
    rows = micrograph_table(ws, list(outcome.micrograph_ids))
    probs, _ = predict_cached(predictor, ws.cache_dir, list(rows["cache_key"]))
    labels, confidence = apply_thresholds(probs, predictor.thresholds)
    table = prediction_table(rows, probs, labels, confidence, consensus_table(ws))

    def images(key):
        entry = load_entry(ws.cache_dir, key)
        return entry["thumbnail"], entry["spectrum"]

    write_outputs(ws.reports_dir / "bench", table, card=predictor.card, rejects=reject_table(ws),
                  get_images=images, run_info={"run_id": "bench"})


def _median_row(runs: list[tuple[float, float]]) -> dict:
    return {"wall_s": statistics.median(r[0] for r in runs), "cpu_s": statistics.median(r[1] for r in runs),
            "runs": [[round(w, 2), round(c, 2)] for w, c in runs]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tmp", default=None, help="scratch folder (default: the system's)")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    from micrograde.flows.prefect_api import stop_shared_api

    base = Path(tempfile.mkdtemp(prefix="bench-startup-", dir=args.tmp)).resolve()
    home, private_home = base / "prefect", base / "prefect-private"
    mg = [sys.executable, "-m", "micrograde"]
    counter = iter(range(1_000_000))

    def new_file() -> Path:
        i = next(counter)
        return write_micrograph(base / f"mic_{i:03d}.mrc", i)

    rows: dict[str, dict] = {}
    try:
        print("setting up a workspace with a small model (also creates the Prefect database) ...", flush=True)
        model_id = setup_model(base / "model", home)
        stop_shared_api(home)
        timed([*mg, "ingest", str(new_file()), "--workspace", str(base / "ws-private")],
              command_env(private_home, "private"))  # creates the private Prefect database once

        def run(kind: str, mode: str, cold: bool) -> tuple[float, float]:
            ws = base / "model" / "ws" if kind == "assess" else base / f"ws-{kind}"
            if cold:
                stop_shared_api(home)
            extra = ["--model", model_id] if kind == "assess" else []
            env = command_env(private_home if mode == "private" else home, mode)
            return timed([*mg, kind, str(new_file()), "--workspace", str(ws), *extra], env)

        for kind in ("ingest", "assess"):
            for label, mode, cold in (("shared, cold", "shared", True), ("shared, warm", "shared", False),
                                      ("private", "private", False)):
                if label == "shared, warm":  # make sure the server is up
                    timed([*mg, "ingest", str(new_file()), "--workspace", str(base / "ws-warmup")],
                          command_env(home, "shared"))
                runs = [run(kind, mode, cold) for _ in range(args.repeat)]
                rows[f"{kind} ({label})"] = _median_row(runs)
                print(f"{kind} ({label}): " + ", ".join(f"{w:.2f} s ({c:.2f} s CPU)" for w, c in runs), flush=True)
        work = {
            "ingest": _median_row([ingest_work(new_file(), base / f"ws-work-{i}") for i in range(args.repeat)]),
            "assess": _median_row([assess_work(new_file(), base / f"ws-awork-{i}", base / "model" / "ws", model_id)
                                   for i in range(args.repeat)]),
        }
        model_import = [sys.executable, "-c", "import micrograde.models.infer"]
        commands = {"micrograde --help": [*mg, "--help"],
                    "micrograde status": [*mg, "status", "--workspace", str(base / "ws-ingest")],
                    "import of the model code (torch, timm)": model_import}
        for name, cmd in commands.items():
            rows[name] = _median_row([timed(cmd, command_env(home, "shared")) for _ in range(args.repeat)])
    finally:
        stop_shared_api(home)
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    for name, row in rows.items():
        kind = name.split()[0]
        if kind in work:
            row["overhead_wall_s"] = row["wall_s"] - work[kind]["wall_s"]
            row["overhead_cpu_s"] = row["cpu_s"] - work[kind]["cpu_s"]
    res = {"rows": rows, "work": work, "repeat": args.repeat, "load_average_at_end": os.getloadavg()}
    write_result(res, "startup", False, t_start)
    print(markdown(res))
    return 0


def markdown(res: dict) -> str:
    lines = ["| command | wall (s) | CPU (s) | overhead, wall (s) | overhead, CPU (s) |", "|---|---|---|---|---|"]
    for name, row in res["rows"].items():
        ow = f"{row['overhead_wall_s']:.2f}" if "overhead_wall_s" in row else "-"
        oc = f"{row['overhead_cpu_s']:.2f}" if "overhead_cpu_s" in row else "-"
        lines.append(f"| {name} | {row['wall_s']:.2f} | {row['cpu_s']:.2f} | {ow} | {oc} |")
    for kind, row in res["work"].items():
        lines.append(f"| work of a one-file {kind}, in process | {row['wall_s']:.2f} | {row['cpu_s']:.2f} | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
