"""Family b's types: per-micrograph parameters, per-session traits, and its default sessions.

Family b is the simulator's second rendering family, written apart from family a (see
``docs/simulator.md``, "Family b"). Its parameters are physical quantities of its own: ice
thickness in nm (read through the transmission it gives), areas of each kind of defect, a
curved drift path, a hole of holey film. What a session's sample and hardware look like
(molecule, detector MTF, gain-reference errors, ice-noise shape) follows from the session by
:func:`session_traits`, so that every micrograph of a session shares them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields

from micrograde.pipeline.sim.model import SimSession, electron_wavelength

__all__ = [
    "FamilyBParams",
    "SessionTraits",
    "B_SESSIONS",
    "MOLECULES",
    "CRYSTAL_FORMS",
    "CONTAMINANTS",
    "inelastic_mean_free_path_nm",
    "interaction_constant",
    "session_traits",
]

#: 3-D density models of the particles (see ``specimen.molecule_parts``)
MOLECULES: tuple[str, ...] = ("ellipsoids", "chain", "filament")
#: crystalline-ice forms: hexagonal spots, cubic powder rings, or domains of both
CRYSTAL_FORMS: tuple[str, ...] = ("hexagonal", "cubic", "mixed")
#: kinds of contamination objects
CONTAMINANTS: tuple[str, ...] = ("ball", "chunk", "debris", "aggregate")

_MC2_KEV = 510.99895  # electron rest energy


def _beta2(voltage_kv: float) -> float:
    gamma = 1.0 + voltage_kv / _MC2_KEV
    return 1.0 - 1.0 / (gamma * gamma)


def inelastic_mean_free_path_nm(voltage_kv: float) -> float:
    """Inelastic mean free path of vitreous ice (nm): 350 nm at 300 kV, scaling with beta^2."""
    return 350.0 * _beta2(voltage_kv) / _beta2(300.0)


def interaction_constant(voltage_kv: float) -> float:
    """sigma (rad / (V A)): phase shift per volt of potential per Angstrom of path (relativistic)."""
    v = voltage_kv * 1e3
    mc2 = _MC2_KEV * 1e3
    return 2 * math.pi / (electron_wavelength(voltage_kv) * v) * (mc2 + v) / (2 * mc2 + v)


@dataclass(frozen=True)
class FamilyBParams:
    """Every physical parameter of one family-b micrograph (areas are fractions of the image)."""

    defocus_um: float  # mean underfocus
    astig_um: float  # defocus difference between the two principal directions
    astig_angle_deg: float
    voltage_kv: float
    cs_mm: float
    ice_thickness_nm: float  # mean ice thickness in the hole
    thickness_slope: float  # relative thickness change across the field (wedge)
    meniscus: float  # relative thickening towards the hole edge
    crystalline_area: float
    crystal_form: str  # one of CRYSTAL_FORMS
    contamination_area: float
    contaminants: tuple[str, ...]  # kinds present (subset of CONTAMINANTS)
    drift_path_A: float  # length of the curved drift trajectory
    drift_angle_deg: float  # initial direction
    drift_bend_deg: float  # total turn of the direction along the path
    carbon_area: float  # support film outside the hole
    hole_radius_A: float
    thin_carbon_nm: float  # continuous thin carbon over the whole field (0: none; never masked)
    vacuum_area: float  # no ice: a dry crescent at the hole edge or a tear in the ice
    particle_cover: float  # fraction of the ice covered by particles (0: an empty hole)
    n_particles: int
    molecule: str  # one of MOLECULES
    particle_size_A: float  # largest extent of the molecule
    dose: float  # e/A^2

    def __post_init__(self) -> None:
        for name in ("crystalline_area", "contamination_area", "carbon_area", "vacuum_area", "particle_cover"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.carbon_area + self.vacuum_area > 0.95:
            raise ValueError("carbon_area + vacuum_area must leave some ice (<= 0.95)")
        if self.ice_thickness_nm <= 0 or self.dose <= 0 or self.n_particles < 0 or self.drift_path_A < 0:
            raise ValueError("ice_thickness_nm and dose must be > 0; n_particles and drift_path_A >= 0")
        if not 40.0 <= self.particle_size_A <= 400.0 or self.hole_radius_A <= 0:
            raise ValueError("particle_size_A must be within 40-400 A and hole_radius_A positive")
        if self.molecule not in MOLECULES or self.crystal_form not in CRYSTAL_FORMS:
            raise ValueError(f"molecule must be one of {MOLECULES}, crystal_form one of {CRYSTAL_FORMS}")
        if not set(self.contaminants) <= set(CONTAMINANTS):
            raise ValueError(f"contaminants must be a subset of {CONTAMINANTS}, got {self.contaminants}")
        if self.contamination_area > 0 and not self.contaminants:
            raise ValueError("contamination_area > 0 needs at least one kind of contaminant")

    @property
    def transmission(self) -> float:
        """Zero-loss transmission of the mean ice: exp(-thickness / inelastic mean free path)."""
        return math.exp(-self.ice_thickness_nm / inelastic_mean_free_path_nm(self.voltage_kv))

    @property
    def empty(self) -> bool:
        return self.n_particles == 0

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class SessionTraits:
    """What every micrograph of a session shares: the sample, the hardware's imperfections."""

    molecule: str
    particle_size_A: float
    mtf_nyquist: float  # detector MTF at Nyquist (sinc times an exponential fall-off)
    gain_error: float  # rms of the fixed-pattern gain-reference error
    gain_seed: int
    focal_spread_A: float  # temporal coherence
    source_mrad: float  # illumination semi-angle (spatial coherence)
    ice_corr_A: float  # correlation length of the solvent's low-frequency noise
    water_peak_A: float  # spacing of the water-like shoulder of the ice spectrum
    water_weight: float
    support: str  # "carbon" or "gold"
    thin_carbon: bool  # continuous thin carbon over the holes


# detector -> (MTF at Nyquist, gain-reference error rms)
_DETECTORS: dict[str, tuple[float, float]] = {
    "K2 Summit": (0.30, 0.012),
    "K3": (0.45, 0.008),
    "Falcon 4i": (0.55, 0.006),
    "Falcon 4": (0.50, 0.007),
    "Falcon 3EC": (0.40, 0.010),
}


# the samples of the default sessions (spanning the molecule kinds and 60-250 A); others: from the name
_SAMPLES: dict[str, tuple[str, float]] = {
    "b_glacios_k2_serialem": ("filament", 240.0),
    "b_krios_falcon4i_ultraufoil": ("ellipsoids", 70.0),
    "b_krios_k3_cflat": ("chain", 150.0),
    "b_krios_cscor_falcon4_qf_thinc": ("ellipsoids", 200.0),
}


def session_traits(session: SimSession) -> SessionTraits:
    """The traits of a session, fixed by its name, detector and grid (no random state involved)."""
    h = hashlib.sha256(f"family-b|{session.name}".encode()).digest()
    u = [b / 255.0 for b in h]  # deterministic numbers in 0..1
    mtf, gain = _DETECTORS.get(session.detector, (0.40 + 0.1 * u[0], 0.005 + 0.01 * u[1]))
    maker = session.grid_maker.lower()
    molecule, size = _SAMPLES.get(session.name, (MOLECULES[h[2] % len(MOLECULES)], round(60.0 + 190.0 * u[3], 1)))
    return SessionTraits(
        molecule=molecule,
        particle_size_A=size,
        mtf_nyquist=mtf,
        gain_error=gain,
        gain_seed=int.from_bytes(h[4:8], "little"),
        focal_spread_A=round(30.0 + 40.0 * u[8], 1),
        source_mrad=round(0.004 + 0.012 * u[9], 4),
        ice_corr_A=round(6.0 + 14.0 * u[10], 2),
        water_peak_A=round(2.8 + 0.8 * u[11], 3),
        water_weight=round(0.15 + 0.35 * u[12], 3),
        support="gold" if ("ultraufoil" in maker or "gold" in maker) else "carbon",
        thin_carbon="+c" in maker.replace(" ", ""),
    )


#: Family b's default sessions: other pixel sizes, shapes, modes, doses and hardware than family a's.
B_SESSIONS: tuple[SimSession, ...] = (
    SimSession(
        name="b_glacios_k2_serialem", detector="K2 Summit", shape=(1100, 880), pixel_size=1.3, mrc_mode=6,
        dose=55.0, microscope="Glacios", grid_material="Cu", grid_maker="Quantifoil R2/1", suffix=".tif",
        family="b", voltage_kv=200.0, cs_mm=2.7, session_json=False,
    ),
    SimSession(
        name="b_krios_falcon4i_ultraufoil", detector="Falcon 4i", shape=(960, 960), pixel_size=0.72, mrc_mode=12,
        dose=40.0, microscope="Titan Krios G4", grid_material="Au", grid_maker="UltrAuFoil R1.2/1.3",
        family="b", voltage_kv=300.0, cs_mm=2.7, epu_names=True,
    ),
    SimSession(
        name="b_krios_k3_cflat", detector="K3", shape=(720, 1024), pixel_size=0.9, mrc_mode=1,
        dose=65.0, microscope="Titan Krios G3i", grid_material="Cu", grid_maker="C-flat 1.2/1.3",
        family="b", voltage_kv=300.0, cs_mm=2.7,
    ),
    SimSession(
        name="b_krios_cscor_falcon4_qf_thinc", detector="Falcon 4", shape=(818, 1152), pixel_size=1.1, mrc_mode=2,
        dose=30.0, microscope="Titan Krios G4 (Cs-corrected)", grid_material="Cu",
        grid_maker="Quantifoil R1.2/1.3 +C", family="b", voltage_kv=300.0, cs_mm=0.01, epu_names=True,
    ),
)
