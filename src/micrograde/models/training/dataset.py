"""The torch ``Dataset`` over the workspace cache, and the balancing sampler.

Each sample is a float32 tensor ``[3, input_size, input_size]`` in a channel layout that a
3-channel pretrained network accepts (see :data:`LAYOUTS`; the layout name goes into the model
card), and the class index (``-1`` when unlabelled).

Sizes: the cached image (256 px at 4 A/px by default) is brought to ``input_size`` by a Fourier
crop (``resize="fourier"``: the whole field, pixel size ``4 * 256 / input_size`` A) or a centre crop
(``resize="crop"``: the pixel size kept, the border lost). The power spectrum is always
resampled by area averaging (never cropped): its edge must stay at 1/3.2 A, or the ice rings at
3.67-3.44 A would be cut off. Resizing happens once (at preload), augmentation after, at the
input size, which keeps augmentation fast.

Augmentation is reseeded for every sample from ``(seed, epoch, index)``: the same seed gives the
same samples whatever the worker count or order; :meth:`MicrographDataset.set_epoch` changes the
draw from one epoch to the next.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from micrograde.pipeline.catalogue.cache import load_entry
from micrograde.pipeline.data.augment import apply_augment, derive_seed, reseed
from micrograde.pipeline.data.balance import BALANCE_STRATEGIES, label_indices, sample_weights, undersample
from micrograde.pipeline.signal.fourier import fourier_crop

__all__ = ["LAYOUTS", "DEFAULT_LAYOUT", "RESIZE_MODES", "MicrographDataset", "BalancedSampler", "make_sampler",
           "fit_size"]

#: Channel layouts (channel 0, 1, 2) a 3-channel pretrained network accepts.
LAYOUTS: dict[str, tuple[str, str, str]] = {
    # image in the outer channels, the full-resolution power spectrum in the middle one: the
    # network sees the particles/ice texture and the Thon rings / ice rings together.
    "image,spectrum,image": ("image", "spectrum", "image"),
    # the grayscale image repeated: the plain ImageNet-style input, no spectrum.
    "image,image,image": ("image", "image", "image"),
}
DEFAULT_LAYOUT = "image,spectrum,image"
RESIZE_MODES = ("fourier", "crop")


def fit_size(arr: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Bring a square-ish 2-D array to ``size x size``: ``fourier`` crop, centre ``crop``, or
    ``area`` resampling (spectra). Upsizing always interpolates (bicubic)."""
    h, w = arr.shape
    if (h, w) == (size, size):
        return arr.astype(np.float32, copy=False)
    if size > min(h, w):
        return cv2.resize(arr.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    if mode == "fourier":
        return fourier_crop(arr, (size, size))
    if mode == "crop":
        y0, x0 = (h - size) // 2, (w - size) // 2
        return np.ascontiguousarray(arr[y0 : y0 + size, x0 : x0 + size], dtype=np.float32)
    if mode == "area":
        return cv2.resize(arr.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    raise ValueError(f"unknown resize mode {mode!r}")


class MicrographDataset(Dataset):
    """Cached micrographs as ``(x [3, S, S] float32, y int64)``; ``y = -1`` when unlabelled.

    Args:
        cache_dir: the workspace cache folder (``ws.cache_dir``).
        cache_keys: one cache key per micrograph.
        labels: class indices or names aligned with ``cache_keys``, or ``None``.
        layout: a key of :data:`LAYOUTS`.
        input_size: side of the network input.
        augment: an albumentations Compose from ``pipeline.augment.build_augment`` (or ``None``).
        seed: augmentation seed (with the epoch and index).
        resize: ``fourier`` or ``crop`` for the image (the spectrum is always area-resampled).
        preload: read and resize every entry now (about 2 x 4 x S^2 bytes each) instead of per item.
    """

    def __init__(self, cache_dir: Path, cache_keys: Sequence[str], labels: Sequence[int] | Sequence[str] | None, *,
                 layout: str = DEFAULT_LAYOUT, input_size: int = 224, augment=None, seed: int = 0,
                 preload: bool = True, resize: str = "fourier"):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown channel layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
        if resize not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {resize!r}; choose one of {', '.join(RESIZE_MODES)}")
        if input_size < 16:
            raise ValueError(f"input_size must be at least 16, got {input_size}")
        self.cache_dir = Path(cache_dir)
        self.cache_keys = [str(k) for k in cache_keys]
        self.labels = None if labels is None else label_indices(labels)
        if self.labels is not None and len(self.labels) != len(self.cache_keys):
            raise ValueError(f"{len(self.cache_keys)} cache keys but {len(self.labels)} labels")
        self.layout = layout
        self.channels = LAYOUTS[layout]
        self.input_size = int(input_size)
        self.augment = augment
        self.seed = int(seed)
        self.resize = resize
        self.epoch = 0
        self._needs_spectrum = "spectrum" in self.channels
        self._cache: list[tuple[np.ndarray, np.ndarray | None]] | None = None
        if preload:
            self._cache = [self._load(i) for i in range(len(self.cache_keys))]

    def __len__(self) -> int:
        return len(self.cache_keys)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (call once per epoch)."""
        self.epoch = int(epoch)

    def describe(self) -> dict:
        """What the model card records about the inputs."""
        return {"layout": self.layout, "channels": list(self.channels), "input_size": self.input_size,
                "image_resize": self.resize, "spectrum_resize": "area",
                "normalisation": "cache: image and log power spectrum each mean 0, std 1"}

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        entry = load_entry(self.cache_dir, self.cache_keys[i])
        image = fit_size(np.asarray(entry["image"], dtype=np.float32), self.input_size, self.resize)
        spectrum = None
        if self._needs_spectrum or self.augment is not None:
            spectrum = fit_size(np.asarray(entry["spectrum"], dtype=np.float32), self.input_size, "area")
        return image, spectrum

    def arrays(self, i: int, *, augmented: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """The (image, spectrum) pair of sample ``i`` at the input size, augmented when asked."""
        image, spectrum = self._cache[i] if self._cache is not None else self._load(i)
        if augmented and self.augment is not None:
            reseed(self.augment, derive_seed(self.seed, self.epoch, i))
            image, spectrum = apply_augment(self.augment, image, spectrum)
        return image, spectrum

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        image, spectrum = self.arrays(i)
        if spectrum is None and "spectrum" in self.channels:
            raise ValueError(f"sample {i} has no cached power spectrum; re-ingest it")
        planes: dict[str, np.ndarray] = {"image": image} if spectrum is None else {"image": image, "spectrum": spectrum}
        x = np.stack([planes[c] for c in self.channels]).astype(np.float32, copy=False)
        y = -1 if self.labels is None else int(self.labels[i])
        return torch.from_numpy(np.ascontiguousarray(x)), torch.tensor(y, dtype=torch.int64)


class BalancedSampler(Sampler[int]):
    """``oversample``: ``len(labels)`` weighted draws with replacement (each class equally likely);
    ``undersample``: a fresh random subset per epoch, every class cut to the smallest count,
    shuffled. Deterministic per (seed, epoch); call :meth:`set_epoch` each epoch."""

    def __init__(self, labels: Sequence | np.ndarray, strategy: str, seed: int = 0):
        if strategy not in ("oversample", "undersample"):
            raise ValueError(f"BalancedSampler does {strategy!r}? only 'oversample' or 'undersample'")
        self.labels = label_indices(labels)
        self.strategy = strategy
        self.seed = int(seed)
        self.epoch = 0
        self._weights = sample_weights(self.labels, "oversample")
        counts = np.bincount(self.labels, minlength=3)
        self._n_under = int(counts[counts > 0].min() * (counts > 0).sum()) if len(self.labels) else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.labels) if self.strategy == "oversample" else self._n_under

    def __iter__(self) -> Iterator[int]:
        if not len(self.labels):
            return iter([])
        seed = derive_seed(self.seed, self.epoch, 0x5A)
        gen = torch.Generator().manual_seed(seed)
        if self.strategy == "oversample":
            idx = torch.multinomial(torch.as_tensor(self._weights, dtype=torch.double), len(self.labels),
                                    replacement=True, generator=gen)
            return iter(idx.tolist())
        kept = undersample(np.arange(len(self.labels)), self.labels, seed)
        order = torch.randperm(len(kept), generator=gen).numpy()
        return iter(kept[order].tolist())



def make_sampler(labels: Sequence | np.ndarray, strategy: str, seed: int = 0) -> Sampler[int] | None:
    """The sampler for a balance strategy: a :class:`BalancedSampler` for ``oversample`` and
    ``undersample``; ``None`` for ``class-weights`` (use ``pipeline.balance.class_weights`` in the
    loss) and ``none``."""
    if strategy not in BALANCE_STRATEGIES:
        raise ValueError(f"unknown balance strategy {strategy!r}; choose one of {', '.join(BALANCE_STRATEGIES)}")
    if strategy in ("class-weights", "none"):
        return None
    return BalancedSampler(labels, strategy, seed)
