"""The workspace catalogue: SQLAlchemy tables shared by every part of micrograde.

One schema for micrographs, sessions, files, rejects, ingest runs, annotators, annotations, models
and assessment runs. SQLite in the workspace by default; any SQLAlchemy URL (PostgreSQL for many
labellers) through ``--db``. Annotations are append-only: a change is a new row. The schema is
versioned: a change here comes with an Alembic revision in ``migrations/versions/`` (a test checks
that the migrated schema equals these tables).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "SessionRow",
    "Micrograph",
    "FileRow",
    "Reject",
    "IngestRun",
    "Annotator",
    "Annotation",
    "ModelRow",
    "AssessRun",
    "utcnow",
]



def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: DateTime(timezone=True)}


class SessionRow(Base):
    """A collection session (one grid, one detector, one pixel size) and its acquisition metadata."""

    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    microscope: Mapped[str | None] = mapped_column(String(255))
    detector: Mapped[str | None] = mapped_column(String(255))
    grid_material: Mapped[str | None] = mapped_column(String(64))
    grid_maker: Mapped[str | None] = mapped_column(String(255))
    dose: Mapped[float | None] = mapped_column(Float)
    voltage_kv: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    micrographs: Mapped[list[Micrograph]] = relationship(back_populates="session")


class IngestRun(Base):
    __tablename__ = "ingest_runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    command: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict | None] = mapped_column(JSON)
    n_ingested: Mapped[int] = mapped_column(Integer, default=0)
    n_skipped: Mapped[int] = mapped_column(Integer, default=0)
    n_rejected: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(32), default="running")
    errors: Mapped[list | None] = mapped_column(JSON)  # files that failed for another reason than content or I/O


class Micrograph(Base):
    """One 2-D micrograph. A stack of micrographs gives one row per frame (``frame`` >= 0);
    a single image or a summed movie has ``frame`` = 0 and ``n_frames`` = frames summed.

    ``cache_key`` names the cache entry; the parts of its identity are stored beside it
    (``pixel_size`` and its source, ``stack_mode``, ``voltage_kv`` (None when unknown and 300 kV
    was assumed) and its source, ``preprocess_key`` and the code versions; see ``identity.py``).
    ``features`` holds every feature value by name (:mod:`micrograde.pipeline.features`)."""

    __tablename__ = "micrographs"
    __table_args__ = (UniqueConstraint("digest", "frame", name="uq_micrograph_content"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text, index=True)
    name: Mapped[str] = mapped_column(String(512), index=True)
    frame: Mapped[int] = mapped_column(Integer, default=0)
    n_frames: Mapped[int] = mapped_column(Integer, default=1)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    shape_y: Mapped[int] = mapped_column(Integer)
    shape_x: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(32))
    pixel_size: Mapped[float] = mapped_column(Float)
    pixel_size_source: Mapped[str] = mapped_column(String(16))
    acquired_at: Mapped[dt.datetime | None]
    preprocess_key: Mapped[str | None] = mapped_column(String(64))
    cache_key: Mapped[str | None] = mapped_column(String(64))
    stack_mode: Mapped[str | None] = mapped_column(String(16))
    voltage_kv: Mapped[float | None] = mapped_column(Float)
    voltage_source: Mapped[str | None] = mapped_column(String(16))
    reader_version: Mapped[str | None] = mapped_column(String(16))
    features_version: Mapped[str | None] = mapped_column(String(16))
    cache_format: Mapped[int | None] = mapped_column(Integer)
    spectrum_available: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Feature values by registry name (pipeline/features.py): the image features ingest computed and
    #: any CTF estimates imported for it; a value that is not finite is left out.
    features: Mapped[dict | None] = mapped_column(JSON)
    header: Mapped[dict | None] = mapped_column(JSON)
    ingest_run_id: Mapped[str | None] = mapped_column(ForeignKey("ingest_runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    session: Mapped[SessionRow] = relationship(back_populates="micrographs")


class FileRow(Base):
    """One version (path, size, mtime) of a file seen by ingest, and what became of it (``files.py``)."""

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("path", "size_bytes", "mtime_ns", name="uq_files_stat"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text, index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)  # ingested | rejected | superseded
    options_key: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    ingest_run_id: Mapped[str | None] = mapped_column(ForeignKey("ingest_runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Reject(Base):
    """A file (or one frame of it, ``path#frame``) that failed validation, with a reason code and detail.

    One row per (path, reason); ``superseded_at`` is set when the path is later ingested."""

    __tablename__ = "rejects"
    __table_args__ = (Index("uq_rejects_path_reason", "path", "reason", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text, index=True)
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text)
    quarantined_to: Mapped[str | None] = mapped_column(Text)
    ingest_run_id: Mapped[str | None] = mapped_column(ForeignKey("ingest_runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    superseded_at: Mapped[dt.datetime | None]


class Annotator(Base):
    __tablename__ = "annotators"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    expertise: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    token_hash: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Annotation(Base):
    """Append-only: a new label is a new row; the latest row per (annotator, micrograph) counts.
    An undo is a new row too: it carries the state before the undone row and ``undoes`` its id."""

    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_latest", "annotator_id", "micrograph_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    micrograph_id: Mapped[int] = mapped_column(ForeignKey("micrographs.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    label: Mapped[str | None] = mapped_column(String(16))  # None = a retraction (undo)
    reasons: Mapped[str] = mapped_column(String(512), default="")  # comma-separated REASON_TAGS
    comment: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="web")  # web | import | review
    undoes: Mapped[int | None] = mapped_column(ForeignKey("annotations.id", name="fk_annotations_undoes"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ModelRow(Base):
    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    backbone: Mapped[str] = mapped_column(String(128))
    card: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AssessRun(Base):
    __tablename__ = "assess_runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id"))
    report_dir: Mapped[str] = mapped_column(Text)
    command: Mapped[str | None] = mapped_column(Text)
    n_micrographs: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
