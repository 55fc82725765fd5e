"""Data types of the micrograph simulator: acquisition sessions and per-micrograph parameters.

``SimSession`` describes a detector/grid/dose setting shared by the micrographs of a session;
``SimParams`` holds every physical parameter of one micrograph. Both are frozen dataclasses so
they can be hashed, compared and written to ``truth.csv`` field by field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import numpy as np

__all__ = [
    "Rendered",
    "SimSession",
    "SimParams",
    "DEFAULT_SESSIONS",
    "FAMILY_NAMES",
    "FAMILY_CHOICES",
    "ICE_SPACINGS_A",
    "MODE_DTYPES",
    "MRC_MODES",
    "PARTICLE_KINDS",
    "electron_wavelength",
    "params_to_row",
]

#: Spacings (Angstrom) of the strongest hexagonal-ice reflections: (100), (002), (101).
ICE_SPACINGS_A: tuple[float, ...] = (3.90, 3.67, 3.44)
#: numpy dtype of each MRC mode the simulator writes: 0 int8, 1 int16, 2 float32, 6 uint16, 12 float16.
MODE_DTYPES: dict[int, type] = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}
MRC_MODES: tuple[int, ...] = tuple(MODE_DTYPES)
#: The simulator's rendering families (``pipeline.sim.families`` holds what each one is), and what
#: a command line may ask for.
FAMILY_NAMES: tuple[str, ...] = ("a", "b")
FAMILY_CHOICES: tuple[str, ...] = (*FAMILY_NAMES, "both")
#: The simple 3-D shapes particles are made of (see ``simulate_render.particle_points``).
PARTICLE_KINDS: tuple[str, ...] = ("globular", "shell", "dumbbell", "ring", "rod")


class Rendered(NamedTuple):
    """A rendered micrograph (the session's dtype) and its ground-truth mask (uint8 codes)."""

    image: np.ndarray
    mask: np.ndarray


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Angstrom (0.0197 A at 300 kV)."""
    v = voltage_kv * 1e3
    return 12.2643 / math.sqrt(v * (1.0 + 0.97845e-6 * v))


@dataclass(frozen=True)
class SimSession:
    """One simulated acquisition session (a grid on a microscope with one detector)."""

    name: str
    detector: str
    shape: tuple[int, int]  # (y, x) pixels
    pixel_size: float  # Angstrom / pixel
    mrc_mode: int  # 0, 1, 2, 6, 12 (for ".tif" the counts are written as uint16)
    dose: float  # total dose, e/A^2
    microscope: str = "Titan Krios G4"
    grid_material: str = "Cu"
    grid_maker: str = "Quantifoil"
    suffix: str = ".mrc"
    family: str = "a"  # the rendering family that simulates it (``pipeline.sim.families``)
    voltage_kv: float = 300.0
    cs_mm: float = 2.7  # spherical aberration (0.01 for a Cs-corrected microscope)
    session_json: bool = True  # write OUT/<session>/session.json (False: the folder name says it all)
    epu_names: bool = False  # EPU-like file names (FoilHole_<hole>_Data_<square>_<n>_<date>_<time>)

    def __post_init__(self) -> None:
        if len(self.shape) != 2 or min(self.shape) < 32:
            raise ValueError(f"session {self.name!r}: shape must be (y, x) with sides >= 32, got {self.shape}")
        if self.mrc_mode not in MRC_MODES:
            raise ValueError(f"session {self.name!r}: MRC mode {self.mrc_mode} not in {MRC_MODES}")
        if not 0.2 <= self.pixel_size <= 10.0:
            raise ValueError(f"session {self.name!r}: pixel size {self.pixel_size} A is out of 0.2-10 A")
        if self.dose <= 0:
            raise ValueError(f"session {self.name!r}: dose must be positive, got {self.dose}")
        if self.suffix not in (".mrc", ".tif", ".tiff"):
            raise ValueError(f"session {self.name!r}: suffix must be .mrc, .tif or .tiff, got {self.suffix!r}")
        if self.suffix != ".mrc" and self.mrc_mode not in (1, 6):
            raise ValueError(f"session {self.name!r}: TIFF sessions hold integer counts (mode 1 or 6)")
        if not 60.0 <= self.voltage_kv <= 400.0 or not 0.0 <= self.cs_mm <= 10.0:
            raise ValueError(f"session {self.name!r}: voltage must be 60-400 kV and Cs 0-10 mm")

    @property
    def counts(self) -> bool:
        """True when the session stores integer electron counts (modes 0, 1, 6)."""
        return self.mrc_mode in (0, 1, 6)

    def meta(self) -> dict[str, object]:
        """The ``session.json`` payload: exactly the keys of ``pipeline.config.SessionMeta``."""
        return {
            "name": self.name,
            "microscope": self.microscope,
            "detector": self.detector,
            "grid_material": self.grid_material,
            "grid_maker": self.grid_maker,
            "dose": self.dose,
        }


#: Small-format stand-ins for real detectors (fast to simulate): a square Falcon, a 1.41:1 K3,
#: a square Falcon 4 writing float16, and a K2 writing uint16 counts.
DEFAULT_SESSIONS: tuple[SimSession, ...] = (
    SimSession(
        name="falcon4i_cu_quantifoil",
        detector="Falcon 4i",
        shape=(1024, 1024),
        pixel_size=0.95,
        mrc_mode=2,
        dose=40.0,
        microscope="Titan Krios G4",
        grid_material="Cu",
        grid_maker="Quantifoil",
    ),
    SimSession(
        name="k3_au_ultraufoil",
        detector="K3",
        shape=(724, 1024),
        pixel_size=0.83,
        mrc_mode=1,
        dose=50.0,
        microscope="Titan Krios G3i",
        grid_material="Au",
        grid_maker="UltrAuFoil",
    ),
    SimSession(
        name="falcon4_cu_cflat",
        detector="Falcon 4",
        shape=(896, 896),
        pixel_size=1.17,
        mrc_mode=12,
        dose=35.0,
        microscope="Titan Krios G4",
        grid_material="Cu",
        grid_maker="C-flat",
    ),
    SimSession(
        name="k2_au_quantifoil",
        detector="K2 Summit",
        shape=(928, 960),
        pixel_size=1.06,
        mrc_mode=6,
        dose=45.0,
        microscope="Titan Krios",
        grid_material="Au",
        grid_maker="Quantifoil",
    ),
)


@dataclass(frozen=True)
class SimParams:
    """Every physical parameter of one simulated micrograph.

    Lengths in Angstrom unless the name says otherwise; fractions are of the image area.
    """

    defocus_um: float  # mean underfocus (positive = underfocus)
    astig_um: float  # difference between the two principal defoci
    astig_angle_deg: float  # direction of the larger defocus
    bfactor: float  # A^2, envelope exp(-B k^2 / 4)
    ice_thickness: float  # 0..1 relative (0 thin, 1 very thick)
    crystalline_fraction: float  # 0..1 of the area covered by crystalline-ice domains
    crystal_spacings_A: tuple[float, ...]  # subset of ICE_SPACINGS_A present in the domains
    contamination: float  # 0..1 of the area covered by dark blobs
    drift_A: float  # length of the linear motion blur
    drift_angle_deg: float
    carbon_fraction: float  # 0..1 of the area covered by the carbon support
    n_particles: int
    empty: bool  # no particles (an empty hole)
    dose: float  # total dose, e/A^2
    particle_kind: str = "globular"  # one of PARTICLE_KINDS
    particle_diameter_A: float = 150.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    vacuum_fraction: float = 0.0  # 0..1 of the area without ice (only ever drawn for empty holes)

    def __post_init__(self) -> None:
        for name in ("ice_thickness", "crystalline_fraction", "contamination", "carbon_fraction", "vacuum_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.drift_A < 0 or self.dose <= 0 or self.n_particles < 0 or self.particle_diameter_A <= 0:
            raise ValueError("drift_A, n_particles must be >= 0; dose, particle_diameter_A > 0")
        if self.particle_kind not in PARTICLE_KINDS:
            raise ValueError(f"particle_kind must be one of {PARTICLE_KINDS}, got {self.particle_kind!r}")
        unknown = set(self.crystal_spacings_A) - set(ICE_SPACINGS_A)
        if unknown:
            raise ValueError(f"crystal_spacings_A must be a subset of {ICE_SPACINGS_A}, got {sorted(unknown)}")

    @property
    def wavelength_A(self) -> float:
        return electron_wavelength(self.voltage_kv)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def params_to_row(params: object) -> dict[str, object]:
    """A flat dict of a parameter dataclass for a table (tuples ";"-joined, floats in them as %.2f)."""
    row = asdict(params)  # type: ignore[call-overload]
    for name, value in row.items():
        if isinstance(value, tuple):
            row[name] = ";".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in value)
    return row
