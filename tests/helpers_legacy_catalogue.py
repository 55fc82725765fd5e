"""The catalogue schema of micrograde 0.1.0, kept verbatim (only this docstring and the score
columns' import differ) to build a workspace "made by the current release" in the upgrade tests.

One schema for micrographs, sessions, rejects, ingest runs, annotators, annotations, models and
assessment runs. SQLite in the workspace by default; any SQLAlchemy URL (PostgreSQL for many
labellers) through ``--db``. Annotations are append-only: a change is a new row.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
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

SCORE_COLUMNS = ("ice_ring_score", "thon_reach_A", "anisotropy", "contrast", "dark_fraction")  # as in 0.1.0

__all__ = [
    "Base",
    "SCORE_COLUMNS",
    "SessionRow",
    "Micrograph",
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


class Micrograph(Base):
    """One 2-D micrograph. A stack of micrographs gives one row per frame (``frame`` >= 0);
    a single image or a summed movie has ``frame`` = 0 and ``n_frames`` = frames summed."""

    __tablename__ = "micrographs"
    __table_args__ = (UniqueConstraint("digest", "frame", name="uq_micrograph_content"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text, index=True)
    name: Mapped[str] = mapped_column(String(512), index=True)
    frame: Mapped[int] = mapped_column(Integer, default=0)
    n_frames: Mapped[int] = mapped_column(Integer, default=1)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    shape_y: Mapped[int] = mapped_column(Integer)
    shape_x: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(32))
    pixel_size: Mapped[float] = mapped_column(Float)
    pixel_size_source: Mapped[str] = mapped_column(String(16))
    acquired_at: Mapped[dt.datetime | None]
    preprocess_key: Mapped[str | None] = mapped_column(String(64))
    cache_key: Mapped[str | None] = mapped_column(String(64))
    spectrum_available: Mapped[bool] = mapped_column(Boolean, default=True)
    ice_ring_score: Mapped[float | None] = mapped_column(Float)
    thon_reach_A: Mapped[float | None] = mapped_column(Float)
    anisotropy: Mapped[float | None] = mapped_column(Float)
    contrast: Mapped[float | None] = mapped_column(Float)
    dark_fraction: Mapped[float | None] = mapped_column(Float)
    header: Mapped[dict | None] = mapped_column(JSON)
    ingest_run_id: Mapped[str | None] = mapped_column(ForeignKey("ingest_runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    session: Mapped[SessionRow] = relationship(back_populates="micrographs")


class Reject(Base):
    """A file (or one frame of it) that failed validation, with a reason code and detail."""

    __tablename__ = "rejects"
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text, index=True)
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text)
    quarantined_to: Mapped[str | None] = mapped_column(Text)
    ingest_run_id: Mapped[str | None] = mapped_column(ForeignKey("ingest_runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Annotator(Base):
    __tablename__ = "annotators"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    expertise: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    token_hash: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Annotation(Base):
    """Append-only: a new label is a new row; the latest row per (annotator, micrograph) counts."""

    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_latest", "annotator_id", "micrograph_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    micrograph_id: Mapped[int] = mapped_column(ForeignKey("micrographs.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    label: Mapped[str | None] = mapped_column(String(16))  # None = a retraction (undo)
    reasons: Mapped[str] = mapped_column(String(512), default="")  # comma-separated REASON_TAGS
    comment: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="web")  # web | import | review
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
