"""Family b's image formation: ``render_b(params, session, rng) -> Rendered(image, mask)``.

1. The grid (hole, film, vacuum, ice thickness) and crystalline domains in the ice;
   contamination objects on top; particles in the ice (rarely on the film, never over vacuum).
2. Phase: particles, aggregates and the film's texture in real space, plus the solvent noise
   drawn in Fourier space; imaged through ``-2 sin(chi + asin w)`` times the coherence envelopes
   and a thickness-dependent loss of high resolution ``exp(-k s)``; Bragg spots of the domains
   are added after the lens (their many slightly tilted crystallites average the CTF's
   oscillation out; only the coherence envelope damps them), then the drift's transfer function
   (a curved trajectory). Vacuum carries no specimen contrast.
3. Intensity: the transmission map (ice, film, contamination, thin carbon) times ``1 + contrast``;
   electron counts ``~ Poisson(dose * pixel^2 * intensity)`` (the sum of the frames' counts);
   the detector's MTF acts on the recorded counts (signal and noise alike), then the session's
   gain-reference error multiplies them. Counting sessions store rounded counts, float sessions
   the gain-normalised values.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft as sfft

from micrograde.pipeline.masks import compose_mask
from micrograde.pipeline.sim.family_b.contamination import build_contamination
from micrograde.pipeline.sim.family_b.lattice import build_crystal
from micrograde.pipeline.sim.family_b.model import FamilyBParams, inelastic_mean_free_path_nm, session_traits
from micrograde.pipeline.sim.family_b.optics import (
    coherent_transfer,
    detector_blur,
    drift_trajectory,
    drift_transfer,
    gain_reference_error,
)
from micrograde.pipeline.sim.family_b.specimen import (
    ice_spectrum,
    molecule_parts,
    particle_phase_per_A,
    place_particles,
    stamp,
    view_library,
)
from micrograde.pipeline.sim.family_b.support import build_support
from micrograde.pipeline.sim.model import MODE_DTYPES, Rendered, SimSession
from micrograde.pipeline.sim.render import FourierGrid

__all__ = ["render_b"]

F32 = np.float32


@functools.lru_cache(maxsize=4)
def _grid(shape: tuple[int, int], pixel_size: float) -> FourierGrid:
    """The frequency grid of a session (shared by its micrographs; never modified)."""
    return FourierGrid(shape, pixel_size)


def render_b(params: FamilyBParams, session: SimSession, rng: np.random.Generator) -> Rendered:
    """Render one family-b micrograph of ``session`` and its ground-truth mask."""
    traits = session_traits(session)
    shape, p = session.shape, session.pixel_size
    grid = _grid(shape, p)

    # -- the specimen's parts
    support = build_support(rng, shape, p, params, traits)
    ice = ~support.film & ~support.vacuum
    crystal = build_crystal(rng, grid, params, ice)
    phase_per_A = particle_phase_per_A(params)
    needs_views = params.n_particles > 0 or "aggregate" in params.contaminants
    parts = molecule_parts(params.molecule, params.particle_size_A, session.name) if needs_views else []
    views = view_library(rng, parts, params.particle_size_A, p) if needs_views else []
    contam = build_contamination(rng, shape, p, params, support.vacuum, views, phase_per_A)

    phase = support.film_phase + contam.phase
    if params.n_particles > 0:
        spacing = 0.8 * params.particle_size_A / p
        centres = place_particles(rng, params.n_particles, shape, spacing, ~support.vacuum, support.film)
        thickness = np.zeros(shape, dtype=F32)
        stamp(rng, thickness, views, centres)
        thickness[support.vacuum] = 0
        phase += F32(phase_per_A) * thickness

    # -- the lens, the drift
    spectrum = sfft.rfft2(phase, workers=1) + ice_spectrum(rng, grid, params, traits)
    loss = params.ice_thickness_nm / inelastic_mean_free_path_nm(params.voltage_kv)
    transfer, log_coherence = coherent_transfer(grid, params, traits, damping_A=2.0 + 12.0 * loss)
    spectrum *= transfer
    if crystal.spots is not None:
        spectrum += crystal.spots[:, : shape[1] // 2 + 1] * np.exp(log_coherence)
    if params.drift_path_A > 0:
        spectrum *= drift_transfer(grid, drift_trajectory(params))
    contrast = sfft.irfft2(spectrum, s=shape, workers=1)
    if crystal.rings is not None:
        contrast += crystal.rings
    contrast[support.vacuum] = 0

    # -- the detector
    transmission = support.transmission * contam.transmission
    intensity = transmission * np.maximum(contrast + F32(1), F32(0.05))
    intensity *= F32(params.dose * p * p)
    counts = rng.poisson(intensity).astype(F32)
    detected = detector_blur(counts, traits.mtf_nyquist)
    detected *= gain_reference_error(shape, traits.gain_seed, traits.gain_error)
    np.maximum(detected, 0, out=detected)
    dtype = np.dtype(MODE_DTYPES[session.mrc_mode])
    if dtype.kind in "iu":
        image = np.minimum(np.rint(detected), np.iinfo(dtype.str).max).astype(dtype)
    else:
        image = detected.astype(F32)

    mask = compose_mask(
        shape,
        {"contamination": contam.mask, "crystalline": crystal.mask, "carbon": support.film, "empty": support.vacuum},
    )
    return Rendered(image, mask)

