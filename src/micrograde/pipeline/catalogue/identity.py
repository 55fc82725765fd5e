"""The identity of a cached micrograph: everything its cache entry was computed from.

A cache entry is named by a digest of its identity, which is

* the file's content digest and the frame;
* the effective inputs: the resolved pixel size and where it came from (header or ``--pixel-size``),
  the stack mode asked for (``auto``, ``movie``, ``micrographs``), the accelerating voltage used
  for the defocus measure and its source;
* the preprocessing (:meth:`PreprocessConfig.digest`);
* the versions of the code that produced it: the readers (``readers.READER_VERSION``), the features
  (``features.features_version()``: a digest of the registry's
  image features, names and versions) and the layout of an entry (:data:`CACHE_FORMAT`).

Changing any part gives a new key (the entry is recomputed) and the parts are stored with the
micrograph in the catalogue, so that ingest knows without decoding a file whether its entry is
current, and a user sees which pixel size and voltage each micrograph was graded with.

The parts a user chooses (an override pixel size, a stack mode, a voltage given on the command
line or in ``session.json``) are known before a file is read; :class:`IdentityRequest` holds them
and answers whether a catalogued micrograph matches without reading the file again (the other
parts follow from the file's bytes, which the content digest fixes).
"""

from __future__ import annotations

import hashlib
import json

from pydantic import Field

from micrograde.pipeline import features
from micrograde.pipeline.config import FrozenModel, IngestConfig
from micrograde.pipeline.io import readers

__all__ = [
    "CACHE_FORMAT",
    "DEFAULT_VOLTAGE_KV",
    "CacheIdentity",
    "IdentityRequest",
    "IDENTITY_COLUMNS",
]

#: Layout of a cache entry (its members and their meaning); bump when it changes.
CACHE_FORMAT = 2
#: Voltage assumed for the defocus measure when no header, session file or option gives one.
DEFAULT_VOLTAGE_KV = 300.0
#: Catalogue columns that hold the identity's parts (besides ``digest`` and ``frame``).
IDENTITY_COLUMNS = ("pixel_size", "pixel_size_source", "stack_mode", "voltage_kv", "voltage_source",
                    "preprocess_key", "reader_version", "features_version", "cache_format")


def _digest(payload: dict) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class CacheIdentity(FrozenModel):
    """What one cache entry was computed from (see the module docstring)."""

    content_digest: str
    frame: int = Field(ge=0)
    pixel_size: float = Field(gt=0)
    pixel_size_source: str
    stack_mode: str
    voltage_kv: float = Field(gt=0)
    voltage_source: str = Field(description="option, session (session.json), header, catalogue or default")
    preprocess_key: str
    reader_version: str = Field(default_factory=lambda: readers.READER_VERSION)
    features_version: str = Field(default_factory=lambda: features.features_version())
    cache_format: int = CACHE_FORMAT

    def key(self) -> str:
        """The cache key: a digest of every part (pixel size rounded to 1e-5 A)."""
        return _digest({**self.model_dump(mode="json"), "pixel_size": round(self.pixel_size, 5)})

    def catalogue_values(self) -> dict:
        """The parts as catalogue column values (``voltage_kv`` None when only the default was assumed)."""
        values = {name: getattr(self, name) for name in IDENTITY_COLUMNS}
        if self.voltage_source == "default":
            values["voltage_kv"] = None
        return values


class IdentityRequest(FrozenModel):
    """The identity parts chosen by the user for one ingest, known before any file is read."""

    pixel_size: float | None = None
    stack_mode: str = "auto"
    voltage_kv: float | None = None
    voltage_source: str | None = None
    preprocess_key: str
    permissive: bool = False
    reader_version: str = Field(default_factory=lambda: readers.READER_VERSION)
    features_version: str = Field(default_factory=lambda: features.features_version())
    cache_format: int = CACHE_FORMAT

    @classmethod
    def of(cls, cfg: IngestConfig, session_voltage: tuple[float, str] | None = None) -> IdentityRequest:
        """The request of an ingest configuration; ``session_voltage``: (kV, source) given for the session."""
        volt, source = session_voltage if session_voltage is not None else (None, None)
        return cls(pixel_size=cfg.pixel_size, stack_mode=cfg.stack, voltage_kv=volt, voltage_source=source,
                   preprocess_key=cfg.preprocess.digest(), permissive=cfg.permissive)

    def options_key(self) -> str:
        """A digest of the request: the same file ingested with the same request needs no work."""
        return _digest(self.model_dump(mode="json"))

    def matches(self, row) -> bool:
        """Whether a catalogued micrograph (an object with the identity columns) was computed for this request."""
        if any(getattr(row, name, None) is None for name in ("reader_version", "features_version", "cache_format",
                                                             "preprocess_key", "stack_mode", "voltage_source")):
            return False  # catalogued by micrograde 0.1.0: recompute once
        if (row.reader_version, row.features_version, int(row.cache_format), row.preprocess_key, row.stack_mode) != (
            self.reader_version, self.features_version, self.cache_format, self.preprocess_key, self.stack_mode
        ):
            return False
        if self.pixel_size is not None:
            if row.pixel_size_source != "override" or abs(float(row.pixel_size) - self.pixel_size) > 1e-5:
                return False
        elif row.pixel_size_source == "override":
            return False
        if self.voltage_kv is not None:
            return row.voltage_kv is not None and abs(float(row.voltage_kv) - self.voltage_kv) < 1e-6
        return row.voltage_source in ("header", "catalogue", "default")
