"""The Prefect API of one-off commands (src/micrograde/flows/prefect_api.py): a local server shared by
successive commands, replaced when it died, stopped when idle; the same output with and without it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers_io import write_mrc

from micrograde.flows.prefect_api import API_MODE_ENV, IDLE_ENV, api_mode, shared_api_state, stop_shared_api
from micrograde.pipeline.catalogue.query import micrograph_table
from micrograde.pipeline.catalogue.workspace import Workspace

COMPARED = ["name", "digest", "frame", "cache_key", "preprocess_key", "pixel_size", "shape_y", "shape_x", "session"]


def _env(home: Path, mode: str, idle: float = 120.0) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(home), API_MODE_ENV: mode, IDLE_ENV: str(idle)}
    env.pop("PREFECT_API_URL", None)
    return env


def _ingest(src: Path, root: Path, env: dict[str, str]) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "micrograde", "ingest", str(src), "--workspace", str(root)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [line for line in done.stdout.splitlines() if not line.startswith("ingest run ")]


def _table(root: Path):
    with Workspace.open(root) as ws:
        return micrograph_table(ws)[COMPARED].sort_values("name").reset_index(drop=True)


def test_api_mode_follows_the_environment(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv(API_MODE_ENV, raising=False)
    assert api_mode() == "shared"
    monkeypatch.setenv(API_MODE_ENV, "private")
    assert api_mode() == "private"
    monkeypatch.setenv(API_MODE_ENV, "sometimes")
    with pytest.raises(ValueError, match=API_MODE_ENV):
        api_mode()
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.facility:4200/api")
    assert api_mode() == "facility"


@pytest.mark.slow
def test_commands_give_the_same_output_with_a_fresh_a_reused_and_a_replaced_local_server(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_mrc(src / "a.mrc", np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32), voxel_size=1.2)
    write_mrc(src / "b.mrc", np.random.default_rng(1).normal(size=(300, 256)).astype(np.float32), voxel_size=0.9)
    home = tmp_path / "prefect"
    try:
        private = _ingest(src, tmp_path / "ws-private", _env(tmp_path / "prefect-private", "private"))
        assert shared_api_state(tmp_path / "prefect-private") is None, "private mode records no shared server"

        fresh = _ingest(src, tmp_path / "ws-fresh", _env(home, "shared"))
        first = shared_api_state(home)
        assert first is not None
        reused = _ingest(src, tmp_path / "ws-reused", _env(home, "shared"))
        assert shared_api_state(home)["pid"] == first["pid"], "the second command reused the server"

        os.kill(first["pid"], signal.SIGKILL)  # the server died between two commands
        replaced = _ingest(src, tmp_path / "ws-replaced", _env(home, "shared"))
        after = shared_api_state(home)
        assert after["pid"] != first["pid"] and after["url"]

        assert private == fresh == reused == replaced
        assert "  ingested: 2" in private
        tables = [_table(tmp_path / f"ws-{name}") for name in ("private", "fresh", "reused", "replaced")]
        for table in tables[1:]:
            assert table.equals(tables[0])
    finally:
        stop_shared_api(home)
    assert shared_api_state(home) is None


@pytest.mark.slow
def test_the_shared_server_stops_when_idle_and_not_while_a_command_runs(tmp_path):
    from micrograde.flows.prefect_api import USERS_LOCK, prefect_api
    from micrograde.pipeline.io.locks import file_lock

    home = tmp_path / "prefect"
    env_before = {k: os.environ.get(k) for k in ("PREFECT_HOME", API_MODE_ENV, IDLE_ENV, "PREFECT_API_URL")}
    os.environ.update({"PREFECT_HOME": str(home), API_MODE_ENV: "shared", IDLE_ENV: "3"})
    os.environ.pop("PREFECT_API_URL", None)
    try:
        with prefect_api(home) as url:
            pid = shared_api_state(home)["pid"]
            assert url == shared_api_state(home)["url"] and os.environ["PREFECT_API_URL"] == url
            time.sleep(6)  # longer than the idle time, but a command holds the users lock
            os.kill(pid, 0)
        assert "PREFECT_API_URL" not in os.environ
        with file_lock(home / USERS_LOCK, shared=True):  # another command, outside this process's API
            time.sleep(5)
            os.kill(pid, 0)
        deadline = time.monotonic() + 60
        while shared_api_state(home) is not None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert shared_api_state(home) is None, "the idle server removed its record"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
                os.kill(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                break
            time.sleep(0.5)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        stop_shared_api(home)
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.slow
def test_a_server_started_early_is_the_one_the_command_waits_for_and_a_dead_start_is_replaced(tmp_path, monkeypatch):
    from micrograde.flows.prefect_api import STATE_FILE, prefect_api, start_shared_api

    home = tmp_path / "prefect"
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv(API_MODE_ENV, "private")
    start_shared_api(home)
    assert shared_api_state(home) is None, "private mode starts nothing"
    monkeypatch.setenv(API_MODE_ENV, "shared")
    try:
        start_shared_api(home)  # returns at once: the server starts in the background
        early = shared_api_state(home)
        assert early is not None and early["starting"] is True
        start_shared_api(home)  # a second early start finds it starting and adds none
        assert shared_api_state(home)["pid"] == early["pid"]
        with prefect_api(home) as url:  # waits for that server, and records it as started
            assert url == early["url"] and os.environ["PREFECT_API_URL"] == url
            state = shared_api_state(home)
            assert state["pid"] == early["pid"] and "starting" not in state
        stop_shared_api(home)

        # a start that died before it answered (here: a process that is gone) is replaced
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        (home / STATE_FILE).write_text(json.dumps({**early, "pid": dead.pid, "starting": True}))
        with prefect_api(home) as url:
            state = shared_api_state(home)
            assert state["pid"] not in (dead.pid, early["pid"]) and url == state["url"]
    finally:
        stop_shared_api(home)
    assert shared_api_state(home) is None


@pytest.mark.parametrize(("preset", "expected"), [(None, "system"), ("mimalloc", "mimalloc")])
def test_commands_make_arrow_allocate_through_malloc_unless_the_user_chose(tmp_path, preset, expected):
    """Arrow's own pool keeps freed pages: an assessment's Parquet I/O per chunk grew its memory with the run.
    Every command sets Arrow's allocator to the system's before pyarrow loads; a user's choice wins."""
    code = ("import sys;from click.testing import CliRunner;from micrograde.flows.cli.main import main;"
            "r=CliRunner().invoke(main,['status','--workspace',sys.argv[1]]);assert r.exit_code==0,r.output;"
            "import pyarrow as pa;print(pa.default_memory_pool().backend_name)")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if preset:
        env["ARROW_DEFAULT_MEMORY_POOL"] = preset
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ws")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == expected
