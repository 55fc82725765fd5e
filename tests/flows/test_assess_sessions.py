"""A grader that measures micrographs against their session, in a workspace: the reference is the
session's first micrographs in the catalogue, and stored grades follow it until it is full."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_io import write_mrc

pytestmark = pytest.mark.slow


@pytest.fixture()
def session_workspace(tmp_path, monkeypatch):
    """24 tiny micrographs of one session ingested, and a grader whose shipped head is ``physics``."""
    from micrograde.models.grading import GraderConfig, run, train_grader
    from micrograde.models.grading.protocol import Choice
    from micrograde.models.grading.sessions import MAX_REFERENCE
    from micrograde.pipeline.catalogue.ingest import ingest_file
    from micrograde.pipeline.catalogue.query import micrograph_table, session_cache_keys
    from micrograde.pipeline.catalogue.workspace import Workspace
    from micrograde.pipeline.config import IngestConfig

    src = tmp_path / "src" / "grid_1"
    src.mkdir(parents=True)
    ws = Workspace.open(tmp_path / "ws")
    rng = np.random.default_rng(3)
    for i in range(24):
        write_mrc(src / f"mic_{i:03d}.mrc", (rng.normal(size=(128, 128)) * (1 + i % 3)).astype(np.float32),
                  voxel_size=1.0)
        assert ingest_file(ws, str(src / f"mic_{i:03d}.mrc"), IngestConfig()).ingested == 1
    table = micrograph_table(ws).assign(label=[("good", "medium", "bad")[i % 3] for i in range(24)])
    monkeypatch.setattr(run, "choose_robust", lambda y, oof, **kw: Choice("physics", "physics"))
    cfg = GraderConfig(heads=("baseline", "physics"), finetune="never")
    refs = session_cache_keys(ws, list(table["session"].unique()), limit=MAX_REFERENCE,
                              preprocess_key=cfg.preprocess.digest())
    train_grader(table, ws.cache_dir, ws.models_dir / "m", cfg, model_id="m", progress=False, references=refs)
    return ws, src, rng


def test_stored_grades_follow_the_sessions_reference_as_it_grows(session_workspace):
    from micrograde.flows.assess import session_references
    from micrograde.models.batch_predict import predict_cached
    from micrograde.models.grading import Grader
    from micrograde.pipeline.catalogue.ingest import ingest_file
    from micrograde.pipeline.catalogue.query import micrograph_table
    from micrograde.pipeline.config import IngestConfig

    ws, src, rng = session_workspace
    grader = Grader(ws.models_dir / "m")
    assert grader.needs_session
    rows, refs = session_references(ws, grader, micrograph_table(ws))
    assert refs is not None and list(refs) == ["grid_1"]
    assert refs["grid_1"] == list(rows["cache_key"])  # all 24, in ingest order
    assert rows["session_reference"].nunique() == 1
    keys = list(rows["cache_key"])
    first, n1 = predict_cached(grader, ws.cache_dir, keys, extra=rows, references=refs)
    again, n2 = predict_cached(grader, ws.cache_dir, keys, extra=rows, references=refs)
    assert (n1, n2) == (0, len(keys)) and np.allclose(first, again)
    # one more micrograph of the session: its reference changes, so the stored grades are not reused
    extra = src / "mic_999.mrc"
    write_mrc(extra, (rng.normal(size=(128, 128)) * 9).astype(np.float32), voxel_size=1.0)
    assert ingest_file(ws, str(extra), IngestConfig()).ingested == 1
    grown, grown_refs = session_references(ws, grader, micrograph_table(ws))
    assert grown_refs is not None and len(grown_refs["grid_1"]) == 25
    assert grown["session_reference"].iloc[0] != rows["session_reference"].iloc[0]
    _, n3 = predict_cached(grader, ws.cache_dir, keys, extra=grown.iloc[:24], references=grown_refs)
    assert n3 == 0


def test_a_session_too_small_to_stand_for_itself_is_named_in_the_warnings(session_workspace):
    from micrograde.flows.assess import _reference_warnings
    from micrograde.models.grading import Grader
    from micrograde.models.grading.sessions import MIN_REFERENCE
    from micrograde.pipeline.catalogue.ingest import ingest_file
    from micrograde.pipeline.catalogue.query import micrograph_table
    from micrograde.pipeline.config import IngestConfig

    ws, src, rng = session_workspace
    grader = Grader(ws.models_dir / "m")
    assert _reference_warnings(ws, grader, micrograph_table(ws)) == []  # 24 micrographs: its own median
    small = src.parent / "grid_2"
    small.mkdir()
    for i in range(MIN_REFERENCE - 3):
        write_mrc(small / f"mic_{i}.mrc", rng.normal(size=(128, 128)).astype(np.float32), voxel_size=1.0)
        assert ingest_file(ws, str(small / f"mic_{i}.mrc"), IngestConfig()).ingested == 1
    found = _reference_warnings(ws, grader, micrograph_table(ws))
    assert [(w.session, w.kind) for w in found] == [("grid_2", "session-reference")]
    assert f"only {MIN_REFERENCE - 3} micrographs" in found[0].message and "training micrographs' median" in \
        found[0].message


def test_a_run_reads_each_sessions_reference_from_the_catalogue_once(session_workspace, monkeypatch):
    from micrograde.flows.assess import workspace_references
    from micrograde.pipeline.catalogue import query

    ws, _src, _rng = session_workspace
    asked = []
    real = query.session_cache_keys

    def counting(ws_, sessions, **kw):
        asked.append(list(sessions))
        return real(ws_, sessions, **kw)

    monkeypatch.setattr(query, "session_cache_keys", counting)
    known: dict = {}
    first = workspace_references(ws, ["grid_1", "grid_1", "absent"], None, known)
    again = workspace_references(ws, ["grid_1"], None, known)
    assert asked == [["absent", "grid_1"]]  # the second chunk's session was known
    assert len(first["grid_1"]) == 24 and first["absent"] == [] and again == {"grid_1": first["grid_1"]}


def test_a_grade_does_not_depend_on_the_chunk_when_sessions_medians_read_ctf_estimates(tmp_path, monkeypatch):
    """The user's CTF estimates (catalogue values, not cached) of every reference micrograph enter its session's
    median, so a micrograph graded in a chunk of one gets the grade it gets among all of its session."""
    import pandas as pd

    from micrograde.flows.assess import (
        AssessConfig,
        predict_chunks,
        reference_rows,
        session_references,
        with_reference_rows,
    )
    from micrograde.models.batch_predict import prediction_cache_path
    from micrograde.models.grading import Grader, GraderConfig, run, train_grader
    from micrograde.models.grading.protocol import Choice
    from micrograde.models.grading.sessions import MAX_REFERENCE
    from micrograde.pipeline.catalogue.ctf import import_ctf
    from micrograde.pipeline.catalogue.ingest import ingest_file
    from micrograde.pipeline.catalogue.query import micrograph_table, session_cache_keys
    from micrograde.pipeline.catalogue.workspace import Workspace
    from micrograde.pipeline.config import IngestConfig
    from micrograde.pipeline.io.ctf import CtfTable

    src = tmp_path / "src" / "grid_1"
    src.mkdir(parents=True)
    ws = Workspace.open(tmp_path / "ws")
    rng = np.random.default_rng(5)
    n = 30
    for i in range(n):
        write_mrc(src / f"mic_{i:03d}.mrc", rng.normal(size=(128, 128)).astype(np.float32), voxel_size=1.0)
        assert ingest_file(ws, str(src / f"mic_{i:03d}.mrc"), IngestConfig()).ingested == 1
    labels = [("good", "medium", "bad")[i % 3] for i in range(n)]
    # the grade is in the CTF estimates alone (the images are alike): resolution and defocus by label
    res = {"good": 3.0, "medium": 6.0, "bad": 12.0}
    ctf = pd.DataFrame({"micrograph": [f"mic_{i:03d}.mrc" for i in range(n)],
                        "ctf_resolution_A": [res[lab] + rng.uniform(0, 1) for lab in labels],
                        "ctf_defocus_um": rng.uniform(0.8, 2.5, n)})
    assert import_ctf(ws, [CtfTable(tmp_path / "ctf.star", ctf, ("ctf_resolution_A", "ctf_defocus_um"))]).matched == n
    table = micrograph_table(ws).assign(label=labels)
    monkeypatch.setattr(run, "choose_robust", lambda y, oof, **kw: Choice("physics", "physics"))
    cfg = GraderConfig(heads=("baseline", "physics"), finetune="never")
    refs = session_cache_keys(ws, ["grid_1"], limit=MAX_REFERENCE, preprocess_key=cfg.preprocess.digest())
    rows = reference_rows(ws, refs)
    assert rows is not None and sorted(rows["cache_key"]) == sorted(refs["grid_1"])
    assert rows["ctf_resolution_A"].notna().all()
    train_grader(table.iloc[:24], ws.cache_dir, ws.models_dir / "m", cfg, model_id="m", progress=False,
                 references=refs, reference_rows=rows)
    grader = Grader(ws.models_dir / "m")
    assert grader.needs_session and "ctf_resolution_A" in grader.catalogue_features

    ids = [int(i) for i in table["id"]]
    graded = {}
    for size in (1, n):
        prediction_cache_path(ws.cache_dir, "m").unlink(missing_ok=True)  # graded afresh each time, as a new
        fresh = Grader(ws.models_dir / "m")  # run would (a grader keeps the medians it computed)
        out = pd.concat(predict_chunks(ws, fresh, ids, AssessConfig(model_id="m", chunk_size=size)))
        graded[size] = out.sort_values("micrograph_id")[["p_good", "p_medium", "p_bad"]].to_numpy()
    np.testing.assert_allclose(graded[1], graded[n], atol=1e-9)

    # a new estimate for one reference micrograph changes the session's reference digest, so the session's
    # stored grades are not reused; the micrographs graded keep their own rows' values
    before, _ = session_references(ws, grader, micrograph_table(ws, ids[-2:]))
    changed = ctf.iloc[[0]].assign(ctf_resolution_A=20.0)
    import_ctf(ws, [CtfTable(tmp_path / "new.star", changed, ("ctf_resolution_A",))])
    after, _ = session_references(ws, grader, micrograph_table(ws, ids[-2:]))
    assert before["session_reference"].nunique() == after["session_reference"].nunique() == 1
    assert before["session_reference"].iloc[0] != after["session_reference"].iloc[0]
    extra = with_reference_rows(ws, grader, after, refs)
    assert list(extra["cache_key"].iloc[-2:]) == list(after["cache_key"]) and len(extra) == n + 2
