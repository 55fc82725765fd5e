"""Trained models on disk: ``WORKSPACE/models/<id>/model.pt`` + ``card.json``.

``model.pt`` holds the weights (and, for resuming, the optimiser state and epoch); the JSON model
card says what the model is and what it expects: backbone, weights source and digest, classes,
input layout, size, normalisation and pixel size, training data, history, metrics, calibration,
thresholds, versions, time and command line. Both are written atomically, the card last, so a
folder with a card is complete. :func:`load_model` checks the card against the data it will see
and raises :class:`ModelCardMismatch` on a pixel-size or layout mismatch.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from micrograde.models.backbones.registry import create_model, get_spec
from micrograde.models.backbones.weights import WeightsInfo, file_sha256
from micrograde.models.cards import (
    CARD_NAME,
    CARD_SCHEMA,
    ModelCardMismatch,
    ModelLoadError,
    check_card,
    jsonable,
    read_card,
    versions,
)
from micrograde.pipeline.config import LABELS
from micrograde.pipeline.io.atomic import atomic_open, atomic_write_text

__all__ = [
    "CARD_NAME",
    "WEIGHTS_NAME",
    "CARD_SCHEMA",
    "ModelCardMismatch",
    "ModelLoadError",
    "build_card",
    "save_model",
    "read_card",
    "check_card",
    "load_model",
    "versions",
]

WEIGHTS_NAME = "model.pt"


def build_card(
    *,
    model_id: str,
    backbone: str,
    weights: WeightsInfo,
    layout: str,
    input_size: int,
    target_pixel_size: float,
    preprocess: dict | None = None,
    train_config=None,
    training: dict | None = None,
    history: list | None = None,
    best_epoch: int | None = None,
    metrics: dict | None = None,
    calibration: dict | None = None,
    thresholds: dict[str, float] | None = None,
    command_line: list[str] | str | None = None,
    warnings: list[str] | None = None,
    created_at: str | None = None,
    head: dict | None = None,
) -> dict:
    """The model card as a JSON-ready dict.

    ``target_pixel_size``: A/px of the cached images the model reads (the workspace's
    preprocessing pixel size), checked by :func:`load_model`. ``preprocess``: the preprocessing
    config and the dataset's ``describe()``. ``training``: data digest, class counts per split
    before/after balancing, balance, split_by, groups per split, diversity, score ranges (free
    form, written as given). ``calibration``: at least ``temperature``, ``ece_before``, ``ece_after``.
    ``head``: how the grade is made: ``{"kind": "network"}`` (default, the network's classifier) or
    ``{"kind": "fusion", "fusion": {"file", "sha256"}, ...}`` (:mod:`micrograde.models.fusion`).
    """
    spec = get_spec(backbone)
    cal = dict(calibration or {})
    cal.setdefault("temperature", 1.0)
    card = {
        "schema": CARD_SCHEMA,
        "id": model_id,
        "created_at": created_at or datetime.now(UTC).isoformat(timespec="seconds"),
        "micrograde_version": versions()["micrograde"],
        "command_line": command_line if command_line is not None else list(sys.argv),
        "backbone": {"name": spec.name, "timm_name": spec.timm_name, "family": spec.family},
        "weights": weights.to_dict()
        | {"note": "ImageNet-pretrained" if weights.pretrained else "trained from scratch (no pretrained weights)"},
        "classes": list(LABELS),
        "input": {
            "layout": layout,
            "size": int(input_size),
            "mean": list(spec.mean),
            "std": list(spec.std),
            "target_pixel_size": float(target_pixel_size),
            "preprocess": preprocess or {},
        },
        "train_config": train_config,
        "training": training or {},
        "history": history or [],
        "best_epoch": best_epoch,
        "metrics": metrics or {},
        "calibration": cal,
        "head": head or {"kind": "network"},
        "thresholds": thresholds or {},
        "warnings": warnings or [],
        "versions": versions(),
    }
    return jsonable(card)


def save_model(
    model_dir: Path, model: nn.Module, card: dict, *, optimizer=None, epoch: int | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``model.pt`` (weights, optimiser, epoch) then ``card.json`` (with the weights' sha256)."""
    model_dir = Path(model_dir)
    if (model_dir / CARD_NAME).exists() and not overwrite:
        raise FileExistsError(f"a model is already saved in {model_dir}")
    model_dir.mkdir(parents=True, exist_ok=True)
    payload = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "epoch": epoch}
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    with atomic_open(model_dir / WEIGHTS_NAME, "wb") as fh:
        torch.save(payload, fh)
    full = jsonable(dict(card)) | {"files": {WEIGHTS_NAME: file_sha256(model_dir / WEIGHTS_NAME)}}
    atomic_write_text(model_dir / CARD_NAME, json.dumps(full, indent=2, allow_nan=False) + "\n")


def load_model(
    model_dir: Path,
    *,
    expect_pixel_size: float | None = None,
    expect_layout: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict]:
    """Rebuild the model from its card, load its weights (digest checked), in eval mode."""
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    check_card(card, expect_pixel_size=expect_pixel_size, expect_layout=expect_layout)
    path = model_dir / WEIGHTS_NAME
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing")
    expected = card.get("files", {}).get(WEIGHTS_NAME)
    if expected and file_sha256(path) != expected:
        raise ModelLoadError(f"{path} does not match the digest in its card (corrupt or replaced)")
    model, _ = create_model(card["backbone"]["name"], num_classes=len(card["classes"]), weights="none")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise ModelLoadError(f"{path} does not fit backbone {card['backbone']['name']}: {exc}") from None
    return model.to(device).eval(), card
