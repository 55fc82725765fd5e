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
import math
import platform
import sys
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn

from micrograde.models.backbones.registry import create_model, get_spec
from micrograde.models.backbones.weights import WeightsInfo, file_sha256
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

CARD_NAME = "card.json"
WEIGHTS_NAME = "model.pt"
CARD_SCHEMA = 1
PIXEL_SIZE_RTOL = 1e-3


class ModelLoadError(RuntimeError):
    """A model folder is missing, incomplete or corrupt."""


class ModelCardMismatch(ValueError):
    """The data do not match what the model was trained on (pixel size, input layout, classes)."""


def _jsonable(obj):
    """Plain JSON values: dataclasses and pydantic models to dicts, numpy to Python, NaN to None."""
    if is_dataclass(obj) and not isinstance(obj, type):
        obj = asdict(obj)
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    from micrograde import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": _version("timm"),
        "numpy": np.__version__,
        "scikit-learn": _version("scikit-learn"),
        "micrograde": __version__,
    }


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
    return _jsonable(card)


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
    full = _jsonable(dict(card)) | {"files": {WEIGHTS_NAME: file_sha256(model_dir / WEIGHTS_NAME)}}
    atomic_write_text(model_dir / CARD_NAME, json.dumps(full, indent=2, allow_nan=False) + "\n")


def read_card(model_dir: Path) -> dict:
    path = Path(model_dir) / CARD_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"no model card at {path}: not a trained model folder") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"model card {path} is not valid JSON: {exc}") from None


def check_card(card: dict, *, expect_pixel_size: float | None = None, expect_layout: str | None = None) -> None:
    """Raise :class:`ModelCardMismatch` when the data differ from what the model was trained on."""
    name = card.get("id", "?")
    if list(card.get("classes", [])) != list(LABELS):
        raise ModelCardMismatch(f"model {name} predicts classes {card.get('classes')}, expected {list(LABELS)}")
    inp = card.get("input", {})
    if expect_pixel_size is not None:
        trained = float(inp["target_pixel_size"])
        if abs(trained - float(expect_pixel_size)) > PIXEL_SIZE_RTOL * trained:
            raise ModelCardMismatch(
                f"model {name} was trained on micrographs preprocessed to {trained:g} A/px, but these are at "
                f"{float(expect_pixel_size):g} A/px: ingest them with target pixel size {trained:g} A/px, "
                "or train a model at this pixel size"
            )
    if expect_layout is not None and inp.get("layout") != expect_layout:
        raise ModelCardMismatch(
            f"model {name} expects input layout {inp.get('layout')!r} (channels), but the data use "
            f"{expect_layout!r}: build the inputs with layout {inp.get('layout')!r}"
        )


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
