"""The fine-tuning recipe learns, is deterministic, checkpoints every epoch and resumes the same run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_models import concat, micrograph_like
from torch.utils.data import TensorDataset

from micrograde.models.backbones.registry import create_model
from micrograde.models.training.loop import set_trainable, warmup_cosine
from micrograde.models.training.recipe import CHECKPOINT_NAME, TrainConfig, fit
from micrograde.pipeline.data.metrics import classification_metrics


@pytest.fixture(scope="module")
def sessions():
    train = concat(*(micrograph_like(24, s) for s in (1, 2, 3)))
    return train, micrograph_like(24, 4), micrograph_like(45, 5)


def _cfg(**kw):
    base = dict(epochs_head=4, epochs_finetune=1, batch_size=16, balance="none", patience=10, seed=3)
    return TrainConfig(**(base | kw))


def test_fine_tuning_learns_a_held_out_session(sessions):
    train, val, test = sessions
    model, info = create_model("efficientnet_lite0")
    assert info.pretrained
    result = fit(model, train, val, _cfg(), progress=False)
    assert [h.stage for h in result.history] == ["head"] * 4 + ["finetune"]
    assert result.history[-1].val_loss < result.history[0].train_loss
    with torch.no_grad():
        pred = model.eval()(test.tensors[0]).argmax(1).numpy()
    f1 = classification_metrics(test.tensors[1].numpy(), pred)["macro_f1"]
    assert f1 > 0.8, f"macro-F1 {f1:.2f} on the held-out session (chance is about 0.33)"
    assert 0.05 <= result.temperature <= 20
    assert result.calibration["ece_after"] <= result.calibration["ece_before"] + 1e-6


def test_cached_features_train_like_the_full_model(sessions):
    train, val, _ = sessions
    # a training set that declares augmentation (an identity here) is never cached; validation still is
    augmenting = TensorDataset(*train.tensors)
    augmenting.augment = "identity"
    runs = []
    for ds, cache, clean in ((train, True, True), (train, False, True), (augmenting, True, True),
                             (augmenting, True, False)):
        model, _ = create_model("efficientnet_lite0")
        cfg = _cfg(epochs_head=2, epochs_finetune=1, cache_features=cache, head_on_clean_features=clean)
        res = fit(model, ds, val, cfg, progress=False)
        runs.append([h.val_loss for h in res.history])
    for other in runs[1:]:
        np.testing.assert_allclose(other, runs[0], rtol=1e-3, atol=1e-4)
    assert augmenting.augment == "identity"  # switched off for the clean head features only


def test_from_scratch_has_one_stage_training_everything(sessions):
    train, val, _ = sessions
    model, _ = create_model("lenet")
    result = fit(model, train, val, _cfg(backbone="lenet", epochs_head=1, epochs_finetune=1), progress=False)
    assert [h.stage for h in result.history] == ["finetune", "finetune"]
    assert all(p.requires_grad for p in model.parameters())


def test_runs_are_deterministic(sessions):
    train, val, _ = sessions
    runs = []
    for _ in range(2):
        model, _ = create_model("lenet", seed=5)
        res = fit(model, train, val, _cfg(backbone="lenet", epochs_head=1, epochs_finetune=1), progress=False)
        runs.append(([h.train_loss for h in res.history], model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for k, v in runs[0][1].items():
        assert torch.equal(v, runs[1][1][k]), k


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("stop_after", [1, 3])  # inside the head stage; inside the fine-tuning stage
def test_resume_continues_the_same_run(sessions, tmp_path, stop_after):
    train, val, _ = sessions
    cfg = _cfg(epochs_head=2, epochs_finetune=2)
    full_model, _ = create_model("efficientnet_lite0")
    full = fit(full_model, train, val, cfg, progress=False)

    def crash(rec):
        if rec.epoch == stop_after:
            raise Interrupt

    model, _ = create_model("efficientnet_lite0")
    with pytest.raises(Interrupt):
        fit(model, train, val, cfg, checkpoint_dir=tmp_path, on_epoch=crash, progress=False)
    ckpt = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert ckpt["epoch"] == stop_after and set(ckpt) >= {"model", "optimizer", "scheduler", "cfg"}

    seen = []
    fresh, _ = create_model("efficientnet_lite0", seed=99)  # weights come from the checkpoint
    resumed = fit(fresh, train, val, cfg, resume=tmp_path, checkpoint_dir=tmp_path, progress=False,
                  on_epoch=lambda rec: seen.append(rec.epoch))
    assert seen == list(range(stop_after + 1, 5))
    assert [h.epoch for h in resumed.history] == list(range(1, 5))
    np.testing.assert_allclose([h.val_loss for h in resumed.history], [h.val_loss for h in full.history],
                               rtol=1e-5, atol=1e-6)
    for k, v in full_model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_resume_refuses_another_configuration(sessions, tmp_path):
    train, val, _ = sessions
    model, _ = create_model("lenet")
    fit(model, train, val, _cfg(backbone="lenet", epochs_head=1, epochs_finetune=0), checkpoint_dir=tmp_path,
        progress=False)
    with pytest.raises(ValueError, match="lr_head"):
        fit(model, train, val, _cfg(backbone="lenet", epochs_head=1, epochs_finetune=0, lr_head=0.1),
            resume=tmp_path, progress=False)


def test_early_stopping_and_overfitting_warning(sessions):
    train, val, _ = sessions
    # validation labels scrambled: validation loss cannot improve while the training loss falls
    x, y = val.tensors
    bad_val = torch.utils.data.TensorDataset(x, (y + 1) % 3)
    model, _ = create_model("efficientnet_lite0")
    result = fit(model, train, bad_val, _cfg(epochs_head=8, epochs_finetune=0, patience=2), progress=False)
    assert len(result.history) < 8 and result.stopped_early
    assert result.best_epoch == min(result.history, key=lambda h: h.val_loss).epoch
    assert any("overfitting" in w for w in result.warnings)


def test_class_weights_from_balance(sessions):
    train, val, _ = sessions
    x, y = train.tensors
    keep = torch.cat([torch.nonzero(y == c).ravel()[: n] for c, n in ((0, 24), (1, 12), (2, 6))])
    skewed = torch.utils.data.TensorDataset(x[keep], y[keep])
    model, _ = create_model("lenet")
    res = fit(model, skewed, val, _cfg(backbone="lenet", epochs_head=1, epochs_finetune=0, balance="class-weights"),
              progress=False)
    w = res.class_weights
    assert w[2] > w[1] > w[0]
    np.testing.assert_allclose(w, [42 / (3 * 24), 42 / (3 * 12), 42 / (3 * 6)])


def test_schedule_and_freezing():
    f = warmup_cosine(100, 10)
    assert f(0) < f(5) < f(9) <= 1.0 and f(10) == pytest.approx(1.0) and f(99) < 0.01
    model, _ = create_model("efficientnet_lite0", weights="none")
    params = set_trainable(model, ("blocks.6.", "classifier."))
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("blocks.6.", "classifier.")) for n in names)
    assert len(params) == len(names)
    assert not any(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
