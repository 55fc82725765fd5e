"""Advisory file locks between processes (``flock``): released on exit and by the kernel when a process
dies, ``kill -9`` included, so a crashed writer never leaves a stale lock behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["file_lock"]


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, blocking: bool = True, shared: bool = False) -> Iterator[bool]:
    """Hold a lock on ``path`` (created if missing) for the block.

    Yields True when the lock is held; with ``blocking=False`` yields False at once when another
    process holds it. ``shared`` takes a shared (reader) lock instead of an exclusive one.
    """
    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
