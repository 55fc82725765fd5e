"""The per-model prediction cache (src/micrograde/models/batch_predict.py): two assessments at once keep both
their predictions (read-modify-write under a lock)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd

from micrograde.models.batch_predict import predict_cached, prediction_cache_path


class SlowPredictor:
    """Stands in for a loaded model: the probabilities follow from the key; predicting takes a while."""

    model_id = "model-test"

    def predict(self, keys, **_kw):
        time.sleep(0.2)  # both callers read the store before either writes it
        return np.array([[0.5, 0.3, 0.2] if k.endswith("a") else [0.1, 0.2, 0.7] for k in keys])


def test_two_assessments_at_once_keep_each_others_predictions(tmp_path):
    batches = [[f"k{i}a" for i in range(5)], [f"k{i}b" for i in range(5)]]
    errors: list[BaseException] = []

    def assess(keys):
        try:
            predict_cached(SlowPredictor(), tmp_path, keys)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=assess, args=(keys,)) for keys in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = pd.read_parquet(prediction_cache_path(tmp_path, "model-test"))
    assert sorted(stored["cache_key"]) == sorted(batches[0] + batches[1])
    probs, n_cached = predict_cached(SlowPredictor(), tmp_path, batches[0] + batches[1])
    assert n_cached == 10 and probs.shape == (10, 3)
    assert np.allclose(probs[:5], [0.5, 0.3, 0.2]) and np.allclose(probs[5:], [0.1, 0.2, 0.7])
