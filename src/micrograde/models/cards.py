"""Model cards (``card.json``) without the networks: read, checked and made JSON-safe with numpy alone.

Everything that reads a card (a grader's heads, ``assess``'s input checks, a model's preprocessing)
imports this module, not :mod:`.checkpoint`, which also saves and loads network weights and so imports
torch: a command that grades with a scikit-learn head never pays for importing torch.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from micrograde.pipeline.config import LABELS

__all__ = ["CARD_NAME", "CARD_SCHEMA", "PIXEL_SIZE_RTOL", "ModelCardMismatch", "ModelLoadError", "jsonable",
           "read_card", "check_card", "versions"]

CARD_NAME = "card.json"
CARD_SCHEMA = 1
PIXEL_SIZE_RTOL = 1e-3


class ModelLoadError(RuntimeError):
    """A model folder is missing, incomplete or corrupt."""


class ModelCardMismatch(ValueError):
    """The data do not match what the model was trained on (pixel size, input layout, classes)."""


def jsonable(obj):
    """Plain JSON values: dataclasses and pydantic models to dicts, numpy to Python, NaN to None."""
    if is_dataclass(obj) and not isinstance(obj, type):
        obj = asdict(obj)
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
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
        "torch": _version("torch"),
        "timm": _version("timm"),
        "numpy": np.__version__,
        "scikit-learn": _version("scikit-learn"),
        "micrograde": __version__,
    }


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
