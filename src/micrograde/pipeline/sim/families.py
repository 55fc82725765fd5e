"""The simulator's rendering families: name -> sessions, parameter sampler, renderer, label rule.

Benchmarks train on one family and test on the other; each session names its family
(``SimSession.family``), so a collection may mix them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from micrograde.pipeline.sim.family_b import B_RULES, B_SESSIONS, FamilyBParams, label_b, render_b, sample_b
from micrograde.pipeline.sim.model import (
    DEFAULT_SESSIONS,
    FAMILY_CHOICES,
    FAMILY_NAMES,
    Rendered,
    SimParams,
    SimSession,
    params_to_row,
)
from micrograde.pipeline.sim.physics import render_micrograph
from micrograde.pipeline.sim.rules import RULES, Rule, label_for, sample_params

__all__ = ["Family", "FAMILIES", "FAMILY_CHOICES", "get_family", "family_sessions", "render", "simulate_micrograph",
           "sample_with_region"]


@dataclass(frozen=True)
class Family:
    """One rendering family of the simulator."""

    name: str
    description: str
    sessions: tuple[SimSession, ...]  # its default sessions
    params_type: type
    rules: tuple[Rule, ...]
    sample: Callable[[np.random.Generator, SimSession, str | None], Any]  # (rng, session, target) -> params
    render: Callable[[Any, SimSession, np.random.Generator], Rendered]  # (params, session, rng) -> image, mask
    label: Callable[[Any], tuple[str, tuple[str, ...]]]  # params -> (label, reasons)
    columns: tuple[str, ...]  # its parameter columns in truth.csv
    row: Callable[[Any], dict[str, object]]  # params -> those columns' values
    regions: Callable[[Any], dict[str, float]]  # params -> intended area fraction of each masked defect class


def a_regions(params: SimParams) -> dict[str, float]:
    """Family a's intended area fractions of the mask's defect classes (``DEFECT_CLASSES``)."""
    return {"carbon": params.carbon_fraction, "contamination": params.contamination,
            "crystalline": params.crystalline_fraction, "empty": params.vacuum_fraction}


def b_regions(params: FamilyBParams) -> dict[str, float]:
    """Family b's intended area fractions of the mask's defect classes (``DEFECT_CLASSES``)."""
    return {"carbon": params.carbon_area, "contamination": params.contamination_area,
            "crystalline": params.crystalline_area, "empty": params.vacuum_area}


def b_row(params: FamilyBParams) -> dict[str, object]:
    """Family b's truth.csv values: its parameters and the transmission its thick-ice rule reads."""
    return {**params_to_row(params), "transmission": round(params.transmission, 5)}


FAMILIES: dict[str, Family] = {
    "a": Family(
        name="a",
        description="Gaussian-lobe particles, 1/f ice, soft blobs, real-space lattices, B-factor, linear drift",
        sessions=DEFAULT_SESSIONS,
        params_type=SimParams,
        rules=RULES,
        sample=sample_params,
        render=render_micrograph,
        label=label_for,
        columns=SimParams.field_names(),
        row=params_to_row,
        regions=a_regions,
    ),
    "b": Family(
        name="b",
        description="ellipsoid molecules, holey film, Fourier-space Bragg spots, coherence envelopes, MTF, "
        "curved drift",
        sessions=B_SESSIONS,
        params_type=FamilyBParams,
        rules=B_RULES,
        sample=sample_b,
        render=render_b,
        label=label_b,
        columns=(*FamilyBParams.field_names(), "transmission"),
        row=b_row,
        regions=b_regions,
    ),
}
if tuple(FAMILIES) != FAMILY_NAMES:  # pragma: no cover - a new family is registered in both places
    raise ImportError(f"FAMILIES {tuple(FAMILIES)} disagree with model.FAMILY_NAMES {FAMILY_NAMES}")


def get_family(name: str) -> Family:
    """The family called ``name`` (``a`` or ``b``); a clear error for anything else."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown simulator family {name!r}; expected one of {tuple(FAMILIES)}") from None


def family_sessions(family: str, count: int | None = None) -> tuple[SimSession, ...]:
    """The default sessions of ``family`` (``both``: a's then b's), the first ``count`` of each."""
    names = tuple(FAMILIES) if family == "both" else (get_family(family).name,)
    out: list[SimSession] = []
    for name in names:
        sessions = FAMILIES[name].sessions
        if count is not None and not 1 <= count <= len(sessions):
            raise ValueError(f"family {name} has {len(sessions)} sessions; asked for {count}")
        out.extend(sessions[:count])
    return tuple(out)


def render(params: object, session: SimSession, rng: np.random.Generator) -> Rendered:
    """Render one micrograph and its mask with the family of ``session``."""
    family = get_family(session.family)
    if not isinstance(params, family.params_type):
        raise TypeError(f"session {session.name!r} is family {family.name}: expected {family.params_type.__name__}")
    return family.render(params, session, rng)


def simulate_micrograph(params: object, session: SimSession, rng: np.random.Generator) -> np.ndarray:
    """Render one micrograph (the image only) with the family of ``session``."""
    return render(params, session, rng).image


def sample_with_region(rng: np.random.Generator, session: SimSession, region: str | None, *,
                       min_area: float = 0.02, max_draws: int = 400) -> object:
    """Parameters of one micrograph of ``session`` in which the mask class ``region`` (a defect class:
    carbon, contamination, crystalline, empty) covers at least ``min_area`` of the field.

    Parameters are drawn (cheaply, nothing is rendered) with target labels bad and medium in turn
    until one qualifies; after ``max_draws`` the draw with the largest area is returned. ``None``
    draws one micrograph with the natural label frequencies. Mask training uses it to see every
    class often, however rare the class is among the natural draws.
    """
    family = get_family(session.family)
    if region is None:
        return family.sample(rng, session, None)
    best, best_area = None, -1.0
    for k in range(max_draws):
        params = family.sample(rng, session, ("bad", "medium")[k % 2])
        area = family.regions(params).get(region)
        if area is None:
            raise ValueError(f"unknown mask region {region!r}; family {family.name} draws "
                             f"{tuple(family.regions(params))}")
        if area >= min_area:
            return params
        if area > best_area:
            best, best_area = params, area
    return best
