"""The in-memory result of reading a micrograph file, and the rules shared by all readers.

Stack rule (``stack="auto"``), the same for MRC stacks and multi-page TIFFs:

* integer pixels (MRC modes 0, 1, 6; TIFF int/uint pages) are electron counts of a
  dose-fractionated **movie**: the frames are summed into one micrograph (``n_frames`` = N);
* float16 (MRC mode 12) frames whose first frame has a mean below
  :data:`MOVIE_MEAN_COUNTS` counts per pixel are also a movie (counts stored as float16);
* everything else (float32, float16 with higher means) is a **stack of micrographs**: one
  :class:`RawMicrograph` per frame (``frame`` = its index).

``stack="movie"`` or ``"micrographs"`` forces either reading. A single image is always one
micrograph with ``n_frames=1``.

Pixel-size precedence: an explicit ``pixel_size`` override always wins (source ``"override"``),
even over a header value; otherwise the header's value (source ``"header"``); otherwise the read
fails with ``missing-pixel-size``.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from micrograde.pipeline.io.validate import MicrographReadError

__all__ = [
    "RawMicrograph",
    "StackMode",
    "MOVIE_MEAN_COUNTS",
    "is_movie",
    "choose_pixel_size",
    "check_stack_mode",
    "open_readable",
    "read_exact_into",
    "to_native_float32",
    "ole_date_to_utc",
]

StackMode = Literal["auto", "movie", "micrographs"]

#: Below this mean (counts per pixel in the first frame) a float16 stack is read as a movie.
MOVIE_MEAN_COUNTS = 10.0


@dataclass(frozen=True)
class RawMicrograph:
    """One 2-D micrograph as read from a file (pixel values not yet validated)."""

    data: np.ndarray  # 2-D float32 (y, x)
    pixel_size: float  # Angstrom/pixel actually used
    pixel_size_source: str  # "header" | "override"
    frame: int  # index in a stack of micrographs; 0 for a single image or a summed movie
    n_frames: int  # frames summed (movie) or 1
    mode: str  # e.g. "mrc-mode-2", "tiff-uint16", "png-uint8"
    acquired_at: dt.datetime | None  # tz-aware UTC, from the file's metadata when present
    header: dict = field(default_factory=dict)  # JSON-serialisable metadata found in the file


def check_stack_mode(stack: str) -> None:
    if stack not in ("auto", "movie", "micrographs"):
        raise ValueError(f"stack must be 'auto', 'movie' or 'micrographs', not {stack!r}")


def is_movie(stack: str, dtype: np.dtype, first_frame: np.ndarray | None = None) -> bool:
    """Apply the stack rule of the module docstring: True to sum the frames, False to split."""
    if stack == "movie":
        return True
    if stack == "micrographs":
        return False
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return True
    if dtype.itemsize == 2 and dtype.kind == "f" and first_frame is not None:
        mean = float(np.mean(first_frame, dtype=np.float64))
        return math.isfinite(mean) and mean < MOVIE_MEAN_COUNTS
    return False


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def choose_pixel_size(
    header_value: float | None, override: float | None, *, why: str = "the file records no pixel size"
) -> tuple[float, str]:
    """(pixel size, source) by the precedence in the module docstring."""
    if override is not None:
        if not _usable(override):
            raise ValueError(f"pixel_size override must be a positive number, not {override!r}")
        return float(override), "override"
    if header_value is not None and _usable(header_value):
        return float(header_value), "header"
    raise MicrographReadError(
        "missing-pixel-size",
        f"{why}; pass it with --pixel-size (Angstrom per pixel)",
    )


def open_readable(path) -> io.BufferedReader:
    """Open ``path`` for binary reading, turning the non-transient failures into reasons.

    ``PermissionError`` -> ``permission-denied``, ``FileNotFoundError`` -> ``not-found``,
    ``IsADirectoryError`` -> ``not-an-image``. Any other ``OSError`` propagates (it may pass,
    and the ingest flow retries it).
    """
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except PermissionError as exc:
        raise MicrographReadError(
            "permission-denied", f"cannot open the file for reading: {exc.strerror or exc}", str(path)
        ) from exc
    except FileNotFoundError as exc:
        raise MicrographReadError("not-found", "the file no longer exists", str(path)) from exc
    except IsADirectoryError as exc:
        raise MicrographReadError("not-an-image", "a folder, not a file", str(path)) from exc


def read_exact_into(fh, arr: np.ndarray) -> int:
    """Fill ``arr`` (C-contiguous) from ``fh``; returns the bytes read (less only at end of file)."""
    view = arr.reshape(-1).view(np.uint8).data
    got = 0
    while got < len(view):
        n = fh.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def to_native_float32(arr: np.ndarray) -> np.ndarray:
    """``arr`` as native-endian float32, in place where the bytes allow (no copy for float32)."""
    if arr.dtype == np.float32 and arr.dtype.isnative:
        return arr
    if arr.dtype.kind == "f" and arr.dtype.itemsize == 4:  # byte-swapped float32: swap in place
        arr.byteswap(inplace=True)
        return arr.view(arr.dtype.newbyteorder("="))
    return arr.astype(np.float32)


def ole_date_to_utc(days: float) -> dt.datetime | None:
    """An OLE Automation date (days since 1899-12-30, as in EPU headers) in UTC; None if implausible."""
    if not math.isfinite(days) or not (32874.0 <= days <= 73051.0):  # years 1990 .. 2100
        return None
    return dt.datetime(1899, 12, 30, tzinfo=dt.UTC) + dt.timedelta(days=float(days))
