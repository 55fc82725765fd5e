"""Family a writes the micrographs it wrote before family b, masks and vacuum existed.

``data/family_a_main_fingerprints.json`` holds, for every micrograph file of three small
collections, its label, reasons, MRC mode, shape, pixel size and the mean, standard deviation and
quantiles of its pixels, computed with the code on ``main`` at commit c231052 (before family b) by
``write_collection(out, n, seed=s, sessions=...)`` with the parameters named in each key. None of
them holds an empty hole, the only micrographs that may now gain vacuum.

Not byte digests: the same code writes different last bits on CPUs with other SIMD paths of
NumPy's transcendental functions (seen: 3 of 49 files differed between two machines of one
kind), so the pixels are compared to float32 rounding instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from helpers_simulate import SMALL_SESSIONS

from micrograde.pipeline.sim import DEFAULT_SESSIONS, write_collection

REFERENCE = json.loads((Path(__file__).parent / "data" / "family_a_main_fingerprints.json").read_text())
COLLECTIONS = {
    "small_seed11_n15": (15, 11, SMALL_SESSIONS),
    "small_seed5_n30": (30, 5, SMALL_SESSIONS),
    "default_seed3_n4": (4, 3, DEFAULT_SESSIONS),
}


@pytest.mark.parametrize("key", sorted(COLLECTIONS))
def test_family_a_micrographs_are_byte_identical_to_main(key, tmp_path):
    n, seed, sessions = COLLECTIONS[key]
    truth = write_collection(tmp_path, n, seed=seed, sessions=sessions)
    reference = REFERENCE[key]
    assert sorted(truth["micrograph"]) == sorted(reference)
    for row in truth.itertuples():
        expected = reference[row.micrograph]
        with mrcfile.open(tmp_path / row.micrograph) as m:
            a = np.asarray(m.data, dtype=np.float64)
            assert int(m.header.mode) == expected["mode"] and list(a.shape) == expected["shape"], row.micrograph
            assert float(m.voxel_size.x) == pytest.approx(expected["voxel"], rel=1e-6)
        scale = max(expected["std"], 1e-6)
        got = [a.mean(), a.std(), *np.quantile(a, [0.01, 0.25, 0.5, 0.75, 0.99])]
        want = [expected["mean"], expected["std"], *expected["quantiles"]]
        assert np.allclose(got, want, rtol=1e-5, atol=1e-4 * scale), (row.micrograph, got, want)
        assert row.label == expected["label"] and (row.reasons or "") == expected["reasons"]
        assert row.family == "a" and row.vacuum_fraction == 0.0
