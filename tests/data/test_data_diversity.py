"""Diversity table of the labelled set and the training score ranges."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from micrograde.pipeline.data.diversity import diversity_lines, diversity_table, score_ranges
from micrograde.pipeline.report.ood import ood_warnings


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    combos = [
        ("K3", "Au", "UltrAuFoil", 0.83),
        ("K3", "Cu", "Quantifoil", 0.83),
        ("Falcon 4i", "Cu", "Quantifoil", 0.74),
        (None, "Cu", None, 1.1),
    ]
    for det, mat, maker, px in combos:
        for _ in range(int(rng.integers(5, 15))):
            rows.append(
                {
                    "detector": det,
                    "grid_material": mat,
                    "grid_maker": maker,
                    "pixel_size": px + rng.uniform(-1e-5, 1e-5),
                    "label": ["good", "medium", "bad"][rng.integers(3)],
                    "ice_ring_score": rng.normal(),
                    "contrast": np.nan,
                }
            )
    return pd.DataFrame(rows)


def test_counts_per_combination_and_class(table: pd.DataFrame) -> None:
    div = diversity_table(table)
    assert len(div) == 4
    assert div["total"].sum() == len(table)
    assert list(div["total"]) == sorted(div["total"], reverse=True)
    for _, row in div.iterrows():
        sel = table[
            (table["grid_material"] == row["grid_material"]) & (table["pixel_size"].round(3) == row["pixel_size"])
        ]
        sel = sel[sel["detector"].isna()] if row["detector"] is None else sel[sel["detector"] == row["detector"]]
        for c in ("good", "medium", "bad"):
            assert row[c] == int((sel["label"] == c).sum())
        assert row["good"] + row["medium"] + row["bad"] == row["total"] == len(sel)


def test_records_are_json_and_missing_stays_none(table: pd.DataFrame) -> None:
    records = json.loads(json.dumps(diversity_table(table).to_dict("records")))
    unknown = [r for r in records if r["detector"] is None]
    assert len(unknown) == 1 and unknown[0]["grid_maker"] is None and unknown[0]["pixel_size"] == 1.1
    # the model card's table works with the out-of-distribution check
    card = {"training": {"diversity": records}}
    preds = pd.DataFrame({"session": ["new"], "detector": ["Falcon 3"], "pixel_size": [0.83], "grid_material": ["Cu"]})
    kinds = [w.kind for w in ood_warnings(preds, card)]
    assert kinds == ["detector"]


def test_lines_name_what_was_seen(table: pd.DataFrame) -> None:
    lines = diversity_lines(diversity_table(table))
    assert any(line.startswith("detectors seen:") and "K3" in line and "unknown" in line for line in lines)
    assert diversity_lines(diversity_table(table.iloc[:0])) == ["no labelled micrographs: nothing to describe"]


def test_score_ranges_are_1st_and_99th_percentiles(table: pd.DataFrame) -> None:
    ranges = score_ranges(table)
    assert set(ranges) == {"ice_ring_score"}  # contrast is all NaN, others absent
    lo, hi = np.percentile(table["ice_ring_score"], [1, 99])
    assert ranges["ice_ring_score"] == pytest.approx([lo, hi])
    json.dumps(ranges)
