"""Writing simulated micrographs and collections: formats, metadata, truth.csv, determinism."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers_simulate import SMALL_FLOAT, SMALL_SESSIONS

from micrograde.pipeline.config import LABELS, REASON_TAGS, SessionMeta
from micrograde.pipeline.sim.files import (
    MODE_DTYPES,
    noisy_labels,
    truth_columns,
    write_collection,
    write_micrograph,
)
from micrograde.pipeline.sim.physics import SimParams

N = 15  # 3 per session


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("sim") / "a"
    return out, write_collection(out, N, seed=11, sessions=SMALL_SESSIONS)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_files_have_the_session_mode_dtype_and_voxel_size(collection):
    out, truth = collection
    by_name = {s.name: s for s in SMALL_SESSIONS}
    assert len(truth) == N and set(truth["session"]) == set(by_name)
    for rel, name in zip(truth["micrograph"], truth["session"], strict=True):
        session = by_name[name]
        path = out / rel
        assert path.name.startswith(f"{name}_") and path.parent.name == name and path.suffix == ".mrc"
        with mrcfile.open(path) as mrc:  # strict (permissive=False) by default
            assert int(mrc.header.mode) == session.mrc_mode
            assert mrc.data.dtype == np.dtype(MODE_DTYPES[session.mrc_mode])
            assert mrc.data.shape == session.shape
            assert mrc.voxel_size.x == pytest.approx(session.pixel_size, rel=1e-5)
            assert mrc.voxel_size.y == pytest.approx(session.pixel_size, rel=1e-5)
            if session.counts:
                assert mrc.data.min() >= 0
            assert b"acquired" in bytes(mrc.header.label[0])


def test_session_json_has_exactly_the_session_meta_keys(collection):
    out, _ = collection
    for session in SMALL_SESSIONS:
        meta = json.loads((out / session.name / "session.json").read_text())
        # every key is one ingest reads (SessionMeta refuses unknown keys); the simulator writes all it
        # knows of a session (the voltage, a SessionMeta field since, stays with its rendering parameters)
        assert set(meta) <= set(SessionMeta.model_fields) and {"name", "detector", "dose"} <= set(meta)
        assert SessionMeta(**meta).detector == session.detector
        assert meta["dose"] == session.dose and meta["grid_material"] == session.grid_material


def test_truth_csv_columns_labels_and_times(collection):
    out, truth = collection
    table = pd.read_csv(out / "truth.csv", keep_default_na=False)
    assert tuple(table.columns) == truth_columns(["a"])
    assert set(SimParams.field_names()) <= set(table.columns)
    assert table["micrograph"].tolist() == truth["micrograph"].tolist()
    counts = table.groupby("session")["label"].value_counts().unstack(fill_value=0)
    assert (counts[list(LABELS)] == 1).all().all()  # 3 per session: one of each label
    for reasons, label in zip(table["reasons"], table["label"], strict=True):
        tags = [t for t in reasons.split(";") if t]
        assert set(tags) <= set(REASON_TAGS) and (not tags) == (label == "good")
    for _, group in table.groupby("session"):
        times = pd.to_datetime(group["acquired_at"])
        assert times.is_monotonic_increasing and times.is_unique
    first = out / table["micrograph"][0]
    assert first.stat().st_mtime == pytest.approx(pd.Timestamp(table["acquired_at"][0]).timestamp())


def test_balanced_labels_over_a_larger_collection(tmp_path):
    small = [dataclasses.replace(s, shape=(64, 64), name=f"b{i}") for i, s in enumerate(SMALL_SESSIONS[:2])]
    truth = write_collection(tmp_path, 20, seed=1, sessions=small)
    counts = truth["label"].value_counts()
    assert set(counts.index) == set(LABELS) and counts.max() - counts.min() <= 1
    assert truth.groupby("session").size().tolist() == [10, 10]


def test_same_seed_gives_byte_identical_output_and_another_seed_differs(collection, tmp_path):
    out, _ = collection
    again = tmp_path / "b"
    write_collection(again, N, seed=11, sessions=SMALL_SESSIONS)
    assert _files(again) == _files(out)
    other = tmp_path / "c"
    write_collection(other, N, seed=12, sessions=SMALL_SESSIONS)
    assert _files(other) != _files(out)


def test_rerun_into_the_same_folder_replaces_only_its_own_outputs(tmp_path):
    sessions = SMALL_SESSIONS[:2]
    write_collection(tmp_path, 6, seed=0, sessions=sessions)
    user_file = tmp_path / sessions[0].name / "notes.txt"
    user_file.write_text("mine")
    truth = write_collection(tmp_path, 2, seed=0, sessions=sessions)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.mrc"))
    assert written == sorted([*truth["micrograph"], *truth["mask"]])  # the folder matches truth.csv
    assert user_file.read_text() == "mine"
    assert not list(tmp_path.rglob("*.part"))


def test_tiff_session_writes_uint16_counts_with_resolution(tmp_path):
    session = dataclasses.replace(SMALL_FLOAT, name="tif", suffix=".tif", mrc_mode=6)
    data = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256) % 97
    when = datetime(2025, 5, 1, 12, 30, tzinfo=UTC)
    write_micrograph(tmp_path / "a.tif", data, session, acquired_at=when)
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        page = tif.pages[0]
        np.testing.assert_array_equal(page.asarray(), data)
        x_res = page.tags["XResolution"].value
        assert 1e8 / (x_res[0] / x_res[1]) == pytest.approx(session.pixel_size, rel=1e-3)
        assert page.tags["DateTime"].value == "2025:05:01 12:30:00"
    assert (tmp_path / "a.tif").stat().st_mtime == when.timestamp()


def test_write_micrograph_saturates_integer_modes_and_rejects_bad_input(tmp_path):
    session = dataclasses.replace(SMALL_FLOAT, mrc_mode=0, name="i8")
    data = np.full((64, 64), 500.0)
    write_micrograph(tmp_path / "x.mrc", data, session, acquired_at=datetime(2025, 1, 1))
    with mrcfile.open(tmp_path / "x.mrc") as mrc:
        assert mrc.data.dtype == np.int8 and int(mrc.data.max()) == 127
    with pytest.raises(ValueError, match="NaN"):
        write_micrograph(tmp_path / "y.mrc", np.full((64, 64), np.nan), SMALL_FLOAT, acquired_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="2-D"):
        write_micrograph(tmp_path / "z.mrc", np.zeros((2, 4, 4)), SMALL_FLOAT, acquired_at=datetime(2025, 1, 1))
    assert not (tmp_path / "y.mrc").exists() and not list(tmp_path.glob(".*part"))


def test_write_collection_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        write_collection(tmp_path, 0)
    with pytest.raises(ValueError, match="unique"):
        write_collection(tmp_path, 2, sessions=[SMALL_FLOAT, SMALL_FLOAT])
    with pytest.raises(ValueError, match="at least one session"):
        write_collection(tmp_path, 2, sessions=[])


def test_noisy_labels_flip_to_neighbouring_classes(collection):
    _, truth = collection
    big = pd.concat([truth] * 8, ignore_index=True)
    noisy = noisy_labels(big, flip_rate=0.25, seed=3)
    assert list(noisy.columns) == ["micrograph", "label"]
    changed = noisy["label"] != big["label"]
    assert changed.sum() == round(0.25 * len(big))
    pairs = set(zip(big["label"][changed], noisy["label"][changed], strict=True))
    assert pairs <= {("good", "medium"), ("bad", "medium"), ("medium", "good"), ("medium", "bad")}
    assert noisy.equals(noisy_labels(big, flip_rate=0.25, seed=3))
    assert (noisy_labels(big, flip_rate=0.0, seed=3)["label"] == big["label"]).all()
    with pytest.raises(ValueError, match="flip_rate"):
        noisy_labels(big, flip_rate=1.5, seed=0)
