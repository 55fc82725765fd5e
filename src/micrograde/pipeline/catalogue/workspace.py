"""The workspace: one folder holding a facility project's state.

Opening a workspace creates its catalogue, or upgrades one made by an earlier micrograde
(:mod:`.migrate`).

```
WORKSPACE/
  micrograde.db        catalogue (SQLite by default; any SQLAlchemy URL via ``db_url``)
  cache/               preprocessed arrays, content-addressed (safe to delete)
  models/<model-id>/   checkpoints and model cards
  reports/<run-id>/    assessment reports and selection files
  quarantine/          copies of rejected files, with a reason file beside each
```
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from micrograde.pipeline.catalogue.migrate import upgrade_catalogue
from micrograde.pipeline.io.locks import file_lock

__all__ = ["Workspace", "WorkspaceError", "new_run_id"]

DB_FILENAME = "micrograde.db"
MIGRATION_LOCK = ".catalogue.lock"


class WorkspaceError(RuntimeError):
    """The workspace cannot be opened or used (bad URL, unreachable database, not a folder)."""


def new_run_id(prefix: str = "") -> str:
    """A sortable, unique run id: UTC time plus random suffix, e.g. ``20261123-231500-a1b2c3``."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}{stamp}-{secrets.token_hex(3)}"


def _ensure_wal(engine: Engine, lock_path: Path) -> None:
    """Put a SQLite catalogue in WAL mode (readers never block the writer; the mode is kept in the
    file), switching it under ``lock_path`` when it is not in WAL mode yet."""
    with engine.connect() as conn:
        if str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower() == "wal":
            return
    with file_lock(lock_path), engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # no journal_mode here: switching a database to WAL is done once, under the migration lock
    # (_ensure_wal); several first connections switching it at once got "database is locked" at once,
    # without waiting for the busy timeout
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@dataclass
class Workspace:
    """An open workspace. Create with :meth:`open`; dispose with :meth:`close`."""

    root: Path
    db_url: str
    engine: Engine = field(repr=False)
    _sessionmaker: sessionmaker = field(repr=False)

    @classmethod
    def open(cls, root: str | Path, db_url: str | None = None, *, create: bool = True) -> Workspace:
        root = Path(root).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"workspace {root} exists and is not a folder")
        if not root.exists():
            if not create:
                raise WorkspaceError(f"workspace {root} does not exist")
            root.mkdir(parents=True, exist_ok=True)  # another process may be creating it this very moment
        for sub in ("cache", "models", "reports", "quarantine"):
            (root / sub).mkdir(exist_ok=True)
        url = db_url or f"sqlite:///{root / DB_FILENAME}"
        try:
            if url.startswith("sqlite"):
                engine = create_engine(url, connect_args={"timeout": 30})
                event.listen(engine, "connect", _sqlite_pragmas)
                _ensure_wal(engine, root / MIGRATION_LOCK)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            upgrade_catalogue(engine, root / MIGRATION_LOCK)  # creates or upgrades the tables
        except Exception as exc:  # noqa: BLE001 - re-raised with the URL, which the user can act on
            raise WorkspaceError(f"cannot open catalogue database {url!r}: {exc}") from exc
        return cls(root=root, db_url=url, engine=engine, _sessionmaker=sessionmaker(engine, expire_on_commit=False))

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    def session(self) -> Session:
        """A new ORM session (caller closes it; prefer :meth:`transaction`)."""
        return self._sessionmaker()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self._sessionmaker() as s, s.begin():
            yield s

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
