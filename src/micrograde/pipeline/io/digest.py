"""Content digests of files and of sets of inputs (for cache keys and provenance stamps)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

__all__ = ["file_digest", "digest_of"]

_CHUNK = 8 * 1024 * 1024


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (streamed, constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def digest_of(items: Iterable[str]) -> str:
    """SHA-256 over an ordered collection of strings (e.g. the digests of a run's inputs)."""
    h = hashlib.sha256()
    for item in items:
        h.update(item.encode())
        h.update(b"\0")
    return h.hexdigest()
