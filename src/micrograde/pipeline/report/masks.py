"""The report's masks section: usable-area distribution and thumbnails with their masks overlaid.

Shown when ``predictions`` carry ``usable_area`` (``micrograde assess --masks``). Masks come from a
getter (``cache_key -> uint8 label map``, any resolution; nearest-sampled onto the thumbnail).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from micrograde.pipeline.masks import MASK_CLASSES, USABLE, area_column
from micrograde.pipeline.report.plots import _empty, _figure, _png
from micrograde.pipeline.report.render import fmt, image
from micrograde.pipeline.signal.display import data_uri, to_uint8

__all__ = ["MASK_COLOURS", "MaskGetter", "overlay", "usable_area_histogram", "masks_view"]

#: RGB colour of each code in overlays (usable is left uncoloured)
MASK_COLOURS: dict[int, tuple[int, int, int]] = {
    1: (70, 130, 255),
    2: (255, 60, 60),
    3: (255, 200, 0),
    4: (170, 0, 255),
}
MaskGetter = Callable[[str], tuple[np.ndarray, np.ndarray]]  # cache_key -> (thumbnail, mask)
_SIDE = 256


def overlay(thumbnail: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """(h, w, 3) uint8: the grey ``thumbnail`` with the non-usable classes of ``mask`` tinted."""
    grey = np.asarray(thumbnail)
    grey = grey if grey.dtype == np.uint8 else to_uint8(grey)
    h, w = grey.shape[:2]
    m = np.asarray(mask, dtype=np.uint8)
    if m.shape != (h, w):
        m = np.asarray(cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST), dtype=np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    for code, colour in MASK_COLOURS.items():
        sel = m == code
        if sel.any():
            rgb[sel] = (1 - alpha) * rgb[sel] + alpha * np.asarray(colour, dtype=np.float32)
    return rgb.round().clip(0, 255).astype(np.uint8)


def _rgb_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def usable_area_histogram(predictions: pd.DataFrame, bins: int = 20) -> bytes:
    """PNG: distribution of the usable-area fraction over the micrographs."""
    fig = _figure(5.2, 3.2)
    ax = fig.subplots()
    values = pd.to_numeric(predictions.get("usable_area", pd.Series(dtype=float)), errors="coerce").dropna()
    if values.empty:
        _empty(ax, "no masks")
    else:
        ax.hist(values, bins=list(np.linspace(0, 1, bins + 1)), color="#4a7", edgecolor="#264")
        ax.set_xlabel("usable area (fraction of the micrograph)")
        ax.set_ylabel("micrographs")
        ax.set_title(f"Usable area ({len(values)} micrographs, median {values.median():.2f})", fontsize=10)
    return _png(fig)


def masks_view(predictions: pd.DataFrame, get_masks: MaskGetter | None, n: int = 24) -> dict:
    """The section's view: histogram, per-class mean areas, and overlays of the ``n`` least usable."""
    rows = predictions.sort_values("usable_area", kind="stable").head(n)
    items = []
    for _, row in rows.iterrows():
        item = {"name": str(row.get("name", row["micrograph"])), "usable": fmt(float(row["usable_area"]), 2),
                "src": None}
        if get_masks is not None:
            try:
                thumb, mask = get_masks(str(row["cache_key"]))
                rgb = overlay(thumb, mask)
                scale = _SIDE / max(rgb.shape[:2])
                if scale < 1:
                    rgb = cv2.resize(rgb, (max(1, int(rgb.shape[1] * scale)), max(1, int(rgb.shape[0] * scale))),
                                     interpolation=cv2.INTER_AREA)
                item["src"] = data_uri(_rgb_png(rgb))
            except Exception:  # noqa: BLE001 - a missing thumbnail must not break the report
                item["src"] = None
        items.append(item)
    legend = [{"name": c.name, "code": c.code,
               "colour": "#{:02x}{:02x}{:02x}".format(*MASK_COLOURS[c.code]) if c.code != USABLE else "none"}
              for c in MASK_CLASSES]
    means = [(c.name, fmt(float(pd.to_numeric(predictions[area_column(c.name)]).mean()), 3))
             for c in MASK_CLASSES if c.code != USABLE and area_column(c.name) in predictions]
    return {"plot": image(usable_area_histogram(predictions), "usable-area distribution"), "thumbs": items,
            "legend": legend, "means": means}
