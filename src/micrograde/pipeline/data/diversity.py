"""What the training data covers: detectors, grids, grid makers, pixel sizes, per class.

A facility needs to see what a model has and has not seen. :func:`diversity_table` counts the
labelled micrographs per (detector, grid material, grid maker, pixel size) and class; its
``.to_dict("records")`` is stored in the model card (``training.diversity``), where
``pipeline.ood`` compares new sessions with it. Unknown metadata stays ``None`` (never a made-up
"unknown" value, which would count as seen). :func:`score_ranges` gives the 1st-99th percentile
of every interpretable score in the training data, for out-of-range warnings.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from micrograde.pipeline.config import LABELS
from micrograde.pipeline.features import feature_names

__all__ = ["DIVERSITY_COLUMNS", "diversity_table", "diversity_lines", "score_ranges"]

DIVERSITY_COLUMNS: tuple[str, ...] = ("detector", "grid_material", "grid_maker", "pixel_size")
_MISSING = "\x00missing"


def _key(value, column: str):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _MISSING
    if column == "pixel_size":
        return round(float(value), 3)
    text = str(value).strip()
    return text if text else _MISSING


def diversity_table(table: pd.DataFrame, label_col: str = "label") -> pd.DataFrame:
    """One row per (detector, grid_material, grid_maker, pixel_size) with a count per class and
    ``total``; missing values are ``None``; pixel sizes rounded to 0.001 A. Rows sorted by
    ``total`` (largest first). Absent columns count as missing."""
    cols = list(DIVERSITY_COLUMNS)
    keys = pd.DataFrame({c: [_key(v, c) for v in table[c]] if c in table.columns else [_MISSING] * len(table)
                         for c in cols}, index=table.index)
    labels = table[label_col] if label_col in table.columns else pd.Series([None] * len(table), index=table.index)
    rows = []
    for key, part in keys.groupby(cols, sort=False):
        lab = labels.loc[part.index]
        row = {c: (None if k == _MISSING else k) for c, k in zip(cols, key, strict=False)}
        row.update({name: int((lab == name).sum()) for name in LABELS})
        row["total"] = int(len(part))
        rows.append(row)
    out = pd.DataFrame(rows, columns=[*cols, *LABELS, "total"])
    if len(out):
        out = out.sort_values("total", ascending=False, kind="stable").reset_index(drop=True)
        out = out.astype({c: object for c in cols})
        out[cols] = out[cols].where(out[cols].notna(), None)
    return out


def diversity_lines(div: pd.DataFrame) -> list[str]:
    """Human lines for the training log: the table, then what each axis covers."""
    if div.empty:
        return ["no labelled micrographs: nothing to describe"]
    show = div.copy()
    for c in DIVERSITY_COLUMNS:
        show[c] = [("unknown" if v is None else (f"{v:g} A" if c == "pixel_size" else str(v))) for v in show[c]]
    lines = show.to_string(index=False).splitlines()
    for c in DIVERSITY_COLUMNS:
        seen = div.groupby(div[c].map(lambda v: "unknown" if v is None else v), sort=False)["total"].sum()
        parts = ", ".join(f"{(f'{k:g} A' if isinstance(k, float) else k)} ({v})" for k, v in seen.items())
        lines.append(f"{c.replace('_', ' ')}s seen: {parts}")
    return lines


def score_ranges(table: pd.DataFrame) -> dict[str, list[float]]:
    """Per registry feature column present with finite values: ``[1st percentile, 99th percentile]``."""
    out: dict[str, list[float]] = {}
    for col in feature_names():
        if col not in table.columns:
            continue
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if values.size:
            lo, hi = np.percentile(values, [1, 99])
            out[col] = [float(lo), float(hi)]
    return out
