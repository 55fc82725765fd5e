"""Many annotators labelling at once: every annotation stored, none lost or duplicated."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers_label import add_micrographs
from sqlalchemy import select

from micrograde.labeling import store
from micrograde.pipeline.catalogue.schema import Annotation
from micrograde.pipeline.catalogue.workspace import Workspace

N_THREADS, N_EACH = 8, 25
LABELS = ("good", "medium", "bad")


def run_labellers(ws: Workspace, separate: bool):
    ids = add_micrographs(ws, N_EACH)
    annotators = [store.add_annotator(ws, f"annotator{i}", "grad")[0].id for i in range(N_THREADS)]
    start = threading.Barrier(N_THREADS)

    def work(k: int) -> list[tuple[int, str]]:
        # separate: each labeller has its own engine and connections, like separate server processes
        own = Workspace.open(ws.root, ws.db_url) if separate else ws
        start.wait()
        done = []
        try:
            for j, mid in enumerate(ids):
                label = LABELS[(j + k) % 3]
                row = store.annotate(own, mid, annotators[k], label, comment=f"t{k}-{j}")
                done.append((row.id, label))
        finally:
            if separate:
                own.close()
        return done

    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(pool.map(work, range(N_THREADS)))
    return {annotators[k]: results[k] for k in range(N_THREADS)}, ids


def check(ws: Workspace, separate: bool = False) -> None:
    expected, ids = run_labellers(ws, separate)
    with ws.session() as s:
        rows = s.execute(select(Annotation)).scalars().all()
    assert len(rows) == N_THREADS * N_EACH
    assert len({r.id for r in rows}) == len(rows)
    assert len({(r.annotator_id, r.micrograph_id) for r in rows}) == len(rows)  # none duplicated
    stored = {r.id: (r.annotator_id, r.label, r.comment) for r in rows}
    for annotator_id, done in expected.items():
        for row_id, label in done:
            assert stored[row_id][:2] == (annotator_id, label)  # none lost
    latest = store.latest_annotations(ws)
    assert len(latest) == N_THREADS * N_EACH and set(latest["micrograph_id"]) == set(ids)


@pytest.mark.parametrize("separate", [False, True], ids=["shared-engine", "engine-per-labeller"])
def test_concurrent_labelling_sqlite(tmp_path, separate):
    with Workspace.open(tmp_path / "ws") as ws:
        check(ws, separate)


def test_concurrent_labelling_postgresql(tmp_path, postgres_url):
    with Workspace.open(tmp_path / "ws", postgres_url) as ws:
        assert ws.engine.dialect.name == "postgresql"
        check(ws)
