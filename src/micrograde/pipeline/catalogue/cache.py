"""Content-addressed cache of preprocessed micrographs.

The key is a digest of the file's content digest, the frame index and the preprocessing
configuration, so re-ingesting the same bytes with the same parameters finds the entry, and
changed parameters give a new key (the old entry stays until the cache is cleaned). Entries are
``.npz`` files written atomically; the cache may be deleted at any time and is rebuilt by ingest.

Arrays in an entry:

- ``image``: float32 (image_size, image_size), robustly normalised, at ``image_pixel_size``: the
  field is Fourier-cropped to the target pixel size (never finer), then so that its short side
  fits ``image_size`` (the long side is centre-cropped; see docs/preprocessing.md)
- ``image_pixel_size``: float32 scalar, A/px of ``image``
- ``spectrum``: float32 (spectrum_size, spectrum_size), log power spectrum from the
  full-resolution image on the fixed frequency grid, normalised; zeros when unavailable
- ``thumbnail``: uint8 (h, w), display image keeping the detector's aspect ratio
- ``radial``: float32 (n,), radial profile of the power spectrum; ``radial_freq``: its 1/A axis
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from micrograde.pipeline.io.atomic import atomic_save_npz
from micrograde.pipeline.config import PreprocessConfig

__all__ = ["cache_key", "cache_path", "save_entry", "load_entry", "load_measures", "entry_measures", "has_entry",
           "CacheMissError"]


class CacheMissError(FileNotFoundError):
    """The cache entry is missing (the cache was cleaned): re-run ingest to rebuild it."""


def cache_key(content_digest: str, frame: int, config: PreprocessConfig) -> str:
    h = hashlib.sha256(f"{content_digest}:{frame}:{config.digest()}".encode())
    return h.hexdigest()[:32]


def cache_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / key[:2] / f"{key}.npz"


def has_entry(cache_dir: Path, key: str) -> bool:
    return cache_path(cache_dir, key).is_file()


def save_entry(cache_dir: Path, key: str, **arrays: np.ndarray) -> Path:
    path = cache_path(cache_dir, key)
    atomic_save_npz(path, **arrays)
    return path


def load_entry(cache_dir: Path, key: str) -> dict[str, np.ndarray]:
    path = cache_path(cache_dir, key)
    try:
        with np.load(path) as npz:
            return {name: npz[name] for name in npz.files}
    except FileNotFoundError as exc:
        raise CacheMissError(f"cache entry {key} is missing ({path}); re-run `micrograde ingest`") from exc


def entry_measures(entry) -> dict[str, float] | None:
    """The physical measures of an entry (a loaded dict or an open npz) by name; None when it has none."""
    if "measures" not in entry or "measure_names" not in entry:
        return None
    return {str(n): float(v) for n, v in zip(entry["measure_names"], entry["measures"], strict=True)}


def load_measures(cache_dir: Path, key: str) -> dict[str, float]:
    """The physical measures of one entry by name (only those members are read)."""
    path = cache_path(cache_dir, key)
    try:
        with np.load(path) as npz:
            found = entry_measures(npz)
    except FileNotFoundError as exc:
        raise CacheMissError(f"cache entry {key} is missing ({path}); re-run `micrograde ingest`") from exc
    if found is None:
        raise CacheMissError(f"cache entry {key} has no physical measures (written by an older micrograde); "
                             "re-run `micrograde ingest` on its micrograph")
    return found
