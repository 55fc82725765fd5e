"""Errors by kind in the ingest and watch flows: only I/O errors become io-error rejects; a bug or a database
failure fails loudly, is recorded with its run, and the file is tried again by the next run."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers_io import write_mrc
from sqlalchemy import select

from micrograde.flows.context import RunContext
from micrograde.pipeline.catalogue.query import micrograph_table, reject_counts
from micrograde.pipeline.catalogue.schema import FileRow, IngestRun
from micrograde.pipeline.catalogue.workspace import Workspace


def _folder(tmp_path: Path, n: int = 3) -> list[Path]:
    src = tmp_path / "in" / "grid3"
    src.mkdir(parents=True)
    return [write_mrc(src / f"m{i}.mrc", np.random.default_rng(i).normal(size=(200, 200)).astype(np.float32),
                      voxel_size=1.0) for i in range(n)]


@pytest.fixture
def flaky(monkeypatch):
    """Make ingest_file fail for chosen paths with a chosen exception (as a bug or a lost database would)."""
    from micrograde.flows import ingest as flow_module

    real = flow_module.ingest_file
    failures: dict[str, BaseException] = {}

    def ingest_file(ws, path, cfg, run_id=None):
        if str(path) in failures:
            raise failures[str(path)]
        return real(ws, path, cfg, run_id)

    monkeypatch.setattr(flow_module, "ingest_file", ingest_file)
    return failures


def test_a_bug_fails_the_run_loudly_and_the_file_is_retried_next_time(prefect_harness, tmp_path, flaky):
    from micrograde.flows.ingest import IngestFailed, ingest_flow

    files = _folder(tmp_path)
    flaky[str(files[1])] = RuntimeError("database is locked (a stand-in for any non-I/O failure)")
    ctx = RunContext(root=tmp_path / "ws")
    with pytest.raises(IngestFailed, match="1 file\\(s\\) failed") as caught:
        ingest_flow([str(files[0].parent)], ctx)
    summary = caught.value.summary
    assert (summary.ingested, summary.rejected) == (2, 0) and list(summary.failed) == [str(files[1])]
    with Workspace.open(ctx.root) as ws:
        assert reject_counts(ws) == {}, "a bug is not an io-error reject"
        with ws.session() as s:
            run = s.execute(select(IngestRun).where(IngestRun.id == summary.run_id)).scalar_one()
            assert run.status == "failed" and run.errors[0]["path"] == str(files[1])
            assert "RuntimeError" in run.errors[0]["error"]
            assert s.execute(select(FileRow).where(FileRow.path == str(files[1]))).first() is None
    flaky.clear()
    again = ingest_flow([str(files[0].parent)], ctx)
    assert (again.ingested, again.skipped) == (1, 2)


def test_only_io_errors_become_io_error_rejects(prefect_harness, tmp_path, flaky):
    from micrograde.flows.ingest import ingest_flow

    files = _folder(tmp_path)
    flaky[str(files[2])] = OSError(errno.EIO, "Input/output error")
    ctx = RunContext(root=tmp_path / "ws")
    summary = ingest_flow([str(files[0].parent)], ctx)
    assert summary.reasons == {"io-error": 1} and summary.ingested == 2
    flaky.clear()
    again = ingest_flow([str(files[0].parent)], ctx)  # the I/O error passed: the file gets in, its reject goes
    assert again.ingested == 1
    with Workspace.open(ctx.root) as ws:
        assert reject_counts(ws) == {} and len(micrograph_table(ws)) == 3


def test_the_cli_reports_failed_files_with_exit_1(prefect_harness, tmp_path, flaky):
    from micrograde.flows.cli.main import main

    files = _folder(tmp_path, 2)
    flaky[str(files[0])] = KeyError("a bug")
    result = CliRunner().invoke(main, ["ingest", str(files[0].parent), "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 1
    assert "failed (not rejected; tried again by the next run): 1" in result.output
    assert "will be tried again by the next run" in result.output and "Traceback" not in result.output


def test_the_watcher_does_not_commit_a_failed_file_and_ingests_it_at_its_next_run(prefect_harness, tmp_path, flaky):
    from micrograde.flows.facility import FacilityConfig, watch_flow
    from micrograde.pipeline.io.watch import WatchConfig

    files = _folder(tmp_path)
    watch = files[0].parent.parent
    cfg = FacilityConfig(watch=WatchConfig(stable_polls=1, min_age_s=0.0), polls=1, poll_interval_s=0.0)
    ctx = RunContext(root=tmp_path / "ws")
    flaky[str(files[0].resolve())] = RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="tried again by the next run"):
        watch_flow(str(watch), ctx, None, cfg)
    with Workspace.open(ctx.root) as ws:
        assert len(micrograph_table(ws)) == 2 and reject_counts(ws) == {}
    flaky.clear()
    out = watch_flow(str(watch), ctx, None, cfg)
    assert (out.files, out.ingested) == (1, 1), "only the failed file was delivered again"
    with Workspace.open(ctx.root) as ws:
        assert len(micrograph_table(ws)) == 3
