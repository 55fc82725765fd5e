"""The annotation store: append-only labels in the workspace catalogue.

A change is a new row, an undo is a new row (a retraction, ``label`` None, or a copy of the state
before the undone row, with ``undoes`` naming it); no annotation row is ever updated or deleted.
The latest row (highest id) per (annotator, micrograph) is the annotator's current label.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from micrograde.labeling.annotators import (
    add_annotator,
    authenticate,
    get_annotator,
    get_or_create_annotator,
    list_annotators,
    reset_token,
    set_active,
)
from micrograde.labeling.errors import (
    InactiveAnnotatorError,
    UnknownAnnotationError,
    UnknownAnnotatorError,
    UnknownMicrographError,
)
from micrograde.labeling.importer import ImportResult, import_labels
from micrograde.labeling.validation import check_source, normalize_comment, normalize_label, normalize_reasons
from micrograde.pipeline.catalogue.schema import Annotation, Annotator, Micrograph
from micrograde.pipeline.catalogue.workspace import Workspace

__all__ = [
    "add_annotator",
    "get_or_create_annotator",
    "get_annotator",
    "authenticate",
    "set_active",
    "reset_token",
    "list_annotators",
    "annotate",
    "undo",
    "current_annotation",
    "latest_rows",
    "latest_annotations",
    "annotation_history",
    "labelled_ids",
    "import_labels",
    "ImportResult",
    "LATEST_COLUMNS",
]

LATEST_COLUMNS = [
    "micrograph_id",
    "micrograph",
    "name",
    "annotator",
    "expertise",
    "label",
    "reasons",
    "source",
    "created_at",
]


#: How long a label is retried while the database is busy or away (a PostgreSQL restart, a failover).
RETRY_FOR_S = 60.0
_GONE = ("locked", "connection", "server closed", "terminating", "shutting down", "starting up", "could not connect")


def _passing(exc: OperationalError) -> bool:
    """A database error that passes: SQLite locked past its busy timeout, or a server that went away."""
    return bool(getattr(exc, "connection_invalidated", False)) or any(k in str(exc).lower() for k in _GONE)


def _append(ws: Workspace, row: Annotation, retry_for_s: float = RETRY_FOR_S) -> Annotation:
    """Check the annotator (exists, active) and micrograph, then insert one row, in one transaction.

    Retried while the database is locked or away (for up to ``retry_for_s``), so a label sent while
    PostgreSQL restarts is stored once it is back (the pool replaces dead connections:
    ``pool_pre_ping``). Only a commit whose acknowledgement was lost could be stored twice, and the
    copy is the same label (the latest row per annotator counts).
    """
    values = {c.name: getattr(row, c.name) for c in Annotation.__table__.columns if c.name != "id"}
    deadline = time.monotonic() + retry_for_s
    attempt = 0
    while True:
        try:
            with ws.transaction() as s:
                _check_ids(s, values["micrograph_id"], values["annotator_id"])
                row = Annotation(**values)
                s.add(row)
                s.flush()
            return row
        except OperationalError as exc:
            if not _passing(exc) or time.monotonic() > deadline:
                raise
            attempt += 1
            time.sleep(min(1.0, 0.05 * attempt))


def _check_ids(s, micrograph_id: int, annotator_id: int) -> None:
    annotator = s.get(Annotator, int(annotator_id))
    if annotator is None:
        raise UnknownAnnotatorError(f"no annotator with id {annotator_id}")
    if not annotator.active:
        raise InactiveAnnotatorError(f"annotator {annotator.name!r} is inactive")
    if s.execute(select(Micrograph.id).where(Micrograph.id == int(micrograph_id))).first() is None:
        raise UnknownMicrographError(f"no micrograph with id {micrograph_id}")


def annotate(
    ws: Workspace,
    micrograph_id: int,
    annotator_id: int,
    label: str | None,
    *,
    reasons: str | Iterable[str] = (),
    comment: str = "",
    source: str = "web",
) -> Annotation:
    """Append a label (``None`` = retract the annotator's label) and return the new row."""
    value = None if label is None else normalize_label(label)
    tags = "" if value is None else normalize_reasons(reasons)
    text = "" if value is None else normalize_comment(comment)
    check_source(source)
    row = Annotation(
        micrograph_id=int(micrograph_id),
        annotator_id=int(annotator_id),
        label=value,
        reasons=tags,
        comment=text,
        source=source,
    )
    return _append(ws, row)


def undo(ws: Workspace, annotation_id: int, annotator_id: int, *, source: str = "web") -> Annotation:
    """Undo this annotator's current annotation ``annotation_id`` by appending the state before it.

    Only the top of the annotator's history for that micrograph can be undone: its latest row, or,
    after undos, the latest row not undone yet. The new row copies the state before the target
    (label, reasons, comment), or is a retraction (label None) when there is none, and records the
    target in ``undoes``; undoing a session's actions newest-first therefore walks the history back
    exactly. Any other annotation (an older one, another annotator's) raises
    :class:`UnknownAnnotationError` and changes nothing.
    """
    check_source(source)
    with ws.session() as s:
        target = s.get(Annotation, int(annotation_id))
        if target is None or target.annotator_id != int(annotator_id):
            raise UnknownAnnotationError(f"no annotation {annotation_id} of this annotator")
        history = s.execute(
            select(Annotation)
            .where(Annotation.annotator_id == target.annotator_id, Annotation.micrograph_id == target.micrograph_id)
            .order_by(Annotation.id)
        ).scalars().all()
    stack: list[Annotation] = []
    for row in history:
        if row.undoes is not None and stack and stack[-1].id == row.undoes:
            stack.pop()
        else:
            stack.append(row)
    if not stack or stack[-1].id != target.id:
        raise UnknownAnnotationError(
            f"annotation {annotation_id} is not this annotator's current label of micrograph {target.micrograph_id}: "
            "only the latest can be undone"
        )
    before = stack[-2] if len(stack) > 1 else None
    row = Annotation(
        micrograph_id=target.micrograph_id,
        annotator_id=target.annotator_id,
        label=before.label if before is not None else None,
        reasons=before.reasons if before is not None else "",
        comment=before.comment if before is not None else "",
        source=source,
        undoes=target.id,
    )
    return _append(ws, row)


def current_annotation(ws: Workspace, annotator_id: int, micrograph_id: int) -> Annotation | None:
    """The annotator's latest row for a micrograph (may be a retraction), or None."""
    with ws.session() as s:
        return s.execute(
            select(Annotation)
            .where(Annotation.annotator_id == int(annotator_id), Annotation.micrograph_id == int(micrograph_id))
            .order_by(Annotation.id.desc())
            .limit(1)
        ).scalar_one_or_none()


def _latest_ids(annotator_id: int | None = None, micrograph_id: int | None = None):
    stmt = select(func.max(Annotation.id).label("id"))
    if annotator_id is not None:
        stmt = stmt.where(Annotation.annotator_id == int(annotator_id))
    if micrograph_id is not None:
        stmt = stmt.where(Annotation.micrograph_id == int(micrograph_id))
    return stmt.group_by(Annotation.annotator_id, Annotation.micrograph_id).subquery()


def latest_rows(ws: Workspace, annotator_id: int | None = None, micrograph_id: int | None = None) -> list[Annotation]:
    """Latest row per (annotator, micrograph), retractions included, optionally filtered."""
    latest = _latest_ids(annotator_id, micrograph_id)
    stmt = select(Annotation).join(latest, Annotation.id == latest.c.id).order_by(Annotation.id)
    with ws.session() as s:
        return list(s.execute(stmt).scalars().all())


def labelled_ids(ws: Workspace, annotator_id: int) -> set[int]:
    """Micrographs the annotator currently has a label for (retracted ones excluded)."""
    latest = _latest_ids(annotator_id=annotator_id)
    stmt = (
        select(Annotation.micrograph_id)
        .join(latest, Annotation.id == latest.c.id)
        .where(Annotation.label.is_not(None))
    )
    with ws.session() as s:
        return {int(m) for m in s.execute(stmt).scalars()}


def latest_annotations(ws: Workspace) -> pd.DataFrame:
    """One row per (micrograph, annotator) whose latest annotation is a label (not a retraction).

    Columns: ``micrograph_id, micrograph`` (path), ``name`` (micrograph name), ``annotator``,
    ``expertise, label, reasons, source, created_at``; ordered by micrograph id, then annotator.
    """
    latest = _latest_ids()
    stmt = (
        select(
            Annotation.micrograph_id,
            Micrograph.path.label("micrograph"),
            Micrograph.name,
            Annotator.name.label("annotator"),
            Annotator.expertise,
            Annotation.label,
            Annotation.reasons,
            Annotation.source,
            Annotation.created_at,
        )
        .join(latest, Annotation.id == latest.c.id)
        .join(Annotator, Annotator.id == Annotation.annotator_id)
        .join(Micrograph, Micrograph.id == Annotation.micrograph_id)
        .where(Annotation.label.is_not(None))
        .order_by(Annotation.micrograph_id, Annotator.name)
    )
    with ws.session() as s:
        rows = s.execute(stmt).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=LATEST_COLUMNS)


def annotation_history(ws: Workspace) -> pd.DataFrame:
    """Every annotation row ever written (audit trail), oldest first."""
    stmt = (
        select(
            Annotation.id,
            Annotation.micrograph_id,
            Annotator.name.label("annotator"),
            Annotation.label,
            Annotation.reasons,
            Annotation.comment,
            Annotation.source,
            Annotation.created_at,
        )
        .join(Annotator, Annotator.id == Annotation.annotator_id)
        .order_by(Annotation.id)
    )
    with ws.session() as s:
        rows = s.execute(stmt).mappings().all()
    cols = ["id", "micrograph_id", "annotator", "label", "reasons", "comment", "source", "created_at"]
    return pd.DataFrame([dict(r) for r in rows], columns=cols)
