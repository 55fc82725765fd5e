"""The fusion stage of a training run: pooled features of the fine-tuned network on the
(un-augmented) training and validation splits, the cached physical quantities (the scores and
the measures, ``pipeline.measures.PHYSICAL_NAMES``), the fused head,
its calibration, and the model-card entry that says how the grade is made.

The fused head is kept only when its validation macro-F1 is at least the network head's; with
few labels (tens) boosted trees can do worse, and then the network grades alone and the card
records why (``head.fusion_rejected``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from micrograde.pipeline.signal.measures import PHYSICAL_NAMES
from micrograde.pipeline.data.metrics import classification_metrics
from micrograde.models.calibration import calibration_summary
from micrograde.models.fusion import FusionConfig, fit_fusion, save_fusion
from micrograde.models.training.loop import dataset_labels, extract_features, make_loader, pooled_features, resolve_device
from micrograde.models.training.recipe import without_augment

__all__ = ["Fused", "fuse", "network_features"]


@dataclass
class Fused:
    card_entry: dict  # the model card's "head"
    calibration: dict | None  # of the fused probabilities (validation split); None: the network's head is kept
    summary: str


def network_features(model: nn.Module, ds, *, device: torch.device, batch_size: int, progress: bool,
                     desc: str) -> np.ndarray:
    """Pooled features (N, F) of ``model`` over ``ds`` in order, augmentation off."""
    model.eval()
    with without_augment(ds):
        feats, _ = extract_features(pooled_features(model), make_loader(ds, batch_size=batch_size, device=device),
                                    device, desc=desc, progress=progress)
    return feats.numpy()


def fuse(model: nn.Module, train_ds, val_ds, cfg: FusionConfig, model_dir: Path, *, device: str = "auto",
         batch_size: int = 32, progress: bool = True) -> Fused:
    """Fit and save the fused head of ``model`` (already fine-tuned); see :mod:`.fusion`."""
    dev = resolve_device(device)
    model.to(dev)
    f_train = network_features(model, train_ds, device=dev, batch_size=batch_size, progress=progress,
                               desc="features (fusion, train)")
    f_val = network_features(model, val_ds, device=dev, batch_size=batch_size, progress=progress,
                             desc="features (fusion, val)")
    y_train, y_val = dataset_labels(train_ds), dataset_labels(val_ds)
    m_train, m_val = train_ds.measures(PHYSICAL_NAMES), val_ds.measures(PHYSICAL_NAMES)
    fit = fit_fusion(f_train, m_train, y_train, f_val, m_val, y_val, cfg, PHYSICAL_NAMES)
    log_p = fit.head.log_proba(f_val, m_val)
    calibration = calibration_summary(log_p, y_val)
    with torch.inference_mode():
        net_logits = model.get_classifier()(torch.from_numpy(f_val).to(dev)).float().cpu().numpy()
    net = classification_metrics(y_val, net_logits.argmax(1))
    fused = classification_metrics(y_val, log_p.argmax(1))
    validation = {"network_alone_macro_f1": net.get("macro_f1"), "fused_macro_f1": fused.get("macro_f1"),
                  "network_alone_accuracy": net.get("accuracy"), "fused_accuracy": fused.get("accuracy")}
    net_f1, fused_f1 = net.get("macro_f1") or 0.0, fused.get("macro_f1") or 0.0  # None: undefined
    numbers = f"validation macro-F1 network alone {net_f1:.3f}, fused {fused_f1:.3f}"
    if not fused_f1 >= net_f1:
        return Fused({"kind": "network", "fusion_rejected": validation | {"config": cfg.model_dump()}}, None,
                     f"fused head not used ({numbers}): the network's own head grades")
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    entry = {
        "kind": "fusion",
        "fusion": save_fusion(model_dir, fit.head),
        "config": cfg.model_dump(),
        "measures": list(PHYSICAL_NAMES),
        "measures_unused": list(fit.head.unused),
        "pca_components": int(fit.n_components),
        "boosting_iterations": int(fit.n_iter),
        "val_log_loss_by_iteration": [round(v, 5) for v in fit.val_log_loss],
        "validation": validation,
        "measure_missing_fraction": {n: float(np.mean(np.isnan(np.concatenate([m_train[:, i], m_val[:, i]]))))
                                     for i, n in enumerate(PHYSICAL_NAMES)},
    }
    summary = (f"fused head: {fit.n_components} feature components + {len(PHYSICAL_NAMES)} scores and measures, "
               f"{fit.n_iter} boosting iterations; {numbers}")
    return Fused(entry, calibration, summary)
