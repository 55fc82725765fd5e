"""Family b: the simulator's second rendering family, written independently of family a.

Its own particles (projections of hard-edged ellipsoid molecules), solvent noise spectrum,
holey-film geometry, contamination, crystalline-ice rendering (Bragg spots placed in Fourier
space, powder rings), vacuum, optics (coherence envelopes), detector (MTF, gain-reference
errors), curved drift and sessions; the same three labels with rules on its own parameters.
"""

from micrograde.pipeline.sim.family_b.model import B_SESSIONS, FamilyBParams, SessionTraits, session_traits
from micrograde.pipeline.sim.family_b.render import render_b
from micrograde.pipeline.sim.family_b.rules import B_RULES, BORDERLINE_SHARE, label_b, sample_b

__all__ = [
    "B_SESSIONS",
    "B_RULES",
    "BORDERLINE_SHARE",
    "FamilyBParams",
    "SessionTraits",
    "session_traits",
    "label_b",
    "sample_b",
    "render_b",
]
