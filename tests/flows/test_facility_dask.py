"""Scale-out: the Dask task runner (a local cluster of 2 worker processes) gives the same results as threads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers_facility import tiny_train_flow

from micrograde.flows.context import RunContext
from micrograde.flows.runners import make_task_runner
from micrograde.pipeline.catalogue.cache import load_entry
from micrograde.pipeline.catalogue.query import micrograph_table
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.features import SCORE_COLUMNS

COMPARED = ["name", "digest", "frame", "cache_key", "preprocess_key", "shape_y", "shape_x", "mode", "pixel_size",
            "session", *SCORE_COLUMNS]


def _table(root) -> pd.DataFrame:
    with Workspace.open(root) as ws:
        return micrograph_table(ws)[COMPARED].sort_values("name").reset_index(drop=True)


def _predictions(folder) -> pd.DataFrame:
    """predictions.csv without what names a workspace's rows (ids, which follow the order of ingest)."""
    table = pd.read_csv(folder / "predictions.csv").drop(columns=["micrograph_id"])
    return table.sort_values("micrograph").reset_index(drop=True)


@pytest.mark.slow
def test_dask_path_gives_the_same_catalogue_cache_and_predictions(prefect_harness, sim_collection, tmp_path):
    from micrograde.flows.assess import AssessConfig, assess_flow
    from micrograde.flows.ingest import ingest_flow

    src, truth = sim_collection
    threads, dask = tmp_path / "threads", tmp_path / "dask"
    a = ingest_flow.with_options(task_runner=make_task_runner(threads=2))([str(src)], RunContext(root=threads))
    b = ingest_flow.with_options(task_runner=make_task_runner(dask_workers=2))([str(src)], RunContext(root=dask))
    assert (a.ingested, a.rejected) == (b.ingested, b.rejected) == (len(truth), 0)
    ta, tb = _table(threads), _table(dask)
    pd.testing.assert_frame_equal(ta, tb)
    for key in ta["cache_key"][:3]:
        ea, eb = load_entry(threads / "cache", key), load_entry(dask / "cache", key)
        for name in ("image", "spectrum", "thumbnail"):
            np.testing.assert_array_equal(ea[name], eb[name])

    # the assess half: each runner assesses from its own workspace, with its own model (trained
    # the same way on its own catalogue and cache), and predicts everything itself
    cfg_threads = AssessConfig(model_id=tiny_train_flow()(threads, truth, src))
    cfg_dask = AssessConfig(model_id=tiny_train_flow()(dask, truth, src))
    by_threads = assess_flow.with_options(task_runner=make_task_runner(threads=2))(
        [str(src)], RunContext(root=threads), None, cfg_threads)
    by_dask = assess_flow.with_options(task_runner=make_task_runner(dask_workers=2))(
        [str(src)], RunContext(root=dask), None, cfg_dask)
    assert by_dask.report_dir.is_relative_to(dask) and by_threads.report_dir.is_relative_to(threads)
    assert by_threads.n_cached == by_dask.n_cached == 0, "each run predicted every micrograph itself"
    assert by_threads.n_micrographs == by_dask.n_micrographs == len(truth)
    pa = _predictions(by_threads.report_dir)
    pb = _predictions(by_dask.report_dir)
    assert len(pa) == len(truth) and set(pa["label"]) <= {"good", "medium", "bad"}
    pd.testing.assert_frame_equal(pa, pb)
    assert by_threads.counts == by_dask.counts
