"""Writers of small synthetic micrograph files for the I/O tests (no fixtures with side effects)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import mrcfile
import numpy as np
from mrcfile.dtypes import get_ext_header_dtype

REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"

OLE_EPOCH = dt.datetime(1899, 12, 30, tzinfo=dt.UTC)


def noise(shape: tuple[int, ...], dtype, *, seed: int = 0, mean: float = 100.0, sd: float = 20.0) -> np.ndarray:
    """Random pixels of ``dtype`` (Poisson counts for integer types)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(rng.poisson(mean, size=shape), info.min, info.max).astype(dtype)
    return rng.normal(mean, sd, size=shape).astype(dtype)


def write_mrc(
    path: Path,
    data: np.ndarray,
    *,
    voxel_size: float | None = 1.5,
    stack: bool | None = None,
    ext_header: np.ndarray | None = None,
    exttyp: bytes | None = None,
) -> Path:
    """Write ``data`` with mrcfile; ``stack`` True marks an image stack (ispg 0), False a volume."""
    with mrcfile.new(str(path), overwrite=True) as mrc:
        mrc.set_data(data)
        if stack is True:
            mrc.set_image_stack()
        elif stack is False:
            mrc.set_volume()
        if voxel_size is not None:
            mrc.voxel_size = voxel_size
        if ext_header is not None:
            mrc.set_extended_header(ext_header)
            mrc.header.exttyp = exttyp or b"FEI1"
    return Path(path)


def fei1_records(n: int, *, when: dt.datetime, pixel_size_m: float = 0.83e-10) -> np.ndarray:
    """An EPU-style FEI1 extended header with ``n`` records (little-endian, as EPU writes)."""
    rec = np.zeros(n, dtype=get_ext_header_dtype(b"FEI1", "<"))
    rec["Metadata size"] = rec.dtype.itemsize
    rec["Metadata version"] = 0
    rec["Bitmask 1"] = 0xFFFFFFFF
    rec["Microscope type"] = b"TITAN52336320"
    rec["Application"] = b"EPU"
    rec["Application version"] = b"3.6.0"
    rec["HT"] = 300000.0  # V
    rec["Dose"] = 4.0e21  # e/m^2 = 40 e/A^2
    rec["Pixel size X"] = pixel_size_m
    rec["Pixel size Y"] = pixel_size_m
    rec["Defocus"] = -1.5e-6  # m
    rec["Integration time"] = 2.5
    rec["Magnification"] = 165000.0
    rec["Camera name"] = b"BM-Falcon"
    rec["Direct detector electron counting"] = True
    for i in range(n):
        rec["Timestamp"][i] = ((when - OLE_EPOCH) + dt.timedelta(seconds=10 * i)).total_seconds() / 86400.0
    return rec
