"""The catalogue of micrograde 0.1.0 (created then without Alembic; its workspaces are stamped here).

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("microscope", sa.String(255)),
        sa.Column("detector", sa.String(255)),
        sa.Column("grid_material", sa.String(64)),
        sa.Column("grid_maker", sa.String(255)),
        sa.Column("dose", sa.Float()),
        sa.Column("created_at", _TZ, nullable=False),
    )
    op.create_table(
        "ingest_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("started_at", _TZ, nullable=False),
        sa.Column("finished_at", _TZ),
        sa.Column("command", sa.Text()),
        sa.Column("config", sa.JSON()),
        sa.Column("n_ingested", sa.Integer(), nullable=False),
        sa.Column("n_skipped", sa.Integer(), nullable=False),
        sa.Column("n_rejected", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
    )
    op.create_table(
        "micrographs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False),
        sa.Column("n_frames", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("shape_y", sa.Integer(), nullable=False),
        sa.Column("shape_x", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("pixel_size", sa.Float(), nullable=False),
        sa.Column("pixel_size_source", sa.String(16), nullable=False),
        sa.Column("acquired_at", _TZ),
        sa.Column("preprocess_key", sa.String(64)),
        sa.Column("cache_key", sa.String(64)),
        sa.Column("spectrum_available", sa.Boolean(), nullable=False),
        sa.Column("ice_ring_score", sa.Float()),
        sa.Column("thon_reach_A", sa.Float()),
        sa.Column("anisotropy", sa.Float()),
        sa.Column("contrast", sa.Float()),
        sa.Column("dark_fraction", sa.Float()),
        sa.Column("header", sa.JSON()),
        sa.Column("ingest_run_id", sa.String(64), sa.ForeignKey("ingest_runs.id")),
        sa.Column("created_at", _TZ, nullable=False),
        sa.UniqueConstraint("digest", "frame", name="uq_micrograph_content"),
    )
    op.create_index("ix_micrographs_path", "micrographs", ["path"])
    op.create_index("ix_micrographs_name", "micrographs", ["name"])
    op.create_index("ix_micrographs_session_id", "micrographs", ["session_id"])
    op.create_table(
        "rejects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("quarantined_to", sa.Text()),
        sa.Column("ingest_run_id", sa.String(64), sa.ForeignKey("ingest_runs.id")),
        sa.Column("created_at", _TZ, nullable=False),
    )
    op.create_index("ix_rejects_path", "rejects", ["path"])
    op.create_index("ix_rejects_reason", "rejects", ["reason"])
    op.create_table(
        "annotators",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("expertise", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("token_hash", sa.String(128)),
        sa.Column("created_at", _TZ, nullable=False),
    )
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("micrograph_id", sa.Integer(), sa.ForeignKey("micrographs.id"), nullable=False),
        sa.Column("annotator_id", sa.Integer(), sa.ForeignKey("annotators.id"), nullable=False),
        sa.Column("label", sa.String(16)),
        sa.Column("reasons", sa.String(512), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
    )
    op.create_index("ix_annotations_latest", "annotations", ["annotator_id", "micrograph_id", "id"])
    op.create_index("ix_annotations_micrograph_id", "annotations", ["micrograph_id"])
    op.create_index("ix_annotations_annotator_id", "annotations", ["annotator_id"])
    op.create_table(
        "models",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("backbone", sa.String(128), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
    )
    op.create_table(
        "assess_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("model_id", sa.String(64), sa.ForeignKey("models.id")),
        sa.Column("report_dir", sa.Text(), nullable=False),
        sa.Column("command", sa.Text()),
        sa.Column("n_micrographs", sa.Integer(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
    )


def downgrade() -> None:
    for table in ("assess_runs", "models", "annotations", "annotators", "rejects", "micrographs", "ingest_runs",
                  "sessions"):
        op.drop_table(table)
