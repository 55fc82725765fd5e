"""Annotators: who labels, at which expertise level, and the secret token that logs them in."""

from __future__ import annotations

import re

import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from micrograde.labeling.errors import AnnotatorError, UnknownAnnotatorError
from micrograde.labeling.web.tokens import hash_token, new_token, token_annotator_id, verify_token
from micrograde.pipeline.catalogue.schema import Annotator
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.config import EXPERTISE_LEVELS

__all__ = [
    "NAME_PATTERN",
    "validate_name",
    "validate_expertise",
    "add_annotator",
    "get_or_create_annotator",
    "get_annotator",
    "authenticate",
    "set_active",
    "reset_token",
    "list_annotators",
]

#: Annotator names: letters, digits, space, ``. _ @ -``; starting with a letter or digit (so a
#: name can never start a spreadsheet formula in an exported CSV header), at most 64 characters.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")


def validate_name(name: str) -> str:
    name = str(name).strip()
    if not NAME_PATTERN.match(name):
        raise AnnotatorError(
            f"invalid annotator name {name!r}: use 1-64 letters, digits, spaces or . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def validate_expertise(expertise: str) -> str:
    level = str(expertise).strip().lower()
    if level not in EXPERTISE_LEVELS:
        raise AnnotatorError(f"unknown expertise {expertise!r}; choose one of {', '.join(EXPERTISE_LEVELS)}")
    return level


def _by_name(s, name: str) -> Annotator | None:
    return s.execute(select(Annotator).where(Annotator.name == name)).scalar_one_or_none()


def add_annotator(ws: Workspace, name: str, expertise: str) -> tuple[Annotator, str]:
    """Create an annotator; returns the row and the plain secret token (shown once, stored hashed)."""
    name, level = validate_name(name), validate_expertise(expertise)
    try:
        with ws.transaction() as s:
            if _by_name(s, name) is not None:
                raise AnnotatorError(f"annotator {name!r} already exists")
            row = Annotator(name=name, expertise=level, active=True)
            s.add(row)
            s.flush()
            token = new_token(row.id)
            row.token_hash = hash_token(token)
    except IntegrityError as exc:  # a concurrent creation of the same name
        raise AnnotatorError(f"annotator {name!r} already exists") from exc
    return row, token


def get_or_create_annotator(ws: Workspace, name: str, expertise: str) -> Annotator:
    """The annotator called ``name``, created (without a login token) when new.

    An existing annotator with another expertise level is an error: the level weights every
    label the annotator ever gave, so it is never changed by an import.
    """
    name, level = validate_name(name), validate_expertise(expertise)
    with ws.transaction() as s:
        row = _by_name(s, name)
        if row is None:
            row = Annotator(name=name, expertise=level, active=True, token_hash=None)
            s.add(row)
            s.flush()
        elif row.expertise != level:
            raise AnnotatorError(
                f"annotator {name!r} exists with expertise {row.expertise!r}, not {level!r}"
            )
    return row


def get_annotator(ws: Workspace, name_or_id: str | int) -> Annotator:
    with ws.session() as s:
        row = s.get(Annotator, name_or_id) if isinstance(name_or_id, int) else _by_name(s, str(name_or_id).strip())
    if row is None:
        raise UnknownAnnotatorError(f"no annotator {name_or_id!r}")
    return row


def authenticate(ws: Workspace, token: str) -> Annotator | None:
    """The annotator a token belongs to, or None (unknown or malformed token).

    The caller checks ``active``: an inactive annotator authenticates but must be refused (403).
    """
    annotator_id = token_annotator_id(str(token or "").strip())
    if annotator_id is None:
        return None
    with ws.session() as s:
        row = s.get(Annotator, annotator_id)
    if row is None or not verify_token(str(token).strip(), row.token_hash):
        return None
    return row


def set_active(ws: Workspace, name: str, active: bool) -> Annotator:
    """Activate or deactivate an annotator (their annotations stay and keep counting)."""
    with ws.transaction() as s:
        row = _by_name(s, str(name).strip())
        if row is None:
            raise UnknownAnnotatorError(f"no annotator {name!r}")
        row.active = bool(active)
    return row


def reset_token(ws: Workspace, name: str) -> str:
    """Replace an annotator's token (the old one stops working); returns the new plain token."""
    with ws.transaction() as s:
        row = _by_name(s, str(name).strip())
        if row is None:
            raise UnknownAnnotatorError(f"no annotator {name!r}")
        token = new_token(row.id)
        row.token_hash = hash_token(token)
    return token


def list_annotators(ws: Workspace) -> pd.DataFrame:
    """``id, name, expertise, active, has_token, created_at``, in creation order."""
    with ws.session() as s:
        rows = s.execute(select(Annotator).order_by(Annotator.id)).scalars().all()
    return pd.DataFrame(
        [
            {
                "id": r.id,
                "name": r.name,
                "expertise": r.expertise,
                "active": bool(r.active),
                "has_token": r.token_hash is not None,
                "created_at": r.created_at,
            }
            for r in rows
        ],
        columns=["id", "name", "expertise", "active", "has_token", "created_at"],
    )
