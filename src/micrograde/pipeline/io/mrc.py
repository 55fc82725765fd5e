"""Reading MRC micrographs, movies and stacks (MRC2014, modes 0, 1, 2, 6 and 12).

The header and extended header are read with :mod:`mrcfile` (strict unless ``permissive``);
its errors are mapped to reason codes. The file size is then checked against the header
(``1024 + nsymbt + nx*ny*nz*bytes_per_voxel``) so that a short file is ``truncated`` and a long
one ``size-mismatch`` (permissive reading tolerates surplus bytes and notes them in the header
dict). The data block is read once, frame by frame, straight into its final array: a float32
micrograph costs exactly one array of its own size; a movie costs one float32 sum plus one
frame buffer, whatever the number of frames.

Stacks (``.mrcs``, or ``nz > 1`` with space group 0) follow the stack rule in
:mod:`.rawmicrograph`. A file with ``nz > 1`` and a volume space group (``ispg != 0``) is a 3-D
map, not micrographs (``not-an-image``) unless a stack reading is forced with ``stack=``.

FEI/EPU extended headers (``FEI1``/``FEI2``) give, where present: pixel size (used when the
main header has none), acquisition time (``acquired_at``, per frame), and in the header dict
``microscope``, ``detector``, ``voltage`` (kV), ``dose`` (e/A^2), ``defocus`` (um, EPU sign),
``exposure_time`` (s), ``magnification`` and ``application``.
"""

from __future__ import annotations

import contextlib
import os
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from mrcfile import utils as mrc_utils
from mrcfile.mrcinterpreter import MrcInterpreter

from micrograde.pipeline.io.raw import (
    RawMicrograph,
    check_stack_mode,
    choose_pixel_size,
    is_movie,
    ole_date_to_utc,
    open_readable,
    read_exact_into,
    to_native_float32,
)
from micrograde.pipeline.io.validate import MicrographReadError, describe_content

__all__ = ["MRC_SUFFIXES", "SUPPORTED_MODES", "read_mrc", "probe_mrc"]

MRC_SUFFIXES: tuple[str, ...] = (".mrc", ".mrcs", ".map")
#: Readable MRC modes and their pixel types.
SUPPORTED_MODES: dict[int, str] = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}
_OTHER_MODES = {3: "complex int16", 4: "complex float32", 101: "packed 4-bit"}
_HEADER_BYTES = 1024
_NO_PX = "the MRC header has no pixel size (voxel size 0) and no EPU extended header gives one"


def _fail(reason: str, detail: str, path: Path) -> MicrographReadError:
    return MicrographReadError(reason, detail, str(path))


def _raw_fields(head: bytes) -> tuple[int, int, int, int, int]:
    """(nx, ny, nz, mode, nsymbt) from a 1024-byte header in its machine-stamp byte order."""
    order = "<"
    with contextlib.suppress(ValueError):
        order = mrc_utils.byte_order_from_machine_stamp(np.frombuffer(head[212:216], np.uint8))
    nx, ny, nz, mode = struct.unpack(order + "4i", head[:16])
    (nsymbt,) = struct.unpack(order + "i", head[92:96])
    return nx, ny, nz, mode, nsymbt


def _plausible_header(head: bytes) -> bool:
    """Do the first 16 bytes look like MRC dimensions and a mode (either byte order)?"""
    if len(head) < 16:
        return False
    for order in "<>":
        nx, ny, nz, mode = struct.unpack(order + "4i", head[:16])
        if 0 < nx < 1 << 20 and 0 < ny < 1 << 20 and 0 < nz < 1 << 20 and (0 <= mode <= 16 or mode == 101):
            return True
    return False


class _HeaderReader(MrcInterpreter):
    """mrcfile's strict/permissive parser over our open stream: header and extended header only."""

    def __init__(self, iostream, permissive: bool) -> None:
        super().__init__(permissive=permissive)
        self._read_only = True  # never flush anything back to the stream
        self._iostream = iostream
        self._read(header_only=True)


def _read_header(fh, path: Path, size: int, permissive: bool) -> tuple[MrcInterpreter, list[str]]:
    head = fh.read(_HEADER_BYTES)
    if len(head) < _HEADER_BYTES:
        if _plausible_header(head):
            raise _fail("truncated", f"the file is {size} bytes, shorter than the 1024-byte MRC header", path)
        raise _fail("not-an-image", f"{describe_content(head)}, not an MRC file (only {size} bytes)", path)
    nsymbt = _raw_fields(head)[4]
    if head[208:211] == b"MAP" and not 0 <= nsymbt <= size - _HEADER_BYTES:  # before mrcfile allocates it
        if nsymbt < 0:
            raise _fail("bad-header", f"negative extended header size {nsymbt}", path)
        raise _fail(
            "truncated",
            f"the header announces a {nsymbt}-byte extended header but the file holds {size - _HEADER_BYTES} "
            "bytes after the 1024-byte header",
            path,
        )
    fh.seek(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mrc = _HeaderReader(fh, permissive)
        except ValueError as exc:
            msg = str(exc)
            if "Map ID" in msg:
                if _plausible_header(head):
                    raise _fail(
                        "bad-header",
                        "no 'MAP ' identifier at byte 208 although the dimensions look valid "
                        "(an old or damaged MRC header; read it permissively to accept it)",
                        path,
                    ) from exc
                raise _fail("not-an-image", f"{describe_content(head)}, not an MRC file", path) from exc
            if "extended header" in msg:
                raise _fail("truncated", f"the file ends inside the extended header: {msg}", path) from exc
            raise _fail("bad-header", msg, path) from exc
    notes = [str(w.message) for w in caught]
    return mrc, notes


def _check_size(header, size: int, path: Path, permissive: bool, notes: list[str]) -> tuple[np.dtype, tuple]:
    nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
    mode = int(header.mode)
    if min(nx, ny, nz) <= 0:
        raise _fail("bad-header", f"header dimensions {nx}x{ny}x{nz} are not all positive", path)
    if mode not in SUPPORTED_MODES:
        what = f" ({_OTHER_MODES[mode]})" if mode in _OTHER_MODES else ""
        supported = ", ".join(f"{m} ({t})" for m, t in SUPPORTED_MODES.items())
        raise _fail("unsupported-mode", f"MRC mode {mode}{what} is not supported; readable modes: {supported}", path)
    dtype = mrc_utils.data_dtype_from_header(header)
    nsymbt = int(header.nsymbt)
    data_bytes = nx * ny * nz * dtype.itemsize
    held = size - _HEADER_BYTES - nsymbt
    ext = f" and {nsymbt}-byte extended header" if nsymbt else ""
    said = f"header says {nx}x{ny}x{nz} mode {mode} ({data_bytes} bytes of data)"
    if held < data_bytes:
        raise _fail(
            "truncated",
            f"{said} but the file holds {max(held, 0)} after the 1024-byte header{ext} "
            f"({data_bytes - held} bytes missing)",
            path,
        )
    if held > data_bytes:
        msg = (
            f"{said} but the file holds {held} after the 1024-byte header{ext} "
            f"({held - data_bytes} bytes more); the header's dimensions or mode disagree with the file size"
        )
        if not permissive:
            raise _fail("size-mismatch", msg, path)
        notes.append(msg)
    return dtype, (nz, ny, nx)


def _text(value) -> str | None:
    raw = bytes(value).split(b"\x00")[0].strip()
    return raw.decode("latin-1") if raw else None


def _positive(value) -> float | None:
    v = float(value)
    return v if np.isfinite(v) and v > 0 else None


def _fei_records(mrc: MrcInterpreter, notes: list[str]):
    if bytes(mrc.header.exttyp) not in (b"FEI1", b"FEI2") or int(mrc.header.nsymbt) == 0:
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = mrc.indexed_extended_header
    notes.extend(str(w.message) for w in caught)
    return records


def _fei_metadata(rec) -> tuple[dict, float | None]:
    """Header fields and the pixel size (Angstrom) from one FEI extended-header record."""
    names = rec.dtype.names
    out: dict = {}
    if (s := _text(rec["Microscope type"])) is not None:
        out["microscope"] = s
    detector = _text(rec["Detector commercial name"]) if "Detector commercial name" in names else None
    detector = detector or _text(rec["Camera name"])
    if detector:
        out["detector"] = detector
    if (app := _text(rec["Application"])) is not None:
        version = _text(rec["Application version"])
        out["application"] = f"{app} {version}" if version else app
    if (ht := _positive(rec["HT"])) is not None:
        out["voltage"] = ht / 1000.0 if ht > 1000 else ht  # volts in the spec
    if (dose := _positive(rec["Dose"])) is not None:
        out["dose"] = dose * 1e-20 if dose > 1e6 else dose  # e/m^2 in the spec -> e/A^2
    defocus = float(rec["Defocus"])
    if np.isfinite(defocus) and defocus != 0:
        out["defocus"] = defocus * 1e6 if abs(defocus) < 1e-3 else defocus  # metres -> um
    if (t := _positive(rec["Integration time"])) is not None:
        out["exposure_time"] = t
    if (mag := _positive(rec["Magnification"])) is not None:
        out["magnification"] = mag
    if bool(rec["Direct detector electron counting"]):
        out["counting"] = True
    px = _positive(rec["Pixel size X"])
    if px is not None:
        px = px * 1e10 if px < 1e-6 else None  # metres in the spec; anything else is not trusted
    return out, px


def _header_pixel_size(header) -> float | None:
    mx = int(header.mx)
    cella_x = float(header.cella.x)
    if mx > 0 and np.isfinite(cella_x) and cella_x > 0:
        return float(f"{cella_x / mx:.6g}")  # cella is float32: drop its representation noise (0.9499999 -> 0.95)
    return None


def read_mrc(
    path: Path,
    *,
    pixel_size: float | None = None,
    stack: str = "auto",
    permissive: bool = False,
) -> list[RawMicrograph]:
    """Read an MRC file into one or more micrographs (see the module docstring)."""
    check_stack_mode(stack)
    path = Path(path)
    with open_readable(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise _fail("empty-file", "the file is 0 bytes long", path)
        mrc, notes = _read_header(fh, path, size, permissive)
        header = mrc.header
        dtype, (nz, ny, nx) = _check_size(header, size, path, permissive, notes)
        mode, ispg = int(header.mode), int(header.ispg)

        is_stack = path.suffix.lower() == ".mrcs" or ispg == 0
        if nz > 1 and not is_stack and stack == "auto":
            raise _fail(
                "not-an-image",
                f"a 3-D volume ({nx}x{ny}x{nz}, space group {ispg}): a map, not micrographs "
                "(force a stack reading if it really is a stack of images)",
                path,
            )

        meta: dict = {
            "format": "mrc",
            "mrc_mode": mode,
            "shape_zyx": [nz, ny, nx],
            "ispg": ispg,
        }
        exttyp = _text(header.exttyp)
        if exttyp:
            meta["exttyp"] = exttyp
        labels = [t for t in (_text(lab) for lab in header.label[: max(0, min(int(header.nlabl), 10))]) if t]
        if labels:
            meta["labels"] = labels

        header_px = _header_pixel_size(header)
        if header_px is not None:
            meta["pixel_size_from"] = "mrc-header"
        records = _fei_records(mrc, notes)
        frame_times: list = []
        if records is not None and len(records):
            fei, fei_px = _fei_metadata(records[0])
            meta.update(fei)
            if fei_px is not None:
                meta["fei_pixel_size"] = fei_px
                if header_px is None:
                    header_px, meta["pixel_size_from"] = fei_px, "fei-extended-header"
            frame_times = [ole_date_to_utc(float(r["Timestamp"])) for r in records]
        meta["header_pixel_size"] = header_px
        px, px_source = choose_pixel_size(header_px, pixel_size, why=_NO_PX)
        if notes:
            meta["warnings"] = notes

        def when(i: int):
            return frame_times[i] if i < len(frame_times) else None

        fh.seek(_HEADER_BYTES + int(header.nsymbt))
        first = _read_frame(fh, dtype, (ny, nx), path)
        common: dict[str, Any] = dict(pixel_size=px, pixel_size_source=px_source, mode=f"mrc-mode-{mode}", header=meta)
        if nz == 1:
            return [RawMicrograph(data=to_native_float32(first), frame=0, n_frames=1, acquired_at=when(0), **common)]
        if is_movie(stack, dtype, first):
            total = first.astype(np.float32)
            del first
            buf = np.empty((ny, nx), dtype)
            for _ in range(1, nz):
                _fill(fh, buf, path)
                np.add(total, buf, out=total, casting="unsafe")
            return [RawMicrograph(data=total, frame=0, n_frames=nz, acquired_at=when(0), **common)]
        out = [RawMicrograph(data=to_native_float32(first), frame=0, n_frames=1, acquired_at=when(0), **common)]
        for i in range(1, nz):
            frame = to_native_float32(_read_frame(fh, dtype, (ny, nx), path))
            out.append(RawMicrograph(data=frame, frame=i, n_frames=1, acquired_at=when(i), **common))
        return out


def _fill(fh, arr: np.ndarray, path: Path) -> None:
    got = read_exact_into(fh, arr)
    if got < arr.nbytes:  # the file shrank after the size check (being rewritten)
        raise _fail("truncated", f"the data block ended after {got} of {arr.nbytes} bytes of a frame", path)


def _read_frame(fh, dtype: np.dtype, shape: tuple[int, int], path: Path) -> np.ndarray:
    arr = np.empty(shape, dtype)
    _fill(fh, arr, path)
    return arr


def probe_mrc(path: Path) -> bool:
    """True when the file is at least as long as its header announces (or is not an MRC at all).

    False while the file is missing, shorter than the 1024-byte header, or shorter than
    ``1024 + nsymbt + data``: it is probably still being written. A file whose header cannot be
    an MRC header answers True so that the reader rejects it instead of waiting forever.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(_HEADER_BYTES)
    except FileNotFoundError:
        return False
    except PermissionError:
        return True
    if len(head) < _HEADER_BYTES or not any(head):  # short, or a pre-allocated blank header
        return False
    nx, ny, nz, mode, nsymbt = _raw_fields(head)
    if mode not in SUPPORTED_MODES or min(nx, ny, nz) <= 0 or nsymbt < 0:
        return True
    itemsize = np.dtype(SUPPORTED_MODES[mode]).itemsize
    return size >= _HEADER_BYTES + nsymbt + nx * ny * nz * itemsize
