"""Display helpers shared by the labelling app and the report: 8-bit stretch, PNG, data URI.

Signatures kept from the report helper's first version: ``to_uint8(arr, low_pct=1, high_pct=99)``,
``png_bytes(arr, low_pct=None, high_pct=None)``, ``data_uri(png, mime="image/png")``.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from PIL import Image

__all__ = ["to_uint8", "png_bytes", "data_uri"]

_MAX_SAMPLES = 1 << 20


def _percentiles(a: np.ndarray, low_pct: float, high_pct: float) -> tuple[float, float]:
    sample = a
    if a.size > _MAX_SAMPLES:
        step = int(math.ceil(math.sqrt(a.size / _MAX_SAMPLES)))
        sample = a[::step, ::step]
    sample = np.asarray(sample, dtype=np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(sample, [low_pct, high_pct])
    return float(lo), float(hi)


def to_uint8(img: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """Contrast-stretch a 2-D array to uint8: the ``low_pct`` percentile -> 0, ``high_pct`` -> 255.

    Values outside are saturated, NaN becomes 0. A constant image gives all zeros. Any dtype;
    a uint8 input is stretched like any other (pass 0 and 100 to keep its full range).
    """
    if not (0.0 <= low_pct < high_pct <= 100.0):
        raise ValueError(f"need 0 <= low_pct < high_pct <= 100, got {low_pct}, {high_pct}")
    a = np.asarray(img)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {a.shape}")
    lo, hi = _percentiles(a, low_pct, high_pct)
    if not hi > lo:
        return np.zeros(a.shape, dtype=np.uint8)
    out = a.astype(np.float32)
    out -= np.float32(lo)
    out *= np.float32(255.0 / (hi - lo))
    np.clip(out, 0.0, 255.0, out=out)
    out = np.nan_to_num(out, nan=0.0, copy=False)
    return (out + 0.5).astype(np.uint8)


def png_bytes(img: np.ndarray, low_pct: float | None = None, high_pct: float | None = None) -> bytes:
    """Grayscale 8-bit PNG of a 2-D array, via Pillow.

    A uint8 array (e.g. a cached thumbnail) is written as is unless percentiles are given;
    anything else is stretched with :func:`to_uint8` (1st-99th percentile by default).
    """
    a = np.asarray(img)
    if a.dtype != np.uint8 or low_pct is not None or high_pct is not None:
        a = to_uint8(a, 1.0 if low_pct is None else low_pct, 99.0 if high_pct is None else high_pct)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {a.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def data_uri(png: bytes, mime: str = "image/png") -> str:
    """An inline ``data:image/png;base64,...`` URI (self-contained HTML)."""
    return f"data:{mime};base64," + base64.b64encode(bytes(png)).decode("ascii")
