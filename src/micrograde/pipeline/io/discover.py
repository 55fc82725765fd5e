"""Finding micrograph files from command-line sources: files, folders and glob patterns.

Rules:

* a named file is returned whatever its suffix (so an unsupported one is rejected with a reason
  rather than silently dropped), hidden or not;
* a folder contributes its files with a supported suffix (:data:`~.readers.SUPPORTED_SUFFIXES`,
  any case), recursively unless ``recursive=False``; hidden files and folders (``.name``),
  partial downloads/writes (``*.part``) and ``masks/`` subfolders (label maps beside the
  micrographs: the simulator's ground truth, a report's masks) are skipped; symbolic links to
  folders are followed once;
* a glob pattern (``*``, ``?``, ``[``; ``**`` matches folders at any depth) contributes the
  supported files it matches, and the folders it matches as folders (in both, not what lies in
  a ``masks/`` folder below the pattern's fixed start); a pattern that matches
  nothing is fine when the folder it starts from exists (a watch folder may be empty), and an
  error when it does not (a typo);
* a source that does not exist raises ``FileNotFoundError("no such file or folder: SRC")``.

The result holds absolute, resolved paths, sorted and without duplicates.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from micrograde.pipeline.io.readers import SUPPORTED_SUFFIXES
from micrograde.pipeline.masks import MASKS_FOLDER

__all__ = ["check_sources", "discover", "is_candidate", "is_candidate_folder"]

_GLOB_CHARS = ("*", "?", "[")


def is_candidate(name: str) -> bool:
    """Would a file of this name be picked up from a folder?"""
    lower = name.lower()
    return not name.startswith(".") and not lower.endswith(".part") and lower.endswith(SUPPORTED_SUFFIXES)


def is_candidate_folder(name: str) -> bool:
    """Would a subfolder of this name be searched for micrographs (not hidden, not ``masks/``)?"""
    return not name.startswith(".") and name != MASKS_FOLDER


def _walk(folder: Path, recursive: bool) -> Iterable[Path]:
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a symlink loop, or two links to one folder
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if is_candidate_folder(d)) if recursive else []
        for name in files:
            if is_candidate(name):
                yield Path(root, name)


def _glob_base(pattern: str) -> Path:
    """The longest leading part of a pattern without glob characters."""
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts:
        if any(c in part for c in _GLOB_CHARS):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def check_sources(sources: Sequence[str | Path]) -> None:
    """Raise FileNotFoundError for the first source :func:`discover` would refuse, without walking folders."""
    for src in [sources] if isinstance(sources, (str, Path)) else sources:
        text = os.path.expanduser(str(src))
        if Path(text).exists():
            continue
        if not any(c in text for c in _GLOB_CHARS) or (not glob.glob(text, recursive=True)
                                                        and not _glob_base(text).is_dir()):
            raise FileNotFoundError(f"no such file or folder: {src}")


def discover(sources: Sequence[str | Path], *, recursive: bool = True) -> list[Path]:
    """Expand files, folders and glob patterns into micrograph files; see the module docstring."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    check_sources(sources)
    found: set[Path] = set()
    for src in sources:
        text = os.path.expanduser(str(src))
        path = Path(text)
        if path.is_dir():
            found.update(p.resolve() for p in _walk(path, recursive))
        elif path.exists():
            found.add(path.resolve())
        else:  # a glob pattern (check_sources refused anything else)
            base = _glob_base(text)
            for match in glob.glob(text, recursive=True):
                m = Path(match)
                if MASKS_FOLDER in m.relative_to(base).parts[:-1]:
                    continue
                if m.is_dir():
                    found.update(p.resolve() for p in _walk(m, recursive))
                elif m.is_file() and is_candidate(m.name):
                    found.add(m.resolve())
    return sorted(found)
