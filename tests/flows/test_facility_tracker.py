"""The watch-folder completion tracker (src/micrograde/pipeline/io/watch.py) with a fake clock, plus its
real-file helpers."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from micrograde.pipeline.io.watch import (
    CompletionTracker,
    FileStat,
    WatchConfig,
    list_candidates,
    settled_files,
    state_lock,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _tracker(tmp_path, clock, complete: set[str], **cfg) -> CompletionTracker:
    settings = {"stable_polls": 2, "min_age_s": 3.0, "give_up_s": 60.0, **cfg}
    return CompletionTracker(
        WatchConfig(**settings), state_path=tmp_path / "state.json", clock=clock, probe=lambda p: str(p) in complete
    )


def test_a_growing_file_is_reported_once_when_stable_and_complete(tmp_path):
    clock, complete = Clock(), set()
    tr = _tracker(tmp_path, clock, complete)
    reported = []
    sizes = [100, 2000, 5000, 5000, 5000, 5000, 5000, 5000]
    for i, size in enumerate(sizes):
        if i == 4:
            complete.add("a.mrc")  # the header now matches the size
        got = tr.poll({"a.mrc": FileStat(size, 10 + size)})
        tr.commit(got)
        reported += got
        clock.t += 1.0
    assert [(h.path, h.reason) for h in reported] == [("a.mrc", "complete")]
    assert reported[0].size == 5000


def test_stability_needs_both_polls_and_age(tmp_path):
    clock, complete = Clock(), {"a.mrc"}
    tr = _tracker(tmp_path, clock, complete, stable_polls=3, min_age_s=10.0)
    stat = {"a.mrc": FileStat(10, 1)}
    assert tr.poll(stat) == []  # first sight
    assert tr.poll(stat) == []  # 2 polls, no time passed
    assert tr.poll(stat) == []  # 3 polls but age 0 < 10 s
    clock.t += 10
    assert [h.path for h in tr.poll(stat)] == ["a.mrc"]


def test_a_changed_mtime_restarts_the_wait(tmp_path):
    clock, complete = Clock(), {"a.mrc"}
    tr = _tracker(tmp_path, clock, complete, min_age_s=0.0)
    assert tr.poll({"a.mrc": FileStat(10, 1)}) == []
    clock.t += 5
    assert tr.poll({"a.mrc": FileStat(10, 2)}) == []  # rewritten in place, same size
    clock.t += 5
    assert [h.mtime_ns for h in tr.poll({"a.mrc": FileStat(10, 2)})] == [2]


def test_a_truncated_file_is_given_up_on_after_give_up_s(tmp_path):
    clock = Clock()
    tr = _tracker(tmp_path, clock, set(), give_up_s=30.0)
    stat = {"t.mrc": FileStat(999, 1)}
    seen = []
    for _ in range(6):
        seen += tr.poll(stat)
        clock.t += 5
    assert seen == []  # polls at t = 1000 ... 1025: unchanged for 25 s < 30 s
    assert tr.waiting == ["t.mrc"]
    seen += tr.poll(stat)
    assert [(h.path, h.reason) for h in seen] == [("t.mrc", "gave-up")]
    tr.commit(seen)
    clock.t += 100
    assert tr.poll(stat) == []


def test_uncommitted_handovers_are_redelivered_after_a_restart_and_committed_ones_never(tmp_path):
    clock, complete = Clock(), {"a.mrc", "b.mrc"}
    tr = _tracker(tmp_path, clock, complete, min_age_s=0.0)
    listing = {"a.mrc": FileStat(1, 1), "b.mrc": FileStat(2, 2)}
    tr.poll(listing)
    first = tr.poll(listing)
    assert {h.path for h in first} == {"a.mrc", "b.mrc"}
    tr.commit([h for h in first if h.path == "a.mrc"])  # killed before b was ingested
    restarted = _tracker(tmp_path, clock, complete, min_age_s=0.0)
    again = restarted.poll(listing)
    assert [h.path for h in again] == ["b.mrc"]
    restarted.commit(again)
    assert _tracker(tmp_path, clock, complete, min_age_s=0.0).poll(listing) == []


def test_pending_observations_survive_a_restart(tmp_path):
    clock, complete = Clock(), {"a.mrc"}
    listing = {"a.mrc": FileStat(1, 1)}
    assert _tracker(tmp_path, clock, complete).poll(listing) == []
    clock.t += 5
    assert [h.path for h in _tracker(tmp_path, clock, complete).poll(listing)] == ["a.mrc"]


def test_a_file_changed_after_hand_over_is_watched_again(tmp_path):
    clock, complete = Clock(), {"a.mrc"}
    tr = _tracker(tmp_path, clock, complete, min_age_s=0.0)
    tr.poll({"a.mrc": FileStat(5, 1)})
    tr.commit(tr.poll({"a.mrc": FileStat(5, 1)}))
    assert tr.poll({"a.mrc": FileStat(8, 2)}) == []
    assert [h.size for h in tr.poll({"a.mrc": FileStat(8, 2)})] == [8]


def test_vanished_files_are_forgotten_and_probe_errors_wait(tmp_path):
    clock = Clock()

    def probe(path: Path) -> bool:
        raise PermissionError(13, "in flux")

    tr = CompletionTracker(WatchConfig(min_age_s=0, give_up_s=1), state_path=None, clock=clock, probe=probe)
    tr.poll({"a.mrc": FileStat(5, 1)})
    clock.t += 10
    assert tr.poll({"a.mrc": FileStat(5, 1)}) == []
    assert tr.waiting == ["a.mrc"]
    tr.poll({})
    assert tr.waiting == []


def test_state_file_is_versioned_json(tmp_path):
    clock = Clock()
    tr = _tracker(tmp_path, clock, {"a.mrc"}, min_age_s=0.0)
    tr.poll({"a.mrc": FileStat(1, 1)})
    (tmp_path / "state.json").write_text('{"version": 99}')
    with pytest.raises(ValueError, match="version"):
        _tracker(tmp_path, clock, set())


def _mrc(path: Path, shape=(64, 64)) -> Path:
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.zeros(shape, np.float32))
        m.voxel_size = 1.0
    return path


def test_list_candidates_and_settled_files_on_real_files(tmp_path):
    folder = tmp_path / "watch"
    (folder / "sub").mkdir(parents=True)
    good = _mrc(folder / "sub" / "good.mrc")
    truncated = folder / "cut.mrc"
    truncated.write_bytes(good.read_bytes()[:-1000])
    fresh = _mrc(folder / "fresh.mrc")
    (folder / ".hidden.mrc").write_bytes(good.read_bytes())
    (folder / "x.mrc.part").write_bytes(b"12")
    (folder / "notes.txt").write_text("hi")
    (folder / "sub" / "masks").mkdir()
    (folder / "sub" / "masks" / "good.mrc").write_bytes(good.read_bytes())  # a label map, not a micrograph
    assert sorted(Path(p).name for p in list_candidates(folder)) == ["cut.mrc", "fresh.mrc", "good.mrc"]
    now = fresh.stat().st_mtime
    for p in (good, truncated):
        os.utime(p, (now - 100, now - 100))
    cfg = WatchConfig(min_age_s=5.0, give_up_s=1000.0)
    assert [(Path(h.path).name, h.reason) for h in settled_files(folder, cfg, now=now)] == [("good.mrc", "complete")]
    late = settled_files(folder, cfg, now=now + 2000)
    assert sorted((Path(h.path).name, h.reason) for h in late) == [
        ("cut.mrc", "gave-up"),
        ("fresh.mrc", "complete"),
        ("good.mrc", "complete"),
    ]


def test_state_lock_is_exclusive_between_holders(tmp_path):
    state = tmp_path / "s.json"
    results = []
    with state_lock(state) as first:
        assert first

        def other():
            with state_lock(state) as got:
                results.append(got)

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert results == [False]
    with state_lock(state) as again:
        assert again
