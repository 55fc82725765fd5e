"""Data-parallel training on several GPUs (or CPU processes) launched by ``torchrun``.

A thin layer over :func:`micrograde.models.training.recipe.fit`, which runs unchanged in every process:

* each process trains on its own shard of every epoch's (balanced) sample order
  (:class:`ShardedSampler`, the same padding rule as ``DistributedSampler``, so every rank runs the
  same number of batches);
* gradients are averaged over the processes as they are accumulated (an all-reduce per parameter
  from a post-accumulate-grad hook: what ``DistributedDataParallel`` does, without bucketing), so
  every rank takes the same optimiser step and the weights stay identical;
* BatchNorm buffers are broadcast from rank 0 before each training forward pass, and the initial
  weights before training (as ``DistributedDataParallel`` does);
* only rank 0 writes checkpoints and shows progress. Validation, early stopping and calibration run
  on every rank over the whole validation set and agree, because the weights do.

Why not ``DistributedDataParallel`` itself: ``fit`` calls ``get_classifier`` / ``forward_features``
on the model, switches the trainable parameters between stages, and trains the head stage on
cached features through the classifier alone - a DDP wrapper would have to be rebuilt per stage
and around the classifier. That needs a hook in ``fit`` (see the note at the end of this module).

Backends: ``nccl`` on CUDA, ``gloo`` on CPU. Example (2 CPU processes)::

    torchrun --standalone --nproc_per_node 2 my_training_script.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, Sampler

from micrograde.models.training.loop import dataset_labels, n_samples
from micrograde.models.training.recipe import TrainConfig, TrainResult, fit

__all__ = ["DistInfo", "init_distributed", "ShardedSampler", "sync_gradients", "broadcast_state", "fit_distributed"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group ``torchrun`` describes in the environment (RANK, WORLD_SIZE, ...)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RuntimeError("not launched by torchrun: RANK and WORLD_SIZE are not set")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, backend)


class ShardedSampler(Sampler[int]):
    """One rank's share of an epoch's sample order.

    The order comes from ``base`` (e.g. the oversampling sampler; every rank builds the same one
    with the same seed and epoch) or, without one, from a permutation seeded by ``seed`` + epoch.
    The order is padded by wrapping round to a multiple of ``world_size`` and rank ``r`` takes
    positions ``r, r + world_size, ...``: equal shard lengths, so the ranks stay in step.
    """

    def __init__(self, n: int, rank: int, world_size: int, *, base: Sampler[int] | None = None, seed: int = 0):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.n, self.rank, self.world_size, self.base, self.seed = n, rank, world_size, base, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        set_base_epoch = getattr(self.base, "set_epoch", None)
        if callable(set_base_epoch):
            set_base_epoch(epoch)

    def _order(self) -> list[int]:
        if self.base is not None:
            return [int(i) for i in self.base]
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        order = self._order()
        total = -(-len(order) // self.world_size) * self.world_size
        order += (order * (total // max(1, len(order)) + 1))[: total - len(order)]
        return iter(order[self.rank : total : self.world_size])

    def __len__(self) -> int:
        n = n_samples(self.base) if self.base is not None else self.n
        return -(-n // self.world_size)


def sync_gradients(model: nn.Module) -> list:
    """Average every parameter's gradient over the process group as soon as it is accumulated."""
    world = dist.get_world_size()

    def average(param: torch.Tensor) -> None:
        if param.grad is None:
            return
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
        param.grad.div_(world)

    handles = []
    for param in model.parameters():
        was = param.requires_grad
        param.requires_grad_(True)  # a hook can only be registered on a tensor that requires grad
        handles.append(param.register_post_accumulate_grad_hook(average))
        param.requires_grad_(was)
    return handles


def broadcast_state(model: nn.Module, src: int = 0, *, buffers_only: bool = False) -> None:
    """Copy rank ``src``'s parameters (unless ``buffers_only``) and buffers to every rank."""
    with torch.no_grad():
        tensors = list(model.buffers()) + ([] if buffers_only else list(model.parameters()))
        for t in tensors:
            dist.broadcast(t.data, src)


def _buffer_sync_hook(module: nn.Module, _args) -> None:
    if module.training:
        broadcast_state(module, buffers_only=True)


def fit_distributed(
    model: nn.Module,
    train_ds: Dataset,
    val_ds: Dataset,
    cfg: TrainConfig,
    info: DistInfo,
    *,
    checkpoint_dir: Path | None = None,
    progress: bool = True,
    on_epoch=None,
) -> TrainResult:
    """:func:`fit` in every process of the group; rank 0 writes the checkpoints.

    Call after :func:`init_distributed`, with the same model (same backbone and seed), datasets and
    config in every process. The result (weights, history) is the same on every rank.
    """
    sampler_base = None
    if cfg.balance in ("oversample", "undersample"):
        from micrograde.models.training.dataset import make_sampler

        sampler_base = make_sampler(dataset_labels(train_ds), cfg.balance, cfg.seed)
    sampler = ShardedSampler(n_samples(train_ds), info.rank, info.world_size, base=sampler_base, seed=cfg.seed)
    broadcast_state(model)
    handles = sync_gradients(model)
    handles.append(model.register_forward_pre_hook(_buffer_sync_hook))
    try:
        return fit(model, train_ds, val_ds, cfg, sampler=sampler,
                   checkpoint_dir=checkpoint_dir if info.is_main else None,
                   progress=progress and info.is_main, on_epoch=on_epoch if info.is_main else None)
    finally:
        for h in handles:
            h.remove()


# Note for src/micrograde/models/training/recipe.py (what a true DistributedDataParallel wrapper would need): a keyword
# ``wrap_forward: Callable[[nn.Module, str], nn.Module] | None`` that ``_fit`` calls once per stage,
# right after ``set_trainable`` and before building the optimiser, on the module it trains that
# stage (the model, or the classifier for the cached-feature head stage), using the returned
# module as ``train_forward``; plus ``model.module`` unwrapping before ``get_classifier`` and
# ``state_dict``. With it, this module would pass ``lambda m, _stage: DDP(m)``.
