"""The public entry for reading micrograph files of any supported type.

:func:`read_micrographs` dispatches on the (lower-case) suffix to the MRC reader
(:mod:`.mrcio`) or the TIFF/PNG readers (:mod:`.imageio`), and returns a list of
:class:`RawMicrograph` (one for a single image or a summed movie, one per frame for a stack of
micrographs). Whole-file problems raise :class:`~.validate.MicrographReadError` with a reason
code; pixel values are NOT checked here (the ingest runs :func:`~.validate.validate_array` per
frame, so one bad frame of a stack rejects only that frame). ``OSError`` other than a permission
problem or a vanished file propagates: it may pass, and the ingest flow retries it.

Pixel size: an explicit ``pixel_size`` wins over the header (source ``"override"``); without one
the header's value is used (source ``"header"``), and a file without one is rejected with
``missing-pixel-size``. See :mod:`.rawmicrograph` for the stack rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from micrograde.pipeline.io.images import PNG_SUFFIXES, TIFF_SUFFIXES, probe_png, probe_tiff, read_png, read_tiff
from micrograde.pipeline.io.mrc import MRC_SUFFIXES, probe_mrc, read_mrc
from micrograde.pipeline.io.raw import RawMicrograph, check_stack_mode, open_readable
from micrograde.pipeline.io.validate import MicrographReadError, describe_content

__all__ = ["RawMicrograph", "READER_VERSION", "SUPPORTED_SUFFIXES", "read_micrographs", "probe_complete", "suffix_of"]

#: Version of how files are decoded into micrographs (pixel values, pixel size, stack rule): part of
#: every cache entry's identity (pipeline/catalogue/identity.py). Bump it when a reader changes what
#: it returns, and ingest recomputes the entries of the files concerned.
READER_VERSION = "1"

#: File name endings picked up from folders and read by :func:`read_micrographs` (compared in
#: lower case). ``.map`` files are MRC and are read when named explicitly, but are not collected
#: from folders: in a session folder they are 3-D maps, which would only clutter the rejects.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".mrc", ".mrcs") + TIFF_SUFFIXES + PNG_SUFFIXES

_HINTS = {
    ".eer": "EER movies must be motion-corrected (e.g. RELION MotionCor) into .mrc first",
    ".gz": "compressed files must be decompressed first",
    ".bz2": "compressed files must be decompressed first",
    ".dm4": "convert Gatan .dm4 files to .mrc first (e.g. IMOD dm2mrc)",
    ".dm3": "convert Gatan .dm3 files to .mrc first (e.g. IMOD dm2mrc)",
    ".jpg": "JPEG is lossy and 8-bit: export the micrograph as .mrc or 16-bit .tif",
    ".jpeg": "JPEG is lossy and 8-bit: export the micrograph as .mrc or 16-bit .tif",
}


def suffix_of(path: str | Path) -> str:
    """The lower-case suffix used for dispatch ('' for none)."""
    return Path(path).suffix.lower()


def read_micrographs(
    path: Path,
    *,
    pixel_size: float | None = None,
    stack: Literal["auto", "movie", "micrographs"] = "auto",
    permissive: bool = False,
) -> list[RawMicrograph]:
    """Read one file into 2-D float32 micrographs; see the module docstring.

    ``permissive`` relaxes MRC checks (mrcfile's permissive mode: a missing map ID, a wrong
    machine stamp, surplus bytes after the data); TIFF and PNG ignore it.
    """
    check_stack_mode(stack)
    path = Path(path)
    try:
        return _dispatch(path, pixel_size, stack, permissive)
    except MicrographReadError as exc:
        if exc.path is None:
            exc.path = str(path)
        raise


def _dispatch(path: Path, pixel_size: float | None, stack: str, permissive: bool) -> list[RawMicrograph]:
    suffix = suffix_of(path)
    if suffix in MRC_SUFFIXES:
        return read_mrc(path, pixel_size=pixel_size, stack=stack, permissive=permissive)
    if suffix in TIFF_SUFFIXES:
        return read_tiff(path, pixel_size=pixel_size, stack=stack)
    if suffix in PNG_SUFFIXES:
        return read_png(path, pixel_size=pixel_size)
    with open_readable(path) as fh:  # permission / missing file first, then what it is
        head = fh.read(512)
    if not head:
        raise MicrographReadError("empty-file", "the file is 0 bytes long", str(path))
    hint = _HINTS.get(suffix, f"supported: {', '.join(SUPPORTED_SUFFIXES)}")
    shown = f"'{suffix}' files" if suffix else "files without a suffix"
    raise MicrographReadError(
        "unsupported-format", f"{shown} are not read (this one looks like {describe_content(head)}); {hint}", str(path)
    )


def probe_complete(path: Path) -> bool:
    """Cheap check for a watch folder: is the file completely written and worth reading now?

    MRC: the header is there and the file is at least as long as the header announces. TIFF: it
    parses and its image data lies inside the file. PNG: it ends with the IEND chunk. False for
    a missing or zero-byte file. Files that can never become valid (not an MRC/TIFF/PNG at all,
    unreadable, another suffix) answer True so the reader rejects them with a reason instead of
    the watch folder waiting forever; a watch folder should still wait for a stable size before
    giving up on a file that stays incomplete.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return False
    except FileNotFoundError:
        return False
    except PermissionError:
        return True
    suffix = suffix_of(path)
    if suffix in MRC_SUFFIXES:
        return probe_mrc(path)
    if suffix in TIFF_SUFFIXES:
        return probe_tiff(path)
    if suffix in PNG_SUFFIXES:
        return probe_png(path)
    return True
