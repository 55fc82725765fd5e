"""Faults a facility meets, for real: kill -9 in the middle of an assessment's report and of a training
checkpoint, two sweeps of one folder at once, a movie over 2 GiB on PostgreSQL, PostgreSQL restarted in the
middle of a labelling session. (kill -9 during ingest: tests/io/test_ingest_flow.py; a full disk while a cache
entry is written: tests/io/test_catalogue_identity.py; a workspace of 0.1.0: tests/io/test_catalogue_migrations.py.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers_facility import tiny_train_flow
from sqlalchemy import func, select

from micrograde.flows.context import RunContext
from micrograde.pipeline.catalogue.query import micrograph_table
from micrograde.pipeline.catalogue.schema import Annotation, AssessRun, FileRow, Micrograph, ModelRow
from micrograde.pipeline.catalogue.workspace import Workspace

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parents[1]

# Runs a command of micrograde in a child process with one library function slowed down at the moment
# given, so that the test can kill the child with SIGKILL right there. argv: MARKER MODE command...
_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    marker, mode, argv = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]

    def stall():
        marker.write_text("now")
        time.sleep(600)

    if mode == "report":  # the predictions are made; the report folder is being written
        import micrograde.pipeline.report.outputs as outputs
        real = outputs.write_outputs
        def write_outputs(folder, predictions, **kw):
            (Path(folder) / "predictions.csv").write_text("a half-written report")
            stall()
        outputs.write_outputs = write_outputs
    elif mode == "checkpoint":  # half of the grader's model file (heads.skops) is on disk
        import contextlib
        import micrograde.pipeline.io.atomic as atomic
        real_open = atomic.atomic_open
        @contextlib.contextmanager
        def atomic_open(path, mode="wb"):
            if Path(path).name == "heads.skops":
                with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
                    f.write(b"PK\\x03\\x04 half a model")
                    f.flush()
                    stall()
            with real_open(path, mode) as fh:
                yield fh
        atomic.atomic_open = atomic_open
    elif mode == "torch-checkpoint":  # half of a fine-tuning checkpoint is on disk
        import torch
        def save(obj, f, *a, **kw):
            if hasattr(f, "write"):
                f.write(b"PK\\x03\\x04 half a checkpoint")
                f.flush()
            stall()
        torch.save = save
    if argv[0] == "finetune-tiny":  # the fine-tuning recipe, which checkpoints every epoch
        from micrograde.flows.train import labelled_table
        from micrograde.models.training.recipe import TrainConfig
        from micrograde.models.training.run import TrainRunConfig, train_model
        from micrograde.pipeline.catalogue.workspace import Workspace
        ws = Workspace.open(argv[1])
        cfg = TrainRunConfig(train=TrainConfig(backbone="lenet", weights="none", epochs_head=1,
                                               epochs_finetune=1, batch_size=8), min_per_class=1)
        train_model(labelled_table(ws), ws.cache_dir, Path(argv[2]), cfg, model_id="tiny-net", progress=False)
        print("trained")
    elif argv[0] == "train-tiny":
        from micrograde.flows.runtime import prefect_session
        with prefect_session(argv[1]):
            from micrograde.flows.context import RunContext
            from micrograde.flows.train import train_flow
            print(train_flow(RunContext(root=argv[1])).model_id)
    else:
        from micrograde.flows.cli.main import main
        main(argv)
    """
)


def _run_and_kill(tmp_path: Path, mode: str, argv: list[str], timeout: float = 300.0) -> None:
    script, marker = tmp_path / f"child_{mode}.py", tmp_path / f"{mode}.marker"
    script.write_text(_CHILD)
    marker.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, str(script), str(marker), mode, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"the child ended before the fault point: {proc.stderr.read().decode()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the child never reached the fault point")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)


@pytest.fixture(scope="module")
def trained(prefect_harness, sim_collection, tmp_path_factory):
    """A workspace with the shared collection ingested, labelled and a tiny model trained."""
    from micrograde.flows.ingest import ingest_flow

    src, truth = sim_collection
    root = tmp_path_factory.mktemp("faults") / "ws"
    ingest_flow([str(src)], RunContext(root=root))
    model_id = tiny_train_flow()(root, truth, src)
    return root, model_id, src, truth


def _complete_report(folder: Path, n: int) -> None:
    assert (folder / "report.html").read_text().rstrip().endswith("</html>")
    assert len(pd.read_csv(folder / "predictions.csv")) == n
    assert (folder / "selected.star").is_file()


def test_kill_9_between_prediction_and_report_leaves_no_half_report(trained, tmp_path):
    root, model_id, src, truth = trained
    session = truth["session"].iloc[0]
    n = int((truth["session"] == session).sum())
    with Workspace.open(root) as ws:
        runs_before = {r for r in ws.session().execute(select(AssessRun.id)).scalars()}
        reports_before = {p.name for p in ws.reports_dir.iterdir()}
    argv = ["assess", str(src / session), "--workspace", str(root), "--model", model_id]
    _run_and_kill(tmp_path, "report", argv)
    with Workspace.open(root) as ws:
        assert {p.name for p in ws.reports_dir.iterdir()} == reports_before, "no report folder from the killed run"
        assert {r for r in ws.session().execute(select(AssessRun.id)).scalars()} == runs_before
    assert any((root / ".staging").iterdir()), "the killed writer's work stayed aside"

    done = subprocess.run([sys.executable, "-m", "micrograde", *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = Path(done.stdout.strip().splitlines()[-1])
    _complete_report(folder, n)
    with Workspace.open(root) as ws:
        new_runs = {r for r in ws.session().execute(select(AssessRun.id)).scalars()} - runs_before
        assert len(new_runs) == 1, "one run recorded, for the report that exists"
        table = micrograph_table(ws)
        assert not table.duplicated(["digest", "frame"]).any() and len(table) == len(truth)
    assert list((root / ".staging").iterdir()) == [], "the killed writer's staging folder was cleared"
    cache = pd.read_parquet(root / "cache" / "predictions" / f"{model_id}.parquet")
    assert not cache["cache_key"].duplicated().any()


def test_kill_9_during_the_model_file_write_leaves_no_half_model(trained, tmp_path):
    from micrograde.models.grading.grader import load_grader

    root, _model_id, _src, _truth = trained
    with Workspace.open(root) as ws, ws.session() as s:
        models_before = set(s.execute(select(ModelRow.id)).scalars())
    dirs_before = {p.name for p in (root / "models").iterdir()}
    _run_and_kill(tmp_path, "checkpoint", ["train-tiny", str(root)])
    for folder in (root / "models").iterdir():
        if (folder / "heads.skops").exists():  # only ever a whole model file under its real name
            assert not (folder / "heads.skops").read_bytes().endswith(b"half a model"), folder
    with Workspace.open(root) as ws, ws.session() as s:
        assert set(s.execute(select(ModelRow.id)).scalars()) == models_before, "the killed run registered nothing"

    done = subprocess.run([sys.executable, str(tmp_path / "child_checkpoint.py"), str(tmp_path / "unused"), "none",
                           "train-tiny", str(root)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    new_id = done.stdout.strip().splitlines()[-1]
    with Workspace.open(root) as ws, ws.session() as s:
        assert set(s.execute(select(ModelRow.id)).scalars()) == models_before | {new_id}
    assert new_id not in dirs_before
    assert load_grader(root / "models" / new_id).model_id == new_id


def test_kill_9_during_a_training_checkpoint_write_leaves_no_half_checkpoint(trained, tmp_path):
    import torch

    root = trained[0]
    out = tmp_path / "network"
    _run_and_kill(tmp_path, "torch-checkpoint", ["finetune-tiny", str(root), str(out)])
    written = sorted(out.rglob("*.pt"))  # only ever whole checkpoints under their real names
    for path in written:
        torch.load(path, map_location="cpu", weights_only=False)
    halves = [p for p in out.rglob("*") if p.is_file() and p.read_bytes().endswith(b"half a checkpoint")]
    assert halves and all(p.name.endswith(".part") for p in halves), "half a checkpoint only under a temporary name"

    done = subprocess.run([sys.executable, str(tmp_path / "child_torch-checkpoint.py"), str(tmp_path / "unused"),
                           "none", "finetune-tiny", str(root), str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "trained"
    torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)


def test_two_sweeps_at_once_ingest_each_file_once_and_write_one_report(trained, tmp_path):
    root, model_id, src, truth = trained
    from micrograde.pipeline.sim.files import write_collection
    from micrograde.pipeline.sim.physics import DEFAULT_SESSIONS

    new = tmp_path / "new"
    fresh = write_collection(new, 6, seed=41, sessions=DEFAULT_SESSIONS[:1])
    watch = tmp_path / "watch"
    (watch / "grid-live").mkdir(parents=True)
    for m in fresh["micrograph"]:
        shutil.copy(new / m, watch / "grid-live" / Path(m).name)
    old = time.time() - 3600
    for f in (watch / "grid-live").iterdir():
        os.utime(f, (old, old))
    cmd = [sys.executable, "-m", "micrograde", "flows", "sweep", "--workspace", str(root), "--watch", str(watch),
           "--model", model_id, "--min-age", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    with Workspace.open(root) as ws:
        table = micrograph_table(ws)
        live = table[table["session"] == "grid-live"]
        assert len(live) == len(fresh) and not table.duplicated(["digest", "frame"]).any()
        with ws.session() as s:
            rows = s.execute(select(FileRow.path, func.count(FileRow.id)).where(FileRow.path.contains("grid-live"))
                             .group_by(FileRow.path)).all()
        assert len(rows) == len(fresh) and all(n == 1 for _p, n in rows)
    reports = [p for p in (root / "reports").iterdir() if p.name == "session-grid-live"]
    assert len(reports) == 1
    _complete_report(reports[0], len(fresh))
    assert list((root / ".staging").iterdir()) == []


def _sparse_movie(path: Path, gib: float) -> Path:
    """A small valid micrograph followed by a hole: the file is over ``gib`` GiB (sparse on disk)."""
    from helpers_io import write_mrc

    path.parent.mkdir(parents=True, exist_ok=True)
    write_mrc(path, np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32), voxel_size=1.0)
    with open(path, "r+b") as fh:
        fh.truncate(int(gib * 2**30))
    return path


@pytest.mark.postgres
def test_a_file_over_2_gib_gets_its_rows_on_postgres(prefect_harness, postgres_url, tmp_path):
    from micrograde.flows.ingest import ingest_flow
    from micrograde.pipeline.config import IngestConfig

    big = _sparse_movie(tmp_path / "in" / "movie_big.mrc", 2.25)
    size = big.stat().st_size
    assert size > 2**31
    summary = ingest_flow([str(big)], RunContext(root=tmp_path / "ws", db_url=postgres_url),
                          IngestConfig(permissive=True))  # the hole counts as surplus bytes after the data
    assert summary.ingested == 1
    with Workspace.open(tmp_path / "ws", postgres_url) as ws, ws.session() as s:
        assert s.execute(select(Micrograph.size_bytes)).scalar_one() == size
        assert s.execute(select(FileRow.size_bytes, FileRow.state)).one() == (size, "ingested")


@pytest.mark.postgres
def test_postgres_restarted_in_the_middle_of_a_labelling_session_loses_no_label(postgres_url, tmp_path):
    from helpers_label import add_micrographs
    from helpers_label_app import AppEnv

    from micrograde.labeling import store

    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql/15/main").is_dir():
        pytest.skip("needs the local PostgreSQL 15 cluster managed by pg_ctlcluster")
    ws = Workspace.open(tmp_path / "ws", postgres_url)
    ids = add_micrographs(ws, 30)
    row, token = store.add_annotator(ws, "ana", "postdoc")
    env = AppEnv(ws, ids, {"ana": token}, {"ana": row.id})
    client, csrf = env.login("ana")
    results: list[tuple[int, int]] = []

    def label(mid: int) -> None:
        r = client.post(f"/api/micrographs/{mid}/annotations", json={"label": "good"}, headers={"X-CSRF-Token": csrf})
        results.append((mid, r.status_code))

    for mid in ids[:10]:  # before
        label(mid)

    def during():
        for mid in ids[10:20]:
            label(mid)
            time.sleep(0.2)

    labeller = threading.Thread(target=during)
    labeller.start()
    restart = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"],
                             capture_output=True, text=True, timeout=120)
    labeller.join(timeout=180)
    assert restart.returncode == 0, restart.stderr
    for _ in range(120):  # back up before the test ends (other tests share the server)
        if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True).returncode == 0:
            break
        time.sleep(0.5)
    for mid in ids[20:]:  # after: the same app, never restarted
        label(mid)
    try:
        ok = {mid for mid, status in results if status == 200}
        assert {mid for mid, _ in results if mid in ids[:10] or mid in ids[20:]} <= ok, results
        assert len(ok) >= 20 and len(results) == 30
        with ws.session() as s:
            stored = list(s.execute(select(Annotation.micrograph_id)).scalars())
        assert sorted(stored) == sorted(ok), "every acknowledged label is stored once; none is lost"
    finally:
        ws.close()
