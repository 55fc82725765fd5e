"""Fourier cropping: downsampling that keeps every frequency below the new Nyquist untouched.

A Fourier crop keeps the low-frequency block of the image's spectrum and transforms back on the
smaller grid. Unlike block binning it neither attenuates the kept frequencies (no sinc envelope)
nor aliases the dropped ones into the image. The DC term is kept, so the mean is kept exactly.

The crop is separable and done in float32 (complex64): a real FFT along the rows of the full
image (in row chunks, keeping only the needed columns), a complex FFT along the columns of that
narrow block, then the inverse transforms on the small grid. Only the first pass touches every
pixel, and no full-size float64 or complex copy of the image is made.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

__all__ = ["fourier_crop", "resample_to_pixel_size", "shape_at_pixel_size"]

#: Elements per row chunk of the first (row) FFT pass: bounds the temporary complex array.
_CHUNK_ELEMS = 1 << 21


def _as_float32(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {a.shape}")
    return a if a.dtype == np.float32 else a.astype(np.float32)


def fourier_crop(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Downsample ``img`` to ``shape`` by cropping its Fourier transform.

    ``shape`` must not exceed ``img.shape`` along either axis (this never upsamples). Odd and even
    sizes are both handled; for an even output size the Nyquist row/column is taken from the
    negative-frequency side, as numpy's FFT layout does. The mean of the output equals the mean
    of the input (up to float32 rounding). Always returns a new float32 array.
    """
    a = _as_float32(img)
    big_h, big_w = a.shape
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1 or h > big_h or w > big_w:
        raise ValueError(f"cannot Fourier-crop {a.shape} to {(h, w)}: need 1 <= output <= input")
    if (h, w) == (big_h, big_w):
        return a.copy() if a is img else a

    # Pass 1: real FFT along rows, keeping the columns kx = 0 .. w//2.
    keep_x = w // 2 + 1
    if w == big_w:
        spec = sfft.rfft(a, axis=1)
    else:
        spec = np.empty((big_h, keep_x), dtype=np.complex64)
        step = max(1, _CHUNK_ELEMS // big_w)
        for y0 in range(0, big_h, step):
            spec[y0 : y0 + step] = sfft.rfft(a[y0 : y0 + step], axis=1)[:, :keep_x]

    # Pass 2: complex FFT along columns of the narrow block, keep rows ky = -(h//2) .. (h-1)//2.
    if h < big_h:
        spec = sfft.fft(spec, axis=0, overwrite_x=True)
        top, bottom = (h + 1) // 2, h // 2
        if bottom:
            spec = np.concatenate([spec[:top], spec[big_h - bottom :]], axis=0)
        else:
            spec = spec[:top]
        spec = sfft.ifft(spec, axis=0, overwrite_x=True)
    out = sfft.irfft(spec, n=w, axis=1)
    out *= np.float32((h * w) / (big_h * big_w))
    return out.astype(np.float32, copy=False)


def shape_at_pixel_size(shape: tuple[int, int], pixel_size: float, target_pixel_size: float) -> tuple[int, int]:
    """The integer image shape that samples the same field at ``target_pixel_size`` (never larger)."""
    if pixel_size <= 0 or target_pixel_size <= 0:
        raise ValueError(f"pixel sizes must be > 0, got {pixel_size} and {target_pixel_size}")
    factor = min(1.0, pixel_size / target_pixel_size)
    return tuple(min(n, max(1, int(round(n * factor)))) for n in shape)  # type: ignore[return-value]


def resample_to_pixel_size(
    img: np.ndarray, pixel_size: float, target_pixel_size: float
) -> tuple[np.ndarray, float]:
    """Fourier-crop ``img`` so that its pixel size becomes about ``target_pixel_size``.

    The output shape is the rounded field size at the target pixel size, so the actual pixel size
    differs from the target by the rounding (well under 1% for micrographs); it is returned as the
    mean over both axes. An image already at or coarser than the target is returned unchanged
    (as float32) with its own pixel size: this function never upsamples.
    """
    a = _as_float32(img)
    if pixel_size <= 0 or target_pixel_size <= 0:
        raise ValueError(f"pixel sizes must be > 0, got {pixel_size} and {target_pixel_size}")
    if pixel_size >= target_pixel_size:
        return a, float(pixel_size)
    shape = shape_at_pixel_size(a.shape, pixel_size, target_pixel_size)
    out = fourier_crop(a, shape)
    actual = pixel_size * 0.5 * (a.shape[0] / shape[0] + a.shape[1] / shape[1])
    return out, float(actual)
