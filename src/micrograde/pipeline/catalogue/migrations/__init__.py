"""Alembic migrations of the workspace catalogue (run by :mod:`micrograde.pipeline.catalogue.migrate`)."""
