"""The feature registry: every per-micrograph quantity micrograde computes or imports, in one place.

A :class:`Feature` names a quantity (its unit, title, description, group and version) and says how
it is computed from a micrograph. The registry drives everything that lists features: the cache
entry's measures and its identity (:func:`features_version`), the catalogue's ``features`` column,
the grader's ``scores`` and ``measures`` blocks, the model card, ``predictions.csv``, the report's
plots and ranges, the out-of-distribution warnings and the labelling app. Adding a measure is one
entry in :data:`REGISTRY`; its name and version enter :func:`features_version`, so the next ingest
recomputes every cache entry once (as it does when an entry's ``version`` is bumped).

Groups:

- ``score``: the interpretable scores (:mod:`.scores`), shown first in reports and tables;
- ``measure``: the physical measures (:mod:`.measures`);
- ``local``: local statistics of 200 A tiles (:mod:`.local`): how brightness and texture vary over
  the field (carbon, vacuum, contamination are regions);
- ``ctf``: the user's own CTF estimates, imported from a RELION CtfFind STAR or cryoSPARC Patch CTF
  exposures (:mod:`micrograde.pipeline.io.ctf`); ``compute`` is ``None`` (not computed from pixels).

Computation: :class:`ImageInputs` holds one full-resolution image with its pixel size, and caches
the intermediate results several features share (the power spectrum, the directional bands, the
defocus fit), so every full-resolution pass runs once however many features read it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np

from micrograde.pipeline.signal import measures as m
from micrograde.pipeline.signal import scores as s
from micrograde.pipeline.signal.fourier import resample_to_pixel_size, shape_at_pixel_size
from micrograde.pipeline.signal.local import LOCAL_PIXEL_A, local_statistics
from micrograde.pipeline.signal.spectrum import PowerSpectrum, power_spectrum

__all__ = [
    "Feature",
    "ImageInputs",
    "GROUPS",
    "REGISTRY",
    "SCORE_COLUMNS",
    "IMAGE_FEATURES",
    "CTF_FEATURES",
    "features_of",
    "feature_names",
    "feature",
    "ctf_columns_with_values",
    "image_features",
    "features_version",
]

Group = Literal["score", "measure", "local", "ctf"]
#: The groups, in the order tables list them.
GROUPS: tuple[str, ...] = ("score", "measure", "local", "ctf")
#: Groups computed from the pixels (cached with a micrograph).
IMAGE_GROUPS: tuple[str, ...] = ("score", "measure", "local")


@dataclass(frozen=True)
class Feature:
    """One per-micrograph quantity.

    ``worse``: which direction means a worse micrograph (``"high"`` or ``"low"``), or ``None`` when
    neither does (defocus); reports and thresholds read it. ``compute`` takes :class:`ImageInputs`
    and returns a float (NaN where not measurable); ``None`` for imported (``ctf``) features.
    ``version``: bump it when the computation changes its results.
    """

    name: str
    unit: str
    title: str
    description: str
    group: Group
    version: int = 1
    compute: Callable[[ImageInputs], float] | None = field(default=None, compare=False, repr=False)
    worse: Literal["high", "low"] | None = "high"

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"feature {self.name}: group must be one of {GROUPS}, not {self.group!r}")
        if self.worse not in ("high", "low", None):
            raise ValueError(f"feature {self.name}: worse must be 'high', 'low' or None, not {self.worse!r}")
        if (self.compute is None) != (self.group == "ctf"):
            raise ValueError(f"feature {self.name}: image features need a compute function, imported ones none")


@dataclass(frozen=True)
class ImageInputs:
    """One full-resolution micrograph and what several features share, each computed once.

    ``image``: the full-resolution 2-D array (hot pixels already clipped by preprocessing);
    ``pixel_size`` in A/px; ``spectrum``: its power spectrum when already computed; ``coarse``:
    (a Fourier crop of ``image``, its pixel size) that real-space features may read instead of
    cropping the full image; ``dose`` (e/A^2, for transmission) and ``voltage_kv`` (for defocus).
    """

    image: np.ndarray
    pixel_size: float
    spectrum_given: PowerSpectrum | None = None
    coarse: tuple[np.ndarray, float] | None = None
    dose: float | None = None
    voltage_kv: float = 300.0

    @cached_property
    def spectrum(self) -> PowerSpectrum:
        if self.spectrum_given is not None:
            return self.spectrum_given
        return power_spectrum(np.asarray(self.image), self.pixel_size)

    @cached_property
    def directional_image(self) -> tuple[np.ndarray, float]:
        """The image at :data:`~.measures.DIRECTION_PIXEL_A` (from ``coarse`` when fine enough)."""
        src, src_ps = self.image, self.pixel_size
        if self.coarse is not None and self.coarse[1] <= m.DIRECTION_PIXEL_A * (1 + 1e-6):
            src, src_ps = self.coarse
        shape = np.shape(self.image)
        target = shape_at_pixel_size(shape, self.pixel_size, m.DIRECTION_PIXEL_A)
        if (self.coarse is not None and src is self.image and self.pixel_size < m.DIRECTION_PIXEL_A
                and np.shape(self.coarse[0]) == target):
            # the coarse image IS the crop of the image that resampling would make (a hair coarser than
            # DIRECTION_PIXEL_A by the rounding of its shape, as a K3 crop to 7.5 A): the same array,
            # without a second full-resolution FFT
            h, w = shape
            return (np.asarray(self.coarse[0], dtype=np.float32),
                    float(self.pixel_size * 0.5 * (h / target[0] + w / target[1])))
        return resample_to_pixel_size(src, src_ps, m.DIRECTION_PIXEL_A)

    @cached_property
    def directional(self) -> tuple[float, float, float]:
        return m.directional_power(*self.directional_image)

    @cached_property
    def carbon_low(self) -> np.ndarray:
        return resample_to_pixel_size(*self.directional_image, m.CARBON_PIXEL_A)[0]

    @cached_property
    def defocus(self) -> tuple[float, float]:
        return m.defocus(self.spectrum, self.voltage_kv)

    @cached_property
    def local(self) -> dict[str, float]:
        return local_statistics(self.carbon_low, LOCAL_PIXEL_A)


def _score(name, unit, title, description, compute, worse="high", version=1) -> Feature:
    return Feature(name, unit, title, description, "score", version, compute, worse)


def _measure(name, unit, title, description, compute, worse="high", version=1) -> Feature:
    return Feature(name, unit, title, description, "measure", version, compute, worse)


def _local(name, title, description, unit="", worse=None) -> Feature:
    return Feature(name, unit, title, description, "local", 1, lambda x: x.local[name], worse)


def _ctf(name, unit, title, description, worse="high", version=1) -> Feature:
    return Feature(name, unit, title, description, "ctf", version, None, worse)


#: Every feature, in the order tables, CSVs and the grader's blocks list them (scores, measures, CTF).
REGISTRY: tuple[Feature, ...] = (
    _score("ice_ring_score", "noise sigma", "Ice-ring score (crystalline ice, 3.4-3.9 A)",
           "excess of the brightest ring or spots in the 3.44-3.90 A ice band over its neighbourhood; ~0 vitreous, "
           ">> 1 crystalline", lambda x: s.ice_ring_score(x.spectrum)),
    _score("thon_reach_A", "A", "Thon-ring reach",
           "finest resolution up to which Thon rings are reproducible between two halves of the tiles "
           "(lower is better)", lambda x: s.thon_reach(x.spectrum)),
    _score("anisotropy", "", "Spectrum anisotropy",
           "1 - min/max of the directional power in 1/40-1/5 1/A (drift, astigmatism); 0 isotropic",
           lambda x: s.anisotropy(x.spectrum)),
    _score("contrast", "", "Contrast",
           "std of the image low-passed to 20 A over the raw noise at 1 A pixels (thick ice gives low values)",
           lambda x: s.contrast(x.image, x.pixel_size, coarse=x.coarse), worse="low"),
    _score("dark_fraction", "fraction", "Dark (contaminated) fraction",
           "area darker than median - 4 robust sigma after a 50 A low-pass (contamination, thick carbon)",
           lambda x: s.dark_fraction(x.image, x.pixel_size, coarse=x.coarse)),
    _measure("crystalline_area", "fraction", "Crystalline area",
             "fraction of 160 A tiles whose 3.44-3.90 A ice band holds lattice spots",
             lambda x: m.crystalline_area(x.image, x.pixel_size)),
    _measure("transmission", "fraction", "Transmission",
             "median counts per pixel over the nominal dose per pixel (thick ice passes fewer electrons)",
             lambda x: m.transmission(x.image, x.pixel_size, x.dose), worse="low"),
    _measure("carbon_area", "fraction", "Carbon area",
             "fraction of the field (25 A low-pass) more than 7 % darker than its brightest 2 %",
             lambda x: m.carbon_area(x.carbon_low)),
    _measure("directional_low", "log10 power", "Directional power, 62-125 A",
             "max - min over 12 direction sectors of log10 power in 1/125-1/62 1/A (drift, carbon edges)",
             lambda x: x.directional[0]),
    _measure("directional_mid", "log10 power", "Directional power, 33-62 A",
             "max - min over 12 direction sectors of log10 power in 1/62-1/33 1/A", lambda x: x.directional[1]),
    _measure("directional_high", "log10 power", "Directional power, 16.7-33 A",
             "max - min over 12 direction sectors of log10 power in 1/33-1/16.7 1/A", lambda x: x.directional[2]),
    _measure("defocus_um", "um", "Defocus (from the Thon-ring period)",
             "defocus from the Thon-ring period in k^2 of the rotationally averaged spectrum",
             lambda x: x.defocus[0], worse=None),
    _measure("defocus_quality", "", "Defocus fit quality",
             "peak over median of the Thon-ring periodogram (low when rings are weak)",
             lambda x: x.defocus[1], worse="low"),
    _local("local_z02", "Darkest tiles (2 %)", "2nd percentile of 200 A tile means, (m - median) / median tile std "
           "(contamination, carbon)", "tile std", worse="low"),
    _local("local_z10", "Dark tiles (10 %)", "10th percentile of the tile means, in median tile std", "tile std",
           worse="low"),
    _local("local_z90", "Bright tiles (90 %)", "90th percentile of the tile means, in median tile std", "tile std"),
    _local("local_z98", "Brightest tiles (2 %)", "98th percentile of the tile means, in median tile std (vacuum)",
           "tile std", worse="high"),
    _local("local_texture10", "Smooth tiles (10 %)", "10th percentile of tile std over the median tile std"),
    _local("local_texture90", "Rough tiles (90 %)", "90th percentile of tile std over the median tile std"),
    _local("local_dark_fraction", "Far darker tiles", "fraction of tiles more than 3 median tile std darker than "
           "the median", "fraction", worse="high"),
    _local("local_bright_fraction", "Far brighter tiles", "fraction of tiles more than 3 median tile std brighter "
           "than the median", "fraction", worse="high"),
    _local("local_flat_fraction", "Flat tiles", "fraction of tiles with std under 0.6 x the median (no particles: "
           "vacuum, film)", "fraction", worse="high"),
    _local("local_rough_fraction", "Rough tiles", "fraction of tiles with std over 1.6 x the median (edges, "
           "blobs)", "fraction", worse="high"),
    _local("local_ratio02", "Darkest tiles, intensity ratio", "2nd percentile of tile mean / median tile mean "
           "(counts only)", worse="low"),
    _local("local_ratio98", "Brightest tiles, intensity ratio", "98th percentile of tile mean / median tile mean "
           "(counts only)", worse="high"),
    _local("local_ratio_dark_fraction", "Darker tiles, by ratio", "fraction of tiles more than 4 % darker than the "
           "median (counts only)", "fraction", worse="high"),
    _local("local_ratio_bright_fraction", "Brighter tiles, by ratio", "fraction of tiles more than 4 % brighter "
           "than the median (counts only)", "fraction", worse="high"),
    _local("local_mean_texture_corr", "Brightness-texture correlation", "correlation of tile mean and tile std "
           "over the field"),
    _ctf("ctf_resolution_A", "A", "CTF fit resolution",
         "resolution to which the user's CTF fit holds (RELION _rlnCtfMaxResolution, cryoSPARC "
         "ctf_stats/ctf_fit_to_A); lower is better"),
    _ctf("ctf_figure_of_merit", "", "CTF figure of merit",
         "CTFFIND's figure of merit (RELION _rlnCtfFigureOfMerit)", worse="low"),
    _ctf("ctf_astigmatism_A", "A", "CTF astigmatism",
         "defocus difference between the ellipse axes (RELION _rlnCtfAstigmatism; cryoSPARC |df1 - df2|)"),
    _ctf("ctf_defocus_um", "um", "CTF defocus",
         "mean defocus of the user's fit ((DefocusU + DefocusV) / 2)", worse=None),
    _ctf("ctf_ice_ring_density", "", "CTF ice-ring density",
         "power in the ice-ring band of the user's fit (RELION 5 _rlnCtfIceRingDensity)"),
    _ctf("ctf_ice_thickness", "relative", "Relative ice thickness",
         "cryoSPARC Patch CTF's relative ice thickness (ctf_stats/ice_thickness_rel)"),
)


def _check(registry: Iterable[Feature]) -> None:
    names = [f.name for f in registry]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"feature names must be unique: {', '.join(dupes)}")


_check(REGISTRY)


def features_of(*groups: str) -> tuple[Feature, ...]:
    """The registry's features of ``groups`` (all when none given), in registry order."""
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown feature group(s) {unknown}; groups are {GROUPS}")
    return tuple(f for f in REGISTRY if not groups or f.group in groups)


def feature_names(*groups: str) -> tuple[str, ...]:
    """The names of :func:`features_of` ``groups``."""
    return tuple(f.name for f in features_of(*groups))


def feature(name: str) -> Feature | None:
    """The registry entry called ``name``, or None."""
    return next((f for f in REGISTRY if f.name == name), None)


def ctf_columns_with_values(rows) -> list[str]:
    """The ``ctf`` features (the user's CTF estimates) that some row of the table ``rows`` has a finite value for,
    in registry order: the CTF columns a run's predictions and a grader's inputs carry."""
    import pandas as pd

    return [n for n in feature_names("ctf") if n in rows.columns
            and np.isfinite(pd.to_numeric(rows[n], errors="coerce").to_numpy(dtype=float)).any()]


def image_features(image: np.ndarray | ImageInputs, pixel_size: float | None = None, **inputs) -> dict[str, float]:
    """Every feature computed from the pixels (scores, then measures), by name; NaN where not measurable.

    ``image``: a full-resolution micrograph with its ``pixel_size`` (A/px), or an :class:`ImageInputs`.
    ``inputs``: the other fields of :class:`ImageInputs` (``spectrum_given``, ``coarse``, ``dose``,
    ``voltage_kv``).
    """
    if isinstance(image, ImageInputs):
        x = image
    elif pixel_size is None:
        raise TypeError("pass an ImageInputs, or an image and its pixel_size")
    else:
        x = ImageInputs(np.asarray(image), float(pixel_size), **inputs)
    return {f.name: float(f.compute(x)) for f in features_of(*IMAGE_GROUPS) if f.compute is not None}


def features_version() -> str:
    """A digest of the names and versions of the features computed from the pixels: part of every cache
    entry's identity, so a new, removed or changed feature recomputes each entry once."""
    text = ";".join(f"{f.name}:{f.version}" for f in features_of(*IMAGE_GROUPS))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Names at import (prefer :func:`feature_names`, which follows a changed registry).
SCORE_COLUMNS: tuple[str, ...] = feature_names("score")
IMAGE_FEATURES: tuple[str, ...] = feature_names(*IMAGE_GROUPS)
CTF_FEATURES: tuple[str, ...] = feature_names("ctf")
