"""The fine-tuned network as one more candidate head, evaluated in the same folds as the others.

In each fold a pretrained backbone is fine-tuned on the fold's training micrographs with the
fine-tuning recipe (:func:`micrograde.models.training.run.train_model`; its early stopping and
temperature use a validation split of the fold's OWN training micrographs, grouped by session), and
predicts the held-out micrographs. If the out-of-fold figures make it the chosen head, it is
fine-tuned once more on every label and saved in ``network/`` inside the grader's folder.

It costs a fine-tuning per fold: minutes on a GPU, tens of minutes or more on CPU. ``finetune="auto"``
evaluates it only when a CUDA device is present; ``"cv"`` always; ``"never"`` never.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["NETWORK_DIR", "finetune_available", "finetune_run_config", "finetune_oof", "finetune_refit",
           "network_probs"]

NETWORK_DIR = "network"


def finetune_available(mode: str) -> str | None:
    """None when the fine-tuning candidate is to be evaluated, else the reason it is not."""
    if mode == "never":
        return "not evaluated: --finetune never"
    if mode == "cv":
        return None
    import torch

    if torch.cuda.is_available():
        return None
    return ("not evaluated: no GPU (fine-tuning once per fold takes tens of minutes on CPU); "
            "use --finetune cv to evaluate it anyway")


def finetune_run_config(cfg):
    """The fine-tuning recipe's run configuration of a grader configuration (no test split: the
    folds hold out)."""
    from micrograde.models.training.run import TrainRunConfig
    from micrograde.pipeline.data.splits import SplitConfig

    return TrainRunConfig(train=cfg.recipe, augment=cfg.augment, layout=cfg.layout, preprocess=cfg.preprocess,
                          split=SplitConfig(group_by=cfg.group_by, test_fraction=0.0, seed=cfg.seed))


def _fit(table: pd.DataFrame, cache_dir: Path, out: Path, cfg, name: str, progress: bool, log) -> Path:
    """Fine-tune on ``table`` into ``out``: in this process, or in ``cfg.nproc`` torchrun processes."""
    table = table.reset_index(drop=True)
    if cfg.nproc <= 1:
        from micrograde.models.training.run import train_model

        train_model(table, cache_dir, out, finetune_run_config(cfg), model_id=name, progress=progress, log=log)
        return out
    from micrograde.models.training.ddp_entry import run_torchrun

    run_torchrun(table, cache_dir, out, finetune_run_config(cfg), name, cfg.nproc)
    return out


def network_probs(network_dir: Path, keys, cache_dir: Path) -> np.ndarray:
    """Calibrated probabilities of a fine-tuned network folder for cache keys."""
    from micrograde.models.infer import Predictor

    return Predictor(network_dir, device="auto").predict(list(keys), cache_dir=cache_dir)


def finetune_oof(table: pd.DataFrame, cache_dir: Path, y: np.ndarray, folds, cfg, *, progress: bool = False,
                 log: Callable[[str], None] = lambda _l: None) -> np.ndarray:
    """Out-of-fold probabilities (N, 3) of the fine-tuned network."""
    out = np.full((len(table), 3), np.nan)
    for i, (train, held) in enumerate(folds.splits):
        with tempfile.TemporaryDirectory(prefix="mg-finetune-") as tmp:
            net = _fit(table.iloc[train], cache_dir, Path(tmp) / "net", cfg, f"fold{i + 1}", progress, lambda _l: None)
            out[held] = network_probs(net, table["cache_key"].iloc[held], cache_dir)
        log(f"fine-tuning: fold {i + 1}/{len(folds)} done")
    return out


def finetune_refit(table: pd.DataFrame, cache_dir: Path, y: np.ndarray, model_dir: Path, cfg, *,
                   progress: bool = False, log: Callable[[str], None] = lambda _l: None) -> dict:
    """Fine-tune on every label into ``model_dir/network``; returns the card's file entries."""
    from micrograde.models.checkpoint import CARD_NAME, WEIGHTS_NAME, read_card

    net = _fit(table, cache_dir, Path(model_dir) / NETWORK_DIR, cfg, "network", progress, log)
    card = read_card(net)
    return {"network": {"dir": NETWORK_DIR, "card": CARD_NAME, "weights_sha256": card["files"][WEIGHTS_NAME]}}
