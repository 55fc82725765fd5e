"""Versioned cache identity, the files table, voltage per session, one reject per reason, undo links.

* ``micrographs``: ``size_bytes`` becomes 64-bit (movies over 2 GiB on PostgreSQL); the parts of
  the cache identity are stored (``stack_mode``, ``voltage_kv``, ``voltage_source``,
  ``reader_version``, ``features_version``, ``cache_format``; NULL for rows of 0.1.0, which the
  next ingest of their file recomputes).
* ``sessions.voltage_kv``: the accelerating voltage of a session (EPU header, session.json or
  ``--voltage``).
* ``files``: every file seen, keyed by (path, size, mtime), with its state.
* ``rejects``: one row per (path, reason) (duplicates of 0.1.0 sweeps collapse to the latest) and
  ``superseded_at`` (a later successful ingest of the path).
* ``annotations.undoes``: the annotation an undo row takes back.
* ``ingest_runs.errors``: files that failed for reasons other than their content or I/O.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("micrographs") as batch:
        batch.alter_column("size_bytes", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)
        batch.add_column(sa.Column("stack_mode", sa.String(16)))
        batch.add_column(sa.Column("voltage_kv", sa.Float()))
        batch.add_column(sa.Column("voltage_source", sa.String(16)))
        batch.add_column(sa.Column("reader_version", sa.String(16)))
        batch.add_column(sa.Column("features_version", sa.String(16)))
        batch.add_column(sa.Column("cache_format", sa.Integer()))
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("voltage_kv", sa.Float()))
    with op.batch_alter_table("ingest_runs") as batch:
        batch.add_column(sa.Column("errors", sa.JSON()))
    with op.batch_alter_table("annotations") as batch:
        batch.add_column(sa.Column("undoes", sa.Integer()))
        batch.create_foreign_key("fk_annotations_undoes", "annotations", ["undoes"], ["id"])

    op.execute("DELETE FROM rejects WHERE id NOT IN (SELECT MAX(id) FROM rejects GROUP BY path, reason)")
    with op.batch_alter_table("rejects") as batch:
        batch.add_column(sa.Column("superseded_at", _TZ))
    op.create_index("uq_rejects_path_reason", "rejects", ["path", "reason"], unique=True)
    op.execute(
        "UPDATE rejects SET superseded_at = CURRENT_TIMESTAMP WHERE EXISTS ("
        "SELECT 1 FROM micrographs m WHERE m.path = rejects.path AND m.created_at > rejects.created_at)"
    )

    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("options_key", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("detail", sa.Text()),
        sa.Column("ingest_run_id", sa.String(64), sa.ForeignKey("ingest_runs.id")),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.UniqueConstraint("path", "size_bytes", "mtime_ns", name="uq_files_stat"),
    )
    op.create_index("ix_files_path", "files", ["path"])
    op.create_index("ix_files_state", "files", ["state"])


def downgrade() -> None:
    op.drop_index("ix_files_state", table_name="files")
    op.drop_index("ix_files_path", table_name="files")
    op.drop_table("files")
    op.drop_index("uq_rejects_path_reason", table_name="rejects")
    with op.batch_alter_table("rejects") as batch:
        batch.drop_column("superseded_at")
    with op.batch_alter_table("annotations") as batch:
        batch.drop_constraint("fk_annotations_undoes", type_="foreignkey")
        batch.drop_column("undoes")
    with op.batch_alter_table("ingest_runs") as batch:
        batch.drop_column("errors")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("voltage_kv")
    with op.batch_alter_table("micrographs") as batch:
        for name in (
            "cache_format",
            "features_version",
            "reader_version",
            "voltage_source",
            "voltage_kv",
            "stack_mode",
        ):
            batch.drop_column(name)
        batch.alter_column("size_bytes", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
