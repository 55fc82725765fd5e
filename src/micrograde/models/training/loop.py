"""Building blocks of the training loop: device and precision, freezing, schedules, epochs.

Used by :mod:`micrograde.models.training.recipe` (fit) and :mod:`micrograde.models.infer`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from tqdm.auto import tqdm

from micrograde.pipeline.data.metrics import as_indices

__all__ = [
    "resolve_device",
    "autocast",
    "make_scaler",
    "dataset_labels",
    "n_samples",
    "set_trainable",
    "warmup_cosine",
    "make_loader",
    "extract_features",
    "pooled_features",
    "predict_logits",
    "train_one_epoch",
]


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None  # full precision on CPU
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision on a GPU (bf16 where supported, else fp16); a no-op on CPU."""
    dtype = _amp_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 autocast (bf16 and fp32 need none)."""
    return torch.amp.GradScaler("cuda", enabled=_amp_dtype(device) == torch.float16)


def n_samples(dataset: object) -> int:
    """The number of samples of a dataset (torch's ``Dataset`` declares no ``__len__``; ours all have one)."""
    if not isinstance(dataset, Sized):
        raise TypeError(f"{type(dataset).__name__} has no length")
    return len(dataset)


def dataset_labels(ds: Dataset) -> np.ndarray:
    """Class indices of a dataset without loading its inputs where the dataset allows it."""
    if isinstance(ds, Subset):
        return dataset_labels(ds.dataset)[np.asarray(ds.indices)]
    if isinstance(ds, TensorDataset):
        return as_indices(ds.tensors[1].cpu().numpy())
    labels = getattr(ds, "labels", None)
    if labels is not None:
        return as_indices(np.asarray(labels))
    return as_indices(np.array([int(ds[i][1]) for i in range(len(ds))]))  # type: ignore[arg-type]


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return (name + ".").startswith(prefixes)


def set_trainable(model: nn.Module, prefixes: tuple[str, ...]) -> list[nn.Parameter]:
    """Freeze all parameters but those under ``prefixes`` ("" = all: training from scratch).

    Trainable modules go to train mode, the rest to eval mode. When fine-tuning (prefixes other
    than ""), every BatchNorm keeps its pretrained running statistics (eval mode; its affine
    parameters still train): small CPU batches give noisy batch statistics that would undo
    the head stage. Returns the trainable parameters."""
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad_(_matches(name, prefixes))
        if p.requires_grad:
            trainable.append(p)
    model.eval()
    for name, module in model.named_modules():
        if name and _matches(name, prefixes):
            module.train()
    if "" in prefixes:
        model.train()  # from scratch: everything trains, BatchNorm included
    else:
        for module in model.modules():  # fine-tuning: keep pretrained BatchNorm statistics
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    return trainable


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR factor: linear warm-up over ``warmup_steps`` then cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _worker_init(worker_id: int) -> None:
    np.random.seed(torch.initial_seed() % 2**32)


def make_loader(
    ds: Dataset,
    *,
    batch_size: int,
    shuffle: bool = False,
    sampler=None,
    num_workers: int = 0,
    seed: int | None = None,
    device: torch.device | None = None,
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        generator=generator,
        worker_init_fn=_worker_init if num_workers else None,
        pin_memory=device is not None and device.type == "cuda",
        persistent_workers=False,
    )


def _batches(loader: DataLoader, desc: str, progress: bool) -> Iterator:
    return iter(tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True))


def _to(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 and device.type == "cuda" else x


@torch.no_grad()
def extract_features(fn: Callable, loader: DataLoader, device: torch.device, *, desc: str = "features",
                     progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn(x)`` (float32, on the CPU) and labels for every sample, in order: pooled backbone
    features or frozen-trunk activations, computed once and reused every epoch. The caller sets
    eval mode. (``no_grad``, not ``inference_mode``: the results are inputs of trained layers.)"""
    outs, ys = [], []
    for x, y in _batches(loader, desc, progress):
        with autocast(device):
            out = fn(_to(x, device))
        outs.append(out.float().cpu())
        ys.append(torch.as_tensor(y).long())
    return torch.cat(outs), torch.cat(ys)


def pooled_features(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The pooled pre-logits features of a registry model (the classifier's input)."""
    timm_model: Any = model  # a timm model: forward_features / forward_head
    return lambda x: timm_model.forward_head(timm_model.forward_features(x), pre_logits=True)


@torch.inference_mode()
def predict_logits(forward: Callable, loader: DataLoader, device: torch.device, *, desc: str = "predict",
                   progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 logits (N, C) and labels (N,) of ``forward`` over ``loader`` (caller sets eval mode)."""
    logits, ys = [], []
    for x, y in _batches(loader, desc, progress):
        with autocast(device):
            out = forward(_to(x, device))
        logits.append(out.float().cpu())
        ys.append(torch.as_tensor(y).long())
    return torch.cat(logits), torch.cat(ys)


def train_one_epoch(
    forward: Callable,
    loader: DataLoader,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    *,
    desc: str,
    progress: bool,
) -> float:
    """One pass over ``loader``; returns the mean training loss (weighted by batch size)."""
    total, count = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for x, y in bar:
        y = torch.as_tensor(y).long().to(device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            loss = criterion(forward(_to(x, device)).float(), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss ({loss.item()}) in {desc}; lower the learning rate")
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total += float(loss.detach()) * y.numel()
        count += y.numel()
        bar.set_postfix(loss=f"{total / count:.4f}")
    return total / max(1, count)
