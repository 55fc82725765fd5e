"""Checks of labels, reason tags, comments and sources shared by the store, the importer and the app."""

from __future__ import annotations

import re
from collections.abc import Iterable

from micrograde.labeling.errors import InvalidLabelError
from micrograde.pipeline.config import LABELS, REASON_TAGS

__all__ = ["SOURCES", "MAX_COMMENT", "normalize_label", "normalize_reasons", "normalize_comment", "check_source"]

#: Where an annotation came from.
SOURCES: tuple[str, ...] = ("web", "import", "review")
#: Longest comment kept (characters).
MAX_COMMENT = 2000

_SPLIT = re.compile(r"[;,|\s]+")


def normalize_label(label: str | None) -> str:
    value = str(label if label is not None else "").strip().lower()
    if value not in LABELS:
        raise InvalidLabelError(f"unknown label {label!r}; use one of {', '.join(LABELS)}")
    return value


def normalize_reasons(reasons: str | Iterable[str] | None) -> str:
    """Reason tags as the stored comma-separated string, in REASON_TAGS order, without duplicates.

    Accepts an iterable of tags or one string separated by ``,`` ``;`` ``|`` or spaces.
    """
    if reasons is None:
        return ""
    items = _SPLIT.split(reasons) if isinstance(reasons, str) else [str(r) for r in reasons]
    tags = {t.strip().lower() for t in items if t and t.strip()}
    unknown = sorted(tags - set(REASON_TAGS))
    if unknown:
        raise InvalidLabelError(
            f"unknown reason tag(s) {', '.join(repr(u) for u in unknown)}; use {', '.join(REASON_TAGS)}"
        )
    return ",".join(t for t in REASON_TAGS if t in tags)


def normalize_comment(comment: str | None) -> str:
    text = "" if comment is None else str(comment)
    if len(text) > MAX_COMMENT:
        raise InvalidLabelError(f"comment longer than {MAX_COMMENT} characters")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        raise InvalidLabelError("comment contains control characters")
    return text.strip()


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise InvalidLabelError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    return source
