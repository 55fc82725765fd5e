"""Consensus labels per micrograph, weighted by the annotators' expertise.

Rule (documented in docs/labeling.md):

1. Each annotator's current label is a vote weighted by ``EXPERTISE_WEIGHTS`` (undergrad 1,
   grad 2, postdoc 3, senior-scientist 4).
2. The label with the largest total weight wins.
3. On a weighted tie, the tied label whose most expert voter has the highest level wins.
4. If still tied, the more conservative label wins: bad over medium over good.

``support`` is the winner's share of the total weight. A micrograph is ``disputed`` when the
support is below 2/3, or a senior scientist voted against the winner, or its labels include both
good and bad.
"""

from __future__ import annotations

import pandas as pd

from micrograde.labeling.store import latest_annotations
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.config import EXPERTISE_LEVELS, LABELS

__all__ = [
    "EXPERTISE_WEIGHTS",
    "CONSERVATIVE_ORDER",
    "DISPUTE_SUPPORT",
    "CONSENSUS_COLUMNS",
    "consensus",
    "consensus_table",
]

#: Vote weight of each expertise level.
EXPERTISE_WEIGHTS: dict[str, float] = {"undergrad": 1.0, "grad": 2.0, "postdoc": 3.0, "senior-scientist": 4.0}
#: Final tie-break, most conservative first.
CONSERVATIVE_ORDER: tuple[str, ...] = ("bad", "medium", "good")
#: A winner with less than this share of the weight is disputed.
DISPUTE_SUPPORT = 2 / 3
CONSENSUS_COLUMNS = ["micrograph_id", "label", "disputed", "n_annotators", "support"]
_SENIOR = EXPERTISE_LEVELS[-1]


def _winner(votes: list[tuple[str, str]]) -> tuple[str, float, float]:
    """``votes`` = [(label, expertise)] -> (winning label, its weight, total weight)."""
    weight: dict[str, float] = {}
    top_level: dict[str, int] = {}
    for label, level in votes:
        weight[label] = weight.get(label, 0.0) + EXPERTISE_WEIGHTS[level]
        top_level[label] = max(top_level.get(label, -1), EXPERTISE_LEVELS.index(level))
    best = max(weight.values())
    tied = [lab for lab, w in weight.items() if abs(w - best) < 1e-9]
    if len(tied) > 1:
        most_expert = max(top_level[lab] for lab in tied)
        tied = [lab for lab in tied if top_level[lab] == most_expert]
    if len(tied) > 1:
        tied = [min(tied, key=CONSERVATIVE_ORDER.index)]
    return tied[0], weight[tied[0]], sum(weight.values())


def consensus(labels_with_expertise: pd.DataFrame) -> pd.DataFrame:
    """Consensus per micrograph from one current label per (micrograph, annotator).

    Input columns: ``micrograph_id, annotator, expertise, label``. Output columns:
    ``micrograph_id, label, disputed, n_annotators, support``, one row per micrograph, in id order.
    Raises ValueError for unknown labels or expertise levels.
    """
    df = labels_with_expertise
    missing = {"micrograph_id", "annotator", "expertise", "label"} - set(df.columns)
    if missing:
        raise ValueError(f"consensus input lacks column(s) {sorted(missing)}")
    bad_labels = set(df["label"]) - set(LABELS)
    if bad_labels:
        raise ValueError(f"unknown label(s) {sorted(map(str, bad_labels))}")
    bad_levels = set(df["expertise"]) - set(EXPERTISE_WEIGHTS)
    if bad_levels:
        raise ValueError(f"unknown expertise level(s) {sorted(map(str, bad_levels))}")
    if df.duplicated(["micrograph_id", "annotator"]).any():
        raise ValueError("consensus input has more than one label per (micrograph, annotator)")
    out = []
    for mid, group in df.groupby("micrograph_id", sort=True):
        votes = list(zip(group["label"], group["expertise"], strict=False))
        label, w, total = _winner(votes)
        support = w / total
        labels = {lab for lab, _ in votes}
        senior_against = any(lev == _SENIOR and lab != label for lab, lev in votes)
        disputed = support < DISPUTE_SUPPORT - 1e-9 or senior_against or {"good", "bad"} <= labels
        out.append(
            {
                "micrograph_id": int(mid),
                "label": label,
                "disputed": bool(disputed),
                "n_annotators": len(votes),
                "support": float(support),
            }
        )
    table = pd.DataFrame(out, columns=CONSENSUS_COLUMNS)
    return table.astype({"micrograph_id": "int64", "disputed": bool, "n_annotators": "int64", "support": "float64"})


def consensus_table(ws: Workspace) -> pd.DataFrame:
    """Consensus of the store's current labels, with ``micrograph`` (path) and ``name`` added.

    Columns: ``micrograph_id, micrograph, name, label, disputed, n_annotators, support``; only
    micrographs with at least one current label. Training uses ``label``.
    """
    latest = latest_annotations(ws)
    table = consensus(latest)
    first = latest.drop_duplicates("micrograph_id").set_index("micrograph_id")
    table["micrograph"] = table["micrograph_id"].map(first["micrograph"]).astype(object)
    table["name"] = table["micrograph_id"].map(first["name"]).astype(object)
    return table[["micrograph_id", "micrograph", "name", "label", "disputed", "n_annotators", "support"]]
