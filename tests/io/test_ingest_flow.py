"""The ingest flow end to end: real file, idempotency, parameter changes, quarantine, resume after kill -9."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from micrograde.flows.cli.main import main
from micrograde.pipeline.catalogue.cache import has_entry
from micrograde.pipeline.catalogue.query import micrograph_table, reject_counts
from micrograde.pipeline.catalogue.schema import FileRow, Micrograph, Reject
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.config import IngestConfig, PreprocessConfig


def _write_mrc(path: Path, data: np.ndarray, voxel: float = 1.0) -> Path:
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = voxel
    return path


@pytest.fixture
def sim_copy(sim_collection, tmp_path) -> tuple[Path, object]:
    src, truth = sim_collection
    dst = tmp_path / "sim"
    shutil.copytree(src, dst)
    return dst, truth


def _ingest(prefect, ws_root: Path, sources, cfg: IngestConfig | None = None):
    from micrograde.flows.context import RunContext
    from micrograde.flows.ingest import ingest_flow

    return ingest_flow([str(s) for s in sources], RunContext(root=ws_root), cfg or IngestConfig())


def test_real_micrograph_ingests_with_shape_and_pixel_size(prefect_harness, real_micrograph, tmp_path):
    summary = _ingest(prefect_harness, tmp_path / "ws", [real_micrograph])
    assert (summary.ingested, summary.rejected) == (1, 0)
    with Workspace.open(tmp_path / "ws") as ws:
        row = micrograph_table(ws).iloc[0]
        assert (row.shape_y, row.shape_x) == (927, 959)
        assert row.pixel_size == pytest.approx(1.0)
        assert row.pixel_size_source == "header"
        assert row["mode"] == "mrc-mode-2"
        assert has_entry(ws.cache_dir, row.cache_key)
        assert np.isfinite(row.ice_ring_score)


def test_reingest_is_a_noop_and_changed_parameters_recompute(prefect_harness, sim_copy, tmp_path):
    folder, truth = sim_copy
    root = tmp_path / "ws"
    first = _ingest(prefect_harness, root, [folder])
    assert first.ingested == len(truth) and first.rejected == 0
    with Workspace.open(root) as ws:
        before = micrograph_table(ws)
    second = _ingest(prefect_harness, root, [folder])
    assert (second.ingested, second.skipped) == (0, len(truth))
    changed = IngestConfig(preprocess=PreprocessConfig(image_size=128))
    third = _ingest(prefect_harness, root, [folder], changed)
    assert third.ingested == len(truth)
    with Workspace.open(root) as ws:
        after = micrograph_table(ws)
        assert len(after) == len(before)
        assert set(after["id"]) == set(before["id"])
        assert not set(after["cache_key"]) & set(before["cache_key"])
        assert all(has_entry(ws.cache_dir, k) for k in after["cache_key"])


def test_bad_files_are_quarantined_with_reasons_and_the_run_goes_on(prefect_harness, sim_copy, tmp_path):
    folder, truth = sim_copy
    bad = folder / "bad"
    bad.mkdir()
    (bad / "empty.mrc").write_bytes(b"")
    (bad / "notes.mrc").write_text("this is not a micrograph\n" * 20)
    good = _write_mrc(bad / "ok.mrc", np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32))
    truncated = bad / "truncated.mrc"
    truncated.write_bytes(good.read_bytes()[:-5000])
    nan = np.random.default_rng(1).normal(size=(256, 256)).astype(np.float32)
    nan[10, 10] = np.nan
    _write_mrc(bad / "nan.mrc", nan)
    _write_mrc(bad / "constant.mrc", np.full((256, 256), 3.0, np.float32))
    root = tmp_path / "ws"
    summary = _ingest(prefect_harness, root, [folder])
    assert summary.ingested == len(truth) + 1
    assert summary.reasons == {"empty-file": 1, "not-an-image": 1, "truncated": 1, "non-finite": 1, "constant": 1}
    with Workspace.open(root) as ws:
        assert reject_counts(ws) == summary.reasons
        with ws.session() as s:
            rejects = s.execute(select(Reject)).scalars().all()
        for r in rejects:
            note = Path(r.quarantined_to + ".reason.txt")
            assert note.is_file() and r.reason in note.read_text()
            assert Path(r.path).exists(), "the source file must never be moved or deleted"


def test_cli_exit_codes_and_summary(prefect_harness, tmp_path):
    runner = CliRunner()
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "empty.mrc").write_bytes(b"")
    result = runner.invoke(main, ["ingest", str(only_bad), "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 1, result.output
    assert "empty-file: 1" in result.output
    result = runner.invoke(main, ["ingest", str(tmp_path / "missing"), "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 2
    assert "no such file or folder" in result.output
    _write_mrc(only_bad / "ok.mrc", np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32))
    result = runner.invoke(main, ["ingest", str(only_bad), "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    assert "ingested: 1" in result.output
    status = runner.invoke(main, ["status", "--workspace", str(tmp_path / "ws"), "--json"])
    assert status.exit_code == 0
    assert '"micrographs": 1' in status.output and '"empty-file": 1' in status.output


def test_pixel_size_override_is_recorded(prefect_harness, tmp_path):
    f = _write_mrc(tmp_path / "nopix.mrc", np.random.default_rng(2).normal(size=(256, 256)).astype(np.float32), 0.0)
    root = tmp_path / "ws"
    missing = _ingest(prefect_harness, root, [f])
    assert missing.reasons == {"missing-pixel-size": 1}
    fixed = _ingest(prefect_harness, root, [f], IngestConfig(pixel_size=1.1))
    assert fixed.ingested == 1
    with Workspace.open(root) as ws:
        row = micrograph_table(ws).iloc[0]
        assert (row.pixel_size, row.pixel_size_source) == (pytest.approx(1.1), "override")


@pytest.mark.slow
def test_resume_after_kill_minus_9_leaves_no_duplicates(sim_copy, tmp_path):
    folder, truth = sim_copy
    root = tmp_path / "ws"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    cmd = [sys.executable, "-m", "micrograde", "ingest", str(folder), "--workspace", str(root), "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ws = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if (root / "micrograde.db").exists():
                ws = ws or Workspace.open(root)
                with ws.session() as s:
                    n = s.execute(select(func.count(Micrograph.id))).scalar_one()
                if n >= 2:
                    break
            if proc.poll() is not None:
                pytest.fail("ingest finished before it could be interrupted")
            time.sleep(0.05)
        else:
            pytest.fail("ingest made no progress")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        with ws.session() as s:
            partial = s.execute(select(func.count(Micrograph.id))).scalar_one()
        assert partial < len(truth), "the run was not interrupted part-way"
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        table = micrograph_table(ws)
        assert len(table) == len(truth)
        assert not table.duplicated(["digest", "frame"]).any()
        assert sorted(Path(p).name for p in table["path"]) == sorted(Path(p).name for p in truth["micrograph"])
        assert all(has_entry(ws.cache_dir, k) for k in table["cache_key"])
        with ws.session() as s:  # one settled version per file, nothing rejected
            files = s.execute(select(FileRow.path, FileRow.state)).all()
            assert s.execute(select(func.count(Reject.id))).scalar_one() == 0
        assert len(files) == len(truth) == len({p for p, _ in files}) and {st for _, st in files} == {"ingested"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if ws is not None:
            ws.close()
