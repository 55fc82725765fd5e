"""discover(): files, folders, globs, hidden and partial files; probe_complete() on files being written."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
from helpers_io import noise, write_mrc
from PIL import Image

from micrograde.pipeline.io.discover import discover
from micrograde.pipeline.io.readers import probe_complete


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "data"
    (root / "sq1").mkdir(parents=True)
    (root / "sq2" / "deep").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for rel in ["a.mrc", "sq1/b.MRC", "sq1/c.tif", "sq2/d.png", "sq2/deep/e.mrcs", "sq2/deep/f.tiff",
                "notes.txt", ".g.mrc", "h.mrc.part", ".hidden/i.mrc", "sq1/j.star"]:  # fmt: skip
        (root / rel).write_bytes(b"x")
    return root


def names(paths):
    return [p.name for p in paths]


def test_folder_recursive(tree):
    found = discover([tree])
    assert names(found) == ["a.mrc", "b.MRC", "c.tif", "d.png", "e.mrcs", "f.tiff"]
    assert all(p.is_absolute() for p in found) and found == sorted(found)


def test_folder_not_recursive(tree):
    assert names(discover([str(tree)], recursive=False)) == ["a.mrc"]


def test_glob_patterns(tree):
    assert names(discover([str(tree / "**" / "*.mrc*")])) == ["a.mrc", "e.mrcs"]  # glob is case-sensitive
    assert names(discover([str(tree / "sq*")])) == ["b.MRC", "c.tif", "d.png", "e.mrcs", "f.tiff"]
    assert names(discover([str(tree / "*.txt")])) == []  # only supported files from patterns
    assert discover([str(tree / "sq1" / "*.png")]) == []  # the folder exists: nothing yet is fine


def test_masks_folders_beside_micrographs_are_not_micrographs(tree, monkeypatch):
    (tree / "sq1" / "masks").mkdir()
    (tree / "sq1" / "masks" / "b.mrc").write_bytes(b"x")  # a label map beside sq1/b.MRC
    assert names(discover([tree])) == ["a.mrc", "b.MRC", "c.tif", "d.png", "e.mrcs", "f.tiff"]
    assert names(discover([str(tree / "**" / "*.mrc")])) == ["a.mrc"]
    monkeypatch.chdir(tree)
    assert names(discover(["**/*.mrc"])) == ["a.mrc"]  # relative patterns too
    # named on purpose, a masks folder or file is read like any other source
    assert names(discover([tree / "sq1" / "masks"])) == ["b.mrc"]
    assert names(discover([str(tree / "sq1" / "masks" / "*.mrc")])) == ["b.mrc"]


def test_explicit_files_are_kept_whatever_the_suffix(tree):
    found = discover([tree / "notes.txt", tree / "h.mrc.part", tree / ".g.mrc"])
    assert names(found) == [".g.mrc", "h.mrc.part", "notes.txt"]


def test_duplicates_and_relative_sources_collapse(tree, monkeypatch):
    monkeypatch.chdir(tree)
    found = discover([".", "a.mrc", str(tree / "a.mrc"), "sq1/../a.mrc", "*.mrc"])
    assert names(found).count("a.mrc") == 1 and (tree / "a.mrc").resolve() in found


def test_symlink_loops_terminate(tree):
    os.symlink(tree, tree / "sq1" / "loop")
    assert names(discover([tree])) == ["a.mrc", "b.MRC", "c.tif", "d.png", "e.mrcs", "f.tiff"]


def test_missing_sources_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder: .*nope.mrc"):
        discover([tmp_path / "nope.mrc"])
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        discover([str(tmp_path / "no-folder" / "*.mrc")])


# --- probe_complete -----------------------------------------------------------------------


def _grow(dst, blob, n):
    dst.write_bytes(blob[:n])
    return probe_complete(dst)


def test_probe_mrc_while_written(tmp_path):
    full = write_mrc(tmp_path / "full.mrc", noise((128, 128), np.float32))
    blob = full.read_bytes()
    part = tmp_path / "part.mrc"
    assert not probe_complete(tmp_path / "missing.mrc")
    assert not _grow(part, blob, 0)
    assert not _grow(part, blob, 600)  # inside the header
    assert not _grow(part, blob, 1024)  # header only
    assert not _grow(part, blob, len(blob) // 2)
    assert not _grow(part, b"\0" * 2048, 2048)  # a pre-allocated blank file
    assert _grow(part, blob, len(blob))
    assert probe_complete(full)


def test_probe_tiff_and_png_while_written(tmp_path):
    tif, png = tmp_path / "full.tif", tmp_path / "full.png"
    tifffile.imwrite(tif, noise((128, 128), np.uint16))
    Image.fromarray(noise((128, 128), np.uint16, mean=30000)).save(png)
    for full in (tif, png):
        blob = full.read_bytes()
        part = tmp_path / f"part{full.suffix}"
        assert probe_complete(full)
        assert not _grow(part, blob, 4)
        assert not _grow(part, blob, len(blob) // 2), full
        assert _grow(part, blob, len(blob))


def test_probe_lets_hopeless_files_through_to_the_reader(tmp_path):
    text = tmp_path / "notes.mrc"
    text.write_text("not an MRC file at all\n" * 100)
    zipped = tmp_path / "a.tif"
    zipped.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    other = tmp_path / "a.jpg"
    other.write_bytes(b"\xff\xd8\xff" + b"\0" * 100)
    assert probe_complete(text) and probe_complete(zipped) and probe_complete(other)
