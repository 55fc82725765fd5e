"""PNG renderings of a micrograph's cached arrays for the labelling page (by catalogue id only).

Speed matters here (the time to the next micrograph): uint8 thumbnails are stretched through a
256-entry lookup table built from their histogram, floats (spectra) with
:func:`pipeline.imaging.to_uint8`; PNGs use fast zlib compression, and recent renderings and
loaded cache entries are kept in small in-memory LRU caches.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from micrograde.pipeline.catalogue.cache import CacheMissError, load_entry
from micrograde.pipeline.signal.display import to_uint8

__all__ = ["KINDS", "ImageMissingError", "stretch_uint8", "render_png", "micrograph_png"]

#: Which cached array each image kind shows.
KINDS: dict[str, str] = {"image": "thumbnail", "spectrum": "spectrum"}


class ImageMissingError(LookupError):
    """The micrograph has no cached rendering (no cache key, or the cache was cleaned)."""


def stretch_uint8(arr: np.ndarray, low_pct: float, high_pct: float) -> np.ndarray:
    """Percentile stretch of a uint8 image through a lookup table (nearest-rank percentiles)."""
    cdf = np.cumsum(np.bincount(arr.ravel(), minlength=256))
    n = int(cdf[-1])
    if n == 0:
        return np.zeros(arr.shape, dtype=np.uint8)
    lo = int(np.searchsorted(cdf, low_pct / 100.0 * n, side="left"))
    hi = int(np.searchsorted(cdf, high_pct / 100.0 * n, side="left"))
    hi = min(hi, 255)
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    lut = np.clip((np.arange(256, dtype=np.float32) - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)
    return lut[arr]


def render_png(arr: np.ndarray, low_pct: float, high_pct: float) -> bytes:
    """8-bit grey PNG of a 2-D array, contrast stretched between two percentiles."""
    if not (0.0 <= low_pct < high_pct <= 100.0):
        raise ValueError(f"need 0 <= low < high <= 100, got low={low_pct}, high={high_pct}")
    a = np.asarray(arr)
    img = stretch_uint8(a, low_pct, high_pct) if a.dtype == np.uint8 else to_uint8(a, low_pct, high_pct)
    buf = io.BytesIO()
    Image.fromarray(img, mode="L").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@lru_cache(maxsize=64)
def _display_arrays(cache_dir: str, key: str) -> dict[str, np.ndarray]:
    try:
        entry = load_entry(Path(cache_dir), key)
    except CacheMissError as exc:
        raise ImageMissingError(str(exc)) from exc
    return {f: entry[f] for f in KINDS.values() if f in entry}


def _array(cache_dir: str, key: str, field: str) -> np.ndarray:
    arrays = _display_arrays(cache_dir, key)
    if field not in arrays:
        raise ImageMissingError(f"cache entry {key} has no {field!r}")
    return arrays[field]


@lru_cache(maxsize=128)
def _png(cache_dir: str, key: str, field: str, low_pct: float, high_pct: float) -> bytes:
    return render_png(_array(cache_dir, key, field), low_pct, high_pct)


def micrograph_png(cache_dir: Path, cache_key: str | None, kind: str, low_pct: float, high_pct: float) -> bytes:
    """The PNG of ``kind`` ('image' or 'spectrum') for a micrograph's cache entry."""
    if kind not in KINDS:
        raise ValueError(f"unknown image kind {kind!r}")
    if not cache_key:
        raise ImageMissingError("the micrograph has no preprocessed images; re-run `micrograde ingest`")
    return _png(str(cache_dir), cache_key, KINDS[kind], float(low_pct), float(high_pct))
