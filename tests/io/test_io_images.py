"""Reading 8- and 16-bit PNG and TIFF micrographs, TIFF stacks and TIFF metadata."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import tifffile
from helpers_io import noise
from PIL import Image

from micrograde.pipeline.io.readers import SUPPORTED_SUFFIXES, read_micrographs
from micrograde.pipeline.io.validate import MicrographReadError


@pytest.mark.parametrize(("dtype", "mean"), [(np.uint8, 120.0), (np.uint16, 30000.0)])
def test_png_8_and_16_bit(tmp_path, dtype, mean):
    data = noise((72, 100), dtype, mean=mean)
    path = tmp_path / "a.png"
    Image.fromarray(data).save(path)
    (raw,) = read_micrographs(path, pixel_size=1.3)
    assert raw.mode == f"png-{np.dtype(dtype).name}"
    assert raw.data.dtype == np.float32 and raw.data.shape == (72, 100)
    np.testing.assert_array_equal(raw.data, data.astype(np.float32))
    assert (raw.pixel_size, raw.pixel_size_source, raw.n_frames) == (1.3, "override", 1)
    json.dumps(raw.header)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_single_page(tmp_path, dtype):
    data = noise((80, 64), dtype, mean=100.0)
    path = tmp_path / "a.TIFF"  # suffix compared case-insensitively
    tifffile.imwrite(path, data)
    (raw,) = read_micrographs(path, pixel_size=0.9)
    assert raw.mode == f"tiff-{np.dtype(dtype).name}" and raw.data.shape == (80, 64)
    np.testing.assert_array_equal(raw.data, data.astype(np.float32))


def test_tiff_resolution_tags_are_not_a_pixel_size(tmp_path):
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, noise((64, 64), np.uint16), resolution=(300, 300), resolutionunit="INCH")
    with pytest.raises(MicrographReadError) as err:
        read_micrographs(path)
    assert err.value.reason == "missing-pixel-size" and "--pixel-size" in err.value.detail


def test_imagej_spacing_in_nm_is_used(tmp_path):
    path = tmp_path / "ij.tif"
    # 10 pixels per nm = 1.0 A per pixel
    tifffile.imwrite(path, noise((64, 64), np.uint16), imagej=True, resolution=(10.0, 10.0), metadata={"unit": "nm"})
    (raw,) = read_micrographs(path)
    assert raw.pixel_size == pytest.approx(1.0) and raw.pixel_size_source == "header"
    assert raw.header["pixel_size_from"] == "imagej"
    (raw,) = read_micrographs(path, pixel_size=1.2)
    assert (raw.pixel_size, raw.pixel_size_source) == (1.2, "override")


def test_ome_physical_size_is_used(tmp_path):
    path = tmp_path / "ome.tif"
    meta = {"PhysicalSizeX": 0.085, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 0.085, "PhysicalSizeYUnit": "nm"}
    tifffile.imwrite(path, noise((64, 64), np.uint16), ome=True, metadata=meta)
    (raw,) = read_micrographs(path)
    assert raw.pixel_size == pytest.approx(0.85) and raw.header["pixel_size_from"] == "ome-xml"


def test_implausible_imagej_spacing_is_ignored(tmp_path):
    path = tmp_path / "um.tif"  # 1 pixel per micron = 10000 A/px: an uncalibrated export, not a micrograph
    tifffile.imwrite(path, noise((64, 64), np.uint16), imagej=True, resolution=(1.0, 1.0), metadata={"unit": "micron"})
    with pytest.raises(MicrographReadError) as err:
        read_micrographs(path)
    assert err.value.reason == "missing-pixel-size"


def test_tiff_datetime_becomes_acquired_at(tmp_path):
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, noise((64, 64), np.uint16), datetime="2024:05:01 13:14:15")
    (raw,) = read_micrographs(path, pixel_size=1.0)
    assert raw.acquired_at == dt.datetime(2024, 5, 1, 13, 14, 15, tzinfo=dt.UTC)


def test_multipage_integer_tiff_is_a_movie(tmp_path):
    frames = noise((6, 64, 80), np.uint16, mean=1.0)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, frames, photometric="minisblack")
    (raw,) = read_micrographs(path, pixel_size=1.0)
    assert raw.n_frames == 6 and raw.data.shape == (64, 80)
    np.testing.assert_array_equal(raw.data, frames.sum(axis=0).astype(np.float32))
    assert len(read_micrographs(path, pixel_size=1.0, stack="micrographs")) == 6


def test_multipage_float_tiff_is_split(tmp_path):
    frames = noise((3, 64, 64), np.float32)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, frames, photometric="minisblack")
    raws = read_micrographs(path, pixel_size=1.0)
    assert [r.frame for r in raws] == [0, 1, 2]
    for r, f in zip(raws, frames, strict=False):
        np.testing.assert_array_equal(r.data, f)


def test_supported_suffixes_are_lower_case_and_cover_the_formats():
    assert set(SUPPORTED_SUFFIXES) >= {".mrc", ".mrcs", ".tif", ".tiff", ".png"}
    assert all(s == s.lower() and s.startswith(".") for s in SUPPORTED_SUFFIXES)
