"""The micrograph simulator: two independent rendering families, label rules, ground-truth masks.

``FAMILIES`` maps a family name (``a``, ``b``) to its default sessions, parameter sampler,
renderer and label rule; ``write_collection`` writes micrographs, masks and ``truth.csv``;
mask codes come from :mod:`micrograde.pipeline.masks`. See ``docs/simulator.md``.

Names are loaded on first use, so that importing a light part (``sim.model``, e.g. by the
command line) does not load every renderer.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "FAMILIES": "families",
    "Family": "families",
    "family_sessions": "families",
    "get_family": "families",
    "render": "families",
    "simulate_micrograph": "families",
    "write_collection": "files",
    "write_micrograph": "files",
    "noisy_labels": "files",
    "truth_columns": "files",
    "FAMILY_CHOICES": "model",
    "FAMILY_NAMES": "model",
    "Rendered": "model",
    "SimSession": "model",
    "SimParams": "model",
    "DEFAULT_SESSIONS": "model",
    "FamilyBParams": "family_b",
    "B_SESSIONS": "family_b",
}
_MASKS = ("MASK_CLASSES", "MASK_CODES", "PRECEDENCE")

__all__ = [*_WHERE, *_MASKS]


def __getattr__(name: str) -> Any:
    if name in _MASKS:
        return getattr(importlib.import_module("micrograde.pipeline.masks"), name)
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
