"""Schema migrations (src/micrograde/pipeline/catalogue/migrate.py, migrations/): a workspace made by
micrograde 0.1.0 opens and upgrades, on SQLite and PostgreSQL; migrated and fresh catalogues are the same."""

from __future__ import annotations

import datetime as dt
import threading

import helpers_legacy_catalogue as legacy
import numpy as np
import pytest
from sqlalchemy import create_engine, select, text

from micrograde.pipeline.catalogue.migrate import alembic_config, current_revision, head_revision
from micrograde.pipeline.catalogue.query import micrograph_table, reject_counts
from micrograde.pipeline.catalogue.schema import Annotation, Base, FileRow, Micrograph
from micrograde.pipeline.catalogue.workspace import DB_FILENAME, Workspace

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


def _release_0_1_workspace(url: str, *, size_bytes: int = 4_000_000) -> None:
    """Tables as micrograde 0.1.0 created them (no Alembic), with rows of a few days' work."""
    engine = create_engine(url)
    legacy.Base.metadata.create_all(engine)
    with engine.begin() as c:
        c.execute(legacy.SessionRow.__table__.insert(), [{"id": 1, "name": "grid7", "dose": 40.0, "created_at": T0}])
        c.execute(legacy.IngestRun.__table__.insert(), [{"id": "ingest-1", "started_at": T0, "n_ingested": 1,
                                                         "n_skipped": 0, "n_rejected": 3, "status": "done"}])
        c.execute(legacy.Micrograph.__table__.insert(), [{
            "id": 1, "path": "/data/grid7/a.mrc", "name": "a.mrc", "frame": 0, "n_frames": 1, "session_id": 1,
            "digest": "d" * 64, "size_bytes": size_bytes, "shape_y": 4092, "shape_x": 5760, "mode": "mrc-mode-2",
            "pixel_size": 0.83, "pixel_size_source": "header", "preprocess_key": "11f92846f5c7b4af",
            "cache_key": "c" * 32, "spectrum_available": True, "ice_ring_score": 0.1, "ingest_run_id": "ingest-1",
            "created_at": T0 + dt.timedelta(days=1)}])
        rejects = [("/data/grid7/b.mrc", "truncated", T0 + dt.timedelta(hours=h)) for h in (1, 2, 3)]  # 3 sweeps
        rejects.append(("/data/grid7/a.mrc", "truncated", T0))  # before its transfer completed
        c.execute(legacy.Reject.__table__.insert(), [
            {"path": p, "reason": r, "detail": "short", "created_at": t, "ingest_run_id": "ingest-1"}
            for p, r, t in rejects])
        c.execute(legacy.Annotator.__table__.insert(), [{"id": 1, "name": "ana", "expertise": "postdoc",
                                                         "active": True, "created_at": T0}])
        c.execute(legacy.Annotation.__table__.insert(), [
            {"micrograph_id": 1, "annotator_id": 1, "label": lab, "reasons": "", "comment": "", "source": "web",
             "created_at": T0} for lab in ("good", "bad")])
    engine.dispose()


def _diffs(engine) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)


def _check_upgraded(ws: Workspace) -> None:
    with ws.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    assert _diffs(ws.engine) == [], "the migrated catalogue has exactly the current tables"
    table = micrograph_table(ws)
    assert list(table["name"]) == ["a.mrc"] and table.iloc[0].session == "grid7"
    assert table.iloc[0].reader_version is None, "rows of 0.1.0 have no identity: their next ingest recomputes"
    assert reject_counts(ws) == {"truncated": 1}, "duplicate rejects collapse; a later success supersedes"
    with ws.session() as s:
        labels = s.execute(select(Annotation.label).order_by(Annotation.id)).scalars().all()
    assert labels == ["good", "bad"], "annotations are untouched"


def test_a_workspace_of_release_0_1_opens_and_upgrades(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    _release_0_1_workspace(f"sqlite:///{root / DB_FILENAME}")
    with Workspace.open(root) as ws:
        _check_upgraded(ws)
        with ws.transaction() as s:  # the new tables and columns are usable
            s.add(FileRow(path="/data/grid7/c.mrc", size_bytes=5 * 2**30, mtime_ns=1, state="ingested",
                          options_key="k"))
    with Workspace.open(root) as ws:  # opening an upgraded workspace again changes nothing
        _check_upgraded(ws)


@pytest.mark.postgres
def test_a_postgres_catalogue_of_release_0_1_upgrades_and_holds_files_over_2_gib(postgres_url, tmp_path):
    _release_0_1_workspace(postgres_url)
    with Workspace.open(tmp_path / "ws", postgres_url) as ws:
        _check_upgraded(ws)
        big = 3 * 2**30 + 17  # a movie over 2 GiB: a 32-bit column refused it
        with ws.transaction() as s:
            row = s.get(Micrograph, 1)
            row.size_bytes = big
            s.add(FileRow(path=row.path, size_bytes=big, mtime_ns=1_795_000_000_123_456_789, state="ingested",
                          options_key="k"))
        with ws.session() as s:
            assert s.get(Micrograph, 1).size_bytes == big
            assert s.execute(select(FileRow.size_bytes)).scalar_one() == big


def test_fresh_and_migrated_catalogues_are_the_same(tmp_path):
    from alembic import command

    fresh = Workspace.open(tmp_path / "fresh")  # create_all, stamped head
    assert _diffs(fresh.engine) == []
    fresh.close()
    engine = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    with engine.begin() as conn:  # every revision from an empty database
        command.upgrade(alembic_config(conn), "head")
    assert _diffs(engine) == []
    with engine.begin() as conn:  # and back down to 0.1.0's schema
        command.downgrade(alembic_config(conn), "0001")
    with engine.connect() as conn:
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext

        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                legacy.Base.metadata) == [], "revision 0001 is the 0.1.0 schema"
    engine.dispose()


def test_concurrent_first_opens_create_the_catalogue_once(tmp_path):
    # four first opens at once: before the WAL switch moved under the migration lock, one of them
    # failed with "database is locked" in about 1 run in 12
    errors: list[BaseException] = []

    def open_it():
        try:
            Workspace.open(tmp_path / "ws").close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = create_engine(f"sqlite:///{tmp_path / 'ws' / DB_FILENAME}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"  # switched once, kept in the file
    engine.dispose()


def test_a_workspace_at_0002_moves_its_scores_into_the_features_column(tmp_path):
    from alembic import command

    root = tmp_path / "ws"
    root.mkdir()
    engine = create_engine(f"sqlite:///{root / DB_FILENAME}")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0002")
    with engine.begin() as c:
        c.execute(text("INSERT INTO sessions (id, name, created_at) VALUES (1, 'grid7', :t)"), {"t": T0})
        for mid, name, score, reach in ((1, "a.mrc", 0.25, 4.5), (2, "b.mrc", None, None)):
            c.execute(text(
                "INSERT INTO micrographs (id, path, name, frame, n_frames, session_id, digest, size_bytes, shape_y, "
                "shape_x, mode, pixel_size, pixel_size_source, spectrum_available, ice_ring_score, thon_reach_A, "
                "anisotropy, contrast, dark_fraction, created_at) VALUES (:id, :path, :name, 0, 1, 1, :digest, 10, "
                "64, 64, 'mrc-mode-2', 1.0, 'header', 1, :score, :reach, 0.05, NULL, 0.0, :t)"),
                {"id": mid, "path": f"/d/{name}", "name": name, "digest": str(mid) * 64, "score": score,
                 "reach": reach, "t": T0})
    engine.dispose()
    with Workspace.open(root) as ws:
        with ws.engine.connect() as conn:
            assert current_revision(conn) == head_revision()
        assert _diffs(ws.engine) == []
        with ws.session() as s:
            stored = dict(s.execute(select(Micrograph.name, Micrograph.features)).all())
        assert stored["a.mrc"] == {"ice_ring_score": 0.25, "thon_reach_A": 4.5, "anisotropy": 0.05,
                                   "dark_fraction": 0.0}, "NULL scores are left out"
        assert stored["b.mrc"] == {"anisotropy": 0.05, "dark_fraction": 0.0}
        table = micrograph_table(ws).set_index("name")
        assert table.loc["a.mrc", "thon_reach_A"] == 4.5 and np.isnan(table.loc["a.mrc", "contrast"])
        assert np.isnan(table.loc["b.mrc", "ice_ring_score"]) and np.isnan(table.loc["a.mrc", "ctf_resolution_A"])
    engine = create_engine(f"sqlite:///{root / DB_FILENAME}")
    with engine.begin() as conn:  # and back: the columns return with their values
        command.downgrade(alembic_config(conn), "0002")
    with engine.connect() as conn:
        back = conn.execute(text("SELECT name, ice_ring_score, thon_reach_A, contrast FROM micrographs "
                                 "ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in back] == [("a.mrc", 0.25, 4.5, None), ("b.mrc", None, None, None)]
