"""Versioned cache identity and the files table (src/micrograde/pipeline/catalogue/identity.py, files.py, ingest.py):
a corrected option updates the micrograph, a new code version recomputes, unchanged files are not hashed again,
a bad file has one reject per reason and a later success supersedes it."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers_io import write_mrc
from sqlalchemy import select

from micrograde.pipeline import features
from micrograde.pipeline.catalogue import ingest as ingest_module
from micrograde.pipeline.catalogue.cache import cache_path, has_entry, load_entry
from micrograde.pipeline.catalogue.files import file_counts
from micrograde.pipeline.catalogue.identity import CACHE_FORMAT, IdentityRequest
from micrograde.pipeline.catalogue.ingest import ingest_file
from micrograde.pipeline.catalogue.query import micrograph_table, reject_counts, reject_table
from micrograde.pipeline.catalogue.schema import FileRow, Reject
from micrograde.pipeline.config import IngestConfig, PreprocessConfig
from micrograde.pipeline.io import readers


def _mrc(path: Path, seed: int = 0, voxel: float | None = 1.0, shape=(256, 256)) -> Path:
    return write_mrc(path, np.random.default_rng(seed).normal(size=shape).astype(np.float32), voxel_size=voxel)


@pytest.fixture
def hashes(monkeypatch):
    """Counts the content digests ingest computes."""
    seen: list[str] = []
    real = ingest_module.file_digest

    def counting(path):
        seen.append(str(path))
        return real(path)

    monkeypatch.setattr(ingest_module, "file_digest", counting)
    return seen


def test_the_identity_parts_are_stored_and_name_the_entry(workspace, tmp_path):
    f = _mrc(tmp_path / "a.mrc", voxel=1.1)
    out = ingest_file(workspace, f, IngestConfig())
    assert out.ingested == 1
    row = micrograph_table(workspace).iloc[0]
    assert (row.pixel_size, row.pixel_size_source, row.stack_mode) == (pytest.approx(1.1), "header", "auto")
    assert (row.reader_version, row.features_version, row.cache_format) == (
        readers.READER_VERSION, features.features_version(), CACHE_FORMAT)
    assert row.voltage_source == "default" and row.voltage_kv is None  # 300 kV assumed, not known
    assert row.preprocess_key == PreprocessConfig().digest()
    entry = load_entry(workspace.cache_dir, row.cache_key)
    identity = json.loads(str(entry["identity"]))
    assert identity["content_digest"] == row.digest and identity["voltage_kv"] == 300.0
    assert int(entry["cache_format"]) == CACHE_FORMAT


def test_a_corrected_pixel_size_updates_the_micrograph_visibly(workspace, tmp_path):
    f = _mrc(tmp_path / "a.mrc", voxel=1.0)
    first = ingest_file(workspace, f, IngestConfig())
    before = micrograph_table(workspace).iloc[0]
    again = ingest_file(workspace, f, IngestConfig(pixel_size=1.34))
    assert (again.ingested, again.updated, again.skipped) == (1, 1, 0)
    after = micrograph_table(workspace)
    assert len(after) == 1 and after.iloc[0].id == before.id == first.micrograph_ids[0]
    row = after.iloc[0]
    assert (row.pixel_size, row.pixel_size_source) == (pytest.approx(1.34), "override")
    assert row.cache_key != before.cache_key and has_entry(workspace.cache_dir, row.cache_key)
    # the same correction again is a no-op; dropping it goes back to the header's value
    assert ingest_file(workspace, f, IngestConfig(pixel_size=1.34)).skipped == 1
    back = ingest_file(workspace, f, IngestConfig())
    assert back.updated == 1 and micrograph_table(workspace).iloc[0].pixel_size == pytest.approx(1.0)


def test_an_export_without_a_pixel_size_keeps_its_override_when_a_later_run_gives_none(workspace, tmp_path):
    """A PNG ingested with --pixel-size is found catalogued by a later run without it (assess, a watch folder),
    not rejected; a PNG never ingested with one is still rejected with the reason."""
    from PIL import Image

    png = tmp_path / "export.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 255, size=(300, 280), dtype=np.uint8)).save(png)
    first = ingest_file(workspace, png, IngestConfig(pixel_size=7.5))
    assert first.ingested == 1
    again = ingest_file(workspace, png, IngestConfig())
    assert (again.skipped, again.rejects, again.micrograph_ids) == (1, (), first.micrograph_ids)
    row = micrograph_table(workspace).iloc[0]
    assert (row.pixel_size, row.pixel_size_source) == (pytest.approx(7.5), "override")
    assert reject_counts(workspace) == {}
    other = tmp_path / "other.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 255, size=(300, 280), dtype=np.uint8)).save(other)
    refused = ingest_file(workspace, other, IngestConfig())
    assert [r[0] for r in refused.rejects] == ["missing-pixel-size"]
    assert [r[0] for r in ingest_file(workspace, other, IngestConfig()).rejects] == ["missing-pixel-size"]
    assert reject_counts(workspace) == {"missing-pixel-size": 1}
    # refused first, then given a pixel size: a run without one now finds it, and its reject is superseded
    assert ingest_file(workspace, other, IngestConfig(pixel_size=7.5)).ingested == 1
    assert ingest_file(workspace, other, IngestConfig()).skipped == 1
    assert reject_counts(workspace) == {}


def test_a_corrected_stack_mode_updates_the_rows_and_drops_stale_frames(workspace, tmp_path):
    frames = np.random.default_rng(3).normal(size=(3, 128, 128)).astype(np.float32)
    f = write_mrc(tmp_path / "s.mrcs", frames, stack=True, voxel_size=1.0)
    split = ingest_file(workspace, f, IngestConfig(stack="micrographs"))
    assert split.ingested == 3 and len(micrograph_table(workspace)) == 3
    summed = ingest_file(workspace, f, IngestConfig(stack="movie"))
    assert (summed.ingested, summed.updated) == (1, 1)
    table = micrograph_table(workspace)
    assert list(table["frame"]) == [0] and int(table.iloc[0].n_frames) == 3 and table.iloc[0].stack_mode == "movie"


def test_a_new_features_or_reader_version_recomputes_once(workspace, tmp_path, monkeypatch):
    f = _mrc(tmp_path / "a.mrc")
    ingest_file(workspace, f, IngestConfig())
    key = micrograph_table(workspace).iloc[0].cache_key
    before = features.features_version()
    bumped = tuple(dataclasses.replace(x, version=x.version + 1) if x.name == "contrast" else x
                   for x in features.REGISTRY)
    monkeypatch.setattr(features, "REGISTRY", bumped)  # a feature's computation changed
    assert features.features_version() != before
    out = ingest_file(workspace, f, IngestConfig())
    assert out.updated == 1
    row = micrograph_table(workspace).iloc[0]
    assert row.features_version == features.features_version() and row.cache_key != key
    assert ingest_file(workspace, f, IngestConfig()).skipped == 1
    monkeypatch.setattr(readers, "READER_VERSION", "test-9")
    assert ingest_file(workspace, f, IngestConfig()).updated == 1


def test_the_preprocessing_digest_survives_new_fields_and_keeps_0_1_keys():
    # 0.1.0 hashed every field, the voltage included: its keys (and its models' cards) stay valid
    # (fields added since, at their defaults, are left out of the digest)
    dump = PreprocessConfig().model_dump(mode="json")
    fields_0_1 = {**{k: v for k, v in dump.items() if k not in PreprocessConfig._ADDED}, "voltage_kv": 300.0}
    payload = json.dumps(fields_0_1, sort_keys=True, separators=(",", ":"))
    import hashlib

    assert PreprocessConfig().digest() == hashlib.sha256(payload.encode()).hexdigest()[:16]

    from pydantic import Field

    class Later(PreprocessConfig):  # a field added in a later release
        sharpen: float = Field(0.0, ge=0)
        _ADDED = PreprocessConfig._ADDED | {"sharpen"}

    assert Later().digest() == PreprocessConfig().digest()
    assert Later(sharpen=0.5).digest() != PreprocessConfig().digest()
    assert PreprocessConfig(image_size=128).digest() != PreprocessConfig().digest()


def test_unchanged_files_are_not_hashed_again(workspace, tmp_path, hashes):
    a, b = _mrc(tmp_path / "a.mrc", 1), _mrc(tmp_path / "b.mrc", 2)
    for f in (a, b):
        ingest_file(workspace, f, IngestConfig())
    assert len(hashes) == 2
    for f in (a, b):
        assert ingest_file(workspace, f, IngestConfig()).skipped == 1
    assert len(hashes) == 2, "an unchanged (path, size, mtime) is answered from the files table"
    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 10**9))  # touched: same bytes, new mtime
    assert ingest_file(workspace, a, IngestConfig()).skipped == 1
    assert hashes[2:] == [str(a)]
    assert file_counts(workspace) == {"ingested": 2, "rejected": 0, "superseded": 1}


def test_a_bad_file_has_one_reject_per_reason_and_a_later_success_supersedes_it(workspace, tmp_path, hashes):
    good = _mrc(tmp_path / "src.mrc", 5)
    f = tmp_path / "late.mrc"
    f.write_bytes(good.read_bytes()[:-4000])  # the transfer is not finished
    for _ in range(3):  # three sweeps
        out = ingest_file(workspace, f, IngestConfig())
        assert [r[0] for r in out.rejects] == ["truncated"]
    with workspace.session() as s:
        assert len(s.execute(select(Reject)).scalars().all()) == 1
    assert len(hashes) == 1 and reject_counts(workspace) == {"truncated": 1}
    f.write_bytes(good.read_bytes())  # the transfer completed
    assert ingest_file(workspace, f, IngestConfig()).ingested == 1
    assert reject_table(workspace).empty and reject_counts(workspace) == {}
    with workspace.session() as s:
        superseded = s.execute(select(Reject.superseded_at)).scalar_one()
        states = sorted(s.execute(select(FileRow.state)).scalars())
    assert superseded is not None and states == ["ingested", "superseded"]


def test_new_options_retry_a_rejected_file(workspace, tmp_path):
    f = _mrc(tmp_path / "nopix.mrc", voxel=0.0)
    assert [r[0] for r in ingest_file(workspace, f, IngestConfig()).rejects] == ["missing-pixel-size"]
    assert ingest_file(workspace, f, IngestConfig(pixel_size=1.2)).ingested == 1
    assert reject_counts(workspace) == {}


def test_the_request_matches_only_rows_computed_for_it():
    cfg = IngestConfig()
    req = IdentityRequest.of(cfg)

    class Row:
        pixel_size, pixel_size_source, stack_mode = 1.0, "header", "auto"
        voltage_kv, voltage_source = None, "default"
        preprocess_key, cache_format = cfg.preprocess.digest(), CACHE_FORMAT
        reader_version, features_version = readers.READER_VERSION, features.features_version()

    assert req.matches(Row)
    assert not IdentityRequest.of(cfg.model_copy(update={"pixel_size": 1.0})).matches(Row)
    assert not IdentityRequest.of(cfg.model_copy(update={"stack": "movie"})).matches(Row)
    assert not IdentityRequest.of(cfg, (200.0, "option")).matches(Row)
    legacy = type("Legacy", (Row,), {"reader_version": None})  # catalogued by 0.1.0
    assert not req.matches(legacy)


def test_enospc_while_writing_a_cache_entry_rejects_that_file_and_leaves_nothing_partial(
        prefect_harness, tmp_path, monkeypatch):
    import errno

    from micrograde.flows.context import RunContext
    from micrograde.flows.ingest import ingest_flow
    from micrograde.pipeline.catalogue import cache
    from micrograde.pipeline.io.atomic import atomic_path

    src = tmp_path / "in"
    src.mkdir()
    files = [_mrc(src / f"m{i}.mrc", i) for i in range(3)]
    full_for = str(files[1])
    real = cache.atomic_save_npz

    def disk_full_for_one(path, **arrays):
        identity = json.loads(str(arrays["identity"]))
        if identity["content_digest"] == digests[full_for]:
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                fh.write(b"half an entry")  # the disk fills up part-way through the write
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, **arrays)

    from micrograde.pipeline.io.digest import file_digest

    digests = {str(f): file_digest(f) for f in files}
    monkeypatch.setattr(cache, "atomic_save_npz", disk_full_for_one)
    root = tmp_path / "ws"
    summary = ingest_flow([str(src)], RunContext(root=root), IngestConfig())
    assert (summary.ingested, summary.rejected) == (2, 1) and summary.reasons == {"io-error": 1}
    [(path, reason, detail)] = summary.rejects
    assert path == full_for and "No space left on device" in detail
    from micrograde.pipeline.catalogue.workspace import Workspace

    with Workspace.open(root) as ws:
        assert sorted(Path(p).name for p in micrograph_table(ws)["path"]) == ["m0.mrc", "m2.mrc"]
        leftovers = [p for p in ws.cache_dir.rglob("*") if p.is_file() and not p.name.endswith(".npz")]
        assert leftovers == [], "no partial file in the cache"
        assert all(cache_path(ws.cache_dir, k).is_file() for k in micrograph_table(ws)["cache_key"])
        with ws.session() as s:
            assert s.execute(select(FileRow).where(FileRow.path == full_for)).first() is None, \
                "an I/O failure is not settled: the next run tries the file again"
    monkeypatch.setattr(cache, "atomic_save_npz", real)  # space freed
    again = ingest_flow([str(src)], RunContext(root=root), IngestConfig())
    assert (again.ingested, again.skipped, again.rejected) == (1, 2, 0)
    with Workspace.open(root) as ws:
        assert reject_counts(ws) == {}
