"""The fused head: threshold logic on measures, missing values, early stopping, a digest-checked file."""

from __future__ import annotations

import numpy as np
import pytest

from micrograde.models.fusion import FUSION_FILE, FusionConfig, FusionFileError, fit_fusion, load_fusion, save_fusion

NAMES = ("amount", "unknown", "noise")


def _data(n: int, seed: int):
    """Labels from thresholds on one measure ("bad when amount > 0.6, medium when > 0.3"), a
    measure that is missing half the time, and network features that carry no information."""
    rng = np.random.default_rng(seed)
    amount = rng.uniform(0, 1, n)
    y = np.where(amount > 0.6, 2, np.where(amount > 0.3, 1, 0))
    unknown = np.where(rng.random(n) < 0.5, np.nan, rng.normal(size=n))
    measures = np.stack([amount, unknown, rng.normal(size=n)], axis=1).astype(np.float32)
    pooled = rng.normal(size=(n, 40)).astype(np.float32)
    return pooled, measures, y


@pytest.fixture(scope="module")
def fitted():
    tr, val = _data(600, 0), _data(300, 1)
    cfg = FusionConfig(pca_components=8, max_iter=150, learning_rate=0.1)
    return fit_fusion(*tr, *val, cfg, NAMES), cfg


def test_fused_head_learns_threshold_rules_with_missing_values(fitted):
    fit, cfg = fitted
    pooled, measures, y = _data(400, 2)
    log_p = fit.head.log_proba(pooled, measures)
    assert log_p.shape == (400, 3) and np.all(np.isfinite(log_p)) and np.all(log_p <= 0)
    assert np.allclose(np.exp(log_p).sum(1), 1.0, atol=1e-4)
    assert (log_p.argmax(1) == y).mean() > 0.95
    assert fit.n_components == 8


def test_fused_head_learns_from_few_labels():
    """60 labels (a small facility session): leaves shrink with the data (5 samples), the rule is learnt."""
    fit = fit_fusion(*_data(60, 6), *_data(60, 7), FusionConfig(), NAMES)
    assert fit.head.trees.min_samples_leaf == 5 and fit.n_components == 6
    pooled, measures, y = _data(300, 8)
    assert (fit.head.log_proba(pooled, measures).argmax(1) == y).mean() > 0.85


def test_early_stopping_picks_the_best_validation_iteration(fitted):
    fit, cfg = fitted
    assert len(fit.val_log_loss) == cfg.max_iter
    assert fit.n_iter == int(np.argmin(fit.val_log_loss)) + 1
    assert fit.head.trees.n_iter_ == fit.n_iter  # refitted with the chosen count


def test_fused_head_refuses_a_wrong_number_of_measures(fitted):
    fit, _ = fitted
    pooled, measures, _ = _data(10, 3)
    with pytest.raises(ValueError, match="needs 3 measures, got 2"):
        fit.head.log_proba(pooled, measures[:, :2])


def test_fused_head_file_round_trip_and_digest_check(fitted, tmp_path):
    fit, _ = fitted
    entry = save_fusion(tmp_path, fit.head)
    assert entry["file"] == FUSION_FILE and len(entry["sha256"]) == 64
    loaded = load_fusion(tmp_path, entry)
    pooled, measures, _ = _data(50, 4)
    assert np.array_equal(loaded.log_proba(pooled, measures), fit.head.log_proba(pooled, measures))
    assert loaded.measure_names == NAMES and loaded.unused == fit.head.unused == ()
    with pytest.raises(FusionFileError, match="refusing to load"):
        load_fusion(tmp_path, entry | {"sha256": "0" * 64})
    (tmp_path / FUSION_FILE).unlink()
    with pytest.raises(FusionFileError, match="missing"):
        load_fusion(tmp_path, entry)


def test_fused_head_needs_two_classes():
    pooled, measures, y = _data(60, 5)
    with pytest.raises(ValueError, match="two classes"):
        fit_fusion(pooled, measures, np.zeros_like(y), pooled, measures, y, FusionConfig(), NAMES)


def test_predictor_grades_with_the_fused_head(tmp_path):
    """A model folder whose card names a fused head: the Predictor combines the network's pooled
    features with the cached measures, then applies the calibration temperature."""
    import torch
    from torch.utils.data import TensorDataset

    from micrograde.models.calibration import apply_temperature
    from micrograde.models.checkpoint import ModelCardMismatch, build_card, save_model
    from micrograde.models.training.dataset import MicrographDataset
    from micrograde.models.infer import Predictor
    from micrograde.models.training.loop import extract_features, make_loader, pooled_features
    from micrograde.models.backbones.registry import create_model
    from micrograde.pipeline.catalogue.cache import save_entry

    rng = np.random.default_rng(0)
    cache, keys = tmp_path / "cache", [f"{i:02d}fused" for i in range(60)]
    amount = rng.uniform(0, 1, len(keys))
    for key, a in zip(keys, amount, strict=True):
        save_entry(cache, key, image=rng.standard_normal((64, 64)).astype(np.float32),
                   spectrum=rng.standard_normal((64, 64)).astype(np.float32),
                   measures=np.array([a, np.nan, rng.normal()], np.float32), measure_names=np.array(NAMES))
    y = np.where(amount > 0.6, 2, np.where(amount > 0.3, 1, 0))
    model, info = create_model("lenet", seed=1)
    model.eval()
    ds = MicrographDataset(cache, keys, y, input_size=64)
    pooled, _ = extract_features(pooled_features(model), make_loader(ds, batch_size=16), torch.device("cpu"),
                                 progress=False)
    measures = ds.measures(NAMES)
    fit = fit_fusion(pooled.numpy(), measures, y, pooled.numpy(), measures, y,
                     FusionConfig(pca_components=4, max_iter=30), NAMES)
    folder = tmp_path / "m-fused"
    entry = save_fusion(folder, fit.head)
    card = build_card(model_id="m-fused", backbone="lenet", weights=info, layout="image,spectrum,image",
                      input_size=64, target_pixel_size=4.0, calibration={"temperature": 1.5},
                      head={"kind": "fusion", "fusion": entry})
    save_model(folder, model, card)

    predictor = Predictor(folder, expect_pixel_size=4.0)
    got = predictor.predict(keys, cache_dir=cache, batch_size=7)
    expected = apply_temperature(fit.head.log_proba(pooled.numpy(), measures), 1.5)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (got.argmax(1) == y).mean() > 0.9
    assert predictor.fusion.unused == ("unknown",)  # missing in every sample: set aside, not an error
    with pytest.raises(ModelCardMismatch, match="physical measures"):
        predictor.predict(TensorDataset(torch.zeros(2, 3, 64, 64), torch.zeros(2, dtype=torch.long)))

    (folder / FUSION_FILE).write_bytes(b"not the fitted head")
    with pytest.raises(FusionFileError, match="refusing to load"):
        Predictor(folder)
