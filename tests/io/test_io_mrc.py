"""Reading MRC micrographs: every mode, pixel sizes, EPU extended headers, stacks, the real file."""

from __future__ import annotations

import datetime as dt
import json

import mrcfile
import numpy as np
import pytest
from helpers_io import REAL_DIR, fei1_records, noise, write_mrc

from micrograde.pipeline.io.readers import read_micrographs
from micrograde.pipeline.io.validate import MicrographReadError


@pytest.mark.parametrize(
    ("dtype", "mode"),
    [(np.int8, 0), (np.int16, 1), (np.float32, 2), (np.uint16, 6), (np.float16, 12)],
)
def test_every_mode_reads_exact_values_as_float32(tmp_path, dtype, mode):
    data = noise((70, 90), dtype, seed=mode, mean=50.0 if dtype is np.int8 else 100.0)
    path = write_mrc(tmp_path / f"m{mode}.mrc", data, voxel_size=1.25)
    with mrcfile.open(path, header_only=True) as mrc:
        assert int(mrc.header.mode) == mode  # the file really is in this mode
    (raw,) = read_micrographs(path)
    assert raw.data.dtype == np.float32 and raw.data.shape == (70, 90)
    np.testing.assert_array_equal(raw.data, data.astype(np.float32))
    assert raw.mode == f"mrc-mode-{mode}"
    assert raw.pixel_size == pytest.approx(1.25) and raw.pixel_size_source == "header"
    assert (raw.frame, raw.n_frames, raw.acquired_at) == (0, 1, None)
    json.dumps(raw.header)  # JSON-serialisable


def test_non_square_image_keeps_y_x_order(tmp_path):
    data = noise((64, 160), np.float32)
    (raw,) = read_micrographs(write_mrc(tmp_path / "wide.mrc", data))
    assert raw.data.shape == (64, 160)
    np.testing.assert_array_equal(raw.data, data)


def test_float32_read_is_a_single_writable_owned_array(tmp_path):
    data = noise((128, 96), np.float32)
    (raw,) = read_micrographs(write_mrc(tmp_path / "a.mrc", data))
    assert raw.data.flags.writeable and raw.data.flags.c_contiguous
    assert raw.data.base is None  # read straight into its final array, no intermediate copy kept


@pytest.mark.parametrize("dtype", [">f4", ">i2"])
def test_big_endian_files_read_correctly(tmp_path, dtype):
    data = noise((66, 70), np.dtype(dtype).newbyteorder("="), seed=3).astype(dtype)
    path = write_mrc(tmp_path / "be.mrc", data)
    with mrcfile.open(path, header_only=True) as mrc:
        assert mrc.header.mode.dtype.byteorder == ">"
    (raw,) = read_micrographs(path)
    assert raw.data.dtype == np.float32 and raw.data.dtype.isnative
    np.testing.assert_array_equal(raw.data, data.astype(np.float32))


def test_header_pixel_size_override_and_missing(tmp_path):
    data = noise((64, 64), np.float32)
    with_px = write_mrc(tmp_path / "px.mrc", data, voxel_size=0.83)
    without = write_mrc(tmp_path / "nopx.mrc", data, voxel_size=None)

    (raw,) = read_micrographs(with_px)
    assert (raw.pixel_size, raw.pixel_size_source) == (pytest.approx(0.83), "header")
    (raw,) = read_micrographs(with_px, pixel_size=1.1)  # an explicit override wins, and says so
    assert (raw.pixel_size, raw.pixel_size_source) == (1.1, "override")
    assert raw.header["header_pixel_size"] == pytest.approx(0.83)  # what the header said is kept
    (raw,) = read_micrographs(without, pixel_size=1.1)
    assert (raw.pixel_size, raw.pixel_size_source) == (1.1, "override")

    with pytest.raises(MicrographReadError) as err:
        read_micrographs(without)
    assert err.value.reason == "missing-pixel-size"
    assert "--pixel-size" in err.value.detail


def test_fei1_extended_header_gives_pixel_size_time_and_metadata(tmp_path):
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    data = noise((80, 96), np.float32)
    path = write_mrc(tmp_path / "epu.mrc", data, voxel_size=None, ext_header=fei1_records(1, when=when))
    (raw,) = read_micrographs(path)
    assert raw.pixel_size == pytest.approx(0.83) and raw.pixel_size_source == "header"
    assert raw.header["pixel_size_from"] == "fei-extended-header"
    assert raw.acquired_at is not None and raw.acquired_at.tzinfo is not None
    assert abs((raw.acquired_at - when).total_seconds()) < 1
    h = raw.header
    assert h["exttyp"] == "FEI1" and h["microscope"] == "TITAN52336320" and h["detector"] == "BM-Falcon"
    assert h["voltage"] == pytest.approx(300.0)  # kV
    assert h["dose"] == pytest.approx(40.0)  # e/A^2
    assert h["defocus"] == pytest.approx(-1.5)  # um
    assert h["exposure_time"] == pytest.approx(2.5) and h["application"] == "EPU 3.6.0"
    json.dumps(h)
    np.testing.assert_array_equal(raw.data, data)


def test_main_header_pixel_size_beats_extended_header(tmp_path):
    when = dt.datetime(2023, 1, 2, tzinfo=dt.UTC)
    path = write_mrc(tmp_path / "epu.mrc", noise((64, 64), np.float32), voxel_size=1.06,
                     ext_header=fei1_records(1, when=when))  # fmt: skip
    (raw,) = read_micrographs(path)
    assert raw.pixel_size == pytest.approx(1.06) and raw.header["fei_pixel_size"] == pytest.approx(0.83)


def test_integer_stack_is_a_movie_summed(tmp_path):
    frames = noise((5, 64, 72), np.int16, mean=1.5)
    (raw,) = read_micrographs(write_mrc(tmp_path / "movie.mrcs", frames, stack=True))
    assert (raw.n_frames, raw.frame) == (5, 0)
    np.testing.assert_array_equal(raw.data, frames.sum(axis=0).astype(np.float32))


def test_float_stack_is_split_into_micrographs(tmp_path):
    frames = noise((3, 64, 72), np.float32)
    raws = read_micrographs(write_mrc(tmp_path / "stack.mrcs", frames, stack=True))
    assert [r.frame for r in raws] == [0, 1, 2] and all(r.n_frames == 1 for r in raws)
    for r, f in zip(raws, frames, strict=False):
        np.testing.assert_array_equal(r.data, f)


def test_float16_stack_rule_uses_mean_counts(tmp_path):
    counts = noise((4, 64, 64), np.uint16, mean=2.0).astype(np.float16)
    (movie,) = read_micrographs(write_mrc(tmp_path / "counts.mrcs", counts, stack=True))
    assert movie.n_frames == 4
    np.testing.assert_array_equal(movie.data, counts.astype(np.float32).sum(axis=0))
    images = noise((4, 64, 64), np.float16, mean=500.0)
    raws = read_micrographs(write_mrc(tmp_path / "images.mrcs", images, stack=True))
    assert len(raws) == 4


def test_stack_mode_can_be_forced(tmp_path):
    frames = noise((3, 64, 64), np.int16)
    path = write_mrc(tmp_path / "s.mrcs", frames, stack=True)
    assert len(read_micrographs(path, stack="micrographs")) == 3
    (raw,) = read_micrographs(write_mrc(tmp_path / "f.mrcs", frames.astype(np.float32), stack=True), stack="movie")
    assert raw.n_frames == 3
    with pytest.raises(ValueError, match="stack must be"):
        read_micrographs(path, stack="bogus")


def test_nz_stack_in_mrc_with_space_group_zero_is_a_stack(tmp_path):
    frames = noise((2, 64, 64), np.float32)
    assert len(read_micrographs(write_mrc(tmp_path / "s.mrc", frames, stack=True))) == 2


def test_volume_is_not_an_image_unless_forced(tmp_path):
    vol = noise((8, 64, 64), np.float32)
    path = write_mrc(tmp_path / "map.mrc", vol, stack=False)
    with pytest.raises(MicrographReadError) as err:
        read_micrographs(path)
    assert err.value.reason == "not-an-image"
    assert "3-D volume (64x64x8" in err.value.detail
    assert len(read_micrographs(path, stack="micrographs")) == 8


def test_stack_frames_get_their_own_acquisition_times(tmp_path):
    when = dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    frames = noise((3, 64, 64), np.float32)
    path = write_mrc(tmp_path / "s.mrcs", frames, stack=True, voxel_size=None, ext_header=fei1_records(3, when=when))
    raws = read_micrographs(path)
    gaps = [(r.acquired_at - when).total_seconds() for r in raws]
    assert gaps == pytest.approx([0, 10, 20], abs=1)


@pytest.mark.skipif(not REAL_DIR.is_dir(), reason=f"real data folder {REAL_DIR} is absent")
def test_real_micrograph_shape_and_pixel_size():
    path = REAL_DIR / "Ucsf_stack_1142_DW.mrc"
    (raw,) = read_micrographs(path)
    assert raw.data.shape == (927, 959) and raw.data.dtype == np.float32
    assert raw.pixel_size == pytest.approx(1.0) and raw.pixel_size_source == "header"
    assert raw.mode == "mrc-mode-2"
    with mrcfile.open(path) as mrc:  # the same numbers mrcfile itself reads
        np.testing.assert_array_equal(raw.data, mrc.data)
