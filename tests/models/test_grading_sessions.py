"""Each micrograph measured against its own session: the reference set, the session block, the fallback."""

from __future__ import annotations

import numpy as np
import pytest

from micrograde.models.grading.features import RELATIVE_BLOCKS, Features, reference_median, with_session_block
from micrograde.models.grading.sessions import (
    MAX_REFERENCE,
    MIN_REFERENCE,
    add_session_block,
    reference_digest,
    reference_keys,
)


def _features(keys: list[str], seed: int = 0, offset: float = 0.0) -> Features:
    rng = np.random.default_rng(seed)
    n = len(keys)
    blocks = {b: (rng.normal(size=(n, 3)) + offset).astype(np.float32) for b in RELATIVE_BLOCKS}
    blocks["measures"][:, 2] = np.nan  # a measure no micrograph has
    names = {b: tuple(f"{b}{i}" for i in range(3)) for b in RELATIVE_BLOCKS}
    return Features(keys, blocks, names)


def test_the_reference_is_the_first_distinct_micrographs_of_each_session_in_order():
    keys = [f"k{i}" for i in range(200)]
    sessions = ["a" if i % 2 else "b" for i in range(200)]
    sessions[3] = None  # no session: stands for none
    refs = reference_keys([*keys, "k1"], [*sessions, "a"])  # k1 again: counted once
    assert set(refs) == {"a", "b"}
    assert refs["b"] == [f"k{i}" for i in range(0, 2 * MAX_REFERENCE, 2)]
    assert len(refs["a"]) == MAX_REFERENCE and refs["a"][0] == "k1" and "k3" not in refs["a"]


@pytest.mark.filterwarnings("ignore:All-NaN slice")
def test_a_shift_of_a_whole_session_leaves_its_session_block_unchanged():
    """A detector or dose change that moves every measure of a session by the same amount moves the
    absolute columns, not the differences from the session's median."""
    keys = [f"k{i}" for i in range(12)]
    sessions = ["s1"] * 6 + ["s2"] * 6
    plain = _features(keys)
    shifted = Features(keys, {b: m + np.where(np.arange(12) >= 6, 5.0, 0.0)[:, None].astype(np.float32)
                              for b, m in plain.blocks.items()}, plain.names)
    refs = reference_keys(keys, sessions)
    a, used = add_session_block(plain, sessions, refs, load=_no_load, fallback=reference_median(plain))
    b, _ = add_session_block(shifted, sessions, refs, load=_no_load, fallback=reference_median(shifted))
    assert used == {"s1": 6, "s2": 6}
    assert not np.allclose(np.nan_to_num(plain.matrix(RELATIVE_BLOCKS)), np.nan_to_num(shifted.matrix(RELATIVE_BLOCKS)))
    np.testing.assert_allclose(a.blocks["session"], b.blocks["session"], atol=1e-5)
    # the block is the physical columns minus the session's median, NaN where the value is missing
    first = plain.matrix(RELATIVE_BLOCKS)[:6]
    np.testing.assert_allclose(a.blocks["session"][:6], first - np.nanmedian(first, axis=0), atol=1e-6)
    assert np.isnan(a.blocks["session"][:, RELATIVE_BLOCKS.index("measures") * 3 + 2]).all()
    assert a.names["session"][0] == "level0-session" and len(a.names["session"]) == a.blocks["session"].shape[1]


@pytest.mark.filterwarnings("ignore:All-NaN slice")
def test_references_not_among_the_rows_are_loaded_and_small_sessions_use_the_fallback():
    keys = ["g1", "g2", "t1"]
    feats = _features(keys, seed=1)
    more = _features([f"r{i}" for i in range(8)], seed=2, offset=3.0)
    asked: list[list[str]] = []

    def load(wanted):
        asked.append(list(wanted))
        return more.take(np.array([more.keys.index(k) for k in wanted]))

    fallback = np.zeros(15, dtype=np.float32)
    refs = {"big": ["g1", *more.keys[:6]], "tiny": ["t1", "g2"]}
    out, used = add_session_block(feats, ["big", "big", "tiny"], refs, load=load, fallback=fallback)
    assert asked == [more.keys[:6]]  # g1 is among the rows: not loaded again
    assert used == {"big": 7, "tiny": 0}
    assert len(refs["tiny"]) < MIN_REFERENCE
    np.testing.assert_array_equal(out.blocks["session"][2], feats.matrix(RELATIVE_BLOCKS)[2])  # fallback 0
    expected = np.nanmedian(np.vstack([feats.matrix(RELATIVE_BLOCKS)[:1], more.matrix(RELATIVE_BLOCKS)[:6]]), axis=0)
    np.testing.assert_allclose(out.blocks["session"][0], feats.matrix(RELATIVE_BLOCKS)[0] - expected, atol=1e-6)
    # a micrograph with no session is measured against the fallback too
    none, _ = add_session_block(feats, [None, float("nan"), ""], refs, load=load, fallback=fallback)
    np.testing.assert_array_equal(none.blocks["session"], feats.matrix(RELATIVE_BLOCKS))
    with pytest.raises(ValueError, match="2 sessions for 3 micrographs"):
        add_session_block(feats, ["big", "big"], refs, load=load, fallback=fallback)
    with pytest.raises(ValueError, match="session medians have shape"):
        with_session_block(feats, np.zeros((2, 15)))


def test_the_reference_digest_changes_with_the_reference_until_it_is_full():
    keys = [f"k{i}" for i in range(MAX_REFERENCE + 5)]
    assert reference_digest(keys[:2]) == reference_digest(keys[2:4])  # too small: the fallback, whatever it holds
    assert reference_digest(keys[:MIN_REFERENCE]) != reference_digest(keys[:MIN_REFERENCE + 1])
    assert reference_digest(keys[:MAX_REFERENCE]) == reference_digest(keys)  # full: later micrographs change nothing


def _no_load(keys):
    raise AssertionError(f"every reference is among the rows; asked to load {keys}")


@pytest.mark.filterwarnings("ignore:All-NaN slice")
def test_a_memo_computes_each_sessions_median_once():
    feats = _features(["a1", "a2"], seed=3)
    more = _features([f"r{i}" for i in range(6)], seed=4)
    calls = []

    def load(wanted):
        calls.append(list(wanted))
        return more.take(np.array([more.keys.index(k) for k in wanted]))

    memo: dict = {}
    refs = {"s": more.keys}
    first, _ = add_session_block(feats, ["s", "s"], refs, load=load, fallback=np.zeros(15), memo=memo)
    second, used = add_session_block(feats.take(np.array([1])), ["s"], refs, load=load, fallback=np.zeros(15),
                                     memo=memo)
    assert len(calls) == 1 and used == {"s": 6}
    np.testing.assert_array_equal(second.blocks["session"][0], first.blocks["session"][1])
