"""Narrow catalogue queries (src/micrograde/pipeline/catalogue/query.py): what an assessment chooses, without
reading every micrograph's features."""

from __future__ import annotations

import numpy as np
from helpers_io import write_mrc

from micrograde.pipeline.catalogue.ingest import ingest_file
from micrograde.pipeline.catalogue.query import micrograph_paths, micrograph_table
from micrograde.pipeline.config import IngestConfig, PreprocessConfig


def test_micrograph_paths_choose_by_ids_sessions_and_preprocessing_like_the_full_table(workspace, tmp_path):
    rng = np.random.default_rng(1)
    for session in ("grid1", "grid2"):
        (tmp_path / session).mkdir()
        for i in range(3):
            path = write_mrc(tmp_path / session / f"m{i}.mrc", rng.normal(size=(96, 96)).astype(np.float32),
                             voxel_size=1.0)
            ingest_file(workspace, path, IngestConfig())
    other = IngestConfig(preprocess=PreprocessConfig(image_size=128))  # one file re-ingested, preprocessed otherwise
    ingest_file(workspace, tmp_path / "grid2" / "m0.mrc", other)
    full = micrograph_table(workspace)
    narrow = micrograph_paths(workspace)
    assert list(narrow.columns) == ["id", "path", "session"]
    assert narrow.to_dict("list") == full[["id", "path", "session"]].to_dict("list")

    key = str(full["preprocess_key"].iloc[0])
    chosen = micrograph_paths(workspace, sessions=["grid2"], preprocess_key=key)
    expected = full[(full["session"] == "grid2") & (full["preprocess_key"] == key)]
    assert list(chosen["id"]) == list(expected["id"]) and len(chosen) == 2 and set(chosen["session"]) == {"grid2"}
    assert len(micrograph_paths(workspace, sessions=["grid2"], preprocess_key=other.preprocess.digest())) == 1
    ids = [int(i) for i in full["id"].iloc[[4, 1]]]
    assert list(micrograph_paths(workspace, ids)["id"]) == sorted(ids)
    assert micrograph_paths(workspace, [], sessions=["grid1"]).empty
    assert micrograph_paths(workspace, sessions=["nope"]).empty
