"""Sessions: resolving a micrograph's session and its acquisition metadata, and storing it.

The session is what splits, consensus reports and out-of-distribution warnings group by, so a
folder layout must not split one session or merge two. Precedence for the session name:

1. ``IngestConfig.session`` (``--session``);
2. ``name`` in a ``session.json`` beside the file (or up to two folders above);
3. acquisition software metadata: the folder holding EPU's ``EpuSession.dm``, or the folder holding
   a SerialEM navigator (``*.nav``), up to :data:`METADATA_LEVELS` folders above the file;
4. the nearest folder above the file whose name is not generic (:data:`GENERIC_FOLDER`: ``Data``,
   ``Movies``, ``Micrographs``, ``Images``, ``frames``, EPU's ``Images-Disc1`` and
   ``GridSquare_123``, RELION's ``job012``, a class folder ``good``/``bad``...), so that
   ``grid7/Images-Disc1/GridSquare_5/Data/x.mrc`` belongs to ``grid7``.

Precedence for each metadata field: command line > ``session.json`` > the micrograph header
(EPU/FEI extended header: microscope, detector, dose, voltage). An existing session's stored fields
are only filled where empty, never overwritten.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from micrograde.pipeline.catalogue.schema import SessionRow
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.config import IngestConfig, SessionMeta

__all__ = [
    "SESSION_FILE",
    "GENERIC_FOLDER",
    "METADATA_LEVELS",
    "SessionFileError",
    "find_session_file",
    "session_folder",
    "resolve_session",
    "get_or_create_session",
    "session_voltage",
]

SESSION_FILE = "session.json"
#: Folder names that say what a folder holds, not which session it belongs to (case-insensitive).
GENERIC_FOLDER = re.compile(
    r"(data|movies?|micrographs?|images?|frames?|raw|raw[_-]?data|tiffs?|mrcs?|sums?|averages?|aligned|"
    r"motion[_-]?corr(ected)?|corrected|import|good|medium|bad|rejected|selected|"
    r"images-disc\d*|gridsquare_\d+|foilholes?|job\d+)",
    re.IGNORECASE,
)
#: How many folders above a file acquisition metadata (EpuSession.dm, *.nav) is looked for.
METADATA_LEVELS = 6
_META_FIELDS = ("microscope", "detector", "grid_material", "grid_maker", "dose", "voltage_kv")
_HEADER_KEYS = {"voltage_kv": "voltage"}  # header names that differ from the session field


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


def _metadata_root(folder: Path) -> Path | None:
    """The session folder named by acquisition software: EPU's ``EpuSession.dm`` or a SerialEM navigator."""
    for _ in range(METADATA_LEVELS + 1):
        try:
            if (folder / "EpuSession.dm").is_file() or any(folder.glob("*.nav")):
                return folder
        except OSError:  # an unreadable folder above the data: no metadata there
            return None
        if folder.parent == folder:
            return None
        folder = folder.parent
    return None


def session_folder(path: str | Path) -> Path:
    """The folder a file's session is named after (rules 3 and 4 of the module docstring)."""
    start = Path(path).expanduser().absolute().parent
    found = _metadata_root(start)
    if found is not None:
        return found
    folder = start
    while GENERIC_FOLDER.fullmatch(folder.name) and folder.parent != folder:
        folder = folder.parent
    return folder if folder.name else start


def resolve_session(path: Path, cfg: IngestConfig, header: dict | None = None) -> SessionMeta:
    """The session (name + metadata) a micrograph file belongs to."""
    session_file = find_session_file(path)
    from_file = _read_session_file(session_file) if session_file else SessionMeta()
    header = header or {}
    name = cfg.session or cfg.meta.name or from_file.name or session_folder(path).name or "default"
    values: dict = {"name": name}
    for field in _META_FIELDS:
        for source in (getattr(cfg.meta, field), getattr(from_file, field), header.get(_HEADER_KEYS.get(field, field))):
            if source is not None:
                values[field] = source
                break
    return SessionMeta.model_validate(values)


def session_voltage(path: Path, cfg: IngestConfig) -> tuple[float, str] | None:
    """The voltage given for a file's session before reading it: (kV, ``option`` or ``session``), or None."""
    if cfg.meta.voltage_kv is not None:
        return float(cfg.meta.voltage_kv), "option"
    session_file = find_session_file(path)
    if session_file is not None:
        volt = _read_session_file(session_file).voltage_kv
        if volt is not None:
            return float(volt), "session"
    return None


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
