"""Split a backbone at its fine-tuning boundary: a frozen trunk and a trainable tail.

``tail(trunk(x)) == model(x)``. In the fine-tuning stage the trunk is frozen and in eval mode, so
without augmentation its output is the same every epoch: :func:`micrograde.models.training.recipe.fit`
computes it once per sample and trains the tail only, which makes fine-tuning several times
faster on CPU. The split point is the first module of ``BackboneSpec.finetune_stages``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Split", "split_model"]


@dataclass(frozen=True)
class Split:
    trunk: Callable[[torch.Tensor], torch.Tensor]
    tail: Callable[[torch.Tensor], torch.Tensor]


def _efficientnet(m: nn.Module, first: int) -> Split:
    def trunk(x):
        return m.blocks[:first](m.bn1(m.conv_stem(x)))

    def tail(h):
        return m.forward_head(m.bn2(m.conv_head(m.blocks[first:](h))))

    return Split(trunk, tail)


def _resnet(m: nn.Module) -> Split:
    def trunk(x):
        x = m.maxpool(m.act1(m.bn1(m.conv1(x))))
        return m.layer3(m.layer2(m.layer1(x)))

    def tail(h):
        return m.forward_head(m.layer4(h))

    return Split(trunk, tail)


def _convnext(m: nn.Module, first: int) -> Split:
    def trunk(x):
        return m.stages[:first](m.stem(x))

    def tail(h):
        return m.forward_head(m.norm_pre(m.stages[first:](h)))

    return Split(trunk, tail)


def split_model(model: nn.Module, family: str, finetune_stages: tuple[str, ...]) -> Split | None:
    """The trunk/tail split of a registry model, or None when the whole model trains (from scratch)."""
    if not finetune_stages or "" in finetune_stages:
        return None
    first = finetune_stages[0]
    if family == "efficientnet" and first.startswith("blocks."):
        return _efficientnet(model, int(first.split(".")[1]))
    if family == "resnet" and first == "layer4.":
        return _resnet(model)
    if family == "convnext" and first.startswith("stages."):
        return _convnext(model, int(first.split(".")[1]))
    return None
