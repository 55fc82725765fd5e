"""Family b's contamination: ethane/ice balls, crystalline ice chunks, debris and protein aggregates.

Objects are placed until their union covers ``contamination_area`` of the image (never over
vacuum). Each darkens the transmission map by its own projected thickness:

* ball: a sphere, chord ``2 sqrt(R^2 - r^2)`` through dense ice (dark core), with a bright
  Fresnel fringe just outside its edge, ``sqrt(lambda z)`` wide; radius log-normal (median 220 A);
* chunk: an irregular polygon of crystalline ice of even thickness with a facet gradient (sharp,
  straight edges);
* debris: small clusters of overlapping discs (15-60 A);
* aggregate: a clump of particles stacked on each other (their phase too), outlined by a closing
  of where they lie thick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from micrograde.pipeline.sim.family_b.model import FamilyBParams
from micrograde.pipeline.sim.family_b.specimen import stamp
from micrograde.pipeline.sim.model import electron_wavelength

__all__ = ["Contamination", "build_contamination"]

F32 = np.float32
_BALL_MFP_A = 450.0  # attenuation length of an ice ball (dense, strongly scattering)
_CHUNK_MFP_A = 700.0
_PROTEIN_MFP_A = 1500.0


@dataclass(frozen=True)
class Contamination:
    transmission: np.ndarray  # multiplicative, float32
    phase: np.ndarray  # extra phase (aggregates), float32
    mask: np.ndarray  # bool


def _box(cy: float, cx: float, r: float, shape: tuple[int, int]) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    ny, nx = shape
    y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 2, ny)
    x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 2, nx)
    yy = np.arange(y0, y1, dtype=F32)[:, None] - F32(cy)
    xx = np.arange(x0, x1, dtype=F32)[None, :] - F32(cx)
    return slice(y0, y1), slice(x0, x1), yy, xx


def _ball(rng, shape, p, radius_A, fringe_A):
    cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
    r = radius_A / p
    w = max(fringe_A / p, 1.0)
    sy, sx, yy, xx = _box(cy, cx, r + 4 * w, shape)
    rho = np.hypot(yy, xx)
    chord = F32(2 * p) * np.sqrt(np.maximum(F32(r * r) - rho * rho, 0))
    trans = np.exp(-chord / F32(_BALL_MFP_A)) * (F32(1) + F32(0.35) * np.exp(-(((rho - F32(r + w)) / F32(w)) ** 2)))
    return (cy, cx), (sy, sx), trans, rho <= r, None


def _chunk(rng, shape, p, radius_A, _fringe):
    cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
    r = radius_A / p
    sy, sx, yy, xx = _box(cy, cx, r, shape)
    n = int(rng.integers(5, 10))
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = r * rng.uniform(0.55, 1.0, n)
    pts = np.stack([cx + radii * np.cos(angles) - sx.start, cy + radii * np.sin(angles) - sy.start], axis=1)
    inside = np.zeros(yy.shape[0:1] + xx.shape[1:2], dtype=np.uint8)
    cv2.fillPoly(inside, [np.round(pts).astype(np.int32)], 1)
    inside = inside.astype(bool)
    a = rng.uniform(0, 2 * math.pi)
    facet = F32(1) + F32(0.3) * (xx * F32(math.cos(a)) + yy * F32(math.sin(a))) / F32(max(r, 1))
    thick = F32(rng.uniform(300.0, 800.0)) * facet * inside
    return (cy, cx), (sy, sx), np.exp(-thick / F32(_CHUNK_MFP_A)), inside, None


def _debris(rng, shape, p, radius_A, _fringe):
    cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
    r = radius_A / p
    sy, sx, yy, xx = _box(cy, cx, 2.5 * r, shape)
    inside = np.zeros(yy.shape[0:1] + xx.shape[1:2], dtype=bool)
    oy, ox = 0.0, 0.0
    for _ in range(int(rng.integers(2, 6))):
        inside |= np.hypot(yy - F32(oy), xx - F32(ox)) <= F32(r * rng.uniform(0.4, 0.8))
        oy, ox = oy + rng.normal(0, 0.5 * r), ox + rng.normal(0, 0.5 * r)
    return (cy, cx), (sy, sx), np.where(inside, F32(rng.uniform(0.3, 0.65)), F32(1)), inside, None


def _aggregate_maker(views: list[np.ndarray]):
    def _aggregate(rng, shape, p, radius_A, _fringe):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        r = radius_A / p
        h = views[0].shape[0]
        sy, sx, yy, xx = _box(cy, cx, r + h, shape)
        local = np.zeros(yy.shape[0:1] + xx.shape[1:2], dtype=F32)
        area = math.pi * r * r
        n = max(3, int(2.5 * area / max(float((views[0] > 0).sum()), 1.0)))
        offs = rng.normal(0, r / 2, size=(n, 2)) + (cy - sy.start, cx - sx.start)
        stamp(rng, local, views, offs)
        peak = float(local.max()) if local.size else 0.0
        inside = ndimage.binary_fill_holes(ndimage.binary_closing(local > 0.15 * peak, iterations=3))
        return (cy, cx), (sy, sx), np.exp(-local / F32(_PROTEIN_MFP_A)), inside, local

    return _aggregate


_MEDIAN_RADIUS_A = {"ball": 220.0, "chunk": 180.0, "debris": 30.0, "aggregate": 150.0}
_SIZE_RANGE_A = {"ball": (80.0, 1500.0), "chunk": (60.0, 900.0), "debris": (15.0, 60.0), "aggregate": (60.0, 600.0)}


def build_contamination(
    rng: np.random.Generator,
    shape: tuple[int, int],
    p: float,
    params: FamilyBParams,
    forbidden: np.ndarray,
    views: list[np.ndarray],
    phase_per_A: float,
) -> Contamination:
    """Objects of the kinds in ``params.contaminants`` until they cover ``contamination_area``."""
    transmission = np.ones(shape, dtype=F32)
    phase = np.zeros(shape, dtype=F32)
    mask = np.zeros(shape, dtype=bool)
    target = params.contamination_area * mask.size
    if target <= 0:
        return Contamination(transmission, phase, mask)
    makers = {"ball": _ball, "chunk": _chunk, "debris": _debris, "aggregate": _aggregate_maker(views)}
    kinds = [k for k in params.contaminants if k != "aggregate" or views]
    fringe = 0.5 * math.sqrt(electron_wavelength(params.voltage_kv) * params.defocus_um * 1e4)
    covered = 0
    tolerance = 0.1 * target + 0.001 * mask.size  # how far the union may overshoot the area
    aggregate_min = 0.6 * views[0].shape[0] * p if views else 0.0
    for _ in range(2000):
        if covered >= target:
            break
        remaining_r = math.sqrt((target + tolerance - covered) / math.pi) * p
        usable = [k for k in kinds if k != "aggregate" or remaining_r > aggregate_min] or ["debris"]
        kind = usable[int(rng.integers(len(usable)))]
        low, high = _SIZE_RANGE_A[kind]
        radius = float(np.clip(_MEDIAN_RADIUS_A[kind] * math.exp(rng.normal(0, 0.5)), low, high))
        radius = max(min(radius, remaining_r), 1.5 * p)
        (cy, cx), (sy, sx), trans, inside, extra = makers[kind](rng, shape, p, radius, fringe)
        if forbidden[min(int(cy), shape[0] - 1), min(int(cx), shape[1] - 1)]:
            continue  # nothing lands on vacuum
        inside = inside & ~forbidden[sy, sx]
        before = int(mask[sy, sx].sum())
        after = int((mask[sy, sx] | inside).sum())
        if covered + after - before > target + tolerance:
            continue  # too big for what is left: draw another
        mask[sy, sx] |= inside
        covered += after - before
        transmission[sy, sx] *= trans
        if extra is not None:
            phase[sy, sx] += F32(phase_per_A) * extra
    return Contamination(transmission, phase, mask)
