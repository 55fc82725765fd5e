"""PNG renderings of a micrograph's cached arrays for the labelling page (by catalogue id only)."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from ..pipeline.cache import CacheMissError, load_entry

__all__ = ["KINDS", "ImageMissingError", "render_png", "micrograph_png"]

#: Which cached array each image kind shows.
KINDS: dict[str, str] = {"image": "thumbnail", "spectrum": "spectrum"}


class ImageMissingError(LookupError):
    """The micrograph has no cached rendering (no cache key, or the cache was cleaned)."""


def _stretch(arr: np.ndarray, low_pct: float, high_pct: float) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float32)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.zeros(a.shape, dtype=np.uint8)
    lo, hi = np.percentile(finite, [low_pct, high_pct])
    if not hi > lo:
        hi = lo + 1.0
    out = np.clip((np.nan_to_num(a, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    return (out * 255.0 + 0.5).astype(np.uint8)


def _fallback_png(arr: np.ndarray, low_pct: float, high_pct: float) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_stretch(arr, low_pct, high_pct), mode="L").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def render_png(arr: np.ndarray, low_pct: float, high_pct: float) -> bytes:
    """8-bit grey PNG of a 2-D array, contrast stretched between two percentiles."""
    if not (0.0 <= low_pct < high_pct <= 100.0):
        raise ValueError(f"need 0 <= low < high <= 100, got low={low_pct}, high={high_pct}")
    try:  # the shared renderer, when present
        from ..pipeline.imaging import png_bytes
    except ImportError:
        return _fallback_png(arr, low_pct, high_pct)
    return png_bytes(arr, low_pct, high_pct)


@lru_cache(maxsize=128)
def _array(cache_dir: str, key: str, field: str) -> np.ndarray:
    try:
        entry = load_entry(Path(cache_dir), key)
    except CacheMissError as exc:
        raise ImageMissingError(str(exc)) from exc
    if field not in entry:
        raise ImageMissingError(f"cache entry {key} has no {field!r}")
    return entry[field]


def micrograph_png(cache_dir: Path, cache_key: str | None, kind: str, low_pct: float, high_pct: float) -> bytes:
    """The PNG of ``kind`` ('image' or 'spectrum') for a micrograph's cache entry."""
    if kind not in KINDS:
        raise ValueError(f"unknown image kind {kind!r}")
    if not cache_key:
        raise ImageMissingError("the micrograph has no preprocessed images; re-run `micrograde ingest`")
    return render_png(_array(str(cache_dir), cache_key, KINDS[kind]), low_pct, high_pct)
