"""Reading TIFF (tifffile) and PNG (Pillow) micrographs: single-channel 8/16-bit integer or float.

Colour images (RGB, RGBA, palette, grey+alpha) are rejected as ``not-an-image``: converting
colour to grey invents intensities that were never electron counts.

Pixel size: TIFF ``XResolution``/``ResolutionUnit`` and PNG ``pHYs`` are print resolutions
(dots per inch from whatever exported the file) and are never trusted. A TIFF written by ImageJ
(``unit`` of nm, um or A with ``XResolution`` in pixels per unit) or an OME-TIFF
(``PhysicalSizeX`` + unit) does record a physical spacing; it is used as the header value when it
is a plausible micrograph pixel size (0.05-100 A). Otherwise the ``pixel_size`` override is
needed (``missing-pixel-size`` without it).

The TIFF ``DateTime`` tag, when present, becomes ``acquired_at``; TIFF stores no time zone, so it
is taken as UTC. Multi-page TIFFs follow the stack rule in :mod:`.rawmicrograph`.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from micrograde.pipeline.io.raw import RawMicrograph, check_stack_mode, choose_pixel_size, is_movie, open_readable
from micrograde.pipeline.io.validate import MicrographReadError, describe_content

__all__ = ["TIFF_SUFFIXES", "PNG_SUFFIXES", "read_tiff", "read_png", "probe_tiff", "probe_png"]

TIFF_SUFFIXES: tuple[str, ...] = (".tif", ".tiff")
PNG_SUFFIXES: tuple[str, ...] = (".png",)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# Angstrom per unit for the spacing units ImageJ and OME write.
_UNIT_TO_A = {
    "a": 1.0, "å": 1.0, "\u212b": 1.0, "angstrom": 1.0, "ang": 1.0,
    "nm": 10.0, "nanometer": 10.0, "nanometre": 10.0,
    "um": 1e4, "µm": 1e4, "\u03bcm": 1e4, "micron": 1e4, "micrometer": 1e4, "micrometre": 1e4,
    "pm": 0.01,
}  # fmt: skip
_PLAUSIBLE_PX = (0.05, 100.0)
_REAL_KINDS = "iuf"
_NO_TIFF_PX = (
    "the TIFF records no pixel size (its resolution tags are a print resolution; only an ImageJ or "
    "OME spacing in A, nm or um counts)"
)
_NO_PNG_PX = "a PNG records no pixel size (its pHYs chunk is a print resolution)"


def _fail(reason: str, detail: str, path: Path) -> MicrographReadError:
    return MicrographReadError(reason, detail, str(path))


def _colour_name(photometric: int, samples: int) -> str | None:
    if photometric == 3:
        return "palette (colour-mapped) image"
    if photometric in (2, 6) or samples >= 3:
        return "RGB image" if samples != 4 else "RGBA image"
    if samples == 2:
        return "grey image with an alpha channel"
    return None


def _spacing_A(value: float, unit: str | None) -> float | None:
    if unit is None:
        return None
    factor = _UNIT_TO_A.get(unit.strip().lower().replace("\\u00b5", "µ").replace("\\u00c5", "å"))
    if factor is None or not np.isfinite(value) or value <= 0:
        return None
    return value * factor


def _tiff_pixel_size(tif, page, meta: dict) -> float | None:
    px = None
    if tif.is_ome and tif.ome_metadata:
        try:
            root = ET.fromstring(tif.ome_metadata)
            pixels = next(el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels")
            size = pixels.get("PhysicalSizeX")
            if size is not None:
                px = _spacing_A(float(size), pixels.get("PhysicalSizeXUnit", "µm"))
                meta["pixel_size_from"] = "ome-xml"
        except (ET.ParseError, StopIteration, ValueError):
            px = None
    elif tif.is_imagej and tif.imagej_metadata and "XResolution" in page.tags:
        num, den = page.tags["XResolution"].value
        if num > 0:
            px = _spacing_A(den / num, tif.imagej_metadata.get("unit"))
            meta["pixel_size_from"] = "imagej"
    if px is not None and not (_PLAUSIBLE_PX[0] <= px <= _PLAUSIBLE_PX[1]):
        meta["ignored_pixel_size"] = px
        meta.pop("pixel_size_from", None)
        px = None
    if px is None:
        meta.pop("pixel_size_from", None)
    return px


def _tiff_datetime(page) -> dt.datetime | None:
    tag = page.tags.get("DateTime")
    if tag is None:
        return None
    m = re.match(r"(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})", str(tag.value).strip())
    if not m:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in m.groups())
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError:
        return None


def read_tiff(path: Path, *, pixel_size: float | None = None, stack: str = "auto") -> list[RawMicrograph]:
    """Read a (multi-page) greyscale TIFF; see the module docstring."""
    import tifffile

    check_stack_mode(stack)
    path = Path(path)
    with open_readable(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise _fail("empty-file", "the file is 0 bytes long", path)
        head = fh.read(512)
        fh.seek(0)
        if not head.startswith(_TIFF_MAGICS):
            raise _fail("not-an-image", f"{describe_content(head)}, not a TIFF file", path)
        try:
            tif = tifffile.TiffFile(fh, name=path.name)
        except (ValueError, IndexError, KeyError, EOFError) as exc:  # TiffFileError is a ValueError
            raise _fail("bad-header", f"unreadable TIFF structure: {exc}", path) from exc
        with tif:
            try:
                series = tif.series[0]
                page: Any = series.pages[0] if series.pages else tif.pages[0]
                pages = [p for p in series.pages if p is not None]
                end = max(
                    (o + c for p in pages for o, c in zip(p.dataoffsets, p.databytecounts, strict=False)), default=0
                )
            except (ValueError, IndexError, KeyError, EOFError) as exc:
                raise _fail("bad-header", f"unreadable TIFF structure: {exc}", path) from exc
            if end > size:
                raise _fail(
                    "truncated",
                    f"the TIFF's image data ends at byte {end} but the file holds {size} bytes "
                    f"({end - size} missing)",
                    path,
                )
            colour = _colour_name(int(page.photometric), int(page.samplesperpixel))
            if colour is not None:
                raise _fail("not-an-image", f"{colour}; micrographs must be single-channel greyscale", path)
            dtype = np.dtype(series.dtype)
            if dtype.kind not in _REAL_KINDS or dtype.itemsize > 8 or page.bitspersample == 1:
                what = "1-bit image" if page.bitspersample == 1 else f"pixel type {dtype}"
                raise _fail("not-an-image", f"{what} is not a greyscale micrograph", path)
            shape = tuple(int(s) for s in series.shape)
            if len(shape) == 2:
                n, (ny, nx) = 1, shape
            elif len(shape) == 3:
                n, ny, nx = shape
            else:
                raise _fail("not-an-image", f"a {len(shape)}-D TIFF series of shape {shape} ({series.axes})", path)
            meta: dict = {"format": "tiff", "dtype": str(dtype), "shape_zyx": [n, ny, nx], "pages": len(tif.pages)}
            if (sw := page.tags.get("Software")) is not None:
                meta["software"] = str(sw.value)[:200]
            header_px = _tiff_pixel_size(tif, page, meta)
            px, source = choose_pixel_size(header_px, pixel_size, why=_NO_TIFF_PX)
            meta["header_pixel_size"] = header_px
            common: dict[str, Any] = dict(
                pixel_size=px,
                pixel_size_source=source,
                mode=f"tiff-{dtype.name}",
                acquired_at=_tiff_datetime(page),
                header=meta,
            )

            def frame(i: int) -> np.ndarray:
                try:
                    arr = series.asarray(key=i) if n > 1 else series.asarray()
                except (ValueError, IndexError, KeyError, EOFError, RuntimeError) as exc:
                    if "imagecodecs" in str(exc):  # e.g. LZW-compressed TIFF movies
                        compression = getattr(page.compression, "name", page.compression)
                        raise _fail(
                            "unsupported-format",
                            f"{compression}-compressed TIFF: decoding it needs the 'imagecodecs' package",
                            path,
                        ) from exc
                    raise _fail("bad-header", f"cannot decode the image data of page {i}: {exc}", path) from exc
                return np.asarray(arr).reshape(ny, nx)

            first = frame(0)
            if n == 1:
                return [RawMicrograph(data=first.astype(np.float32, copy=False), frame=0, n_frames=1, **common)]
            if is_movie(stack, dtype, first):
                total = first.astype(np.float32)
                for i in range(1, n):
                    np.add(total, frame(i), out=total, casting="unsafe")
                return [RawMicrograph(data=total, frame=0, n_frames=n, **common)]
            out = [RawMicrograph(data=first.astype(np.float32, copy=False), frame=0, n_frames=1, **common)]
            for i in range(1, n):
                out.append(RawMicrograph(data=frame(i).astype(np.float32, copy=False), frame=i, n_frames=1, **common))
            return out


_PIL_MODES = {"L": "uint8", "I;16": "uint16", "I;16L": "uint16", "I;16B": "uint16", "I": "int32", "F": "float32"}


def read_png(path: Path, *, pixel_size: float | None = None) -> list[RawMicrograph]:
    """Read an 8- or 16-bit greyscale PNG; see the module docstring."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    with open_readable(path) as fh:
        blob = fh.read()  # real I/O errors surface here; everything after is about the content
    if not blob:
        raise _fail("empty-file", "the file is 0 bytes long", path)
    if not blob.startswith(_PNG_SIGNATURE):
        raise _fail("not-an-image", f"{describe_content(blob[:512])}, not a PNG file", path)
    try:
        with Image.open(io.BytesIO(blob), formats=["PNG"]) as img:
            mode = img.mode
            colour = {"RGB": "RGB image", "RGBA": "RGBA image", "P": "palette (colour-mapped) image",
                      "PA": "palette image with alpha", "LA": "grey image with an alpha channel",
                      "1": "1-bit (black and white) image"}.get(mode)  # fmt: skip
            if colour is not None or mode not in _PIL_MODES:
                raise _fail("not-an-image", f"{colour or 'PNG mode ' + mode}; micrographs must be greyscale", path)
            img.load()
            arr = np.asarray(img)
    except MicrographReadError:
        raise
    except UnidentifiedImageError as exc:
        reason = "truncated" if len(blob) < 33 else "bad-header"  # signature + IHDR chunk = 33 bytes
        detail = f"PNG signature present but the header chunk cannot be parsed ({len(blob)} bytes)"
        raise _fail(reason, detail, path) from exc
    except Image.DecompressionBombError as exc:
        raise _fail("bad-header", f"the PNG declares an implausibly large image: {exc}", path) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # bytes are in memory: not transient
        text = str(exc)
        reason = "truncated" if "truncated" in text.lower() or isinstance(exc, EOFError) else "bad-header"
        raise _fail(reason, f"the PNG data cannot be decoded ({len(blob)} bytes): {text}", path) from exc
    if arr.ndim != 2:
        raise _fail("not-an-image", f"decoded to shape {arr.shape}, not a 2-D greyscale image", path)
    depth = _PIL_MODES[mode]
    if depth == "int32" and arr.size and arr.min() >= 0 and arr.max() <= 65535:
        depth = "uint16"  # older Pillow opens 16-bit greyscale PNGs as 32-bit "I"
    px, source = choose_pixel_size(None, pixel_size, why=_NO_PNG_PX)
    meta = {"format": "png", "dtype": depth, "shape_zyx": [1, *map(int, arr.shape)], "header_pixel_size": None}
    data = arr.astype(np.float32)
    return [RawMicrograph(data=data, pixel_size=px, pixel_size_source=source, frame=0, n_frames=1,
                          mode=f"png-{depth}", acquired_at=None, header=meta)]  # fmt: skip


def probe_tiff(path: Path) -> bool:
    """True when the TIFF parses and all its image data lies inside the file (or it is no TIFF)."""
    import tifffile

    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(8)
            if len(head) < 8:
                return False
            if not head.startswith(_TIFF_MAGICS):
                return True  # not a TIFF: let the reader reject it
            fh.seek(0)
            with tifffile.TiffFile(fh) as tif:
                pages = [p for p in tif.series[0].pages if p is not None] if tif.series else []
                if not pages:
                    return False
                end = max(o + c for p in pages for o, c in zip(p.dataoffsets, p.databytecounts, strict=False))
                return end <= size
    except FileNotFoundError:
        return False
    except PermissionError:
        return True
    except (ValueError, IndexError, KeyError, EOFError, OSError):
        return False


def probe_png(path: Path) -> bool:
    """True when the PNG ends with its IEND chunk (or it is no PNG at all)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return False
            if head != _PNG_SIGNATURE:
                return True
            fh.seek(-12, os.SEEK_END)
            tail = fh.read(12)
    except FileNotFoundError:
        return False
    except PermissionError:
        return True
    except OSError:  # seek before the start: too short to hold IEND
        return False
    return tail[4:8] == b"IEND"
