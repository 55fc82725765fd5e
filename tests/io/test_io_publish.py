"""Folders published in one step, one writer at a time (src/micrograde/pipeline/io/publish.py, locks.py)."""

from __future__ import annotations

import os
import threading
import time

from micrograde.pipeline.io.locks import file_lock
from micrograde.pipeline.io.publish import remove_stale, staged_folder


def _write_version(final, staging, version: int, files: int = 5, pause: float = 0.0) -> None:
    with staged_folder(final, staging) as folder:
        for i in range(files):
            (folder / f"part{i}.txt").write_text(f"version {version}\n")
            time.sleep(pause)


def test_a_new_folder_appears_complete_and_a_rewrite_replaces_it_whole(tmp_path):
    final, staging = tmp_path / "reports" / "session-a", tmp_path / ".staging"
    _write_version(final, staging, 1)
    assert {p.read_text() for p in final.iterdir()} == {"version 1\n"} and len(list(final.iterdir())) == 5
    _write_version(final, staging, 2, files=3)
    assert sorted(p.name for p in final.iterdir()) == ["part0.txt", "part1.txt", "part2.txt"]
    assert {p.read_text() for p in final.iterdir()} == {"version 2\n"}
    assert list(staging.iterdir()) == [], "nothing left aside"


def test_a_failed_write_leaves_the_published_version_alone(tmp_path):
    final, staging = tmp_path / "session-a", tmp_path / ".staging"
    _write_version(final, staging, 1)
    try:
        with staged_folder(final, staging) as folder:
            (folder / "part0.txt").write_text("half of version 2\n")
            raise RuntimeError("killed half-way")
    except RuntimeError:
        pass
    assert {p.read_text() for p in final.iterdir()} == {"version 1\n"} and list(staging.iterdir()) == []


def test_readers_never_see_a_mixture_while_writers_take_turns(tmp_path):
    final, staging = tmp_path / "session-a", tmp_path / ".staging"
    _write_version(final, staging, 0)
    seen: list[set[str]] = []
    stop = threading.Event()

    def snapshot() -> set[str]:
        """Every file of the folder as one directory object (what a reader that opened it sees)."""
        fd = os.open(final, os.O_RDONLY | os.O_DIRECTORY)
        try:
            texts = set()
            for name in os.listdir(fd):
                f = os.open(name, os.O_RDONLY, dir_fd=fd)
                with os.fdopen(f) as fh:
                    texts.add(fh.read())
            if not texts:  # a replaced version whose files are all removed already: open again
                raise FileNotFoundError(final)
            return texts
        finally:
            os.close(fd)

    def reader():
        while not stop.is_set():
            try:
                seen.append(snapshot())
            except FileNotFoundError:  # the folder opened was a replaced version, being removed: open again
                continue

    def writer(k: int):
        for v in range(3):
            with file_lock(tmp_path / ".locks" / "report-session-a.lock"):
                _write_version(final, staging, 10 * k + v + 1, pause=0.002)

    r = threading.Thread(target=reader)
    r.start()
    writers = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    r.join()
    assert seen and all(len(versions) == 1 for versions in seen), "every listing shows one version"
    assert len({p.read_text() for p in final.iterdir()}) == 1 and len(list(final.iterdir())) == 5


def test_stale_staging_of_a_killed_writer_is_removed(tmp_path):
    staging = tmp_path / ".staging"
    (staging / "session-a~x1y2").mkdir(parents=True)
    (staging / "session-a.b~z").mkdir()
    assert remove_stale(staging, "session-a") == 1
    assert [p.name for p in staging.iterdir()] == ["session-a.b~z"]


def test_stale_staging_of_other_names_goes_when_nobody_writes_them(tmp_path):
    staging, locks = tmp_path / ".staging", tmp_path / ".locks"
    for name in ("assess-1~a", "assess-2~b", "session-x~c"):
        (staging / name).mkdir(parents=True)

    def lock_of(folder: str):
        return locks / f"report-{folder}.lock"

    with file_lock(lock_of("assess-2")):  # being written right now by another process
        assert remove_stale(staging, "session-x", lock_of) == 2
    assert [p.name for p in staging.iterdir()] == ["assess-2~b"]
