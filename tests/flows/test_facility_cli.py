"""Facility plumbing: task runners, command-line options, deployments, the retrain threshold, a real serve."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import click
import pytest
from click.testing import CliRunner
from helpers_label import add_micrographs
from sqlalchemy import func, select

from micrograde.flows.cli.facility import register
from micrograde.flows.context import RunContext
from micrograde.flows.runners import make_task_runner
from micrograde.pipeline.catalogue.schema import Micrograph, ModelRow
from micrograde.pipeline.catalogue.workspace import Workspace, WorkspaceError


@pytest.fixture
def cli() -> click.Group:
    @click.group()
    def group() -> None:
        pass

    register(group)
    return group


def test_make_task_runner_picks_threads_or_dask():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    threads = make_task_runner(threads=3)
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 3
    local = make_task_runner(dask_workers=2)
    assert isinstance(local, DaskTaskRunner)
    assert local.cluster_kwargs["n_workers"] == 2 and local.cluster_kwargs["processes"] is True
    remote = make_task_runner(dask_address="tcp://10.0.0.5:8786")
    assert remote.address == "tcp://10.0.0.5:8786"
    with pytest.raises(ValueError, match="not both"):
        make_task_runner("tcp://h:1", 2)
    with pytest.raises(ValueError):
        make_task_runner(threads=0)


def test_cli_usage_errors_exit_2(cli, tmp_path):
    runner = CliRunner()
    watch = tmp_path / "watch"
    watch.mkdir()
    base = ["flows", "serve", "--workspace", str(tmp_path / "ws"), "--watch", str(watch)]
    both = runner.invoke(cli, [*base, "--dask", "tcp://h:8786", "--dask-workers", "2"])
    assert both.exit_code == 2 and "not both" in both.output
    cron = runner.invoke(cli, [*base, "--cron", "every tuesday"])
    assert cron.exit_code == 2 and "cron" in cron.output
    address = runner.invoke(cli, [*base, "--dask", "nonsense"])
    assert address.exit_code == 2
    other = tmp_path / "my-files"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    demo = runner.invoke(cli, ["demo", "--workspace", str(other), "--quick"])
    assert demo.exit_code == 2 and "not a micrograde workspace" in demo.output
    assert (other / "thesis.tex").read_text() == "precious" and len(list(other.iterdir())) == 1
    for args in (["flows", "serve", "--help"], ["flows", "sweep", "--help"], ["demo", "--help"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0 and "Example:" in result.output


def test_build_deployments_schedules_limits_and_parameters(tmp_path):
    from micrograde.flows.deployments import RETRAIN_DEPLOYMENT, ServeConfig, build_deployments
    from micrograde.flows.facility import FacilityConfig
    from micrograde.pipeline.config import IngestConfig

    serve = ServeConfig(ctx=RunContext(root=tmp_path / "ws"), watch_dir=str(tmp_path), cron="*/10 * * * *",
                        interval_s=30, workers=1)
    watch, sweep, retrain = build_deployments(serve, FacilityConfig(retrain_after=50),
                                              IngestConfig(session="grid7"))
    assert [d.name for d in (watch, sweep, retrain)] == ["watch", "sweep", "retrain"]
    assert watch.schedules[0].schedule.interval == dt.timedelta(seconds=30)
    assert sweep.schedules[0].schedule.cron == "*/10 * * * *"
    assert not retrain.schedules
    for d in (watch, sweep, retrain):
        assert d.concurrency_limit == 1
        assert d.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    cfg = FacilityConfig.model_validate(watch.parameters["cfg"])
    assert cfg.retrain_after == 50 and cfg.retrain_deployment == RETRAIN_DEPLOYMENT
    assert IngestConfig.model_validate(sweep.parameters["ingest_cfg"]).session == "grid7"
    assert retrain.parameters["force"] is True


def test_new_labels_since_the_latest_model_and_the_retrain_threshold(prefect_harness, workspace):
    from micrograde.flows.facility import FacilityConfig, new_labels_since_model, retrain_flow
    from micrograde.labeling.annotators import get_or_create_annotator
    from micrograde.labeling.store import annotate

    ids = add_micrographs(workspace, 6)
    ana = get_or_create_annotator(workspace, "ana", "postdoc")
    for mid in ids[:4]:
        annotate(workspace, mid, ana.id, "good")
    assert new_labels_since_model(workspace) == 4  # no model yet: every label counts
    with workspace.transaction() as s:
        s.add(ModelRow(id="model-x", path="-", backbone="lenet", card={},
                       created_at=dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=5)))
    time.sleep(0.05)
    assert new_labels_since_model(workspace) == 0
    annotate(workspace, ids[0], ana.id, "bad")  # a correction counts
    annotate(workspace, ids[5], ana.id, "medium")  # so does a new label
    assert new_labels_since_model(workspace) == 2
    out = retrain_flow(RunContext(root=workspace.root), FacilityConfig(retrain_after=3), force=False)
    assert (out.trained, out.new_labels, out.title()) == (False, 2, "retrain: skipped (2 new labels)")


_SERVE_SCRIPT = textwrap.dedent(
    """
    import sys, click
    from micrograde.flows.cli.facility import register
    @click.group()
    def main():
        pass
    register(main)
    main(sys.argv[1:])
    """
)


@pytest.mark.slow
def test_flows_serve_runs_the_watch_deployment_on_its_schedule(sim_collection, tmp_path):
    src, truth = sim_collection
    watch, root = tmp_path / "watch", tmp_path / "ws"
    session = truth["session"].iloc[0]
    shutil.copytree(src / session, watch / session)
    n_files = sum(truth["session"] == session)
    script = tmp_path / "serve.py"
    script.write_text(_SERVE_SCRIPT)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, str(script), "flows", "serve", "--workspace", str(root), "--watch", str(watch),
           "--interval", "5", "--min-age", "0", "--workers", "1"]
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ws, n = None, 0
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and n < n_files:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            if ws is None and (root / "micrograde.db").exists():
                with contextlib.suppress(WorkspaceError):
                    ws = Workspace.open(root)
            if ws is not None:
                with ws.session() as s:
                    n = s.execute(select(func.count(Micrograph.id))).scalar_one()
            time.sleep(0.5)
        assert n == n_files, (tmp_path / "serve.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        if ws is not None:
            ws.close()
    text = (tmp_path / "serve.log").read_text()
    assert "Prefect API: http://127.0.0.1:" in text and "micrograde-watch/watch" in text
