"""The watch-folder flow for real: files appear one by one, some slowly, one truncated; kill -9 and restart."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers_facility import Microscope, tiny_train_flow
from sqlalchemy import func, select

from micrograde.flows.context import RunContext
from micrograde.pipeline.catalogue.query import micrograph_table, reject_table
from micrograde.pipeline.catalogue.schema import Micrograph
from micrograde.pipeline.catalogue.workspace import Workspace, WorkspaceError
from micrograde.pipeline.io.digest import file_digest
from micrograde.pipeline.io.watch import WatchConfig

FAST = WatchConfig(stable_polls=2, min_age_s=0.4, give_up_s=3.0)


def _facility_cfg(**kw):
    from micrograde.flows.facility import FacilityConfig

    return FacilityConfig(**{"watch": FAST, "polls": 4, "poll_interval_s": 0.3, **kw})


def _watch_until(watch: Path, root: Path, cfg, done, timeout: float = 90.0) -> list:
    from micrograde.flows.facility import watch_flow

    outcomes = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcomes.append(watch_flow(str(watch), RunContext(root=root), None, cfg))
        if done(outcomes):
            return outcomes
    pytest.fail(f"the watcher did not finish in {timeout} s: {[o.title() for o in outcomes]}")


def test_watch_flow_ingests_each_complete_file_once_and_quarantines_the_truncated_one(
    prefect_harness, sim_collection, tmp_path
):
    src, truth = sim_collection
    session = truth["session"].iloc[0]
    rels = list(truth.loc[truth["session"] == session, "micrograph"])[:5]
    assert len(rels) == 5, "the shared collection needs 5 micrographs in one session"
    watch, root = tmp_path / "watch", tmp_path / "ws"
    (watch / session).mkdir(parents=True)
    shutil.copy(src / session / "session.json", watch / session / "session.json")
    plan = [
        (src / rels[0], watch / rels[0], {"chunks": 1, "pause": 0.0}),  # appears at once
        (src / rels[1], watch / rels[1], {"chunks": 5, "pause": 0.3}),  # written slowly
        (src / rels[2], watch / rels[2], {"chunks": 2, "pause": 0.1, "stop_after": 1}),  # transfer died
        (src / rels[3], watch / rels[3], {"chunks": 4, "pause": 0.4}),
        (src / rels[4], watch / rels[4], {"chunks": 3, "pause": 0.2}),
    ]
    microscope = Microscope(plan, gap=0.3)
    microscope.start()
    outcomes = _watch_until(watch, root, _facility_cfg(),
                            lambda outs: not microscope.is_alive() and sum(o.files for o in outs) >= 5)
    microscope.join()
    assert microscope.error is None
    complete = [watch / r for r in (rels[0], rels[1], rels[3], rels[4])]
    truncated = watch / rels[2]

    assert sum(o.files for o in outcomes) == 5, "every file is handed over exactly once"
    assert sum(o.ingested for o in outcomes) == 4 and sum(o.skipped for o in outcomes) == 0
    assert sum(o.gave_up for o in outcomes) == 1
    assert sum(o.rejected for o in outcomes) == 1
    assert any("no model trained yet" in n for o in outcomes for n in o.notes)
    with Workspace.open(root) as ws:
        table = micrograph_table(ws)
        assert sorted(table["path"]) == sorted(str(p.resolve()) for p in complete)
        assert not table.duplicated(["digest", "frame"]).any()
        # what was read is the finished file, never a partial one
        by_path = dict(zip(table["path"], table["digest"], strict=True))
        for rel in (rels[0], rels[1], rels[3], rels[4]):
            assert by_path[str((watch / rel).resolve())] == file_digest(src / rel)
        rejects = reject_table(ws)
        assert list(rejects["reason"]) == ["truncated"]
        assert list(rejects["path"]) == [str(truncated.resolve())]

    again = _watch_until(watch, root, _facility_cfg(polls=2), lambda outs: True)
    assert (again[0].files, again[0].title()) == (0, "watch: nothing new")

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        names = {r.name for r in client.read_flow_runs(limit=200)}
    assert "watch: nothing new" in names
    assert any(re.fullmatch(r"watch: \d+ new files, [01] rejected", n) for n in names), names


@pytest.mark.slow
def test_watch_flow_keeps_a_rolling_session_report(prefect_harness, sim_collection, tmp_path):
    from micrograde.flows.ingest import ingest_flow
    from micrograde.pipeline.sim.files import write_collection
    from micrograde.pipeline.sim.physics import DEFAULT_SESSIONS

    src, truth = sim_collection
    root = tmp_path / "ws"
    ingest_flow([str(src)], RunContext(root=root))
    tiny_train_flow()(root, truth, src)
    new = tmp_path / "new"
    fresh = write_collection(new, 4, seed=99, sessions=DEFAULT_SESSIONS[:1])
    watch = tmp_path / "watch"
    live = watch / "grid-live"  # no session.json: the session is named after the folder
    live.mkdir(parents=True)
    files = [new / m for m in fresh["micrograph"]]
    cfg = _facility_cfg(watch=WatchConfig(stable_polls=1, min_age_s=0.0, give_up_s=3.0), polls=1)

    report = root / "reports" / "session-grid-live"
    for batch, expected in ((files[:2], 2), (files[2:], 4)):
        for f in batch:
            shutil.copy(f, live / f.name)
        [out] = _watch_until(watch, root, cfg, lambda outs: True)
        assert out.files == 2 and out.ingested == 2, out
        assert out.reports == {"grid-live": str(report)}
        assert (report / "report.html").is_file()
        rows = (report / "predictions.csv").read_text().strip().splitlines()
        assert len(rows) - 1 == expected, "the session report covers every micrograph of the session so far"
    assert [p.name for p in (root / "reports").iterdir()] == ["session-grid-live"], "one rolling folder"


_WATCH_SCRIPT = textwrap.dedent(
    """
    import sys
    from micrograde.flows.runtime import configure_prefect
    configure_prefect()
    from micrograde.flows.context import RunContext
    from micrograde.flows.facility import FacilityConfig, watch_flow
    from micrograde.flows.runners import make_task_runner
    from micrograde.pipeline.io.watch import WatchConfig
    cfg = FacilityConfig(watch=WatchConfig(stable_polls=1, min_age_s=0.0), polls=1)
    run = watch_flow.with_options(task_runner=make_task_runner(threads=1))
    out = run(sys.argv[1], RunContext(root=sys.argv[2]), None, cfg)
    print(out.title())
    """
)


@pytest.mark.slow
def test_watch_flow_killed_with_kill_9_and_restarted_loses_nothing(sim_collection, tmp_path):
    src, truth = sim_collection
    watch, root = tmp_path / "watch", tmp_path / "ws"
    shutil.copytree(src, watch)
    (watch / "truth.csv").unlink()
    script = tmp_path / "watch_once.py"
    script.write_text(_WATCH_SCRIPT)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, str(script), str(watch), str(root)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ws = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if ws is None and (root / "micrograde.db").exists():
                try:
                    ws = Workspace.open(root)
                except WorkspaceError:  # the watcher is creating the tables this very moment
                    time.sleep(0.2)
            if ws is not None:
                with ws.session() as s:
                    if s.execute(select(func.count(Micrograph.id))).scalar_one() >= 2:
                        break
            if proc.poll() is not None:
                pytest.fail("the watch run finished before it could be killed")
            time.sleep(0.05)
        else:
            pytest.fail("the watch run made no progress")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        state_file = next((root / "facility").glob("watch-*.json"))
        state = json.loads(state_file.read_text())
        assert state["delivered"], "killed between hand-over and commit"
        assert len(micrograph_table(ws)) < len(truth)

        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        table = micrograph_table(ws)
        assert len(table) == len(truth) and not table.duplicated(["digest", "frame"]).any()
        assert sorted(Path(p).name for p in table["path"]) == sorted(Path(m).name for m in truth["micrograph"])
        state = json.loads(state_file.read_text())
        assert state["delivered"] == {} and len(state["handed"]) == len(truth)
        assert "new files, 0 rejected" in done.stdout
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if ws is not None:
            ws.close()


def test_sweep_command_ingests_settled_files_and_leaves_files_being_written(prefect_harness, sim_collection, tmp_path):
    from click.testing import CliRunner

    from micrograde.flows.cli.facility import sweep_cmd

    src, truth = sim_collection
    rels = list(truth["micrograph"])[:3]
    watch, root = tmp_path / "watch", tmp_path / "ws"
    for rel in rels[:2]:
        (watch / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rel, watch / rel)
    old = time.time() - 3600
    os.utime(watch / rels[0], (old, old))
    (watch / rels[2]).parent.mkdir(parents=True, exist_ok=True)
    (watch / rels[2]).write_bytes((src / rels[2]).read_bytes()[:5000])  # still being written
    args = ["--workspace", str(root), "--watch", str(watch), "--min-age", "30", "--give-up", "600"]
    first = CliRunner().invoke(sweep_cmd, args)
    assert first.exit_code == 0, first.output
    assert "sweep: 1 files, 0 rejected" in first.output
    for rel in rels[1:]:
        os.utime(watch / rel, (old, old))  # an hour later: one finished, one never will
    second = CliRunner().invoke(sweep_cmd, args)
    # a sweep looks at the whole folder again: the first file is re-checked (and skipped by ingest)
    assert second.exit_code == 0 and "sweep: 3 files, 1 rejected" in second.output, second.output
    assert "no model trained yet" in second.output
    with Workspace.open(root) as ws:
        assert sorted(Path(p).name for p in micrograph_table(ws)["path"]) == sorted(Path(r).name for r in rels[:2])
        assert list(reject_table(ws)["reason"]) == ["truncated"]
