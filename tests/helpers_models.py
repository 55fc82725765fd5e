"""Small synthetic micrograph-like inputs for the models tests (fast, no cache, no files).

Each sample is (image, power spectrum, image) at ``size`` px, like ``MicrographDataset``'s
default layout, with class signals that echo the real ones:

- good: many small dark particles; Thon-ring-like oscillations reaching the spectrum's edge;
- medium: fewer, fainter particles; rings fading early (poorer signal);
- bad: a large dark contamination blob; rings fading early and a sharp crystalline-ice ring.

A ``session`` changes the ring spacing (defocus), the noise level and the particle size, so a
held-out session tests generalisation rather than memorisation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset


def _norm(a: np.ndarray) -> np.ndarray:
    return ((a - a.mean()) / (a.std() + 1e-8)).astype(np.float32)


def micrograph_like(n: int, session: int, size: int = 64, seed: int = 0) -> TensorDataset:
    """``n`` samples (classes cycling good, medium, bad) from one synthetic session."""
    rng = np.random.default_rng([session, seed])
    srng = np.random.default_rng(1000 + session)
    defocus = srng.uniform(20, 40)  # ring density
    noise = srng.uniform(0.6, 1.0)
    radius = srng.uniform(1.5, 2.5)  # particle radius (px)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    r = np.hypot(yy - size / 2, xx - size / 2) / (size / 2)  # 0 .. ~1.4 (edge = 1)
    y = np.arange(n) % 3
    x = np.empty((n, 3, size, size), np.float32)
    for i, c in enumerate(y):
        img = noise * rng.standard_normal((size, size))
        n_part, contrast = ((40, 1.5), (15, 0.7), (8, 0.5))[c]
        for py, px in rng.uniform(0, size, (n_part, 2)):
            img -= contrast * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * radius**2))
        if c == 2:
            cy, cx = rng.uniform(size * 0.25, size * 0.75, 2)
            img -= 4.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 8) ** 2))
        reach = (0.9, 0.3, 0.3)[c]
        spec = np.cos(np.pi * defocus * r**2 + rng.uniform(0, 0.5)) * np.exp(-r / reach)
        if c == 2:
            spec += 2.0 * np.exp(-((r - 0.8) ** 2) / (2 * 0.02**2))
        spec += 0.3 * rng.standard_normal((size, size))
        image = _norm(img)
        x[i] = np.stack([image, _norm(spec), image])
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))


def concat(*parts: TensorDataset) -> TensorDataset:
    return TensorDataset(torch.cat([p.tensors[0] for p in parts]), torch.cat([p.tensors[1] for p in parts]))
