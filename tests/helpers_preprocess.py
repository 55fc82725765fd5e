"""Small synthetic micrographs for the preprocessing tests (independent of pipeline.simulate)."""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

WAVELENGTH_300KV = 0.019687  # A
CS_A = 2.7e7  # 2.7 mm


def freq_grid(shape: tuple[int, int], pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """(fy, fx) in 1/A for rfft2 layout."""
    fy = sfft.fftfreq(shape[0], d=pixel_size)[:, None]
    fx = sfft.rfftfreq(shape[1], d=pixel_size)[None, :]
    return fy, fx


def filtered_noise(shape, pixel_size, transfer, rng) -> np.ndarray:
    """White noise passed through ``transfer(fy, fx)`` (an amplitude filter)."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    spec = sfft.rfft2(noise)
    fy, fx = freq_grid(shape, pixel_size)
    spec *= transfer(fy, fx).astype(np.float32)
    return sfft.irfft2(spec, s=shape).astype(np.float32)


def ctf_image(
    shape,
    pixel_size,
    *,
    defocus=15000.0,
    bfactor=80.0,
    signal=3.0,
    noise=1.0,
    astig=0.0,
    drift=0.0,
    seed=0,
) -> np.ndarray:
    """Thon rings: white 'specimen' through a CTF with a B-factor envelope, plus white noise.

    ``astig``: defocus difference (A) between the axes; ``drift``: blur length (A) along x
    (a box kernel, i.e. a sinc^2 damping of the power along fx).
    """
    rng = np.random.default_rng(seed)

    def transfer(fy, fx):
        f2 = fy**2 + fx**2
        theta = np.arctan2(fy, fx)
        dz = defocus + 0.5 * astig * np.cos(2 * theta)
        gamma = np.pi * WAVELENGTH_300KV * dz * f2 - 0.5 * np.pi * CS_A * WAVELENGTH_300KV**3 * f2**2
        ctf = -np.sin(gamma + 0.07)
        env = np.exp(-bfactor * f2 / 4.0)
        blur = np.sinc(drift * fx) if drift > 0 else 1.0
        return signal * ctf * env * blur

    img = filtered_noise(shape, pixel_size, transfer, rng)
    img += noise * rng.standard_normal(shape, dtype=np.float32)
    return img


def lattice(shape, pixel_size, spacing, *, amp=0.5, angle=0.3, order=3) -> np.ndarray:
    """Hexagonal lattice of period ``spacing`` (A): a sum of ``order`` cosines 60 degrees apart."""
    y = np.arange(shape[0], dtype=np.float32)[:, None] * pixel_size
    x = np.arange(shape[1], dtype=np.float32)[None, :] * pixel_size
    out = np.zeros(shape, np.float32)
    k = np.float32(2 * np.pi / spacing)
    for i in range(order):
        th = angle + i * np.pi / 3
        out += np.cos(k * (np.float32(np.cos(th)) * x + np.float32(np.sin(th)) * y))
    return amp * out


def crystalline_patch(shape, pixel_size, spacings=(3.90, 3.67, 3.44), *, amp=0.4, seed=0) -> np.ndarray:
    """A few crystalline 'domains' (discs) with lattices of the given spacings at random angles."""
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    for spacing in spacings:
        for _ in range(2):
            cy, cx = rng.uniform(0.2, 0.8) * shape[0], rng.uniform(0.2, 0.8) * shape[1]
            rad = 0.25 * min(shape)
            disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < rad**2
            out += disc * lattice(shape, pixel_size, spacing, amp=amp, angle=rng.uniform(0, np.pi))
    return out


def dark_blobs(shape, pixel_size, *, n=4, radius_A=400.0, depth=4.0, seed=0) -> np.ndarray:
    """Negative discs (contamination): add to an image with unit noise."""
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    rad = radius_A / pixel_size
    for _ in range(n):
        cy, cx = rng.uniform(rad, shape[0] - rad), rng.uniform(rad, shape[1] - rad)
        out -= depth * (((yy - cy) ** 2 + (xx - cx) ** 2) < rad**2)
    return out
