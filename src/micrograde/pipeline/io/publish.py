"""Writing a folder of outputs as one unit: built aside, then published in one step.

A report folder has several files that belong together (report.html, predictions.csv,
selected.star...). Each is written atomically, but a reader, or a writer killed half-way, could
still see a mixture of two versions. :func:`staged_folder` builds the new version in a folder
beside (in the same file system) and :func:`publish` puts it in place: ``rename`` when the folder
is new, and for a folder that is rewritten (a rolling session report) an atomic exchange of the
two folders (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames, a moment without the
folder), after which the old version is removed. Writers of one folder must hold a lock
(:func:`micrograde.pipeline.io.locks.file_lock`); a killed writer leaves only its staging folder,
which :func:`remove_stale` clears under that lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["staged_folder", "publish", "remove_stale"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (True), or False where the system cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish(staged: Path, final: Path) -> None:
    """Put the folder ``staged`` in place of ``final`` in one step (see the module docstring)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if not final.exists():
        os.rename(staged, final)
    elif _exchange(staged, final):
        shutil.rmtree(staged)  # the previous version now
    else:
        old = staged.with_name(staged.name + ".old")
        os.rename(final, old)
        os.rename(staged, final)
        shutil.rmtree(old)
    _sync_folder(final.parent)


@contextlib.contextmanager
def staged_folder(final: str | os.PathLike, staging_root: str | os.PathLike) -> Iterator[Path]:
    """A fresh, empty folder to write the new version of ``final`` into; published on a clean exit,
    removed on an error."""
    final, staging_root = Path(final), Path(staging_root)
    staging_root.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f"{final.name}~", dir=staging_root))
    os.chmod(staged, 0o755)  # mkdtemp makes it 0700; reports are read by colleagues
    try:
        yield staged
        publish(staged, final)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def remove_stale(staging_root: str | os.PathLike, name: str, lock_of=None) -> int:
    """Remove staging folders left by killed writers; returns how many.

    Those of ``name`` (whose lock the caller holds) always; with ``lock_of`` (folder name -> its lock
    file) also those of other names whose lock nobody holds, so a killed one-off writer, whose name
    is never written again, leaves nothing behind either.
    """
    from micrograde.pipeline.io.locks import file_lock

    root = Path(staging_root)
    if not root.is_dir():
        return 0
    removed = 0
    for path in root.iterdir():
        owner = path.name.split("~", 1)[0]
        if owner == name:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        elif lock_of is not None and "~" in path.name:
            with file_lock(lock_of(owner), blocking=False) as free:
                if free:
                    shutil.rmtree(path, ignore_errors=True)
                    removed += 1
    return removed
