"""Fine-tuning recipe: head on frozen features, then the last stages at a lower learning rate.

Stage ``head`` (pretrained backbones only): backbone frozen; its pooled features are computed
once per sample and cached in memory (fast on CPU): from the un-augmented images when
``head_on_clean_features`` (default), else only when the training set has no augmentation (with
augmentation they are then computed per batch without gradients). Stage ``finetune``: the spec's last stages and the
head are unfrozen (BatchNorm statistics stay as pretrained); without augmentation the frozen
trunk's activations are likewise computed once and only the tail runs each epoch. A model trained from scratch
(``weights="none"``, or lenet) has a single ``finetune`` stage with every parameter trainable,
``epochs_head + epochs_finetune`` epochs at ``lr_head``.

Each stage: AdamW, linear warm-up then cosine decay (per step), early stopping on validation
loss (``patience``); the best weights are restored at the end of each stage. Every epoch is
checkpointed atomically (model, optimiser, scheduler, epoch, history, config) so ``resume``
continues the same run: each epoch reseeds from ``seed`` and its number, so an interrupted and
resumed run gives the same weights as an uninterrupted one. The validation logits then fit a
calibration temperature.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from micrograde.models.backbones.adapters import split_model
from micrograde.models.backbones.registry import DEFAULT_BACKBONE, get_spec, trainable_prefixes
from micrograde.models.calibration import calibration_summary
from micrograde.models.training.loop import (
    dataset_labels,
    extract_features,
    make_loader,
    make_scaler,
    n_samples,
    pooled_features,
    predict_logits,
    resolve_device,
    set_trainable,
    train_one_epoch,
    warmup_cosine,
)
from micrograde.pipeline.config import LABELS, FrozenModel
from micrograde.pipeline.data.balance import class_weights as balance_class_weights
from micrograde.pipeline.data.metrics import classification_metrics
from micrograde.pipeline.io.atomic import atomic_open

__all__ = ["TrainConfig", "EpochRecord", "TrainResult", "fit", "without_augment", "CHECKPOINT_NAME"]

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "last.pt"
Balance = Literal["oversample", "undersample", "class-weights", "none"]
_RESUME_FREE = ("num_workers", "device")  # settings a resumed run may change
OVERFIT_MIN_GAP = 0.05  # ignore ratios between near-zero losses


class TrainConfig(FrozenModel):
    """Options of one training run (recorded in the model card)."""

    backbone: str = DEFAULT_BACKBONE
    weights: str = Field("default", description='"default", "none" or a weights file path')
    epochs_head: int = Field(8, ge=0)
    epochs_finetune: int = Field(6, ge=0)
    batch_size: int = Field(32, ge=1)
    lr_head: float = Field(3e-3, gt=0)
    lr_finetune: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: int = Field(1, ge=0)
    patience: int = Field(3, ge=1, description="epochs without validation-loss improvement before stopping a stage")
    min_delta: float = Field(1e-4, ge=0)
    balance: Balance = "oversample"
    class_weights: tuple[float, ...] | None = None
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    device: str = "auto"
    cache_features: bool = Field(True, description="compute frozen features once when there is no augmentation")
    feature_cache_mb: int = Field(2048, ge=0, description="memory limit of the cached trunk activations")
    head_on_clean_features: bool = Field(
        True, description="head stage on cached features of the un-augmented images (augmentation then "
        "applies in the fine-tuning stage): much faster on CPU")
    overfit_ratio: float = Field(1.5, gt=1)

    def pretrained(self) -> bool:
        if self.weights == "none":
            return False
        return not (self.weights == "default" and get_spec(self.backbone).default_weights == "none")


@dataclass
class EpochRecord:
    epoch: int
    stage: str  # "head" | "finetune"
    train_loss: float
    val_loss: float
    val_accuracy: float
    val_macro_f1: float
    lr: float
    seconds: float


@dataclass
class TrainResult:
    model: nn.Module
    history: list[EpochRecord]
    best_epoch: int
    warnings: list[str]
    temperature: float
    calibration: dict
    class_weights: list[float] | None = None
    stopped_early: list[str] = field(default_factory=list)


@dataclass
class _Stage:
    name: str
    epochs: int
    lr: float
    prefixes: tuple[str, ...]


def _stages(cfg: TrainConfig) -> list[_Stage]:
    spec = get_spec(cfg.backbone)
    if not cfg.pretrained():
        return [_Stage("finetune", cfg.epochs_head + cfg.epochs_finetune, cfg.lr_head, ("",))]
    return [
        _Stage("head", cfg.epochs_head, cfg.lr_head, spec.classifier),
        _Stage("finetune", cfg.epochs_finetune, cfg.lr_finetune, trainable_prefixes(spec)),
    ]


def _class_weights(cfg: TrainConfig, y: np.ndarray) -> list[float] | None:
    if cfg.class_weights is not None:
        if len(cfg.class_weights) != len(LABELS):
            raise ValueError(f"class_weights needs {len(LABELS)} values ({', '.join(LABELS)})")
        return [float(w) for w in cfg.class_weights]
    if cfg.balance != "class-weights":
        return None
    return [float(w) for w in balance_class_weights(y)]  # n / (k * count), 0 for absent classes


def _default_sampler(cfg: TrainConfig, y: np.ndarray):
    if cfg.balance not in ("oversample", "undersample"):
        return None
    from micrograde.models.training.dataset import make_sampler  # the training-data helper's sampler

    return make_sampler(y, cfg.balance, cfg.seed)


def _save_checkpoint(path: Path, payload: dict) -> None:
    with atomic_open(path, "wb") as fh:
        torch.save(payload, fh)


def _load_checkpoint(resume: Path, cfg: TrainConfig) -> dict:
    path = Path(resume)
    path = path / CHECKPOINT_NAME if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    saved, now = dict(ckpt["cfg"]), cfg.model_dump()
    diff = [k for k in now if k not in _RESUME_FREE and saved.get(k) != now[k]]
    if diff:
        raise ValueError(f"cannot resume {path}: the configuration differs in {', '.join(diff)}")
    return ckpt


@contextlib.contextmanager
def without_augment(ds):
    """Temporarily switch off a dataset's ``augment`` (restored afterwards)."""
    saved = getattr(ds, "augment", None)
    if saved is None:
        yield
        return
    ds.augment = None
    try:
        yield
    finally:
        ds.augment = saved


def _stage_inputs(model, stage: _Stage, cfg: TrainConfig, train_ds, val_ds, val_loader, device, augmenting: bool,
                  progress: bool):
    """(train forward, val forward, train source, val source) of a stage.

    The frozen part of a stage (the whole backbone for the head stage, the trunk of
    :mod:`micrograde.models.backbones.adapters` for the fine-tuning stage) computes the same thing every
    epoch for a dataset without augmentation, so with ``cache_features`` its output is computed
    once per sample (when it fits in ``feature_cache_mb``) and only the trained part runs each
    epoch. The validation set never augments, so it is cached even when training augments.
    """
    spec = get_spec(cfg.backbone)
    frozen: Callable[[torch.Tensor], torch.Tensor] | nn.Module | None
    if stage.name == "head":
        frozen, trained = pooled_features(model), model.get_classifier()
    else:
        split = split_model(model, spec.family, spec.finetune_stages) if "" not in stage.prefixes else None
        frozen, trained = (split.trunk, split.tail) if split is not None else (None, model)
    if frozen is None:
        return model, model, train_ds, val_ds

    def through(x, _frozen=frozen, _trained=trained):
        with torch.no_grad():
            h = _frozen(x)
        return _trained(h)

    clean_head = stage.name == "head" and cfg.head_on_clean_features
    cache_train = cfg.cache_features and (not augmenting or clean_head)
    cache_val = cfg.cache_features and getattr(val_ds, "augment", None) is None
    if not (cache_train or cache_val):
        return through, through, train_ds, val_ds
    model.eval()
    with torch.no_grad():
        probe = frozen(val_ds[0][0][None].to(device))
    n = len(train_ds) * cache_train + len(val_ds) * cache_val
    if probe[0].numel() * 4 * n > cfg.feature_cache_mb * 2**20:
        set_trainable(model, stage.prefixes)
        return through, through, train_ds, val_ds
    desc = "features" if stage.name == "head" else "trunk"
    train_fwd, train_src, val_fwd, val_src = through, train_ds, through, val_ds
    if cache_train:
        loader = make_loader(train_ds, batch_size=cfg.batch_size, num_workers=cfg.num_workers, device=device)
        with without_augment(train_ds):
            cached = extract_features(frozen, loader, device, desc=f"{desc} (train)", progress=progress)
        train_fwd, train_src = trained, TensorDataset(*cached)
    if cache_val:
        val_fwd, val_src = trained, TensorDataset(*extract_features(frozen, val_loader, device,
                                                                    desc=f"{desc} (val)", progress=progress))
    set_trainable(model, stage.prefixes)
    return train_fwd, val_fwd, train_src, val_src


def fit(
    model: nn.Module,
    train_ds: Dataset,
    val_ds: Dataset,
    cfg: TrainConfig,
    *,
    sampler=None,
    checkpoint_dir: Path | None = None,
    resume: Path | None = None,
    progress: bool = True,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train ``model`` (from :func:`create_model` with ``cfg.backbone``) on ``train_ds``.

    ``sampler``: a balancing sampler over ``train_ds``; by default one is made for
    ``balance="oversample"/"undersample"``. ``checkpoint_dir``: where ``last.pt`` is written
    every epoch. ``resume``: a checkpoint file (or its folder) of the same configuration.
    """
    if n_samples(train_ds) == 0 or n_samples(val_ds) == 0:
        raise ValueError("training and validation sets must not be empty")
    device = resolve_device(cfg.device)
    previous_det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _fit(model, train_ds, val_ds, cfg, device, sampler, checkpoint_dir, resume, progress, on_epoch)
    finally:
        torch.use_deterministic_algorithms(previous_det)


def _fit(model, train_ds, val_ds, cfg, device, sampler, checkpoint_dir, resume, progress, on_epoch) -> TrainResult:
    torch.manual_seed(cfg.seed)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    y_train = dataset_labels(train_ds)
    weights = _class_weights(cfg, y_train)
    criterion = nn.CrossEntropyLoss(weight=torch.tensor(weights, device=device) if weights else None)
    if sampler is None:
        sampler = _default_sampler(cfg, y_train)
    st: dict[str, Any] = {"history": [], "best_val": float("inf"), "best_epoch": 0, "best_state": None, "warnings": [],
          "stage_index": 0, "stage_epoch": 0, "stage_done": False, "bad": 0, "epoch": 0, "stopped": []}
    ckpt = None
    if resume is not None:
        ckpt = _load_checkpoint(resume, cfg)
        model.load_state_dict(ckpt["model"])
        st.update({k: ckpt[k] for k in st if k in ckpt})
        st["history"] = [EpochRecord(**h) for h in ckpt["history"]]
    val_loader = make_loader(val_ds, batch_size=cfg.batch_size, num_workers=cfg.num_workers, device=device)
    augmenting = getattr(train_ds, "augment", None) is not None
    stages = _stages(cfg)
    for si, stage in enumerate(stages):
        if si < st["stage_index"] or (si == st["stage_index"] and st["stage_done"]) or stage.epochs == 0:
            continue
        params = set_trainable(model, stage.prefixes)
        train_forward, val_forward, train_source, val_source = _stage_inputs(
            model, stage, cfg, train_ds, val_ds, val_loader, device, augmenting, progress)
        use_cache = train_source is not train_ds
        n_batches = len(make_loader(train_source, batch_size=cfg.batch_size, sampler=sampler))
        optimizer = torch.optim.AdamW(params, lr=stage.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(stage.epochs * n_batches, min(cfg.warmup_epochs, stage.epochs - 1) * n_batches)
        )
        scaler = make_scaler(device)
        start = 1
        if ckpt is not None and si == st["stage_index"] and st["stage_epoch"] > 0:
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            scaler.load_state_dict(ckpt["scaler"])
            start = st["stage_epoch"] + 1
        else:
            st["bad"] = 0
        for se in range(start, stage.epochs + 1):
            t0 = time.perf_counter()
            epoch = st["epoch"] + 1
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            for obj in (train_ds, sampler):
                if hasattr(obj, "set_epoch"):
                    obj.set_epoch(epoch)
            set_trainable(model, stage.prefixes)
            loader = make_loader(train_source, batch_size=cfg.batch_size, shuffle=True, sampler=sampler,
                                 num_workers=0 if use_cache else cfg.num_workers, seed=cfg.seed + epoch, device=device)
            lr = optimizer.param_groups[0]["lr"]
            train_loss = train_one_epoch(train_forward, loader, criterion, optimizer, scheduler, scaler, device,
                                         desc=f"{stage.name} {se}/{stage.epochs}", progress=progress)
            model.eval()
            v_loader = val_loader if val_source is val_ds else make_loader(val_source, batch_size=cfg.batch_size)
            v_logits, v_y = predict_logits(val_forward, v_loader, device, desc="validate", progress=progress)
            val_loss = float(criterion(v_logits.to(device), v_y.to(device)))
            m = classification_metrics(v_y.numpy(), v_logits.argmax(1).numpy())
            rec = EpochRecord(epoch, stage.name, train_loss, val_loss, m["accuracy"], m["macro_f1"], lr,
                              time.perf_counter() - t0)
            st["history"].append(rec)
            st["epoch"], st["stage_index"], st["stage_epoch"] = epoch, si, se
            if val_loss > cfg.overfit_ratio * train_loss and val_loss - train_loss > OVERFIT_MIN_GAP:
                msg = (f"epoch {epoch} ({stage.name}): validation loss {val_loss:.3f} is more than "
                       f"{cfg.overfit_ratio:g} x the training loss {train_loss:.3f}; the model may be overfitting "
                       "(label more micrographs, augment, or train fewer epochs)")
                st["warnings"].append(msg)
                log.warning(msg)
            if val_loss < st["best_val"] - cfg.min_delta:
                st["best_val"], st["best_epoch"], st["bad"] = val_loss, epoch, 0
                st["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                st["bad"] += 1
            stop = st["bad"] >= cfg.patience
            if stop and se < stage.epochs:
                st["stopped"].append(f"{stage.name} stopped early at epoch {epoch} (best {st['best_epoch']})")
            st["stage_done"] = stop or se == stage.epochs
            if st["stage_done"] and st["best_state"] is not None:
                model.load_state_dict(st["best_state"])  # the next stage starts from the best weights
            if checkpoint_dir is not None:
                _save_checkpoint(Path(checkpoint_dir) / CHECKPOINT_NAME, {
                    **{k: v for k, v in st.items() if k != "history"},
                    "history": [asdict(h) for h in st["history"]],
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "cfg": cfg.model_dump(),
                })
            if on_epoch is not None:
                on_epoch(rec)
            if stop:
                break
        ckpt = None
    if st["best_state"] is not None:
        model.load_state_dict(st["best_state"])
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    logits, y = predict_logits(model, val_loader, device, desc="calibrate", progress=progress)
    cal = calibration_summary(logits.numpy(), y.numpy())
    return TrainResult(model=model, history=st["history"], best_epoch=st["best_epoch"], warnings=st["warnings"],
                       temperature=cal["temperature"], calibration=cal, class_weights=weights,
                       stopped_early=st["stopped"])
