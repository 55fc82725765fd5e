"""Ground-truth label rules of the simulator, and parameter sampling that hits a wanted label.

The rules (also in ``docs/simulator.md``) look at one parameter at a time:

==========================  =====================  ==============  ===================
parameter                   medium when            bad when        reason tag
==========================  =====================  ==============  ===================
crystalline_fraction        > 0.03                 > 0.15          crystalline-ice
ice_thickness               > 0.60                 > 0.80          thick-ice
contamination               > 0.05                 > 0.15          contamination
drift_A                     > 10                   > 30            drift
carbon_fraction             > 0.20                 > 0.50          carbon
defocus_um                  > 3.0                  (never)         other
vacuum_fraction             > 0.05                 > 0.25          empty
empty or n_particles == 0   (never)                always          empty
==========================  =====================  ==============  ===================

A micrograph is ``bad`` when any parameter is in its bad range, else ``medium`` when any is in its
medium range, else ``good``. The reasons are the tags of every parameter outside its good range,
bad-level ones first.

``sample_params`` draws each parameter from a band well inside its class range (margins around
every threshold), so that the three classes differ visibly and in the power spectrum. Vacuum is
only ever drawn for empty holes (already bad), from a side stream, so that every other draw is
what it was before vacuum existed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from micrograde.pipeline.config import LABELS, REASON_TAGS
from micrograde.pipeline.sim.model import ICE_SPACINGS_A, PARTICLE_KINDS, SimParams, SimSession

__all__ = ["Rule", "RULES", "grade", "label_for", "pick_weighted", "sample_params", "session_particle", "side_stream"]


@dataclass(frozen=True)
class Rule:
    """One label rule on one parameter: ``medium`` past ``medium_at``, ``bad`` past ``bad_at`` (None: never).

    "Past" is strictly above, or strictly below when ``lower_is_worse`` (e.g. a transmission).
    """

    parameter: str
    tag: str
    medium_above: float | None
    bad_above: float | None
    lower_is_worse: bool = False

    def _past(self, value: float, threshold: float | None) -> bool:
        if threshold is None:
            return False
        return value < threshold if self.lower_is_worse else value > threshold

    def level(self, value: float) -> int:
        """0 good, 1 medium, 2 bad."""
        if self._past(value, self.bad_above):
            return 2
        if self._past(value, self.medium_above):
            return 1
        return 0


RULES: tuple[Rule, ...] = (
    Rule("crystalline_fraction", "crystalline-ice", 0.03, 0.15),
    Rule("ice_thickness", "thick-ice", 0.60, 0.80),
    Rule("contamination", "contamination", 0.05, 0.15),
    Rule("drift_A", "drift", 10.0, 30.0),
    Rule("carbon_fraction", "carbon", 0.20, 0.50),
    Rule("defocus_um", "other", 3.0, None),
    Rule("vacuum_fraction", "empty", 0.05, 0.25),
)


def grade(rules: Sequence[Rule], params: object, *, no_particles: bool) -> tuple[str, tuple[str, ...]]:
    """Label and reason tags of ``params`` under ``rules`` (a micrograph without particles is bad).

    The worst level wins; the tags of every parameter outside its good range follow, bad-level
    ones first, each level in the order of ``REASON_TAGS``.
    """
    levels = [(rule.level(float(getattr(params, rule.parameter))), rule.tag) for rule in rules]
    levels.append((2 if no_particles else 0, "empty"))
    worst = max(level for level, _ in levels)
    tags: list[str] = []
    for wanted in (2, 1):
        for tag in REASON_TAGS:  # stable, documented order within a level
            if tag not in tags and any(level == wanted and t == tag for level, t in levels):
                tags.append(tag)
    return LABELS[worst], tuple(tags)


def label_for(params: SimParams) -> tuple[str, tuple[str, ...]]:
    """The documented ground-truth label and its reason tags (from ``REASON_TAGS``)."""
    return grade(RULES, params, no_particles=params.empty or params.n_particles == 0)


# Sampling bands, well inside each class range: (low, high) per level 0 good / 1 medium / 2 bad.
_BANDS: dict[str, tuple[tuple[float, float], ...]] = {
    "crystalline_fraction": ((0.002, 0.008), (0.05, 0.12), (0.25, 0.6)),
    "ice_thickness": ((0.1, 0.5), (0.65, 0.74), (0.86, 1.0)),
    "contamination": ((0.001, 0.006), (0.07, 0.12), (0.2, 0.4)),
    "drift_A": ((0.0, 3.0), (14.0, 25.0), (40.0, 80.0)),
    "carbon_fraction": ((0.03, 0.1), (0.26, 0.42), (0.6, 0.9)),
    "defocus_um": ((0.8, 2.6), (3.3, 4.5), (3.3, 4.5)),
}
# Chance that a good-level value is exactly zero (most good micrographs have none of it).
_ZERO_WHEN_GOOD = {"crystalline_fraction": 0.85, "contamination": 0.75, "carbon_fraction": 0.85}
_MEDIUM_WEIGHTS = {
    "crystalline_fraction": 0.25,
    "ice_thickness": 0.2,
    "contamination": 0.2,
    "drift_A": 0.15,
    "defocus_um": 0.1,
    "carbon_fraction": 0.1,
}
_BAD_WEIGHTS = {
    "crystalline_fraction": 0.3,
    "ice_thickness": 0.18,
    "contamination": 0.17,
    "drift_A": 0.15,
    "empty": 0.1,
    "carbon_fraction": 0.1,
}
_NATURAL_LABEL_P = (0.5, 0.3, 0.2)


_VACUUM_WHEN_EMPTY = 0.5  # share of empty holes that are partly without ice


def side_stream(rng: np.random.Generator, purpose: str) -> np.random.Generator:
    """A generator seeded from ``rng``'s current state and ``purpose``, without advancing ``rng``.

    Draws added later (family A's vacuum) come from it, so every draw that existed before stays
    the same for the same seed.
    """
    state = repr(rng.bit_generator.state).encode() + b"|" + purpose.encode()
    words = np.frombuffer(hashlib.sha256(state).digest(), dtype=np.uint32)
    return np.random.default_rng(np.random.SeedSequence(words.tolist()))


def session_particle(session: SimSession) -> tuple[str, float]:
    """The sample of a session: one particle kind and diameter (A), fixed by the session name."""
    crc = zlib.crc32(session.name.encode())
    return PARTICLE_KINDS[crc % len(PARTICLE_KINDS)], 70.0 + float((crc >> 8) % 60)


def pick_weighted(rng: np.random.Generator, weights: dict[str, float], exclude: set[str]) -> str:
    """One name of ``weights`` (not in ``exclude``), drawn with the weights' relative probabilities."""
    names = [n for n in weights if n not in exclude]
    p = np.array([weights[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _draw(rng: np.random.Generator, name: str, level: int) -> float:
    low, high = _BANDS[name][level]
    value = float(rng.uniform(low, high))
    if level == 0 and rng.random() < _ZERO_WHEN_GOOD.get(name, 0.0):
        return 0.0
    return value


def sample_params(rng: np.random.Generator, session: SimSession, target_label: str | None = None) -> SimParams:
    """Draw the parameters of one micrograph; with ``target_label`` its ``label_for`` is that label.

    Without a target, the label is drawn first with the frequencies good 0.5, medium 0.3, bad 0.2.
    A medium micrograph has one (or, 25% of the time, two) parameters in medium bands; a bad one has
    one parameter in a bad band (or is empty) and, 30% of the time, a second one in a medium band.
    """
    if target_label is None:
        target_label = LABELS[int(rng.choice(len(LABELS), p=_NATURAL_LABEL_P))]
    if target_label not in LABELS:
        raise ValueError(f"target_label must be one of {LABELS}, got {target_label!r}")

    levels = dict.fromkeys(_BANDS, 0)
    empty = False
    if target_label == "medium":
        first = pick_weighted(rng, _MEDIUM_WEIGHTS, set())
        levels[first] = 1
        if rng.random() < 0.25:
            levels[pick_weighted(rng, _MEDIUM_WEIGHTS, {first})] = 1
    elif target_label == "bad":
        first = pick_weighted(rng, _BAD_WEIGHTS, set())
        if first == "empty":
            empty = True
        else:
            levels[first] = 2
        if rng.random() < 0.3:
            levels[pick_weighted(rng, _MEDIUM_WEIGHTS, {first})] = 1

    values = {name: _draw(rng, name, level) for name, level in levels.items()}
    kind, diameter = session_particle(session)
    diameter *= float(rng.uniform(0.95, 1.05))
    ny, nx = session.shape
    area = ny * nx * session.pixel_size**2
    coverage = float(rng.uniform(0.25, 0.4)) * (1.0 - values["carbon_fraction"] * 0.5)
    n_particles = 0 if empty else max(3, int(round(coverage * area / (np.pi * (diameter / 2) ** 2))))
    n_spacings = int(rng.choice([1, 2, 3], p=[0.2, 0.3, 0.5]))
    spacing_idx = sorted(rng.choice(len(ICE_SPACINGS_A), size=n_spacings, replace=False).tolist())
    spacings = tuple(ICE_SPACINGS_A[i] for i in spacing_idx) if values["crystalline_fraction"] > 0 else ()

    params = SimParams(
        defocus_um=round(values["defocus_um"], 4),
        astig_um=round(float(rng.uniform(0.0, 0.15)), 4),
        astig_angle_deg=round(float(rng.uniform(0.0, 180.0)), 2),
        bfactor=round(float(rng.uniform(40.0, 110.0)), 2),
        ice_thickness=round(values["ice_thickness"], 4),
        crystalline_fraction=round(values["crystalline_fraction"], 4),
        crystal_spacings_A=spacings,
        contamination=round(values["contamination"], 4),
        drift_A=round(values["drift_A"], 3),
        drift_angle_deg=round(float(rng.uniform(0.0, 180.0)), 2),
        carbon_fraction=round(values["carbon_fraction"], 4),
        n_particles=n_particles,
        empty=empty,
        dose=round(session.dose * float(rng.uniform(0.95, 1.05)), 3),
        particle_kind=kind,
        particle_diameter_A=round(diameter, 2),
    )
    if empty:  # a hole without particles is often partly dry: vacuum, drawn apart from everything above
        side = side_stream(rng, "vacuum")
        if side.random() < _VACUUM_WHEN_EMPTY:
            params = dataclasses.replace(params, vacuum_fraction=round(float(side.uniform(0.3, 0.6)), 4))
    got, _ = label_for(params)
    if got != target_label:  # the bands make this impossible; guard against future edits
        raise AssertionError(f"sampled {got!r} while drawing for {target_label!r}: {params}")
    return params

