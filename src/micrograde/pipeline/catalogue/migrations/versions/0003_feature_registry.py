"""One ``features`` JSON column (the feature registry) replaces the five hand-written score columns.

``micrographs.features`` holds every feature value by registry name (``pipeline/features.py``):
the scores and measures ingest computed, and the CTF estimates a user imported. Upgrade moves the
values of ``ice_ring_score``, ``thon_reach_A``, ``anisotropy``, ``contrast`` and ``dark_fraction``
into it (NULL values are left out) and drops those columns; downgrade moves them back (other
features are lost on downgrade).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: The score columns of revisions 0001-0002, as they were (not read from the registry: a migration is frozen).
_SCORE_COLUMNS = ("ice_ring_score", "thon_reach_A", "anisotropy", "contrast", "dark_fraction")


def _table(*columns: sa.Column) -> sa.Table:
    return sa.Table("micrographs", sa.MetaData(), sa.Column("id", sa.Integer(), primary_key=True), *columns)


def upgrade() -> None:
    with op.batch_alter_table("micrographs") as batch:
        batch.add_column(sa.Column("features", sa.JSON()))
    bind = op.get_bind()
    old = _table(*(sa.Column(c, sa.Float()) for c in _SCORE_COLUMNS), sa.Column("features", sa.JSON()))
    rows = bind.execute(sa.select(old.c.id, *(old.c[c] for c in _SCORE_COLUMNS))).all()
    for row in rows:
        values = {c: float(v) for c, v in zip(_SCORE_COLUMNS, row[1:], strict=True)
                  if v is not None and math.isfinite(float(v))}
        bind.execute(old.update().where(old.c.id == row[0]).values(features=values))
    with op.batch_alter_table("micrographs") as batch:
        for name in _SCORE_COLUMNS:
            batch.drop_column(name)


def downgrade() -> None:
    with op.batch_alter_table("micrographs") as batch:
        for name in _SCORE_COLUMNS:
            batch.add_column(sa.Column(name, sa.Float()))
    bind = op.get_bind()
    new = _table(*(sa.Column(c, sa.Float()) for c in _SCORE_COLUMNS), sa.Column("features", sa.JSON()))
    for mid, features in bind.execute(sa.select(new.c.id, new.c.features)).all():
        features = features or {}
        bind.execute(new.update().where(new.c.id == mid).values({c: features.get(c) for c in _SCORE_COLUMNS}))
    with op.batch_alter_table("micrographs") as batch:
        batch.drop_column("features")
