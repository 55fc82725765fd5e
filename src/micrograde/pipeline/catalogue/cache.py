"""Content-addressed cache of preprocessed micrographs.

The key is a digest of the entry's identity (:mod:`.identity`: the file's content digest and
frame, the effective pixel size, stack mode and voltage, the preprocessing, and the versions of the
readers, the features and this layout), so re-ingesting the same bytes with the same inputs finds
the entry, and any change gives a new key (the old entry stays until the cache is cleaned).
Entries are ``.npz`` files written atomically; the cache may be deleted at any time and is rebuilt
by ingest.

Arrays in an entry:

- ``image``: float32 (image_size, image_size), robustly normalised, at ``image_pixel_size``: the
  field is Fourier-cropped to the target pixel size (never finer), then so that its short side
  fits ``image_size`` (the long side is centre-cropped; see docs/preprocessing.md)
- ``image_pixel_size``: float32 scalar, A/px of ``image``
- ``spectrum``: float32 (spectrum_size, spectrum_size), log power spectrum from the
  full-resolution image on the fixed frequency grid, normalised; zeros when unavailable
- ``thumbnail``: uint8 (h, w), display image keeping the detector's aspect ratio
- ``radial``: float32 (n,), radial profile of the power spectrum; ``radial_freq``: its 1/A axis
- ``measures``, ``measure_names``: every image feature of the registry (``pipeline/features.py``:
  scores and physical measures), by name
- ``identity``: the identity as JSON text; ``cache_format``: int32, the layout version
  (``identity.CACHE_FORMAT``; entries of micrograde 0.1.0 have neither)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from micrograde.pipeline.io.atomic import atomic_save_npz

if TYPE_CHECKING:
    from micrograde.pipeline.signal.preprocess import Preprocessed

__all__ = ["cache_path", "save_entry", "load_entry", "load_measures", "entry_measures", "has_entry",
           "entry_arrays", "CacheMissError"]


class CacheMissError(FileNotFoundError):
    """The cache entry is missing (the cache was cleaned): re-run ingest to rebuild it."""


def cache_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / key[:2] / f"{key}.npz"


def has_entry(cache_dir: Path, key: str) -> bool:
    return cache_path(cache_dir, key).is_file()


def save_entry(cache_dir: Path, key: str, **arrays: np.ndarray) -> Path:
    path = cache_path(cache_dir, key)
    atomic_save_npz(path, **arrays)
    return path


def entry_arrays(out: Preprocessed) -> dict[str, np.ndarray]:
    """The arrays of a cache entry for one preprocessed micrograph (all but ``identity`` and ``cache_format``)."""
    names = tuple(out.features)
    return dict(
        image=out.image,
        spectrum=out.spectrum,
        thumbnail=out.thumbnail,
        radial=out.radial,
        radial_freq=out.radial_freq,
        image_pixel_size=np.array(out.pixel_size, dtype=np.float32),
        view=out.view,
        view_pixel_size=np.array(out.view_pixel_size, dtype=np.float32),
        measures=np.array([out.features[n] for n in names], dtype=np.float32),
        measure_names=np.array(names),
    )


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
