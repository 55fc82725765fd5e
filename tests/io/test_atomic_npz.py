"""Cache entries are written as uncompressed .npz (issue 14: deflating float arrays costs time and saves
little); entries written compressed by an earlier micrograde are still read."""

from __future__ import annotations

import zipfile

import numpy as np

from micrograde.pipeline.catalogue.cache import load_entry, save_entry


def test_entry_round_trips_stored_and_a_compressed_entry_still_loads(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"image": rng.normal(size=(64, 64)).astype(np.float32), "thumbnail": rng.integers(0, 255, (32, 48),
              dtype=np.uint8), "view": rng.normal(size=(20, 30)).astype(np.float16), "identity": np.array("{}")}
    save_entry(tmp_path, "ab" * 32, **arrays)
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 1
    with zipfile.ZipFile(files[0]) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    loaded = load_entry(tmp_path, "ab" * 32)
    for name, value in arrays.items():
        np.testing.assert_array_equal(loaded[name], value)
        assert loaded[name].dtype == value.dtype

    np.savez_compressed(files[0], **arrays)  # as micrograde wrote entries before
    old = load_entry(tmp_path, "ab" * 32)
    for name, value in arrays.items():
        np.testing.assert_array_equal(old[name], value)
