"""Bringing a workspace catalogue to the current schema (Alembic), called by :meth:`Workspace.open`.

* an empty database gets the current tables (``create_all``) stamped with the head revision;
* a catalogue made by micrograde 0.1.0 (tables, no ``alembic_version``) is stamped ``0001`` (the
  0.1.0 schema) and upgraded;
* a versioned catalogue is upgraded when it is behind, and left alone (one query) when current.

Concurrent openers wait for each other: a PostgreSQL advisory lock, or a file lock in the
workspace folder for SQLite. Revisions live in ``migrations/versions/`` (one module each).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

from micrograde.pipeline.catalogue.schema import Base
from micrograde.pipeline.io.locks import file_lock

__all__ = ["MIGRATIONS_DIR", "BASELINE_REVISION", "head_revision", "current_revision", "alembic_config",
           "upgrade_catalogue"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: The schema of micrograde 0.1.0, which created its tables without Alembic.
BASELINE_REVISION = "0001"
_PG_LOCK_KEY = 0x6D6772646531  # "mgrde1": one advisory lock id for catalogue migrations


def alembic_config(connection: Connection | None = None):
    """An Alembic configuration for the catalogue migrations (no ini file; the connection is handed over)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.lru_cache(maxsize=1)
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no catalogue migrations in {MIGRATIONS_DIR}")
    return head


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade_catalogue(engine: Engine, lock_path: Path | None = None) -> str:
    """Create or upgrade the catalogue behind ``engine`` to the head revision; returns it.

    ``lock_path``: the file lock that serialises SQLite openers (PostgreSQL uses an advisory lock).
    """
    head = head_revision()
    with engine.connect() as conn:
        if current_revision(conn) == head:
            return head
    sqlite = engine.dialect.name == "sqlite"
    lock = file_lock(lock_path) if sqlite and lock_path is not None else contextlib.nullcontext()
    with lock, engine.connect() as conn:
        if sqlite:  # batch migrations copy tables; references must not fire meanwhile (set outside a transaction)
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":  # held until the commit
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                _upgrade(conn, head)
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()
    return head


def _upgrade(conn: Connection, head: str) -> None:
    from alembic import command

    revision = current_revision(conn)
    if revision == head:  # another process did it while we waited for the lock
        return
    cfg = alembic_config(conn)
    if revision is None and not set(inspect(conn).get_table_names()) & set(Base.metadata.tables):
        Base.metadata.create_all(conn)
        command.stamp(cfg, "head")
        return
    if revision is None:
        command.stamp(cfg, BASELINE_REVISION)
    command.upgrade(cfg, "head")
