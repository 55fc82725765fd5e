"""Ingesting one micrograph file into the workspace: read, validate, preprocess, cache, catalogue.

This is the library step behind the Prefect ingest flow (one task per file). It never raises for
a bad micrograph: validation failures become :class:`Reject` rows (and a quarantine entry) and the
outcome says so. Only I/O errors that may pass (``OSError`` other than permission/not-found)
propagate, so the flow can retry them.

Idempotency: a file whose content digest is already catalogued with the same preprocessing
parameters (and whose cache entry exists) is skipped without being decoded. Changed parameters
recompute the cached arrays and scores of the existing rows. Each file is committed in its own
transaction, so a run killed part-way loses at most the file in flight, and the next run picks
it up; unique constraints make a duplicate row impossible.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from micrograde.pipeline.io.atomic import atomic_write_text
from micrograde.pipeline.catalogue.cache import cache_key, has_entry, save_entry
from micrograde.pipeline.catalogue.schema import SCORE_COLUMNS, IngestRun, Micrograph, Reject, utcnow
from micrograde.pipeline.config import IngestConfig
from micrograde.pipeline.io.digest import file_digest
from micrograde.pipeline.signal.measures import PHYSICAL_NAMES
from micrograde.pipeline.signal.preprocess import preprocess
from micrograde.pipeline.io.readers import RawMicrograph, read_micrographs
from micrograde.pipeline.catalogue.sessions import SessionFileError, get_or_create_session, resolve_session
from micrograde.pipeline.io.validate import MicrographReadError, validate_array
from micrograde.pipeline.catalogue.workspace import Workspace

__all__ = ["FileOutcome", "IngestSummary", "ingest_file", "record_reject", "start_run", "finish_run", "is_transient"]


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file."""

    path: str
    ingested: int = 0  # micrographs newly catalogued or recomputed
    skipped: int = 0  # micrographs already present with the same parameters
    rejects: tuple[tuple[str, str], ...] = ()  # (reason, detail) per rejected file or frame
    micrograph_ids: tuple[int, ...] = field(default=())


def is_transient(exc: BaseException) -> bool:
    """I/O errors worth retrying: not a missing file or a permission problem, which won't pass."""
    return isinstance(exc, OSError) and not isinstance(exc, MicrographReadError) and exc.errno not in (
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
    )


def start_run(ws: Workspace, cfg: IngestConfig, run_id: str, command: str | None) -> None:
    with ws.transaction() as s:
        s.add(IngestRun(id=run_id, command=command, config=cfg.model_dump(mode="json")))


def finish_run(ws: Workspace, run_id: str, ingested: int, skipped: int, rejected: int, status: str = "done") -> None:
    with ws.transaction() as s:
        run = s.get(IngestRun, run_id)
        if run is None:
            return
        run.finished_at = utcnow()
        run.n_ingested, run.n_skipped, run.n_rejected, run.status = ingested, skipped, rejected, status


def record_reject(ws: Workspace, path: str, reason: str, detail: str, run_id: str | None) -> str:
    """Record a rejected file in the catalogue and the quarantine folder; returns the quarantine entry.

    The source file is never moved or modified (it may belong to the microscope's own folder): the
    quarantine holds a symbolic link to it and a ``.reason.txt`` beside the link.
    """
    src = Path(path)
    tag = hashlib.sha256(str(src).encode()).hexdigest()[:8]
    link = ws.quarantine_dir / f"{tag}-{src.name.split('#')[0]}"
    note = link.with_name(link.name + ".reason.txt")
    atomic_write_text(note, f"path: {path}\nreason: {reason}\ndetail: {detail}\nrun: {run_id}\ntime: {utcnow().isoformat()}\n")
    if not link.is_symlink():
        try:
            link.symlink_to(src.with_name(src.name.split("#")[0]))
        except OSError:  # a file system without symlinks: the reason file alone records it
            pass
    with ws.transaction() as s:
        s.add(Reject(path=path, reason=reason, detail=detail, quarantined_to=str(link), ingest_run_id=run_id))
    return str(link)


def _micrograph_name(path: Path, raw: RawMicrograph, n_in_file: int) -> str:
    return f"{raw.frame + 1:06d}@{path.name}" if n_in_file > 1 else path.name


def _acquired_at(raw: RawMicrograph, path: Path) -> tuple[dt.datetime, str]:
    if raw.acquired_at is not None:
        return raw.acquired_at, "header"
    return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc), "mtime"


def _already_done(ws: Workspace, digest: str, pkey: str) -> list[Micrograph] | None:
    """The catalogued rows for this content if every one is current (same parameters, cache present)."""
    with ws.session() as s:
        rows = list(s.execute(select(Micrograph).where(Micrograph.digest == digest)).scalars())
    if rows and all(r.preprocess_key == pkey and r.cache_key and has_entry(ws.cache_dir, r.cache_key) for r in rows):
        return rows
    return None


def ingest_file(ws: Workspace, path: str | Path, cfg: IngestConfig, run_id: str | None = None) -> FileOutcome:
    """Ingest one file; see the module docstring for the guarantees."""
    path = Path(path)
    spath = str(path)
    pkey = cfg.preprocess.digest()

    def reject(reason: str, detail: str, where: str = spath) -> FileOutcome:
        record_reject(ws, where, reason, detail, run_id)
        return FileOutcome(spath, rejects=((reason, detail),))

    try:
        size = path.stat().st_size
        if size == 0:
            return reject("empty-file", "the file is 0 bytes long")
        digest = file_digest(path)
    except PermissionError as exc:
        return reject("permission-denied", f"cannot read the file: {exc.strerror or exc}")
    except IsADirectoryError:
        return reject("not-an-image", "a folder, not a file")

    done = _already_done(ws, digest, pkey)
    if done is not None:
        return FileOutcome(spath, skipped=len(done), micrograph_ids=tuple(r.id for r in done))

    try:
        raws = read_micrographs(path, pixel_size=cfg.pixel_size, stack=cfg.stack, permissive=cfg.permissive)
    except MicrographReadError as exc:
        return reject(exc.reason, exc.detail)
    try:
        session_meta = resolve_session(path, cfg, raws[0].header if raws else None)
    except SessionFileError as exc:
        return reject("bad-session-file", str(exc))
    session_id = get_or_create_session(ws, session_meta)

    ingested, skipped, ids, rejects = 0, 0, [], []
    for raw in raws:
        where = f"{spath}#{raw.frame}" if len(raws) > 1 else spath
        try:
            validate_array(raw.data)
        except MicrographReadError as exc:
            record_reject(ws, where, exc.reason, exc.detail, run_id)
            rejects.append((exc.reason, exc.detail))
            continue
        key = cache_key(digest, raw.frame, cfg.preprocess)
        out = preprocess(raw.data, raw.pixel_size, cfg.preprocess, dose=session_meta.dose)
        save_entry(
            ws.cache_dir,
            key,
            image=out.image,
            spectrum=out.spectrum,
            thumbnail=out.thumbnail,
            radial=out.radial,
            radial_freq=out.radial_freq,
            image_pixel_size=np.float32(out.pixel_size),
            view=out.view,
            view_pixel_size=np.float32(out.view_pixel_size),
            measures=np.array([{**out.scores, **out.measures}[n] for n in PHYSICAL_NAMES], dtype=np.float32),
            measure_names=np.array(PHYSICAL_NAMES),
        )
        acquired, acquired_source = _acquired_at(raw, path)
        values = dict(
            path=spath,
            name=_micrograph_name(path, raw, len(raws)),
            n_frames=raw.n_frames,
            session_id=session_id,
            size_bytes=size,
            shape_y=int(raw.data.shape[0]),
            shape_x=int(raw.data.shape[1]),
            mode=raw.mode,
            pixel_size=float(raw.pixel_size),
            pixel_size_source=raw.pixel_size_source,
            acquired_at=acquired,
            preprocess_key=pkey,
            cache_key=key,
            spectrum_available=bool(out.spectrum_available),
            header={**raw.header, "acquired_at_source": acquired_source},
            ingest_run_id=run_id,
            **{c: _finite_or_none(out.scores.get(c)) for c in SCORE_COLUMNS},
        )
        mid, was_new = _upsert(ws, digest, raw.frame, values)
        ids.append(mid)
        if was_new is None:
            skipped += 1
        else:
            ingested += 1
    return FileOutcome(spath, ingested=ingested, skipped=skipped, rejects=tuple(rejects), micrograph_ids=tuple(ids))


def _finite_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def _upsert(ws: Workspace, digest: str, frame: int, values: dict) -> tuple[int, bool | None]:
    """Insert the micrograph, or refresh the derived fields of an existing one.

    Returns (id, True) when inserted, (id, False) when recomputed with new parameters, and
    (id, None) when another worker inserted the same content first (a duplicate, skipped).
    """
    derived = ("preprocess_key", "cache_key", "spectrum_available", *SCORE_COLUMNS)
    try:
        with ws.transaction() as s:
            row = s.execute(
                select(Micrograph).where(Micrograph.digest == digest, Micrograph.frame == frame)
            ).scalar_one_or_none()
            if row is None:
                row = Micrograph(digest=digest, frame=frame, **values)
                s.add(row)
                s.flush()
                return row.id, True
            if row.preprocess_key == values["preprocess_key"]:
                return row.id, None
            for name in derived:
                setattr(row, name, values[name])
            return row.id, False
    except IntegrityError:
        with ws.session() as s:
            mid = s.execute(
                select(Micrograph.id).where(Micrograph.digest == digest, Micrograph.frame == frame)
            ).scalar_one()
        return mid, None



@dataclass
class IngestSummary:
    """Totals of one ingest run (the flow's return value and the command line's summary)."""

    run_id: str
    n_files: int = 0
    ingested: int = 0
    skipped: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    micrograph_ids: list[int] = field(default_factory=list)

    def add(self, outcome: FileOutcome) -> None:
        self.n_files += 1
        self.ingested += outcome.ingested
        self.skipped += outcome.skipped
        self.rejected += len(outcome.rejects)
        for reason, _detail in outcome.rejects:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
        self.micrograph_ids.extend(outcome.micrograph_ids)

    @property
    def usable(self) -> int:
        return self.ingested + self.skipped

    def lines(self) -> list[str]:
        out = [
            f"ingest run {self.run_id}: {self.n_files} files",
            f"  ingested: {self.ingested}",
            f"  skipped (already present): {self.skipped}",
            f"  rejected: {self.rejected}",
        ]
        out += [f"    {reason}: {n}" for reason, n in sorted(self.reasons.items())]
        return out
