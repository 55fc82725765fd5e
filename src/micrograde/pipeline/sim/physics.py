"""Synthetic cryo-EM micrographs with known quality (the simulator's physics).

``simulate_micrograph(params, session, rng)`` renders one micrograph (see ``docs/simulator.md``):

1. specimen: particles (randomly oriented projections of a simple 3-D model made of Gaussian lobes),
   amorphous ice (1/f phase noise, stronger in thick ice), a carbon region (phase texture and a little
   absorption), contamination (strongly absorbing blobs), crystalline-ice domains (hexagonal lattices
   at 3.90/3.67/3.44 A, plus a density offset), low-frequency thickness variation of thick ice;
2. in Fourier space: weak-phase CTF (defocus, astigmatism, Cs 2.7 mm, 300 kV, amplitude contrast
   0.07) and a B-factor envelope (larger for thick ice) on the phase part, ``cos chi`` on the
   absorption part, the lattices on top, and a linear motion blur (``sinc``) for drift;
3. transmission (thick ice lets fewer electrons through) and Poisson shot noise at the dose:
   ``counts ~ Poisson(dose * pixel_size^2 * intensity)``.

The result is float32 counts for float sessions (MRC modes 2 and 12) and integer counts in the
mode's dtype (int8/int16/uint16, saturating) for counting sessions (modes 0, 1, 6).
Deterministic for a given generator state. Label rules and sampling: ``rules``.

``render_micrograph`` also returns the ground-truth mask (``pipeline.masks`` codes) from the same
parts: contamination, carbon and crystalline domains where their soft masks exceed 0.5, and
vacuum (``vacuum_fraction``: no ice, no particles, full transmission; drawn only for some empty
holes, from a side stream so that every other draw is unchanged).
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from micrograde.pipeline.masks import compose_mask
from micrograde.pipeline.sim.model import (
    DEFAULT_SESSIONS,
    ICE_SPACINGS_A,
    MODE_DTYPES,
    Rendered,
    SimParams,
    SimSession,
    electron_wavelength,
)
from micrograde.pipeline.sim.render import (
    FourierGrid,
    carbon_mask,
    crystal_lattice,
    ctf_terms,
    fourier_noise,
    particle_deltas,
    soft_blobs,
)
from micrograde.pipeline.sim.rules import RULES, label_for, sample_params, side_stream

__all__ = [
    "SimSession",
    "SimParams",
    "DEFAULT_SESSIONS",
    "ICE_SPACINGS_A",
    "RULES",
    "COUNT_DTYPES",
    "electron_wavelength",
    "label_for",
    "sample_params",
    "render_micrograph",
    "simulate_micrograph",
]

F32 = np.float32
#: dtype of each counting MRC mode.
COUNT_DTYPES: dict[int, type] = {mode: MODE_DTYPES[mode] for mode in (0, 1, 6)}

# Contrast scales (relative intensity units; tuned so good micrographs show particles at 4 A/px).
_LOBE_PHASE = 0.07  # peak phase of one Gaussian lobe of a particle
_LOBE_SIGMA = 0.08  # lobe width as a fraction of the particle diameter
_ICE_PHASE = 0.15  # std of the amorphous-ice phase noise at thickness 0.5
_ICE_K0 = 0.05  # 1/A, knee of the ice spectrum (power ~ 1/sqrt(k) above it)
_ICE_K1 = 0.005  # 1/A, below it (features > 200 A) uniform ice has little contrast
_CARBON_PHASE = 0.12  # std of the carbon phase texture
_CARBON_ABS = 0.12  # carbon absorption
_CONTAM_ABS = 0.85  # contamination blob absorption
_LATTICE = 0.08  # amplitude of each lattice cosine
_THICK_LOWFREQ = 0.06  # std of the thickness variation at thickness 1 (scales with thickness^2)
_THICK_B = 400.0  # extra B-factor at thickness 1 (scales with thickness^2; inelastic blur)


def _lowfreq_noise(rng: np.random.Generator, grid: FourierGrid, scale_A: float, std: float) -> np.ndarray:
    """Smooth real-space noise (features ~``scale_A``) given as its rfft2, with real-space ``std``."""
    ny, nx = grid.shape
    out = np.zeros((ny, nx // 2 + 1), dtype=np.complex64)
    m = int(np.ceil(3 * max(ny, nx) * grid.pixel_size / scale_A)) + 1
    m = min(m, ny // 2, nx // 2)
    rows = np.r_[0:m, ny - m : ny]
    z = rng.standard_normal((2, rows.size, m), dtype=F32)
    filt = np.exp(-0.5 * (grid.k[rows, :m] * F32(scale_A)) ** 2)
    block = (z[0] + 1j * z[1]) * filt
    block[0, 0] = 0
    var = 2 * float((np.abs(block) ** 2).sum()) / float(ny * nx) ** 2
    if var > 0:
        out[rows, :m] = block * F32(std / np.sqrt(var))
    return out


def render_micrograph(params: SimParams, session: SimSession, rng: np.random.Generator) -> Rendered:
    """Render one micrograph of ``session.shape`` with ``params``, and its ground-truth mask."""
    shape = session.shape
    p = session.pixel_size
    grid = FourierGrid(shape, p)
    t = params.ice_thickness
    phase_ctf, cos_chi = ctf_terms(grid, params)

    # -- specimen parts in real space
    contam = (
        soft_blobs(rng, shape, p, params.contamination, (60.0, 220.0), wobble=0.15)[0]
        if params.contamination > 0
        else None
    )
    carbon = carbon_mask(rng, shape, params.carbon_fraction) if params.carbon_fraction > 0 else None
    lattice, domains, cover = crystal_lattice(rng, shape, p, params)
    deltas = particle_deltas(rng, shape, p, params)
    vacuum = None
    if params.vacuum_fraction > 0:  # from a side stream: the draws above and below stay as they were
        vacuum = carbon_mask(side_stream(rng, "vacuum-region"), shape, params.vacuum_fraction)
        if carbon is not None:
            vacuum *= 1 - carbon
        deltas *= 1 - vacuum

    # -- phase part: ice noise (1/f) + particles + carbon texture
    ice = (1.0 + grid.k / F32(_ICE_K0)) ** F32(-0.15) * (grid.k / (grid.k + F32(_ICE_K1)))
    ice *= F32(_ICE_PHASE * (0.8 + 0.4 * t) / np.sqrt(float(np.mean(ice**2))))
    f_phase = fourier_noise(rng, grid) * ice
    if deltas.any():
        if contam is not None:
            deltas *= 1 - contam
        sigma = _LOBE_SIGMA * params.particle_diameter_A
        lobe = np.exp(F32(-2 * np.pi**2 * sigma**2) * grid.k2)
        gain = _LOBE_PHASE * 2 * np.pi * (sigma / p) ** 2 * np.exp(-1.5 * t)
        f_phase += sfft.rfft2(deltas, workers=1) * (lobe * F32(gain))
    if carbon is not None:
        texture = rng.standard_normal(shape, dtype=F32) * carbon * F32(_CARBON_PHASE)
        f_phase += sfft.rfft2(texture, workers=1)

    # -- absorption part: contamination, carbon, crystalline domains, thickness variation
    f_abs = _lowfreq_noise(rng, grid, 300.0, _THICK_LOWFREQ * t * t)
    absorb: np.ndarray | None = None
    for part, scale in ((contam, _CONTAM_ABS), (carbon, _CARBON_ABS), (domains, 1.0)):
        if part is not None and part.any():
            absorb = part * F32(scale) if absorb is None else absorb + part * F32(scale)
    if absorb is not None:
        f_abs += sfft.rfft2(absorb, workers=1)

    # -- optics: CTF + envelope, lattices, drift
    envelope = np.exp(F32(-(params.bfactor + _THICK_B * t * t) / 4) * grid.k2)
    spectrum = envelope * (F32(2) * phase_ctf * f_phase - cos_chi * f_abs)
    if lattice.any():
        spectrum += sfft.rfft2(lattice, workers=1) * F32(_LATTICE)
    if params.drift_A > 0:
        a = np.deg2rad(params.drift_angle_deg)
        along = grid.kx * F32(np.cos(a)) + grid.ky * F32(np.sin(a))
        spectrum *= np.sinc(along * F32(params.drift_A)).astype(F32)
    contrast = sfft.irfft2(spectrum, s=shape, workers=1)

    # -- transmission (vacuum: no specimen, nothing absorbed) and shot noise
    if vacuum is None:
        intensity = np.clip(contrast + F32(1), F32(0.02), None)
        intensity *= F32(params.dose * p * p * np.exp(-0.8 * t))
    else:
        intensity = np.clip(contrast * (1 - vacuum) + F32(1), F32(0.02), None)
        intensity *= F32(params.dose * p * p) * (F32(np.exp(-0.8 * t)) * (1 - vacuum) + vacuum)
    counts = rng.poisson(intensity)
    mask = compose_mask(
        shape,
        {
            "contamination": None if contam is None else contam > 0.5,
            "carbon": None if carbon is None else carbon > 0.5,
            "crystalline": cover > 0.5,
            "empty": None if vacuum is None else vacuum > 0.5,
        },
    )
    if session.counts:
        info = np.iinfo(COUNT_DTYPES[session.mrc_mode])
        return Rendered(np.clip(counts, 0, info.max).astype(COUNT_DTYPES[session.mrc_mode]), mask)
    return Rendered(counts.astype(F32), mask)


def simulate_micrograph(params: SimParams, session: SimSession, rng: np.random.Generator) -> np.ndarray:
    """Render one micrograph of ``session.shape`` with ``params`` (see the module docstring)."""
    return render_micrograph(params, session, rng).image
