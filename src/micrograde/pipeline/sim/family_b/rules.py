"""Family b's label rules and parameter sampling (table in ``docs/simulator.md``, "Family b").

The rules mean what family a's mean (an expert grades both the same way) but are stated on
family b's own parameters:

======================  ==============  ==============  ===============
parameter               medium when     bad when        reason tag
======================  ==============  ==============  ===============
crystalline_area        > 0.03          > 0.15          crystalline-ice
transmission            < 0.80          < 0.70          thick-ice
contamination_area      > 0.05          > 0.15          contamination
drift_path_A            > 12            > 36            drift
carbon_area             > 0.20          > 0.50          carbon
vacuum_area             > 0.05          > 0.25          empty
defocus_um              > 3.0           (never)         other
n_particles == 0        (never)         always          empty
======================  ==============  ==============  ===============

``transmission`` is ``exp(-ice_thickness_nm / mfp)`` with the inelastic mean free path of the
session's voltage (350 nm at 300 kV, 282 nm at 200 kV). Sampling hits a wanted label like
family a's, with its own bands, and puts the deciding value close to a threshold (on the right
side of it) in about 15 % of the micrographs, so that the classes are not trivially separable.
"""

from __future__ import annotations

import math

import numpy as np

from micrograde.pipeline.config import LABELS
from micrograde.pipeline.sim.family_b.model import (
    CONTAMINANTS,
    CRYSTAL_FORMS,
    FamilyBParams,
    inelastic_mean_free_path_nm,
    session_traits,
)
from micrograde.pipeline.sim.family_b.specimen import AREA_FACTOR
from micrograde.pipeline.sim.model import SimSession
from micrograde.pipeline.sim.rules import Rule, grade, pick_weighted

__all__ = ["B_RULES", "BORDERLINE_SHARE", "label_b", "sample_b"]

B_RULES: tuple[Rule, ...] = (
    Rule("crystalline_area", "crystalline-ice", 0.03, 0.15),
    Rule("transmission", "thick-ice", 0.80, 0.70, lower_is_worse=True),
    Rule("contamination_area", "contamination", 0.05, 0.15),
    Rule("drift_path_A", "drift", 12.0, 36.0),
    Rule("carbon_area", "carbon", 0.20, 0.50),
    Rule("vacuum_area", "empty", 0.05, 0.25),
    Rule("defocus_um", "other", 3.0, None),
)
_RULE = {r.parameter: r for r in B_RULES}
#: share of micrographs whose deciding value lies within a narrow band next to a threshold
BORDERLINE_SHARE = 0.15

# (low, high) per level 0 good / 1 medium / 2 bad
_BANDS: dict[str, tuple[tuple[float, float], ...]] = {
    "crystalline_area": ((0.003, 0.02), (0.045, 0.12), (0.18, 0.55)),
    "transmission": ((0.83, 0.95), (0.72, 0.785), (0.50, 0.68)),
    "contamination_area": ((0.002, 0.02), (0.065, 0.13), (0.18, 0.45)),
    "drift_path_A": ((0.0, 1.5), (15.0, 32.0), (42.0, 95.0)),
    "carbon_area": ((0.02, 0.15), (0.25, 0.45), (0.55, 0.85)),
    "vacuum_area": ((0.005, 0.03), (0.07, 0.2), (0.3, 0.6)),
    "defocus_um": ((0.5, 2.8), (3.1, 3.5), (3.1, 3.5)),
}
# width of the band next to a threshold that borderline values are drawn from
_BORDER = {"crystalline_area": 0.012, "transmission": 0.015, "contamination_area": 0.012, "drift_path_A": 3.0,
           "carbon_area": 0.04, "vacuum_area": 0.015, "defocus_um": 0.12}  # fmt: skip
_ZERO_WHEN_GOOD = {"crystalline_area": 0.8, "contamination_area": 0.55, "carbon_area": 0.7, "vacuum_area": 0.9}
_MEDIUM_WEIGHTS = {"crystalline_area": 0.22, "transmission": 0.2, "contamination_area": 0.2, "drift_path_A": 0.14,
                   "carbon_area": 0.1, "vacuum_area": 0.07, "defocus_um": 0.07}  # fmt: skip
_BAD_WEIGHTS = {"crystalline_area": 0.25, "transmission": 0.17, "contamination_area": 0.17, "drift_path_A": 0.13,
                "carbon_area": 0.1, "vacuum_area": 0.08, "no-particles": 0.1}  # fmt: skip
_NATURAL_LABEL_P = (0.45, 0.33, 0.22)
# a second reason never hides the deciding one: drift blurs the 3.4-3.9 A lattice away
_HIDES = {"crystalline_area": ("drift_path_A",), "drift_path_A": ("crystalline_area",)}


def label_b(params: FamilyBParams) -> tuple[str, tuple[str, ...]]:
    """Family b's ground-truth label and reason tags."""
    return grade(B_RULES, params, no_particles=params.n_particles == 0)


def _border_value(rng: np.random.Generator, name: str, level: int) -> float:
    """A value within ``_BORDER[name]`` of a threshold, on the side that gives ``level``."""
    rule, width = _RULE[name], _BORDER[name]
    sign = -1.0 if rule.lower_is_worse else 1.0  # direction in which values get worse
    eps = 0.02 * width
    near_bad = level == 2 or (level == 1 and rule.bad_above is not None and rng.random() < 0.5)
    threshold = rule.bad_above if near_bad else rule.medium_above
    assert threshold is not None
    worse_side = level == 2 or (level == 1 and not near_bad)
    offset = rng.uniform(eps, width)
    return threshold + sign * offset if worse_side else threshold - sign * offset


def _draw(rng: np.random.Generator, name: str, level: int, border: bool) -> float:
    if border:
        return max(_border_value(rng, name, level), 0.0)
    low, high = _BANDS[name][level]
    value = float(rng.uniform(low, high))
    if level == 0 and rng.random() < _ZERO_WHEN_GOOD.get(name, 0.0):
        return 0.0
    return value


def _feasible(v: dict[str, float]) -> bool:
    free = 1.0 - v["carbon_area"] - v["vacuum_area"]
    room_for_dirt = 0.8 * (1 - v["vacuum_area"])
    return free >= 0.1 and v["crystalline_area"] <= 0.8 * free and v["contamination_area"] <= room_for_dirt


def sample_b(rng: np.random.Generator, session: SimSession, target_label: str | None = None) -> FamilyBParams:
    """Draw one family-b micrograph's parameters; with ``target_label`` its ``label_b`` is that label."""
    if target_label is None:
        target_label = LABELS[int(rng.choice(len(LABELS), p=_NATURAL_LABEL_P))]
    if target_label not in LABELS:
        raise ValueError(f"target_label must be one of {LABELS}, got {target_label!r}")
    traits = session_traits(session)
    levels = dict.fromkeys(_BANDS, 0)
    no_particles = False
    if target_label == "good":
        deciding = pick_weighted(rng, _MEDIUM_WEIGHTS, set())
    else:
        deciding = pick_weighted(rng, _MEDIUM_WEIGHTS if target_label == "medium" else _BAD_WEIGHTS, set())
        if deciding == "no-particles":
            no_particles = True
        else:
            levels[deciding] = LABELS.index(target_label)
        if rng.random() < (0.3 if target_label == "medium" else 0.35):
            levels[pick_weighted(rng, _MEDIUM_WEIGHTS, {deciding, *_HIDES.get(deciding, ())})] = 1
    border = rng.random() < BORDERLINE_SHARE and deciding != "no-particles"
    for _ in range(200):
        values = {name: _draw(rng, name, level, border and name == deciding) for name, level in levels.items()}
        if _feasible(values):
            break
    else:  # pragma: no cover - the bands make this practically impossible
        raise AssertionError(f"no feasible draw for {levels}")

    mfp = inelastic_mean_free_path_nm(session.voltage_kv)
    ny, nx = session.shape
    field_A = math.hypot(ny, nx) * session.pixel_size
    size = traits.particle_size_A * float(rng.uniform(0.95, 1.05))
    style = rng.random()
    cover = rng.uniform(0.3, 0.5) if style < 0.25 else rng.uniform(0.04, 0.1) if style < 0.5 else rng.uniform(0.12, 0.3)
    cover = 0.0 if no_particles else float(cover)
    ice_area = ny * nx * session.pixel_size**2 * (1 - values["carbon_area"] - values["vacuum_area"])
    per_particle = AREA_FACTOR[traits.molecule] * math.pi * (size / 2) ** 2
    n_particles = 0 if no_particles else max(3, int(round(cover * ice_area / per_particle)))
    present = [k for k in CONTAMINANTS if rng.random() < 0.5] or [CONTAMINANTS[int(rng.integers(len(CONTAMINANTS)))]]
    params = FamilyBParams(
        defocus_um=round(values["defocus_um"], 4),
        astig_um=round(float(rng.uniform(0.0, 0.3)), 4),
        astig_angle_deg=round(float(rng.uniform(0.0, 180.0)), 2),
        voltage_kv=session.voltage_kv,
        cs_mm=session.cs_mm,
        ice_thickness_nm=round(-mfp * math.log(values["transmission"]), 3),
        thickness_slope=round(float(rng.uniform(0.0, 0.5)), 3),
        meniscus=round(float(rng.uniform(0.0, 0.8)), 3),
        crystalline_area=round(values["crystalline_area"], 5),
        crystal_form=CRYSTAL_FORMS[int(rng.choice(3, p=[0.5, 0.25, 0.25]))],
        contamination_area=round(values["contamination_area"], 5),
        contaminants=tuple(present) if values["contamination_area"] > 0 else (),
        drift_path_A=round(values["drift_path_A"], 3),
        drift_angle_deg=round(float(rng.uniform(0.0, 360.0)), 2),
        drift_bend_deg=round(float(rng.uniform(0.0, 120.0)), 2),
        carbon_area=round(values["carbon_area"], 5),
        hole_radius_A=round(field_A * float(rng.uniform(0.8, 2.0)), 1),
        thin_carbon_nm=round(float(rng.uniform(1.5, 3.5)), 2) if traits.thin_carbon else 0.0,
        vacuum_area=round(values["vacuum_area"], 5),
        particle_cover=round(cover, 4),
        n_particles=n_particles,
        molecule=traits.molecule,
        particle_size_A=round(size, 2),
        dose=round(session.dose * float(rng.uniform(0.93, 1.07)), 3),
    )
    got, _ = label_b(params)
    if got != target_label:  # the bands make this impossible; guard against future edits
        raise AssertionError(f"sampled {got!r} while drawing for {target_label!r}: {params}")
    return params
