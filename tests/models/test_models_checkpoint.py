"""Model folders: save/load round trip, card checks, batched calibrated inference, thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from micrograde.models.backbones.registry import create_model
from micrograde.models.calibration import apply_temperature
from micrograde.models.checkpoint import (
    CARD_NAME,
    WEIGHTS_NAME,
    ModelCardMismatch,
    ModelLoadError,
    build_card,
    load_model,
    save_model,
)
from micrograde.models.infer import Predictor, apply_thresholds
from micrograde.models.training.recipe import EpochRecord, TrainConfig


@pytest.fixture()
def saved(tmp_path):
    model, info = create_model("lenet", seed=4)
    with torch.no_grad():
        model.fc3.bias.copy_(torch.tensor([0.5, 0.0, -0.5]))
    history = [EpochRecord(1, "finetune", 1.0, 1.1, 0.5, 0.4, 1e-3, 2.0)]
    card = build_card(
        model_id="m-001", backbone="lenet", weights=info, layout="image,spectrum,image", input_size=64,
        target_pixel_size=4.0, preprocess={"image_resize": "fourier"}, train_config=TrainConfig(backbone="lenet"),
        training={"class_counts": {"train": {"good": 3, "medium": 2, "bad": float("nan")}}}, history=history,
        metrics={"macro_f1": 0.9}, calibration={"temperature": 2.0, "ece_before": 0.2, "ece_after": 0.05},
        thresholds={"good": 0.7}, command_line=["micrograde", "train", "--backbone", "lenet"],
    )
    opt = torch.optim.AdamW(model.parameters())
    save_model(tmp_path / "m-001", model, card, optimizer=opt, epoch=7)
    return tmp_path / "m-001", model


def test_round_trip_and_card_content(saved):
    folder, model = saved
    card = json.loads((folder / CARD_NAME).read_text())
    assert card["weights"] == {"source": "none", "digest": None, "pretrained": False,
                               "note": "trained from scratch (no pretrained weights)"}
    assert card["classes"] == ["good", "medium", "bad"]
    assert card["input"]["target_pixel_size"] == 4.0 and card["input"]["layout"] == "image,spectrum,image"
    assert card["history"][0]["val_macro_f1"] == 0.4 and card["train_config"]["backbone"] == "lenet"
    assert card["training"]["class_counts"]["train"]["bad"] is None  # NaN written as null
    assert {"python", "torch", "timm", "micrograde"} <= set(card["versions"])
    loaded, card2 = load_model(folder, expect_pixel_size=4.0, expect_layout="image,spectrum,image")
    assert card2["id"] == "m-001" and not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    payload = torch.load(folder / WEIGHTS_NAME, weights_only=True)
    assert payload["epoch"] == 7 and "optimizer" in payload
    with pytest.raises(FileExistsError):
        save_model(folder, model, card)


def test_mismatch_is_refused_with_a_clear_message(saved):
    folder, _ = saved
    with pytest.raises(ModelCardMismatch, match=r"4 A/px.*2 A/px"):
        load_model(folder, expect_pixel_size=2.0)
    with pytest.raises(ModelCardMismatch, match="image,image,image"):
        load_model(folder, expect_layout="image,image,image")
    with pytest.raises(ModelCardMismatch, match="layout"):
        Predictor(folder, expect_layout="image,image,image")
    predictor = Predictor(folder)
    wrong_layout = TensorDataset(torch.zeros(2, 3, 64, 64), torch.zeros(2, dtype=torch.long))
    wrong_layout.layout = "image,image,image"
    with pytest.raises(ModelCardMismatch):
        predictor.predict(wrong_layout)


def test_corrupt_or_missing_model_is_reported(saved, tmp_path):
    folder, _ = saved
    with pytest.raises(ModelLoadError, match="no model card"):
        load_model(tmp_path / "nothing")
    (folder / WEIGHTS_NAME).write_bytes(b"junk")
    with pytest.raises(ModelLoadError, match="digest"):
        load_model(folder)


def test_predictor_gives_calibrated_probabilities_in_order(saved):
    folder, model = saved
    x = torch.randn(10, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ds = TensorDataset(x, torch.zeros(10, dtype=torch.long))
    predictor = Predictor(folder)
    assert predictor.temperature == 2.0 and predictor.thresholds == {"good": 0.7}
    probs = predictor.predict(ds, batch_size=4)
    with torch.no_grad():
        expected = apply_temperature(model.eval()(x), 2.0)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert predictor.predict(TensorDataset(x[:0], torch.zeros(0))).shape == (0, 3)


def test_apply_thresholds_rule():
    probs = np.array([
        [0.65, 0.30, 0.05],
        [0.80, 0.15, 0.05],
        [0.10, 0.20, 0.70],
        [0.40, 0.35, 0.25],
    ])
    # "only call good when p_good >= 0.7", else the next most probable class
    labels, conf = apply_thresholds(probs, {"good": 0.7})
    assert labels == ["medium", "good", "bad", "medium"]
    np.testing.assert_allclose(conf, [0.30, 0.80, 0.70, 0.35])
    # medium needs 0.5 too: rows 0 and 3 fall through to bad (no threshold)
    labels, conf = apply_thresholds(probs, {"good": 0.7, "medium": 0.5})
    assert labels == ["bad", "good", "bad", "bad"]
    np.testing.assert_allclose(conf, [0.05, 0.80, 0.70, 0.25])
    labels, conf = apply_thresholds(probs)  # no thresholds: the most probable class
    assert labels == ["good", "good", "bad", "good"] and conf[0] == 0.65
    labels, _ = apply_thresholds(np.array([[0.5, 0.3, 0.2]]), {"good": 0.9, "medium": 0.9, "bad": 0.9})
    assert labels == ["bad"]  # nothing qualifies: the conservative class
    with pytest.raises(ValueError, match="unknown class"):
        apply_thresholds(probs, {"great": 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        apply_thresholds(probs, {"good": 1.5})


def test_predict_from_cache_keys(saved, tmp_path):
    from micrograde.pipeline.catalogue.cache import save_entry

    folder, _ = saved
    rng = np.random.default_rng(0)
    keys = [f"{i:02d}abcdef" for i in range(3)]
    for key in keys:
        save_entry(tmp_path / "cache", key, image=rng.standard_normal((128, 128)).astype(np.float32),
                   spectrum=rng.standard_normal((128, 128)).astype(np.float32))
    predictor = Predictor(folder, expect_pixel_size=4.0)
    by_keys = predictor.predict(keys, cache_dir=tmp_path / "cache", batch_size=2)
    by_dataset = predictor.predict(predictor.dataset(tmp_path / "cache", keys))
    assert by_keys.shape == (3, 3)
    np.testing.assert_allclose(by_keys, by_dataset)
    with pytest.raises(ValueError, match="cache_dir"):
        predictor.predict(keys)
