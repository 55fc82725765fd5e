"""Bounded memory of assess (issue 14): predictions, catalogue rows and report material in chunks.

A few hundred tiny micrographs are assessed in chunks of 16: every input gets its row, at most one
chunk of the predictions table is alive at any moment (each is dropped before the next is made),
and every file of the report folder is the same as with one chunk for the whole run.
"""

from __future__ import annotations

import re
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers_io import write_mrc

from micrograde.flows.context import RunContext

pytestmark = pytest.mark.slow

N_FILES = 240
CHUNK = 16


@pytest.fixture(scope="module")
def tiny_workspace(prefect_harness, tmp_path_factory):
    """N_FILES tiny noise micrographs in two session folders, ingested, labelled and a baseline grader trained."""
    from micrograde.flows.train import train_flow
    from micrograde.labeling.store import import_labels
    from micrograde.models.grading import GraderConfig
    from micrograde.pipeline.catalogue.ingest import ingest_file
    from micrograde.pipeline.config import IngestConfig

    base = tmp_path_factory.mktemp("chunks")
    src = base / "src"
    rng = np.random.default_rng(14)
    labels = []
    for i in range(N_FILES):
        folder = src / f"session_{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        data = rng.normal(size=(128, 128)).astype(np.float32) * (1 + i % 3)
        path = folder / f"mic_{i:04d}.mrc"
        write_mrc(path, data, voxel_size=1.0)
        labels.append({"micrograph": str(path.resolve()), "label": ("good", "medium", "bad")[i % 3]})
    root = base / "ws"
    ctx = RunContext(root=root, command="test")
    ws = ctx.workspace()
    for item in labels:  # the library step (no task per file: quicker); the flows below are the real ones
        outcome = ingest_file(ws, item["micrograph"], IngestConfig())
        assert outcome.ingested == 1, outcome
    csv = base / "labels.csv"
    pd.DataFrame(labels[:30]).to_csv(csv, index=False)
    import_labels(ctx.workspace(), csv, "ana", "senior-scientist")
    model_id = train_flow(ctx, GraderConfig(heads=("baseline",), finetune="never")).model_id
    return root, src, model_id


def _html(folder: Path) -> str:
    text = (folder / "report.html").read_text()
    return re.sub(r"assess-[0-9A-Za-z_-]+|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+0-9:]*", "X", text)


def _star(folder: Path) -> str:
    return re.sub(r"(?m)^# Created by .*$", "", (folder / "selected.star").read_text())


def test_assess_in_small_chunks_writes_every_row_holds_one_chunk_and_matches_one_chunk(tiny_workspace, monkeypatch):
    import micrograde.flows.assess as assess
    from micrograde.flows.assess import AssessConfig, assess_flow

    root, src, model_id = tiny_workspace
    real = assess.predict_chunks
    live: set[int] = set()
    seen = {"chunks": 0, "most_alive": 0, "rows": 0}

    def counted(*args, **kwargs):
        for i, chunk in enumerate(real(*args, **kwargs)):
            seen["most_alive"] = max(seen["most_alive"], len(live) + 1)
            live.add(i)
            weakref.finalize(chunk, live.discard, i)
            seen["chunks"] += 1
            seen["rows"] += len(chunk)
            yield chunk
            del chunk

    real_table = assess.micrograph_table
    table_reads: list[int] = []

    def table(ws, ids=None):
        table_reads.append(len(ids) if ids is not None else -1)
        return real_table(ws, ids)

    monkeypatch.setattr(assess, "predict_chunks", counted)
    monkeypatch.setattr(assess, "micrograph_table", table)
    sessions = ("session_0", "session_1")
    chunked = assess_flow([], RunContext(root=root), None,
                          AssessConfig(model_id=model_id, chunk_size=CHUNK, sessions=sessions))
    assert seen["chunks"] == -(-N_FILES // CHUNK) and seen["rows"] == N_FILES
    # each chunk's catalogue rows are read once (the run's CTF columns come from a narrower query)
    assert sum(1 for n in table_reads if 0 < n <= CHUNK) == seen["chunks"], table_reads
    assert max(table_reads) <= CHUNK, "no catalogue read of the whole run"
    monkeypatch.setattr(assess, "micrograph_table", real_table)
    assert seen["most_alive"] == 1, "a chunk of predictions was still alive when the next was made"
    assert not live, "every chunk was released"
    monkeypatch.setattr(assess, "predict_chunks", real)

    whole = assess_flow([], RunContext(root=root), None,
                        AssessConfig(model_id=model_id, chunk_size=10_000, sessions=sessions))
    assert chunked.n_micrographs == whole.n_micrographs == N_FILES
    assert chunked.counts == whole.counts and sum(chunked.counts.values()) == N_FILES
    a, b = chunked.report_dir, whole.report_dir
    csv_a = pd.read_csv(a / "predictions.csv")
    assert len(csv_a) == N_FILES and csv_a["micrograph"].is_unique
    assert (a / "predictions.csv").read_bytes() == (b / "predictions.csv").read_bytes()
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "predictions.parquet"), pd.read_parquet(b / "predictions.parquet")
    )
    pq = pd.read_parquet(a / "predictions.parquet")
    assert list(pq["micrograph"]) == list(csv_a["micrograph"])
    np.testing.assert_allclose(pq["p_good"].to_numpy(), csv_a["p_good"].to_numpy())
    assert (a / "selected_micrographs.csv").read_bytes() == (b / "selected_micrographs.csv").read_bytes()
    assert _star(a) == _star(b) and "mic_" in _star(a)
    assert _html(a) == _html(b)
    assert f'data-count="{N_FILES}"' in (a / "report.html").read_text()


def _noise_files(folder: Path, n: int, size: int, seed: int) -> None:
    """``n`` float32 noise micrographs of ``size`` x ``size`` pixels (1 A/px) in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for i in range(n):
        write_mrc(folder / f"m_{i:02d}.mrc", rng.normal(size=(size, size)).astype(np.float32), voxel_size=1.0)


def test_ingest_submits_at_most_max_in_flight_files_at_once(prefect_harness, tmp_path, monkeypatch):
    import micrograde.flows.ingest as ingest

    _noise_files(tmp_path / "src", 12, 96, seed=3)
    windows: list[int] = []
    real = ingest.as_completed

    def watched(futures, *args, **kwargs):
        windows.append(len(futures))
        return real(futures, *args, **kwargs)

    monkeypatch.setattr(ingest, "MAX_IN_FLIGHT", 3)
    monkeypatch.setattr(ingest, "as_completed", watched)
    summary = ingest.ingest_flow([str(tmp_path / "src")], RunContext(root=tmp_path / "ws"))
    assert summary.ingested == 12 and summary.rejected == 0 and len(set(summary.micrograph_ids)) == 12
    assert max(windows) == 3 and len(windows) == 12, windows


def test_flows_called_without_a_task_runner_use_one_thread_per_core(prefect_harness, tmp_path, monkeypatch):
    """A flow called from Python (a library user, the demo) gets a bounded thread pool, not Prefect's default of
    one thread per submitted task: 24 files with 128 submitted at once never run more than a core count of
    ingests together (unbounded, the catalogue's connection pool ran dry and files failed)."""
    import threading
    import time

    import micrograde.flows.ingest as ingest
    from micrograde.flows import assess, demo, facility, train
    from micrograde.flows.runners import default_threads

    for flow in (ingest.ingest_flow, assess.assess_flow, demo.demo_flow, train.train_flow, train.evaluate_flow,
                 facility.watch_flow, facility.sweep_flow, facility.retrain_flow):
        assert flow.task_runner._max_workers == default_threads(), flow.name
    _noise_files(tmp_path / "src", 24, 64, seed=5)
    lock, running, most = threading.Lock(), [0], [0]
    real = ingest.ingest_file

    def counted(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)  # long enough for an unbounded pool to start many at once
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(ingest, "ingest_file", counted)
    summary = ingest.ingest_flow([str(tmp_path / "src")], RunContext(root=tmp_path / "ws"))
    assert summary.ingested == 24 and summary.rejected == 0
    assert 1 <= most[0] <= default_threads(), most[0]


def test_ingest_lets_go_of_each_task_result_once_counted(prefect_harness, tmp_path, monkeypatch):
    """Prefect links every task result of a flow run to a copy of its state until the run ends (about 6 KB a
    task); ingest releases each link once the file is counted, so the flow holds none per file at its end."""
    from prefect.context import FlowRunContext

    import micrograde.flows.ingest as ingest

    _noise_files(tmp_path / "src", 20, 64, seed=6)
    held: list[int] = []
    real = ingest.finish_run

    def finish(*args, **kwargs):  # called inside the flow run, after every file was counted
        held.append(len(FlowRunContext.get().run_results))
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "finish_run", finish)
    summary = ingest.ingest_flow([str(tmp_path / "src")], RunContext(root=tmp_path / "ws"))
    assert summary.ingested == 20 and len(set(summary.micrograph_ids)) == 20
    assert held == [0], held
    monkeypatch.setattr(ingest, "release_task_result", lambda *_a: None)  # without the release: one link per file
    ingest.ingest_flow([str(tmp_path / "src")], RunContext(root=tmp_path / "ws"))
    assert held[1] >= 20, held


class _DarkestTenth:
    """Stands in for a mask model: the darkest tenth of the network's grid is contamination."""

    card = {"id": "dark", "files": {"weights": {"sha256": "0" * 64}}}

    def predict_view(self, image, pixel_size):
        from micrograde.models.segmentation.inputs import mask_inputs
        from micrograde.pipeline.masks import CONTAMINATION

        view = mask_inputs(image, pixel_size)[0]
        return np.where(view <= np.quantile(view, 0.1), CONTAMINATION, 0).astype(np.uint8)


def test_masks_in_chunks_are_the_masks_of_one_chunk(tiny_workspace, monkeypatch):
    """``assess --masks`` writes each chunk's masks as it goes and keeps only their names: the label
    maps, the area columns and the report are those of a run in one chunk."""
    import micrograde.flows.masks as masks
    from micrograde.flows.assess import AssessConfig, assess_flow
    from micrograde.pipeline.io.label_maps import read_label_map

    root, _src, model_id = tiny_workspace
    loads = []
    monkeypatch.setattr(masks, "load_run_mask_model", lambda *a, **k: loads.append(1) or _DarkestTenth())
    runs = [assess_flow([], RunContext(root=root), None,
                        AssessConfig(model_id=model_id, chunk_size=size, sessions=("session_1",), masks=True))
            for size in (CHUNK, 10_000)]
    assert len(loads) == 2, "the mask model is loaded once per run"
    a, b = (r.report_dir for r in runs)
    assert (a / "predictions.csv").read_bytes() == (b / "predictions.csv").read_bytes()
    pred = pd.read_csv(a / "predictions.csv")
    assert len(pred) == N_FILES // 2 and (pred["area_contamination"] > 0.05).all()
    names = sorted(p.name for p in (a / "masks").glob("*.mrc"))
    assert names == sorted(p.name for p in (b / "masks").glob("*.mrc")) and len(names) == N_FILES // 2
    for name in names[:: max(1, len(names) // 8)]:
        np.testing.assert_array_equal(read_label_map(a / "masks" / name)[0], read_label_map(b / "masks" / name)[0])
    assert 'id="masks"' in (a / "report.html").read_text()
