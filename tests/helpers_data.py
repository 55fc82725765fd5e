"""Synthetic micrographs, spectra, tables and workspaces for the training-data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from micrograde.pipeline.catalogue.cache import save_entry
from micrograde.pipeline.catalogue.schema import Annotation, Annotator, Micrograph, SessionRow
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.config import LABELS


def normalise(a: np.ndarray) -> np.ndarray:
    return ((a - a.mean()) / a.std()).astype(np.float32)


def power_spectrum(img: np.ndarray, window: bool = True) -> np.ndarray:
    """Log power spectrum, DC at (N//2, N//2) (fftshift), optionally Hann-windowed."""
    a = img.astype(np.float64) - img.mean()
    if window:
        a = a * np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    return np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(a))) ** 2).astype(np.float32)


def synthetic_pair(seed: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A micrograph-like image (smooth background, dark blobs, noise) and its normalised spectrum."""
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.standard_normal((size, size)), 6) * 8
    yy, xx = np.mgrid[:size, :size]
    for _ in range(25):
        y, x = rng.uniform(0, size, 2)
        img -= 1.5 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * rng.uniform(3, 6) ** 2))
    img += 0.5 * rng.standard_normal((size, size))
    image = normalise(img)
    return image, normalise(power_spectrum(image))


def lattice_image(size: int, wavevectors: list[tuple[int, int]], seed: int = 0, noise: float = 0.05) -> np.ndarray:
    """A sum of cosines with integer cycles-per-field (kx, ky): periodic, peaks at exact pixels."""
    yy, xx = np.mgrid[:size, :size]
    img = sum(np.cos(2 * np.pi * (kx * xx + ky * yy) / size) for kx, ky in wavevectors)
    img = img + noise * np.random.default_rng(seed).standard_normal((size, size))
    return normalise(img)


def spectral_peaks(spec: np.ndarray, n: int, exclude: int = 4) -> np.ndarray:
    """Positions (x - c, y - c) of the ``n`` strongest local maxima away from DC."""
    s = spec.astype(np.float64).copy()
    c = spec.shape[0] // 2
    yy, xx = np.mgrid[: spec.shape[0], : spec.shape[1]]
    s[(yy - c) ** 2 + (xx - c) ** 2 <= exclude**2] = -np.inf
    peaks = []
    for _ in range(n):
        y, x = np.unravel_index(np.argmax(s), s.shape)
        peaks.append((x - c, y - c))
        s[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4] = -np.inf
    return np.array(peaks, dtype=float)


def labelled_table(
    group_sizes: list[int], seed: int = 0, probs=(0.5, 0.3, 0.2), group_col: str = "session"
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for g, size in enumerate(group_sizes):
        for _ in range(size):
            rows.append({group_col: f"s{g:03d}", "label": LABELS[rng.choice(3, p=probs)]})
    df = pd.DataFrame(rows)
    df.insert(0, "id", np.arange(1, len(df) + 1))
    return df


def make_workspace(root: Path, n: int, *, sessions: int = 2, labelled: int = 0, seed: int = 0) -> Workspace:
    """A workspace with ``n`` micrographs (cache entries included) over ``sessions`` sessions; the
    first ``labelled`` get an annotation."""
    ws = Workspace.open(root)
    with ws.transaction() as s:
        srows = [SessionRow(name=f"session-{i}", detector="K3" if i % 2 == 0 else "Falcon 4i", grid_material="Au",
                            grid_maker="Quantifoil") for i in range(sessions)]
        s.add_all(srows)
        s.flush()
        annotator = Annotator(name="ana", expertise="postdoc")
        s.add(annotator)
        s.flush()
        for i in range(n):
            image, spectrum = synthetic_pair(seed * 1000 + i)
            key = f"{seed:08d}{i:024x}"
            save_entry(ws.cache_dir, key, image=image, spectrum=spectrum, thumbnail=np.zeros((8, 8), np.uint8))
            m = Micrograph(path=f"/data/m{i:03d}.mrc", name=f"m{i:03d}.mrc", session_id=srows[i % sessions].id,
                           digest=f"d{seed}-{i}", size_bytes=1, shape_y=256, shape_x=256, mode="float32",
                           pixel_size=1.0, pixel_size_source="header", cache_key=key)
            s.add(m)
            s.flush()
            if i < labelled:
                s.add(Annotation(micrograph_id=m.id, annotator_id=annotator.id, label=LABELS[i % 3], source="import"))
    return ws
