"""Collections of both families: files, masks, truth.csv, determinism, and what ingest discovers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers_simulate import SMALL_SESSIONS, small_b_sessions

from micrograde.pipeline.io.discover import discover
from micrograde.pipeline.io.label_maps import read_label_map
from micrograde.pipeline.masks import area_fractions
from micrograde.pipeline.sim import (
    FAMILIES,
    family_sessions,
    get_family,
    simulate_micrograph,
    truth_columns,
    write_collection,
)
from micrograde.pipeline.sim.files import MODE_DTYPES

SESSIONS = (*SMALL_SESSIONS[:2], *small_b_sessions())
N = 18  # 3 per session
PARAM_AREAS = {  # mask class -> (family a parameter, family b parameter)
    "carbon": ("carbon_fraction", "carbon_area"),
    "contamination": ("contamination", "contamination_area"),
    "crystalline": ("crystalline_fraction", "crystalline_area"),
    "empty": ("vacuum_fraction", "vacuum_area"),
}


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("both") / "sim"
    return out, write_collection(out, N, seed=21, family="both", sessions=SESSIONS)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_truth_csv_has_family_masks_and_areas(collection):
    out, truth = collection
    table = pd.read_csv(out / "truth.csv", keep_default_na=False)
    assert tuple(table.columns) == truth_columns(["a", "b"])
    by_name = {s.name: s for s in SESSIONS}
    assert dict(zip(table["session"], table["family"], strict=True)) == {s.name: s.family for s in SESSIONS}
    for row in table.itertuples():
        session = by_name[row.session]
        mask, pixel_size = read_label_map(out / row.mask)
        assert row.mask == f"{session.name}/masks/{Path(row.micrograph).stem}.mrc"
        assert mask.shape == session.shape and pixel_size == pytest.approx(session.pixel_size, rel=1e-6)
        for column, value in area_fractions(mask).items():
            assert getattr(row, column) == pytest.approx(value, abs=1e-6)  # the file is the truth
            name = column.removeprefix("area_")
            param = PARAM_AREAS[name][0 if row.family == "a" else 1]
            assert value == pytest.approx(float(getattr(row, param) or 0.0), abs=0.03), (row.micrograph, name)


def test_micrograph_files_per_session_format(collection):
    out, truth = collection
    by_name = {s.name: s for s in SESSIONS}
    for rel, name in zip(truth["micrograph"], truth["session"], strict=True):
        session = by_name[name]
        path = out / rel
        assert path.suffix == session.suffix
        if session.epu_names:
            assert re.fullmatch(r"FoilHole_\d+_Data_\d+_\d+_\d{8}_\d{6}", path.stem), path.name
        if session.suffix == ".mrc":
            with mrcfile.open(path) as mrc:
                assert int(mrc.header.mode) == session.mrc_mode
                assert mrc.data.dtype == np.dtype(MODE_DTYPES[session.mrc_mode]) and mrc.data.shape == session.shape
                assert mrc.voxel_size.x == pytest.approx(session.pixel_size, rel=1e-5)
        else:
            with tifffile.TiffFile(path) as tif:
                assert tif.pages[0].dtype == np.uint16 and tif.pages[0].shape == session.shape
        meta = out / name / "session.json"
        assert meta.is_file() == session.session_json
        if session.session_json:
            assert json.loads(meta.read_text())["detector"] == session.detector


def test_balanced_labels_per_session_in_both_families(collection):
    _, truth = collection
    counts = truth.groupby("session")["label"].value_counts().unstack(fill_value=0)
    assert (counts == 1).all().all()


def test_ingest_discovery_sees_micrographs_not_masks(collection):
    out, truth = collection
    assert discover([out]) == sorted((out / m).resolve() for m in truth["micrograph"])


def test_same_seed_same_bytes_for_both_families(collection, tmp_path):
    out, _ = collection
    write_collection(tmp_path / "again", N, seed=21, family="both", sessions=SESSIONS)
    assert _files(tmp_path / "again") == _files(out)
    write_collection(tmp_path / "other", N, seed=22, family="both", sessions=SESSIONS)
    assert _files(tmp_path / "other") != _files(out)


def test_no_masks_and_rerun_removes_stale_masks(tmp_path):
    sessions = small_b_sessions()[:2]
    first = write_collection(tmp_path, 4, seed=3, sessions=sessions)
    assert all((tmp_path / m).is_file() for m in first["mask"])
    truth = write_collection(tmp_path, 4, seed=3, sessions=sessions, masks=False)
    assert (truth["mask"] == "").all() and truth["area_carbon"].notna().all()
    assert not list(tmp_path.rglob("masks/*.mrc"))  # the previous run's masks are gone with it
    assert pd.read_csv(tmp_path / "truth.csv", keep_default_na=False)["mask"].tolist() == [""] * 4


def test_families_registry_and_bad_arguments(tmp_path):
    assert set(FAMILIES) == {"a", "b"}
    for name, family in FAMILIES.items():
        assert family.name == name and all(s.family == name for s in family.sessions)
        assert {r.tag for r in family.rules} and callable(family.sample)
    assert [s.family for s in family_sessions("both", 1)] == ["a", "b"]
    names = [s.name for s in family_sessions("both")]
    assert len(names) == len(set(names)) == 8
    with pytest.raises(ValueError, match="unknown simulator family"):
        get_family("c")
    with pytest.raises(ValueError, match="family must be one of"):
        write_collection(tmp_path, 2, family="c")
    with pytest.raises(ValueError, match="belongs to family b"):
        write_collection(tmp_path, 2, family="a", sessions=small_b_sessions())
    with pytest.raises(ValueError, match="has 4 sessions"):
        family_sessions("b", 5)
    params = FAMILIES["a"].sample(np.random.default_rng(0), SMALL_SESSIONS[0], "good")
    with pytest.raises(TypeError, match="family b"):
        simulate_micrograph(params, small_b_sessions()[0], np.random.default_rng(0))
