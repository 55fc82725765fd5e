"""The feature registry (src/micrograde/pipeline/features.py) drives the cache, the catalogue, the grader's
inputs and predictions.csv: one new entry reaches every one of them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers_io import write_mrc

from micrograde.pipeline import features
from micrograde.pipeline.catalogue.cache import load_measures
from micrograde.pipeline.catalogue.ingest import ingest_file
from micrograde.pipeline.catalogue.query import micrograph_table
from micrograde.pipeline.catalogue.schema import Micrograph
from micrograde.pipeline.config import IngestConfig, PreprocessConfig
from micrograde.pipeline.features import Feature, ImageInputs, feature_names, features_of, image_features
from micrograde.pipeline.signal import measures
from micrograde.pipeline.signal.preprocess import preprocess

DOCS = Path(__file__).resolve().parents[2] / "docs" / "preprocessing.md"


def _image(seed: int = 0, shape=(256, 256)) -> np.ndarray:
    return np.random.default_rng(seed).poisson(30.0, shape).astype(np.float32)


def test_names_are_unique_units_and_groups_are_declared():
    names = [f.name for f in features.REGISTRY]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*[A-Za-z0-9]", n) for n in names), "names are column-safe"
    for f in features.REGISTRY:
        assert isinstance(f.unit, str) and f.title and f.description and f.version >= 1
        assert f.group in features.GROUPS and f.worse in ("high", "low", None)
        assert (f.compute is None) == (f.group == "ctf")
    assert feature_names() == (*feature_names("score"), *feature_names("measure"), *feature_names("local"),
                               *feature_names("ctf"))
    assert features.SCORE_COLUMNS == ("ice_ring_score", "thon_reach_A", "anisotropy", "contrast", "dark_fraction")
    with pytest.raises(ValueError, match="group"):
        Feature("x", "", "X", "x", "scores", 1, lambda x: 0.0)
    with pytest.raises(ValueError, match="compute"):
        Feature("x", "", "X", "x", "ctf", 1, lambda x: 0.0)
    with pytest.raises(ValueError, match="unknown feature group"):
        features_of("nope")


def test_the_docs_table_lists_every_feature_with_its_unit():
    text = DOCS.read_text()
    section = text.split("## Feature registry", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `(\w+)` \| ([^|]*) \|", section, re.M)}
    assert list(rows) == list(feature_names()), "docs/preprocessing.md's registry table follows REGISTRY"
    for f in features.REGISTRY:
        assert rows[f.name] == (f.unit or "-"), f.name


def test_image_features_are_keyed_by_the_registry_and_preprocess_carries_them():
    img = _image()
    values = image_features(img, 1.0, dose=30.0)
    assert tuple(values) == feature_names("score", "measure", "local")
    out = preprocess(img, 1.0, PreprocessConfig(image_size=64, spectrum_size=64, thumbnail_size=64), dose=30.0)
    assert tuple(out.features) == tuple(values)
    assert tuple(out.scores) == feature_names("score") and tuple(out.measures) == feature_names("measure")
    assert out.features["transmission"] == pytest.approx(values["transmission"], rel=0.05)


def test_each_shared_full_resolution_pass_runs_once(monkeypatch):
    calls = {"directional": 0, "defocus": 0}
    real_dir, real_def = measures.directional_power, measures.defocus

    def directional(*args):
        calls["directional"] += 1
        return real_dir(*args)

    def defocus(*args):
        calls["defocus"] += 1
        return real_def(*args)

    monkeypatch.setattr(measures, "directional_power", directional)
    monkeypatch.setattr(measures, "defocus", defocus)
    x = ImageInputs(_image(1), 1.0)
    values = image_features(x)
    assert calls == {"directional": 1, "defocus": 1}, "three directional and two defocus features share one pass"
    assert [values[n] for n in ("directional_low", "directional_mid", "directional_high")] == list(x.directional)


def _with_new_feature(monkeypatch) -> Feature:
    new = Feature("edge_mean", "counts", "Edge mean", "mean of the first four rows (a test feature)", "measure", 1,
                  lambda x: float(np.mean(x.image[:4])))
    monkeypatch.setattr(features, "REGISTRY", (*features.REGISTRY, new))
    return new


def test_one_new_entry_reaches_cache_catalogue_grader_and_predictions(monkeypatch, workspace, tmp_path):
    from micrograde.models.grading.features import load_features
    from micrograde.pipeline.report.outputs import prediction_table
    from micrograde.pipeline.report.page import write_predictions

    before = features.features_version()
    _with_new_feature(monkeypatch)
    assert features.features_version() != before, "a new feature recomputes cache entries"
    img = _image(2)
    path = write_mrc(tmp_path / "a.mrc", img, voxel_size=1.0)
    assert ingest_file(workspace, path, IngestConfig()).ingested == 1

    with workspace.session() as s:
        row = s.query(Micrograph).one()
        stored, key = dict(row.features), row.cache_key
    expected = float(np.mean(np.clip(img, *_clip(img))[:4]))
    assert stored["edge_mean"] == pytest.approx(expected, rel=1e-4)  # catalogue JSON
    assert load_measures(workspace.cache_dir, key)["edge_mean"] == pytest.approx(expected, rel=1e-4)  # cache entry
    table = micrograph_table(workspace)
    assert table.loc[0, "edge_mean"] == pytest.approx(expected, rel=1e-4)  # spread into a column

    feats = load_features([key], workspace.cache_dir)  # the grader's measures block
    assert feats.names["measures"][-1] == "edge_mean"
    assert feats.blocks["measures"][0, -1] == pytest.approx(expected, rel=1e-4)

    preds = prediction_table(table, np.array([[0.7, 0.2, 0.1]]), ["good"], np.array([0.7]))
    csv, _ = write_predictions(tmp_path / "report", preds)
    back = pd.read_csv(csv)
    assert back.loc[0, "edge_mean"] == pytest.approx(expected, rel=1e-4)
    assert list(back.columns).index("edge_mean") < list(back.columns).index("name"), "features lead the details"
    assert not set(feature_names("ctf")) & set(back.columns), "no CTF column without imported estimates"


def _clip(img: np.ndarray) -> tuple[float, float]:
    from micrograde.pipeline.signal.normalise import robust_stats
    from micrograde.pipeline.signal.preprocess import HOT_PIXEL_SIGMA

    med, sigma = robust_stats(img.astype(np.float32))
    return med - HOT_PIXEL_SIGMA * sigma, med + HOT_PIXEL_SIGMA * sigma


def test_ctf_columns_appear_in_predictions_where_imported():
    from micrograde.pipeline.report.outputs import prediction_table

    rows = pd.DataFrame({"path": ["/d/a.mrc", "/d/b.mrc"], "session": "s", "name": ["a.mrc", "b.mrc"], "id": [1, 2],
                         "acquired_at": None, "detector": None, "grid_material": None, "grid_maker": None,
                         "pixel_size": 1.0, "voltage_kv": 300.0, "cache_key": ["k1", "k2"],
                         "ctf_resolution_A": [3.1, np.nan], "ctf_defocus_um": [np.nan, np.nan]})
    out = prediction_table(rows, np.full((2, 3), 1 / 3), ["good", "bad"], np.full(2, 1 / 3))
    assert "ctf_resolution_A" in out.columns and "ctf_defocus_um" not in out.columns
    assert out["ctf_resolution_A"].tolist()[0] == 3.1 and np.isnan(out["ctf_resolution_A"].tolist()[1])
    assert set(feature_names("score", "measure", "local")) <= set(out.columns)


def test_ctf_columns_with_values_are_those_with_a_finite_value_in_some_row():
    first, second, third = feature_names("ctf")[:3]
    rows = pd.DataFrame({first: [np.nan, 1.5], second: [np.nan, np.inf], third: ["", None], "other": [1.0, 2.0]})
    assert features.ctf_columns_with_values(rows) == [first]
    assert features.ctf_columns_with_values(rows.iloc[:0]) == []
