"""Batched inference: one model load per run, calibrated probabilities, optional thresholds.

:class:`Predictor` loads the model and its card once, then :meth:`Predictor.predict` runs a
DataLoader (with workers) under ``torch.inference_mode`` in channels-last memory format and
returns temperature-calibrated probabilities in :data:`LABELS` order (p_good, p_medium, p_bad).
(This is the fine-tuned network of the grader's ``finetune`` candidate, and of models trained by
micrograde 0.1; graders made of frozen features and scikit-learn heads are
:class:`micrograde.models.grading.Grader`.)

Thresholds: :func:`apply_thresholds` (from :mod:`micrograde.models.thresholds`, numpy only, re-exported
here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from micrograde.models.calibration import apply_temperature
from micrograde.models.checkpoint import ModelCardMismatch, load_model
from micrograde.models.thresholds import apply_thresholds, check_thresholds
from micrograde.models.training.loop import autocast, make_loader, resolve_device
from micrograde.pipeline.config import LABELS

__all__ = ["Predictor", "apply_thresholds", "check_thresholds"]


@dataclass
class Predictor:
    """A trained model loaded once for a run; ``predict`` gives calibrated probabilities."""

    model_dir: Path
    device: str = "auto"
    expect_pixel_size: float | None = None
    expect_layout: str | None = None
    model: nn.Module = field(init=False, repr=False)
    card: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.model_dir = Path(self.model_dir)
        self._device = resolve_device(self.device)
        self.model, self.card = load_model(
            self.model_dir, expect_pixel_size=self.expect_pixel_size, expect_layout=self.expect_layout,
            device=self._device,
        )
        self.model = self.model.to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]  # torch stubs omit memory_format

    @property
    def model_id(self) -> str:
        return str(self.card.get("id", self.model_dir.name))

    @property
    def temperature(self) -> float:
        return float(self.card.get("calibration", {}).get("temperature", 1.0))

    @property
    def layout(self) -> str:
        return self.card["input"]["layout"]

    @property
    def input_size(self) -> int:
        return int(self.card["input"]["size"])

    @property
    def thresholds(self) -> dict[str, float]:
        return check_thresholds(self.card.get("thresholds"))

    def dataset(self, cache_dir: Path, cache_keys: Sequence[str], labels=None) -> Dataset:
        """The cache dataset this model reads (layout, size and resize from its card; no augmentation)."""
        from micrograde.models.training.dataset import MicrographDataset

        resize = self.card["input"].get("preprocess", {}).get("image_resize", "fourier")
        return MicrographDataset(cache_dir, cache_keys, labels, layout=self.layout, input_size=self.input_size,
                                 augment=None, resize=resize)

    def _check(self, ds: Dataset) -> None:
        layout = getattr(ds, "layout", None)
        if layout is not None and layout != self.layout:
            raise ModelCardMismatch(f"model {self.model_id} expects layout {self.layout!r}, the data use {layout!r}")
        size = getattr(ds, "input_size", None)
        if size is not None and int(size) != self.input_size:
            raise ModelCardMismatch(
                f"model {self.model_id} expects {self.input_size} px inputs, the data are {size} px"
            )

    @torch.inference_mode()
    def logits(self, ds: Dataset, *, batch_size: int = 64, num_workers: int = 0, progress: bool = False) -> np.ndarray:
        """Raw logits (N, 3), float32, in dataset order."""
        from tqdm.auto import tqdm

        self._check(ds)
        loader = make_loader(ds, batch_size=batch_size, num_workers=num_workers, device=self._device)
        out = []
        for batch in tqdm(loader, desc="predict", leave=False, disable=not progress, dynamic_ncols=True):
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            x = x.to(self._device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            with autocast(self._device):
                out.append(self.model(x).float().cpu())
        if not out:
            return np.zeros((0, len(LABELS)), np.float32)
        return torch.cat(out).numpy()

    def predict(
        self,
        data: Dataset | Sequence[str],
        *,
        cache_dir: Path | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        progress: bool = False,
    ) -> np.ndarray:
        """Calibrated probabilities (N, 3) in LABELS order, for a Dataset or cache keys (with ``cache_dir``)."""
        if not isinstance(data, Dataset):
            if cache_dir is None:
                raise ValueError("predict from cache keys needs cache_dir")
            data = self.dataset(cache_dir, list(data))
        z = self.logits(data, batch_size=batch_size, num_workers=num_workers, progress=progress)
        if len(z) == 0:
            return np.zeros((0, len(LABELS)))
        return apply_temperature(z, self.temperature)
