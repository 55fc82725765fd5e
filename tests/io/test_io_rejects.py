"""Every bad input is rejected with its own reason code and a specific detail."""

from __future__ import annotations

import errno
import os
import pickle
import zipfile

import mrcfile
import numpy as np
import pytest
import tifffile
from helpers_io import noise, write_mrc
from PIL import Image

import micrograde.pipeline.io.raw as rawmicrograph
from micrograde.pipeline.io.readers import read_micrographs
from micrograde.pipeline.io.validate import REASONS, MicrographReadError, validate_array


def reject(path, **kw) -> MicrographReadError:
    with pytest.raises(MicrographReadError) as err:
        read_micrographs(path, **kw)
    assert err.value.reason in REASONS and err.value.path == str(path)
    assert str(err.value) == f"{err.value.reason}: {err.value.detail}"
    return err.value


@pytest.fixture
def good_mrc(tmp_path):
    return write_mrc(tmp_path / "good.mrc", noise((128, 128), np.float32))


@pytest.mark.parametrize("name", ["empty.mrc", "empty.mrcs", "empty.tif", "empty.png", "empty.jpg"])
def test_zero_byte_file(tmp_path, name):
    path = tmp_path / name
    path.touch()
    err = reject(path)
    assert err.reason == "empty-file" and "0 bytes" in err.detail


def test_truncated_data_block_says_expected_and_actual(tmp_path, good_mrc):
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(good_mrc.read_bytes()[: 1024 + 1000])
    err = reject(cut)
    assert err.reason == "truncated"
    assert "128x128x1 mode 2 (65536 bytes of data)" in err.detail and "holds 1000" in err.detail
    assert "64536 bytes missing" in err.detail


def test_truncated_inside_the_header(tmp_path, good_mrc):
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(good_mrc.read_bytes()[:500])
    err = reject(cut)
    assert err.reason == "truncated" and "500 bytes" in err.detail


def test_surplus_bytes_are_a_size_mismatch_unless_permissive(tmp_path, good_mrc):
    long = tmp_path / "long.mrc"
    long.write_bytes(good_mrc.read_bytes() + b"\0" * 4096)
    err = reject(long)
    assert err.reason == "size-mismatch" and "4096 bytes more" in err.detail
    (raw,) = read_micrographs(long, permissive=True)
    assert raw.data.shape == (128, 128) and "4096 bytes more" in raw.header["warnings"][0]


def test_header_dimensions_larger_than_the_file(tmp_path, good_mrc):
    """A header claiming a 4096x4096 image over 64 KiB of data: truncated, with both numbers."""
    bad = tmp_path / "dims.mrc"
    with mrcfile.open(good_mrc) as mrc:  # rewrite only nx/ny
        blob = bytearray(good_mrc.read_bytes())
        blob[0:8] = np.array([4096, 4096], dtype=mrc.header.nx.dtype).tobytes()
    bad.write_bytes(bytes(blob))
    err = reject(bad)
    assert err.reason == "truncated"
    assert "header says 4096x4096x1 mode 2 (67108864 bytes of data) but the file holds 65536" in err.detail


@pytest.mark.parametrize("mode", [3, 4, 101])
def test_unsupported_mode_names_the_mode(tmp_path, mode):
    if mode == 4:  # a genuine complex64 file written by mrcfile
        path = write_mrc(tmp_path / "c.mrc", (noise((64, 64), np.float32) + 1j).astype(np.complex64))
    else:
        path = write_mrc(tmp_path / "m.mrc", noise((64, 64), np.float32))
        blob = bytearray(path.read_bytes())
        blob[12:16] = np.int32(mode).astype("<i4").tobytes()
        path.write_bytes(bytes(blob))
    err = reject(path)
    assert err.reason == "unsupported-mode" and f"MRC mode {mode}" in err.detail


def test_missing_map_id_with_valid_dims_is_a_bad_header_unless_permissive(tmp_path, good_mrc):
    blob = bytearray(good_mrc.read_bytes())
    blob[208:212] = b"\0\0\0\0"
    path = tmp_path / "nomap.mrc"
    path.write_bytes(bytes(blob))
    err = reject(path)
    assert err.reason == "bad-header" and "MAP" in err.detail
    (raw,) = read_micrographs(path, permissive=True)
    assert raw.data.shape == (128, 128) and any("Map ID" in w for w in raw.header["warnings"])


def test_text_file_named_mrc(tmp_path):
    path = tmp_path / "notes.mrc"
    path.write_text("Grid square 12, hole 3: looks thick.\n" * 100)
    err = reject(path)
    assert err.reason == "not-an-image" and "text file" in err.detail


def test_random_bytes_named_mrc(tmp_path):
    path = tmp_path / "noise.mrc"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    err = reject(path)
    assert err.reason == "not-an-image" and "not an MRC file" in err.detail


def test_zip_named_tif(tmp_path):
    path = tmp_path / "archive.tif"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.txt", "hello")
    err = reject(path, pixel_size=1.0)
    assert err.reason == "not-an-image" and "ZIP archive" in err.detail


def test_text_file_named_png(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("not a png")
    err = reject(path, pixel_size=1.0)
    assert err.reason == "not-an-image" and "not a PNG" in err.detail


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_colour_png_is_rejected_not_converted(tmp_path, mode):
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (80, 80), (10, 20, 30, 255)[: len(mode)]).save(path)
    err = reject(path, pixel_size=1.0)
    assert err.reason == "not-an-image" and f"{mode} image" in err.detail


def test_rgb_tiff_is_rejected(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, noise((80, 80, 3), np.uint8), photometric="rgb")
    err = reject(path, pixel_size=1.0)
    assert err.reason == "not-an-image" and "RGB image" in err.detail


def test_truncated_tiff_and_png(tmp_path):
    tif, png = tmp_path / "a.tif", tmp_path / "a.png"
    tifffile.imwrite(tif, noise((128, 128), np.uint16))
    Image.fromarray(noise((128, 128), np.uint16, mean=30000, seed=5)).save(png)
    for path in (tif, png):
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2])
        err = reject(path, pixel_size=1.0)
        assert err.reason == "truncated", (path, err)


def test_missing_pixel_size_for_images(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(noise((64, 64), np.uint8)).save(path, dpi=(300, 300))  # dpi is not a pixel size
    err = reject(path)
    assert err.reason == "missing-pixel-size" and "--pixel-size" in err.detail


def test_unsupported_suffix_named_explicitly(tmp_path):
    path = tmp_path / "movie.eer"
    path.write_bytes(b"II*\x00" + b"\0" * 100)
    err = reject(path)
    assert err.reason == "unsupported-format" and ".eer" in err.detail and "motion-corrected" in err.detail


def _denied_open(file, *args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied", str(file))


@pytest.mark.parametrize("name", ["a.mrc", "a.tif", "a.png", "a.txt"])
def test_permission_denied_simulated(tmp_path, monkeypatch, good_mrc, name):
    """Tests run as root, where chmod 000 does not deny reading: the readers' one ``open`` raises EACCES."""
    path = tmp_path / name
    path.write_bytes(good_mrc.read_bytes())
    monkeypatch.setattr(rawmicrograph, "open", _denied_open, raising=False)
    err = reject(path)
    assert err.reason == "permission-denied" and "Permission denied" in err.detail


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_for_real(tmp_path, good_mrc):
    good_mrc.chmod(0)
    try:
        assert reject(good_mrc).reason == "permission-denied"
    finally:
        good_mrc.chmod(0o644)


def test_vanished_file_is_not_found_and_transient_errors_propagate(tmp_path, monkeypatch, good_mrc):
    assert reject(tmp_path / "gone.mrc").reason == "not-found"

    def flaky(file, *args, **kwargs):
        raise OSError(errno.EIO, "Input/output error", str(file))

    monkeypatch.setattr(rawmicrograph, "open", flaky, raising=False)
    with pytest.raises(OSError) as err:
        read_micrographs(good_mrc)
    assert not isinstance(err.value, MicrographReadError) and err.value.errno == errno.EIO


# --- pixel-value checks (run per frame by the ingest) ---------------------------------------


def _array(tmp_path, data):
    (raw,) = read_micrographs(write_mrc(tmp_path / "v.mrc", data))  # through a file, as in the ingest
    return raw.data


@pytest.mark.filterwarnings("ignore:Data array contains NaN:RuntimeWarning")
def test_nan_pixels_are_counted(tmp_path):
    data = noise((100, 100), np.float32)
    data[3, :7] = np.nan
    with pytest.raises(MicrographReadError) as err:
        validate_array(_array(tmp_path, data))
    assert err.value.reason == "non-finite"
    assert "7 of 10000 pixels" in err.value.detail and "7 NaN" in err.value.detail


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # mrcfile's header statistics while writing
def test_inf_pixels_are_counted(tmp_path):
    data = noise((100, 100), np.float32)
    data[0, 0], data[5, 5] = np.inf, -np.inf
    with pytest.raises(MicrographReadError) as err:
        validate_array(_array(tmp_path, data))
    assert err.value.reason == "non-finite" and "2 infinite" in err.value.detail


def test_constant_image(tmp_path):
    with pytest.raises(MicrographReadError) as err:
        validate_array(_array(tmp_path, np.full((100, 100), 7.0, np.float32)))
    assert err.value.reason == "constant" and "7.0" in err.value.detail


def test_too_small_and_wrong_ndim():
    with pytest.raises(MicrographReadError) as err:
        validate_array(noise((32, 200), np.float32))
    assert err.value.reason == "too-small" and "200x32" in err.value.detail
    assert validate_array(noise((32, 200), np.float32), min_size=16) is None
    with pytest.raises(MicrographReadError) as err:
        validate_array(noise((2, 64, 64), np.float32))
    assert err.value.reason == "not-an-image" and "(2, 64, 64)" in err.value.detail


def test_valid_images_pass(tmp_path):
    validate_array(_array(tmp_path, noise((100, 120), np.float32)))
    validate_array(noise((64, 64), np.uint16))


def test_error_pickles_and_rejects_unknown_reasons():
    exc = MicrographReadError("truncated", "header says 1x1x1", "/data/a.mrc")
    back = pickle.loads(pickle.dumps(exc))
    assert (back.reason, back.detail, back.path, str(back)) == (exc.reason, exc.detail, exc.path, str(exc))
    assert not isinstance(exc, OSError)
    with pytest.raises(ValueError, match="unknown reject reason"):
        MicrographReadError("bogus", "x")
    required = {
        "empty-file", "truncated", "size-mismatch", "unsupported-mode", "bad-header", "not-an-image",
        "permission-denied", "non-finite", "constant", "missing-pixel-size", "too-small", "unsupported-format",
    }  # fmt: skip
    assert required <= set(REASONS) and all(REASONS.values())


def test_distinct_reasons_for_distinct_problems(tmp_path, good_mrc):
    """The file-level rejects above do not collapse into one catch-all code."""
    cases = {}
    (tmp_path / "e.mrc").touch()
    cases["e.mrc"] = "empty-file"
    (tmp_path / "t.mrc").write_bytes(good_mrc.read_bytes()[:-10])
    cases["t.mrc"] = "truncated"
    (tmp_path / "s.mrc").write_bytes(good_mrc.read_bytes() + b"x")
    cases["s.mrc"] = "size-mismatch"
    (tmp_path / "x.mrc").write_text("hello\n")
    cases["x.mrc"] = "not-an-image"
    write_mrc(tmp_path / "p.mrc", noise((64, 64), np.float32), voxel_size=None)
    cases["p.mrc"] = "missing-pixel-size"
    got = {name: reject(tmp_path / name).reason for name in cases}
    assert got == cases
    assert len(set(got.values())) == len(got)


def test_extended_header_longer_than_the_file_is_truncated(tmp_path, good_mrc):
    blob = bytearray(good_mrc.read_bytes())
    blob[92:96] = np.int32(2_000_000_000).astype("<i4").tobytes()  # nsymbt: ~2 GB, never allocated
    path = tmp_path / "ext.mrc"
    path.write_bytes(bytes(blob))
    err = reject(path)
    assert err.reason == "truncated" and "2000000000-byte extended header" in err.detail
