"""Reasons a micrograph is rejected, the exception that carries them, and pixel-value checks.

Every rejected file or frame gets exactly one reason code from :data:`REASONS` and a specific
detail text (numbers, not just a category), e.g.::

    truncated: header says 4096x4096x1 mode 2 (67108864 bytes of data) but the file holds 1048576

:func:`validate_array` checks pixel values (run per frame by the ingest so that one bad frame of
a stack rejects only that frame); the readers raise the file-level reasons.
"""

from __future__ import annotations

import numpy as np

__all__ = ["REASONS", "MicrographReadError", "validate_array", "describe_content"]

#: Reason code -> one-line human description (shown by ``micrograde status``).
REASONS: dict[str, str] = {
    "empty-file": "the file is 0 bytes long",
    "truncated": "the file ends before the data its header announces (an interrupted copy or write)",
    "size-mismatch": "the file is longer than its header's dimensions and mode allow",
    "unsupported-mode": "an MRC data mode that is not a real-valued image (only 0, 1, 2, 6 and 12 are read)",
    "bad-header": "the header is damaged or self-contradictory",
    "not-an-image": "the content is not a single-channel 2-D image (text, another format, a 3-D map, RGB)",
    "permission-denied": "the file cannot be read with the current permissions",
    "not-found": "the file disappeared between discovery and reading",
    "non-finite": "the image holds NaN or infinite pixel values",
    "constant": "every pixel has the same value (a blank or failed exposure)",
    "missing-pixel-size": "the header has no pixel size and none was given with --pixel-size",
    "too-small": "the image is smaller than the minimum size for grading",
    "unsupported-format": "a file type micrograde does not read",
    "bad-session-file": "the session file (session.json) beside the micrograph is invalid",
}


class MicrographReadError(Exception):
    """A micrograph file or frame that cannot be used, with a reason code from :data:`REASONS`.

    ``str(exc)`` is ``"<reason>: <detail>"``. The exception pickles (it crosses process
    boundaries in the task runners) and is deliberately not an ``OSError``, so retry policies
    for transient I/O errors never retry it.
    """

    def __init__(self, reason: str, detail: str, path: str | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown reject reason {reason!r}; known: {', '.join(REASONS)}")
        super().__init__(reason, detail, path)
        self.reason = reason
        self.detail = detail
        self.path = None if path is None else str(path)

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"

    def __reduce__(self):
        return (type(self), (self.reason, self.detail, self.path))


def validate_array(data: np.ndarray, *, min_size: int = 64) -> None:
    """Check that ``data`` is a usable 2-D micrograph; raise :class:`MicrographReadError` if not.

    Checks, in order: 2-D (``not-an-image``), at least ``min_size`` pixels on each side
    (``too-small``), no NaN/Inf (``non-finite``, with counts), not constant (``constant``).
    The check for non-finite values costs one reduction; counting happens only on failure.
    """
    if not isinstance(data, np.ndarray) or data.ndim != 2:
        shape = getattr(data, "shape", None)
        raise MicrographReadError("not-an-image", f"expected a 2-D image, got an array of shape {shape}")
    if data.dtype.kind not in "biuf":
        raise MicrographReadError("not-an-image", f"pixel type {data.dtype} is not a real-valued image")
    ny, nx = data.shape
    if min(ny, nx) < min_size:
        raise MicrographReadError(
            "too-small", f"the image is {nx}x{ny} pixels; at least {min_size}x{min_size} are needed"
        )
    if data.dtype.kind == "f":
        with np.errstate(invalid="ignore", over="ignore"):
            total = np.add.reduce(data, axis=None, dtype=np.float64)
        if not np.isfinite(total):
            n_nan = int(np.count_nonzero(np.isnan(data)))
            n_inf = int(np.count_nonzero(np.isinf(data)))
            if n_nan or n_inf:
                raise MicrographReadError(
                    "non-finite",
                    f"{n_nan + n_inf} of {data.size} pixels are not finite ({n_nan} NaN, {n_inf} infinite)",
                )
    lo, hi = data.min(), data.max()
    if lo == hi:
        raise MicrographReadError("constant", f"all {data.size} pixels equal {lo.item()!r}")


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip-compressed data (decompress it first)"),
    (b"BZh", "bzip2-compressed data (decompress it first)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"II+\x00", "a BigTIFF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x89HDF", "an HDF5 file"),
    (b"\x7fELF", "an executable"),
    (b"\x93NUMPY", "a NumPy .npy array"),
)


def describe_content(head: bytes) -> str:
    """A short description of what the first bytes of a file look like (for error details)."""
    if not head:
        return "no data"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if len(head) >= 212 and head[208:211] == b"MAP":
        return "an MRC file"
    sample = head[:512]
    if sample.lstrip().startswith((b"<?xml", b"<!DOCTYPE", b"<html", b"<HTML")):
        return "an XML/HTML document"
    text = sample.decode("utf-8", errors="replace")
    bad = sum(1 for ch in text if ch == "\ufffd" or not (ch.isprintable() or ch in "\r\n\t"))
    if bad <= 2 and "\x00" not in text:
        preview = text.strip().splitlines()[0][:40] if text.strip() else ""
        return f"a text file (starts {preview!r})" if preview else "a text file"
    return "unrecognised binary data"
