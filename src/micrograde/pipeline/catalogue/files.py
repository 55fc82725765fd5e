"""What happened to every file seen: the ``files`` table and the rejects (with their quarantine entries).

``files`` holds one row per (path, size, mtime) with a state:

* ``ingested``: catalogued (some frames of a stack may be rejected, see the rejects);
* ``rejected``: the whole file failed validation (its reason is in ``reason``/``detail``);
* ``superseded``: the path has changed since (a newer row describes it).

It lets ingest skip an unchanged file without reading or hashing it (the same request, see
:class:`~micrograde.pipeline.catalogue.identity.IdentityRequest`, gives the same answer), and it is
what status and the reports count. A file that failed for a transient I/O reason, or for a bug, gets
no row: it is tried again by the next run.

Rejects are one row per (path, reason): a file rejected by every sweep keeps one row (its detail and
run updated), and a later successful ingest of the path marks its rejects ``superseded_at``.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.exc import IntegrityError

from micrograde.pipeline.catalogue.schema import FileRow, Reject, utcnow
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.io.atomic import atomic_write_text

__all__ = ["FILE_STATES", "known_file", "record_file", "record_reject", "supersede_rejects", "file_counts"]

FILE_STATES = ("ingested", "rejected", "superseded")


def known_file(ws: Workspace, path: str, size: int, mtime_ns: int) -> FileRow | None:
    """The row of this exact file version (path, size, mtime), or None when it was never settled."""
    with ws.session() as s:
        return s.execute(
            select(FileRow).where(FileRow.path == path, FileRow.size_bytes == size, FileRow.mtime_ns == mtime_ns)
        ).scalar_one_or_none()


def record_file(ws: Workspace, path: str, size: int, mtime_ns: int, *, state: str, options_key: str,
                digest: str | None, run_id: str | None, reason: str | None = None, detail: str | None = None) -> None:
    """Record the outcome of one file version; older versions of the path become ``superseded``."""
    if state not in ("ingested", "rejected"):
        raise ValueError(f"a file is recorded as ingested or rejected, not {state!r}")
    values = dict(state=state, options_key=options_key, digest=digest, ingest_run_id=run_id, reason=reason,
                  detail=detail, updated_at=utcnow())
    for attempt in range(3):
        try:
            with ws.transaction() as s:
                row = s.execute(select(FileRow).where(
                    FileRow.path == path, FileRow.size_bytes == size, FileRow.mtime_ns == mtime_ns)
                ).scalar_one_or_none()
                if row is None:
                    s.add(FileRow(path=path, size_bytes=size, mtime_ns=mtime_ns, **values))
                else:
                    for name, value in values.items():
                        setattr(row, name, value)
                s.execute(
                    update(FileRow)
                    .where(FileRow.path == path, FileRow.state != "superseded",
                           or_(FileRow.size_bytes != size, FileRow.mtime_ns != mtime_ns))
                    .values(state="superseded", updated_at=utcnow())
                )
            return
        except IntegrityError:  # another worker recorded the same version at the same moment
            if attempt == 2:
                raise


def record_reject(ws: Workspace, path: str, reason: str, detail: str, run_id: str | None) -> str:
    """Record a rejected file (or frame, ``path#frame``) and its quarantine entry; returns the entry.

    One row per (path, reason): a repeated reject updates it. The source file is never moved or
    modified (it may belong to the microscope's own folder): the quarantine holds a symbolic link to
    it and a ``.reason.txt`` beside the link.
    """
    src = Path(path)
    tag = hashlib.sha256(str(src).encode()).hexdigest()[:8]
    link = ws.quarantine_dir / f"{tag}-{src.name.split('#')[0]}"
    note = link.with_name(link.name + ".reason.txt")
    atomic_write_text(
        note, f"path: {path}\nreason: {reason}\ndetail: {detail}\nrun: {run_id}\ntime: {utcnow().isoformat()}\n"
    )
    if not link.is_symlink():
        with contextlib.suppress(OSError):  # a file system without symlinks: the reason file alone records it
            link.symlink_to(src.with_name(src.name.split("#")[0]))
    for attempt in range(3):
        try:
            with ws.transaction() as s:
                row = s.execute(select(Reject).where(Reject.path == path, Reject.reason == reason)).scalar_one_or_none()
                if row is None:
                    s.add(
                        Reject(path=path, reason=reason, detail=detail, quarantined_to=str(link), ingest_run_id=run_id)
                    )
                else:
                    row.detail, row.quarantined_to, row.ingest_run_id = detail, str(link), run_id
                    row.created_at, row.superseded_at = utcnow(), None
            return str(link)
        except IntegrityError:  # the same reject recorded by another worker at the same moment
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def supersede_rejects(ws: Workspace, path: str, run_id: str | None) -> int:
    """Mark the earlier rejects of a file (and of its frames) superseded by a successful ingest.

    Frame rejects recorded by this same run (``run_id``) stay: those frames are still bad.
    """
    where = [
        Reject.superseded_at.is_(None),
        or_(Reject.path == path, Reject.path.startswith(f"{path}#", autoescape=True)),
    ]
    if run_id is not None:
        where.append(or_(Reject.ingest_run_id.is_(None), Reject.ingest_run_id != run_id))
    with ws.transaction() as s:
        done = s.execute(update(Reject).where(*where).values(superseded_at=utcnow()))
        assert isinstance(done, CursorResult)  # an UPDATE statement's result
        return int(done.rowcount or 0)


def file_counts(ws: Workspace) -> dict[str, int]:
    """Number of file versions per state."""
    from sqlalchemy import func

    with ws.session() as s:
        rows = s.execute(select(FileRow.state, func.count(FileRow.id)).group_by(FileRow.state)).all()
    counts = {state: 0 for state in FILE_STATES}
    counts.update({str(state): int(n) for state, n in rows})
    return counts
