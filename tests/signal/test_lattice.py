"""Local lattice power map: a lattice patch lights up its tiles only."""

from __future__ import annotations

import numpy as np
import pytest

from micrograde.pipeline.signal.lattice import lattice_power_map, lattice_visible, tile_grid


def _image_with_lattice(pixel_size: float = 1.0, size: int = 512, patch: tuple[slice, slice] | None = None,
                        amplitude: float = 0.6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.normal(0.0, 1.0, (size, size)).astype(np.float32)
    if patch is not None:
        yy, xx = np.mgrid[0:size, 0:size] * pixel_size
        wave = np.cos(2 * np.pi * xx / 3.67) + np.cos(2 * np.pi * (0.5 * xx + 0.866 * yy) / 3.67)
        img[patch] += amplitude * wave[patch].astype(np.float32)
    return img


def test_lattice_patch_lights_up_its_tiles_only():
    img = _image_with_lattice(patch=(slice(128, 256), slice(256, 384)))
    m = lattice_power_map(img, 1.0, tile=128)
    assert m.shape == (4, 4)
    inside = m[1, 2]
    outside = np.delete(m.ravel(), 1 * 4 + 2)
    assert inside > 1.0
    assert np.abs(outside).max() < 0.3


def test_amorphous_image_is_flat_and_map_follows_tile_grid():
    img = _image_with_lattice(size=300)
    m = lattice_power_map(img, 0.9, tile=64, stride=32)
    ys, xs = tile_grid(img.shape, 64, 32)
    assert m.shape == (len(ys), len(xs))
    assert ys[-1] == 300 - 64 and xs[0] == 0
    assert np.abs(m).max() < 0.8  # few band pixels in a 64-pixel tile: a noisy estimate, but no lattice


def test_coarse_pixel_size_gives_zeros_and_bad_input_is_refused():
    img = _image_with_lattice(size=256, patch=(slice(0, 256), slice(0, 256)))
    assert not lattice_visible(2.0) and lattice_visible(1.0)
    assert not lattice_power_map(img, 2.0, tile=64).any()
    with pytest.raises(ValueError, match="2-D"):
        lattice_power_map(img[None], 1.0)
    with pytest.raises(ValueError, match="pixel size"):
        lattice_power_map(img, 0.0)
