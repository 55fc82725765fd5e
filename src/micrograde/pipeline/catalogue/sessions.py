"""Sessions: resolving a micrograph's session and its acquisition metadata, and storing it.

Precedence for the session name: ``IngestConfig.session`` (command line) > ``name`` in a
``session.json`` beside the file (or up to two folders above) > the file's parent folder name.
Precedence for each metadata field: command line > ``session.json`` > the micrograph header
(EPU/FEI extended header: microscope, detector, dose). An existing session's stored fields are
only filled where empty, never overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from micrograde.pipeline.catalogue.schema import SessionRow
from micrograde.pipeline.config import IngestConfig, SessionMeta
from micrograde.pipeline.catalogue.workspace import Workspace

__all__ = ["SESSION_FILE", "SessionFileError", "find_session_file", "resolve_session", "get_or_create_session"]

SESSION_FILE = "session.json"
_META_FIELDS = ("microscope", "detector", "grid_material", "grid_maker", "dose")


class SessionFileError(ValueError):
    """A ``session.json`` exists but is not valid (bad JSON or unknown keys)."""


def find_session_file(path: Path, levels: int = 2) -> Path | None:
    folder = Path(path).parent
    for _ in range(levels + 1):
        candidate = folder / SESSION_FILE
        if candidate.is_file():
            return candidate
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def _read_session_file(path: Path) -> SessionMeta:
    try:
        return SessionMeta.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise SessionFileError(f"{path}: invalid session file: {exc}") from exc


def resolve_session(path: Path, cfg: IngestConfig, header: dict | None = None) -> SessionMeta:
    """The session (name + metadata) a micrograph file belongs to."""
    session_file = find_session_file(path)
    from_file = _read_session_file(session_file) if session_file else SessionMeta()
    header = header or {}
    name = cfg.session or cfg.meta.name or from_file.name
    if not name:
        name = (session_file.parent if session_file else Path(path).parent).name or "default"
    values: dict = {"name": name}
    for field in _META_FIELDS:
        for source in (getattr(cfg.meta, field), getattr(from_file, field), header.get(field)):
            if source is not None:
                values[field] = source
                break
    return SessionMeta.model_validate(values)


def get_or_create_session(ws: Workspace, meta: SessionMeta) -> int:
    """The id of the session named ``meta.name``, created if new; empty fields are filled in."""
    for _attempt in range(3):
        try:
            with ws.transaction() as s:
                row = s.execute(select(SessionRow).where(SessionRow.name == meta.name)).scalar_one_or_none()
                if row is None:
                    row = SessionRow(name=meta.name, **{f: getattr(meta, f) for f in _META_FIELDS})
                    s.add(row)
                    s.flush()
                else:
                    for field in _META_FIELDS:
                        if getattr(row, field) is None and getattr(meta, field) is not None:
                            setattr(row, field, getattr(meta, field))
                return row.id
        except IntegrityError:  # another worker created it at the same moment: read it again
            continue
    raise RuntimeError(f"could not create session {meta.name!r}")
