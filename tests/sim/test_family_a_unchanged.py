"""Family a writes exactly the micrograph files it wrote before family b, masks and vacuum existed.

``data/family_a_main_digests.json`` holds the sha256 of every micrograph file of three small
collections, computed with the code on ``main`` at commit c231052 (before this change) by
writing ``write_collection(out, n, seed=s, sessions=...)`` with the parameters named in each key.
None of them holds an empty hole, the only micrographs that may now gain vacuum.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from helpers_simulate import SMALL_SESSIONS
from micrograde.pipeline.sim import DEFAULT_SESSIONS, write_collection

REFERENCE = json.loads((Path(__file__).parent / "data" / "family_a_main_digests.json").read_text())
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
        digest = hashlib.sha256((tmp_path / row.micrograph).read_bytes()).hexdigest()
        assert digest == expected["sha256"], row.micrograph
        assert row.label == expected["label"] and (row.reasons or "") == expected["reasons"]
        assert row.family == "a" and row.vacuum_fraction == 0.0
