"""Display helpers: arrays to 8-bit images, PNG bytes and ``data:`` URIs.

Minimal version written by the report helper (the imaging helper may extend it; keep these
signatures): ``to_uint8(arr, low_pct=1, high_pct=99)``, ``png_bytes(arr, low_pct=None,
high_pct=None)``, ``data_uri(png, mime="image/png")``.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

__all__ = ["to_uint8", "png_bytes", "data_uri"]


def to_uint8(arr: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """Contrast-stretch a 2-D array between two percentiles of its finite values to uint8."""
    if not (0.0 <= low_pct < high_pct <= 100.0):
        raise ValueError(f"need 0 <= low < high <= 100, got low={low_pct}, high={high_pct}")
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {a.shape}")
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.zeros(a.shape, dtype=np.uint8)
    lo, hi = np.percentile(finite, [low_pct, high_pct])
    if not hi > lo:
        hi = lo + 1.0
    out = np.clip((np.nan_to_num(a, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    return (out * 255.0 + 0.5).astype(np.uint8)


def png_bytes(arr: np.ndarray, low_pct: float | None = None, high_pct: float | None = None) -> bytes:
    """Grey PNG of a 2-D array: uint8 input is written as is unless percentiles are given;
    anything else is stretched with :func:`to_uint8` (1st-99th percentile by default)."""
    a = np.asarray(arr)
    if a.dtype != np.uint8 or low_pct is not None or high_pct is not None:
        a = to_uint8(a, 1.0 if low_pct is None else low_pct, 99.0 if high_pct is None else high_pct)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a), mode="L").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def data_uri(png: bytes, mime: str = "image/png") -> str:
    """``data:`` URI of encoded image bytes, for self-contained HTML."""
    return f"data:{mime};base64," + base64.b64encode(png).decode("ascii")
