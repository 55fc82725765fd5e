"""Ingesting one micrograph file into the workspace: read, validate, preprocess, cache, catalogue.

This is the library step behind the Prefect ingest flow (one task per file). It never raises for
a bad micrograph: validation failures become :class:`Reject` rows (and a quarantine entry) and the
outcome says so. ``OSError`` propagates (the flow retries the transient ones, :func:`is_transient`,
and records the rest as ``io-error``); any other exception is a bug or a database failure, which
the flow reports loudly and retries at the next run.

Idempotency: a file version (path, size, mtime) already settled with the same request (the same
override pixel size, stack mode, voltage, preprocessing and code versions; see :mod:`.identity`)
is answered from the ``files`` table without being read or hashed. Otherwise its content digest
is computed; content already catalogued under the same request (with its cache entries present) is
skipped without decoding. Anything else is read and computed, and an existing micrograph of the
same content is *updated* (a corrected ``--pixel-size`` or ``--stack`` changes its pixel size,
cache key and scores; the outcome counts it as updated). Dropping ``--pixel-size`` goes back to the
header's pixel size, except for a file whose format records none (PNG, TIFF, JPEG exports): its
override stays, so a later run over the same folder without the option (``assess``, a watch
folder) finds it catalogued instead of rejecting it. Each file is committed in its own
transactions, so a run killed part-way loses at most the file in flight, and the next run picks it
up; unique constraints make a duplicate row impossible.
"""

from __future__ import annotations

import datetime as dt
import errno
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from micrograde.pipeline.catalogue.cache import entry_arrays, has_entry, save_entry
from micrograde.pipeline.catalogue.files import known_file, record_file, record_reject, supersede_rejects
from micrograde.pipeline.catalogue.identity import (
    CACHE_FORMAT,
    DEFAULT_VOLTAGE_KV,
    IDENTITY_COLUMNS,
    CacheIdentity,
    IdentityRequest,
)
from micrograde.pipeline.catalogue.schema import Annotation, IngestRun, Micrograph, SessionRow, utcnow
from micrograde.pipeline.catalogue.sessions import (
    SessionFileError,
    get_or_create_session,
    resolve_session,
    session_voltage,
)
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.config import IngestConfig, SessionMeta
from micrograde.pipeline.features import feature_names
from micrograde.pipeline.io.digest import file_digest
from micrograde.pipeline.io.readers import RawMicrograph, read_micrographs
from micrograde.pipeline.io.validate import MicrographReadError, validate_array
from micrograde.pipeline.signal.preprocess import preprocess

__all__ = ["FileOutcome", "IngestSummary", "ingest_file", "record_reject", "start_run", "finish_run", "is_transient",
           "finite_features"]


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file."""

    path: str
    ingested: int = 0  # micrographs newly catalogued or recomputed
    skipped: int = 0  # micrographs already present with the same inputs
    rejects: tuple[tuple[str, str, str], ...] = ()  # (reason, detail, path or path#frame) per rejected file or frame
    micrograph_ids: tuple[int, ...] = field(default=())
    updated: int = 0  # of ``ingested``: existing micrographs recomputed with changed inputs


def is_transient(exc: BaseException) -> bool:
    """I/O errors worth retrying: not a missing file, a permission problem or a full disk, which won't pass."""
    return isinstance(exc, OSError) and not isinstance(exc, MicrographReadError) and exc.errno not in (
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOSPC,
        errno.EDQUOT,
    )


def start_run(ws: Workspace, cfg: IngestConfig, run_id: str, command: str | None) -> None:
    with ws.transaction() as s:
        s.add(IngestRun(id=run_id, command=command, config=cfg.model_dump(mode="json")))


def finish_run(ws: Workspace, run_id: str, ingested: int, skipped: int, rejected: int, status: str = "done",
               errors: list[dict] | None = None) -> None:
    with ws.transaction() as s:
        run = s.get(IngestRun, run_id)
        if run is None:
            return
        run.finished_at = utcnow()
        run.n_ingested, run.n_skipped, run.n_rejected, run.status = ingested, skipped, rejected, status
        run.errors = errors or None


def _micrograph_name(path: Path, raw: RawMicrograph, n_in_file: int) -> str:
    return f"{raw.frame + 1:06d}@{path.name}" if n_in_file > 1 else path.name


def _acquired_at(raw: RawMicrograph, path: Path) -> tuple[dt.datetime, str]:
    if raw.acquired_at is not None:
        return raw.acquired_at, "header"
    return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC), "mtime"


def _current_rows(ws: Workspace, digest: str, request: IdentityRequest, *, keep_override: bool = False
                  ) -> list[Micrograph] | None:
    """The catalogued rows of this content if every one was computed for ``request`` and is cached.

    ``keep_override``: for content whose file records no pixel size, asked for without ``--pixel-size``:
    a row computed with an override pixel size counts as computed for ``request`` with that pixel size
    (the override stays)."""
    if keep_override and request.pixel_size is not None:
        return None

    def computed_for_request(r: Micrograph) -> bool:
        if not keep_override:
            return request.matches(r)
        return r.pixel_size_source == "override" and request.model_copy(
            update={"pixel_size": float(r.pixel_size)}).matches(r)

    with ws.session() as s:
        rows = list(s.execute(select(Micrograph).where(Micrograph.digest == digest)).scalars())
    if rows and all(computed_for_request(r) and r.cache_key and has_entry(ws.cache_dir, r.cache_key) for r in rows):
        return rows
    return None


def _voltage(meta: SessionMeta, given: tuple[float, str] | None, header: dict, ws: Workspace) -> tuple[float, str]:
    """The voltage for the defocus measure and its source: option/session file > header > catalogue > 300 kV."""
    if given is not None:
        return given
    if header.get("voltage"):
        return float(header["voltage"]), "header"
    with ws.session() as s:
        stored = s.execute(select(SessionRow.voltage_kv).where(SessionRow.name == meta.name)).scalar_one_or_none()
    if stored:
        return float(stored), "catalogue"
    return DEFAULT_VOLTAGE_KV, "default"


class _File:
    """One ingest of one file: records its rejects and its ``files`` row."""

    def __init__(self, ws: Workspace, path: Path, run_id: str | None, request: IdentityRequest) -> None:
        self.ws, self.path, self.spath, self.run_id, self.request = ws, path, str(path), run_id, request
        self.options_key = request.options_key()
        self.stat: tuple[int, int] | None = None
        self.digest: str | None = None

    def reject(self, reason: str, detail: str) -> FileOutcome:
        """Reject the whole file (quarantine entry, reject row, ``files`` row)."""
        record_reject(self.ws, self.spath, reason, detail, self.run_id)
        self.settle("rejected", reason, detail)
        return FileOutcome(self.spath, rejects=((reason, detail, self.spath),))

    def settle(self, state: str, reason: str | None = None, detail: str | None = None) -> None:
        if self.stat is not None:
            record_file(self.ws, self.spath, *self.stat, state=state, options_key=self.options_key,
                        digest=self.digest, run_id=self.run_id, reason=reason, detail=detail)
        if state == "ingested":
            supersede_rejects(self.ws, self.spath, self.run_id)


def ingest_file(ws: Workspace, path: str | Path, cfg: IngestConfig, run_id: str | None = None) -> FileOutcome:
    """Ingest one file; see the module docstring for the guarantees."""
    path = Path(path)
    session_error: SessionFileError | None
    try:
        given_voltage = session_voltage(path, cfg)
    except SessionFileError as exc:
        given_voltage, session_error = None, exc
    else:
        session_error = None
    request = IdentityRequest.of(cfg, given_voltage)
    job = _File(ws, path, run_id, request)
    try:
        st = path.stat()
        job.stat = (st.st_size, st.st_mtime_ns)
        if st.st_size == 0:
            return job.reject("empty-file", "the file is 0 bytes long")
        known = known_file(ws, job.spath, *job.stat)
        if known is not None and known.options_key == job.options_key:
            # the same bytes and options: the same answer, recorded once (but a missing pixel size may since
            # have been given by an ingest with --pixel-size: looked at again, without a hash)
            if known.state == "rejected" and known.reason != "missing-pixel-size":
                return FileOutcome(job.spath, rejects=((known.reason or "rejected", known.detail or "", job.spath),))
            if known.state == "ingested" and known.digest:
                done = _current_rows(ws, known.digest, request)
                if done is not None:  # unchanged since it was ingested: not read, not hashed
                    return FileOutcome(job.spath, skipped=len(done), micrograph_ids=tuple(r.id for r in done))
        # an unchanged file version is not hashed twice, whatever the options
        job.digest = known.digest if known is not None and known.digest else file_digest(path)
    except PermissionError as exc:
        return job.reject("permission-denied", f"cannot read the file: {exc.strerror or exc}")
    except IsADirectoryError:
        return job.reject("not-an-image", "a folder, not a file")
    if session_error is not None:
        return job.reject("bad-session-file", str(session_error))

    done = _current_rows(ws, job.digest, request)
    if done is not None:
        job.settle("ingested")
        return FileOutcome(job.spath, skipped=len(done), micrograph_ids=tuple(r.id for r in done))

    try:
        raws = read_micrographs(path, pixel_size=cfg.pixel_size, stack=cfg.stack, permissive=cfg.permissive)
    except MicrographReadError as exc:
        kept = (_current_rows(ws, job.digest, request, keep_override=True) if exc.reason == "missing-pixel-size"
                else None)
        if kept is not None:
            job.settle("ingested")
            return FileOutcome(job.spath, skipped=len(kept), micrograph_ids=tuple(r.id for r in kept))
        return job.reject(exc.reason, exc.detail)
    header = raws[0].header if raws else {}
    try:
        session_meta = resolve_session(path, cfg, header)
    except SessionFileError as exc:
        return job.reject("bad-session-file", str(exc))
    voltage, voltage_source = _voltage(session_meta, given_voltage, header, ws)
    session_id = get_or_create_session(ws, session_meta)
    return _ingest_frames(job, raws, cfg, session_id, session_meta, (voltage, voltage_source))


def _ingest_frames(job: _File, raws: list[RawMicrograph], cfg: IngestConfig, session_id: int, meta: SessionMeta,
                   voltage: tuple[float, str]) -> FileOutcome:
    ws, path = job.ws, job.path
    assert job.stat is not None and job.digest is not None  # set when the file was opened and hashed
    ingested = skipped = updated = 0
    ids: list[int] = []
    rejects: list[tuple[str, str, str]] = []
    for raw in raws:
        where = f"{job.spath}#{raw.frame}" if len(raws) > 1 else job.spath
        try:
            validate_array(raw.data)
        except MicrographReadError as exc:
            record_reject(ws, where, exc.reason, exc.detail, job.run_id)
            rejects.append((exc.reason, exc.detail, where))
            continue
        identity = CacheIdentity(content_digest=job.digest, frame=raw.frame, pixel_size=raw.pixel_size,
                                 pixel_size_source=raw.pixel_size_source, stack_mode=cfg.stack, voltage_kv=voltage[0],
                                 voltage_source=voltage[1], preprocess_key=job.request.preprocess_key)
        key = identity.key()
        out = preprocess(raw.data, raw.pixel_size, cfg.preprocess, dose=meta.dose, voltage_kv=voltage[0])
        save_entry(
            ws.cache_dir,
            key,
            **entry_arrays(out),
            identity=np.array(identity.model_dump_json()),
            cache_format=np.array(CACHE_FORMAT, dtype=np.int32),
        )
        acquired, acquired_source = _acquired_at(raw, path)
        values = dict(
            path=job.spath,
            name=_micrograph_name(path, raw, len(raws)),
            n_frames=raw.n_frames,
            session_id=session_id,
            size_bytes=job.stat[0],
            shape_y=int(raw.data.shape[0]),
            shape_x=int(raw.data.shape[1]),
            mode=raw.mode,
            acquired_at=acquired,
            cache_key=key,
            spectrum_available=bool(out.spectrum_available),
            header={**raw.header, "acquired_at_source": acquired_source},
            ingest_run_id=job.run_id,
            **identity.catalogue_values(),
            features=finite_features(out.features),
        )
        mid, state = _upsert(ws, job.digest, raw.frame, values)
        ids.append(mid)
        skipped += state == "same"
        ingested += state in ("new", "updated")
        updated += state == "updated"
    _drop_stale_frames(ws, job.digest, {raw.frame for raw in raws})
    if ids or not rejects:
        job.settle("ingested")
    else:  # every frame rejected: the file is rejected (its frames' reject rows are recorded above)
        job.settle("rejected", rejects[0][0], rejects[0][1])
    return FileOutcome(job.spath, ingested=ingested, skipped=skipped, rejects=tuple(rejects),
                       micrograph_ids=tuple(ids), updated=updated)


def finite_features(values: dict) -> dict[str, float]:
    """Feature values for the catalogue's ``features`` JSON: the finite ones, as plain floats."""
    out = {}
    for name, value in values.items():
        if value is not None and math.isfinite(float(value)):
            out[str(name)] = float(value)
    return out


#: Catalogue fields recomputed when a micrograph is read again with other inputs (its identity and
#: what follows from it); the session, path and time of first ingest stay. ``features`` is merged:
#: the image features are replaced, imported ones (CTF estimates) are kept.
_DERIVED = ("cache_key", "spectrum_available", "n_frames", "shape_y", "shape_x", "mode", "header", *IDENTITY_COLUMNS)


def _merged_features(old: dict | None, computed: dict) -> dict:
    imported = set(feature_names("ctf"))
    return {**{k: v for k, v in (old or {}).items() if k in imported}, **computed}


def _upsert(ws: Workspace, digest: str, frame: int, values: dict) -> tuple[int, str]:
    """Insert the micrograph, or update an existing one computed from other inputs.

    Returns (id, ``new`` | ``updated`` | ``same``); ``same`` also when another worker inserted the
    same content at the same moment.
    """
    try:
        with ws.transaction() as s:
            row = s.execute(
                select(Micrograph).where(Micrograph.digest == digest, Micrograph.frame == frame)
            ).scalar_one_or_none()
            if row is None:
                row = Micrograph(digest=digest, frame=frame, **values)
                s.add(row)
                s.flush()
                return row.id, "new"
            if row.cache_key == values["cache_key"]:
                return row.id, "same"
            for name in _DERIVED:
                setattr(row, name, values[name])
            row.features = _merged_features(row.features, values["features"])
            return row.id, "updated"
    except IntegrityError:
        with ws.session() as s:
            mid = s.execute(
                select(Micrograph.id).where(Micrograph.digest == digest, Micrograph.frame == frame)
            ).scalar_one()
        return mid, "same"


def _drop_stale_frames(ws: Workspace, digest: str, frames: set[int]) -> None:
    """Rows of this content for frames the file no longer yields (a stack read as a movie now).

    Rows that annotations point at are kept: nothing a user wrote loses its micrograph.
    """
    annotated = select(Annotation.micrograph_id)
    with ws.transaction() as s:
        s.execute(delete(Micrograph).where(Micrograph.digest == digest, Micrograph.frame.not_in(sorted(frames)),
                                           Micrograph.id.not_in(annotated)))


@dataclass
class IngestSummary:
    """Totals of one ingest run (the flow's return value and the command line's summary)."""

    run_id: str
    n_files: int = 0
    ingested: int = 0
    skipped: int = 0
    rejected: int = 0
    updated: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    micrograph_ids: list[int] = field(default_factory=list)
    rejects: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason, detail)
    failed: dict[str, str] = field(default_factory=dict)  # path -> error, files that failed for a bug
    ctf_matched: int | None = None  # micrographs given CTF estimates from --star/--cs (None: none imported)
    ctf_unmatched: list[str] = field(default_factory=list)  # names in the CTF file that matched no micrograph

    def add(self, outcome: FileOutcome) -> None:
        self.n_files += 1
        self.ingested += outcome.ingested
        self.skipped += outcome.skipped
        self.updated += outcome.updated
        self.rejected += len(outcome.rejects)
        for reason, detail, where in outcome.rejects:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
            self.rejects.append((where, reason, detail))
        self.micrograph_ids.extend(outcome.micrograph_ids)

    def fail(self, path: str, error: BaseException) -> None:
        self.n_files += 1
        self.failed[path] = f"{type(error).__name__}: {error}"

    @property
    def usable(self) -> int:
        return self.ingested + self.skipped

    def lines(self) -> list[str]:
        out = [
            f"ingest run {self.run_id}: {self.n_files} files",
            f"  ingested: {self.ingested}",
        ]
        if self.updated:
            out.append(f"    of which updated (read again with changed inputs): {self.updated}")
        out += [
            f"  skipped (already present): {self.skipped}",
            f"  rejected: {self.rejected}",
        ]
        out += [f"    {reason}: {n}" for reason, n in sorted(self.reasons.items())]
        if self.ctf_matched is not None:
            out.append(f"  CTF estimates imported: {self.ctf_matched} micrographs"
                       + (f" ({len(self.ctf_unmatched)} names in the CTF file matched none)" if self.ctf_unmatched
                          else ""))
        if self.failed:
            out.append(f"  failed (not rejected; tried again by the next run): {len(self.failed)}")
        return out
