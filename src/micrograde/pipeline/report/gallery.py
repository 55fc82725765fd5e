"""The report's per-class galleries: thumbnail + power spectrum + probabilities per micrograph.

Each class shows a sample: half of the slots go to its least confident micrographs (the ones a
reviewer should check), the rest to a seeded random draw of the others, all shown least confident
first. Each item links to the labelling app's review page when a review URL is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import quote

import numpy as np
import pandas as pd

from micrograde.pipeline.config import LABELS
from micrograde.pipeline.report.render import fmt
from micrograde.pipeline.signal.display import data_uri, png_bytes, to_uint8

__all__ = ["gallery_sample", "gallery_view", "downsample", "review_link", "ImageGetter"]

ImageGetter = Callable[[str], tuple[np.ndarray, np.ndarray]]
#: Longest side (pixels) of the images embedded in the page, to keep the report small.
THUMB_SIDE = 192
SPECTRUM_SIDE = 160


def gallery_sample(rows: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """Up to ``n`` rows: the ``ceil(n/2)`` least confident plus a random draw of the rest,
    sorted by confidence (ascending)."""
    if n <= 0 or rows.empty:
        return rows.iloc[0:0]
    ordered = rows.sort_values("confidence", kind="stable")
    if len(ordered) <= n:
        return ordered
    k = math.ceil(n / 2)
    head = ordered.iloc[:k]
    rest = ordered.iloc[k:]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(rest), size=n - k, replace=False)
    return pd.concat([head, rest.iloc[np.sort(pick)]]).sort_values("confidence", kind="stable")


def downsample(image: np.ndarray, side: int) -> np.ndarray:
    """Area-mean reduction by an integer factor so the longest side is at most ``side``."""
    image = np.asarray(image)
    factor = int(math.ceil(max(image.shape[:2]) / side)) if side > 0 else 1
    if factor <= 1:
        return image
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    if h == 0 or w == 0:
        return image
    blocks = image[:h, :w].astype(np.float32).reshape(h // factor, factor, w // factor, factor)
    out = blocks.mean(axis=(1, 3))
    return out.round().clip(0, 255).astype(np.uint8) if image.dtype == np.uint8 else out


def _images(get_images: ImageGetter | None, key: str, name: str) -> list[dict]:
    """The micrograph and its power spectrum as inline PNGs, or placeholders saying why not."""

    def missing(text: str) -> dict:
        return {"src": None, "missing": text}

    if get_images is None or not key:
        return [missing("image unavailable")] * 2
    try:
        thumb, spectrum = get_images(key)
    except Exception as exc:  # a cleaned cache must not break the whole report
        return [missing(f"image unavailable: {type(exc).__name__}")] * 2
    out = []
    for arr, side, what in ((thumb, THUMB_SIDE, "micrograph"), (spectrum, SPECTRUM_SIDE, "power spectrum")):
        if arr is None or np.asarray(arr).size == 0:
            out.append(missing(f"no {what}"))
            continue
        arr = np.asarray(arr)
        img = downsample(arr if arr.dtype == np.uint8 else to_uint8(arr), side)  # uint8 in, uint8 out
        png = png_bytes(img, 0.0, 100.0)  # already display-ready: a min-max stretch only
        out.append({"src": data_uri(png), "alt": f"{what} of {name}", "title": what, "missing": None})
    return out


def _probs(row: pd.Series) -> list[dict]:
    bars = []
    for lab in LABELS:
        p = row.get(f"p_{lab}")
        p = 0.0 if p is None or (isinstance(p, float) and math.isnan(p)) else float(p)
        bars.append({"label": lab, "width": f"{100 * p:.1f}", "title": f"p_{lab} = {p:.3f}"})
    return bars


def review_link(review_url: str | None, micrograph_id: object) -> str | None:
    if not review_url or micrograph_id is None or (isinstance(micrograph_id, float) and math.isnan(micrograph_id)):
        return None
    return f"{review_url.rstrip('/')}/micrograph/{quote(str(micrograph_id), safe='')}?review=1"


def _item(row: pd.Series, get_images: ImageGetter | None, review_url: str | None) -> dict:
    name = str(row.get("name") or row.get("micrograph") or "")
    consensus = row.get("consensus")
    consensus = consensus if isinstance(consensus, str) and consensus else None
    disagree = consensus is not None and consensus != row.get("label")
    micrograph_id = row.get("micrograph_id")
    return {
        "micrograph_id": "" if micrograph_id is None else str(micrograph_id),
        "disagree": disagree,
        "images": _images(get_images, str(row.get("cache_key") or ""), name),
        "name": name,
        "path": "" if row.get("micrograph") is None else str(row.get("micrograph")),
        "probs": _probs(row),
        "probs_text": " · ".join(f"{lab[0].upper()} {fmt(row.get(f'p_{lab}'), 2)}" for lab in LABELS),
        "meta": (
            f"confidence {fmt(row.get('confidence'), 2)} · ice-ring {fmt(row.get('ice_ring_score'), 2)}"
            f" · Thon reach {fmt(row.get('thon_reach_A'), 3)} A · session {fmt(row.get('session'))}"
        ),
        "consensus": consensus,
        "verdict": " - disagrees with the prediction" if disagree else "",
        "review": review_link(review_url, micrograph_id),
    }


def gallery_view(
    label: str,
    predictions: pd.DataFrame,
    get_images: ImageGetter | None,
    review_url: str | None,
    per_class: int,
) -> dict:
    """One class's gallery: ``{label, n, note, entries}`` (``note`` None when nothing was graded so)."""
    rows = predictions.loc[predictions["label"] == label]
    sample = gallery_sample(rows, per_class)
    note = None
    if not rows.empty:
        k = min(len(sample), math.ceil(per_class / 2)) if len(rows) > per_class else len(sample)
        note = (
            f"Showing {len(sample)} of {len(rows)} micrographs graded {label}"
            + (f" ({k} least confident + {len(sample) - k} at random)" if len(rows) > per_class else "")
            + ", least confident first. Left: micrograph; right: power spectrum of the full-resolution image."
            + (" Each links to its review page in the labelling app." if review_url else "")
            + " A red frame marks a prediction that disagrees with the experts' consensus label."
        )
    items = [_item(r, get_images, review_url) for _, r in sample.iterrows()]
    return {"label": label, "n": len(rows), "note": note, "entries": items}
