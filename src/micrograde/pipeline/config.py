"""Typed configuration shared by the command line, the flows and the library.

Every object is a pydantic model with ``extra="forbid"`` and frozen, so a typo in a
session file or a keyword is an error, and a configuration can be hashed into cache keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "LABELS",
    "EXPERTISE_LEVELS",
    "REASON_TAGS",
    "Label",
    "Expertise",
    "StackMode",
    "FrozenModel",
    "PreprocessConfig",
    "SessionMeta",
    "IngestConfig",
    "config_digest",
    "ASSESS_CHUNK_SIZE",
]

#: Micrographs an assessment grades and writes at a time (its memory depends on this, not on the run's size).
ASSESS_CHUNK_SIZE = 256
#: Class order used everywhere (model outputs, probabilities, confusion matrices).
LABELS: tuple[str, ...] = ("good", "medium", "bad")
#: Expertise levels, lowest to highest.
EXPERTISE_LEVELS: tuple[str, ...] = ("undergrad", "grad", "postdoc", "senior-scientist")
#: Reason tags an annotator may attach to a label.
REASON_TAGS: tuple[str, ...] = (
    "crystalline-ice",
    "thick-ice",
    "contamination",
    "drift",
    "empty",
    "carbon",
    "crack",
    "other",
)

Label = Literal["good", "medium", "bad"]
Expertise = Literal["undergrad", "grad", "postdoc", "senior-scientist"]
StackMode = Literal["auto", "movie", "micrographs"]


class FrozenModel(BaseModel):
    """Base for every configuration object: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PreprocessConfig(FrozenModel):
    """How a full-resolution micrograph becomes cached model inputs and scores."""

    target_pixel_size: float = Field(4.0, gt=0, description="Angstrom per pixel after Fourier cropping")
    image_size: int = Field(256, ge=32, le=2048, description="side of the square cached image (pixels)")
    spectrum_size: int = Field(256, ge=32, le=2048, description="side of the square cached power spectrum")
    spectrum_tile: int = Field(256, ge=64, description="tile side of the tile-averaged periodogram")
    spectrum_max_freq: float = Field(
        1 / 3.2, gt=0, description="highest spatial frequency (1/A) on the fixed spectrum grid"
    )
    clip_sigma: float = Field(4.0, gt=0, description="outlier clip (in robust sigma) before standardising")
    thumbnail_size: int = Field(512, ge=64, le=2048, description="side of the display thumbnail")
    view_pixel_size: float = Field(8.0, gt=0, description="Angstrom per pixel of the cached whole-field view "
                                   "(the grader's and the mask model's image: the same physical scale everywhere)")
    view_max_side: int = Field(1024, ge=64, le=4096, description="longest side of the view; a larger field is "
                               "Fourier-cropped further (its pixel size is recorded)")

    #: Fields removed since micrograde 0.1.0, with the value every 0.1.0 digest included (the voltage
    #: is now per session, part of a micrograph's cache identity): 0.1.0 keys and model cards stay valid.
    _REMOVED: ClassVar[dict[str, Any]] = {"voltage_kv": 300.0}
    #: Fields added since 0.1.0. They enter the digest only when set to something else than their
    #: default, so adding a field orphans no cache entry and no model; changing a default changes
    #: results and needs its feature's ``version`` bumped in the registry (pipeline/features.py) instead.
    _ADDED: ClassVar[frozenset[str]] = frozenset({"view_pixel_size", "view_max_side"})

    def digest(self) -> str:
        """A short, stable digest of the preprocessing (the ``preprocess_key`` of micrographs and models)."""
        values = {**self._REMOVED, **self.model_dump(mode="json")}
        for name in self._ADDED:
            if getattr(self, name) == type(self).model_fields[name].default:
                values.pop(name)
        return _digest_of(values)


class SessionMeta(FrozenModel):
    """Acquisition metadata of a session (grid square collection).

    Given on the command line, in a ``session.json`` file in the session folder, or read from
    MRC/EPU headers where present. Unknown values stay ``None``.
    """

    name: str | None = None
    microscope: str | None = None
    detector: str | None = None
    grid_material: str | None = Field(None, description="e.g. Cu, Au")
    grid_maker: str | None = Field(None, description="e.g. Quantifoil, C-flat, UltrAuFoil")
    dose: float | None = Field(None, ge=0, description="total dose, e/A^2")
    voltage_kv: float | None = Field(None, gt=0, description="accelerating voltage, kV (for the defocus measure)")


class IngestConfig(FrozenModel):
    """Options of one ingest run."""

    session: str | None = Field(None, description="session name; default: EPU metadata, session.json, else the "
                                "nearest folder with a non-generic name (sessions.py)")
    pixel_size: float | None = Field(None, gt=0, description="Angstrom/pixel for files whose header has none")
    stack: StackMode = "auto"
    recursive: bool = True
    permissive: bool = False
    meta: SessionMeta = SessionMeta()
    preprocess: PreprocessConfig = PreprocessConfig()
    star: str | None = Field(None, description="a RELION CtfFind micrographs STAR: its CTF estimates are stored with "
                             "the micrographs they name (pipeline/io/ctf.py)")
    cs: str | None = Field(None, description="a cryoSPARC Patch CTF exposures .cs: its CTF estimates are stored "
                           "with the micrographs they name")


def config_digest(model: BaseModel | Mapping[str, Any]) -> str:
    """A short, stable digest of a configuration, or of the JSON values of one (sorted JSON, sha256)."""
    return _digest_of(dict(model) if isinstance(model, Mapping) else model.model_dump(mode="json"))


def _digest_of(values: dict) -> str:
    payload = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
