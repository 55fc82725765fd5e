"""Inter-annotator agreement: Cohen's kappa per pair, Fleiss' kappa over all, per expertise level.

All functions take the table of current labels (:func:`store.latest_annotations`: one row per
(micrograph, annotator) with ``micrograph_id, annotator, expertise, label``) and are pure.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score

from micrograde.labeling.consensus import consensus
from micrograde.pipeline.config import EXPERTISE_LEVELS, LABELS

__all__ = [
    "cohen_kappa_matrix",
    "shared_counts",
    "fleiss_kappa",
    "agreement_by_expertise",
    "confusion_between",
    "AgreementReport",
    "agreement_report",
]


def _by_annotator(latest: pd.DataFrame) -> dict[str, pd.Series]:
    return {str(a): g.set_index("micrograph_id")["label"] for a, g in latest.groupby("annotator", sort=True)}


def _kappa(y1: pd.Series, y2: pd.Series) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(cohen_kappa_score(list(y1), list(y2), labels=list(LABELS), replace_undefined_by=np.nan))


def cohen_kappa_matrix(latest: pd.DataFrame, min_shared: int = 2) -> pd.DataFrame:
    """Square annotator x annotator table of Cohen's kappa on the micrographs both labelled.

    The diagonal is 1. A pair with fewer than ``min_shared`` common micrographs, or whose kappa is
    undefined (both used a single, identical label throughout), is NaN.
    """
    series = _by_annotator(latest)
    names = list(series)
    out = pd.DataFrame(np.nan, index=pd.Index(names, name="annotator"), columns=names, dtype=float)
    for a in names:
        out.loc[a, a] = 1.0
    for a, b in itertools.combinations(names, 2):
        common = series[a].index.intersection(series[b].index)
        if len(common) < min_shared:
            continue
        k = _kappa(series[a].loc[common], series[b].loc[common])
        out.loc[a, b] = out.loc[b, a] = k
    return out


def shared_counts(latest: pd.DataFrame) -> pd.DataFrame:
    """Number of micrographs each pair of annotators both labelled (diagonal: each one's total)."""
    series = _by_annotator(latest)
    names = list(series)
    out = pd.DataFrame(0, index=pd.Index(names, name="annotator"), columns=names, dtype=int)
    for a in names:
        for b in names:
            out.loc[a, b] = len(series[a].index.intersection(series[b].index))
    return out


def fleiss_kappa(latest: pd.DataFrame) -> float:
    """Fleiss' kappa over the micrographs labelled by at least two annotators.

    With n_i raters on item i and n_ij of them choosing category j:
    P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)), P_bar = mean_i P_i,
    p_j = sum_i n_ij / sum_i n_i, P_e = sum_j p_j^2, kappa = (P_bar - P_e) / (1 - P_e).
    (Unequal numbers of raters per item are allowed.) NaN when there is no such micrograph or
    P_e = 1 (everyone used one label).
    """
    if latest.empty:
        return math.nan
    counts = pd.crosstab(latest["micrograph_id"], latest["label"]).reindex(columns=list(LABELS), fill_value=0)
    n = counts.sum(axis=1)
    counts, n = counts[n >= 2], n[n >= 2]
    if counts.empty:
        return math.nan
    p_i = ((counts**2).sum(axis=1) - n) / (n * (n - 1))
    p_bar = float(p_i.mean())
    p_j = counts.sum(axis=0) / float(n.sum())
    p_e = float((p_j**2).sum())
    if abs(1.0 - p_e) < 1e-12:
        return math.nan
    return (p_bar - p_e) / (1.0 - p_e)


def agreement_by_expertise(latest: pd.DataFrame) -> pd.DataFrame:
    """Per expertise level: ``expertise, n_annotators, n_labels, agreement_with_consensus,
    mean_kappa_vs_others``.

    ``agreement_with_consensus``: share of the level's labels equal to the consensus label, over
    micrographs labelled by at least two annotators. ``mean_kappa_vs_others``: mean Cohen's kappa
    of the level's annotators against every other annotator (defined pairs only).
    """
    cols = ["expertise", "n_annotators", "n_labels", "agreement_with_consensus", "mean_kappa_vs_others"]
    if latest.empty:
        return pd.DataFrame(columns=cols)
    cons = consensus(latest).set_index("micrograph_id")["label"]
    multi = latest.groupby("micrograph_id")["annotator"].transform("size") >= 2
    kappa = cohen_kappa_matrix(latest)
    rows = []
    for level in EXPERTISE_LEVELS:
        part = latest[latest["expertise"] == level]
        if part.empty:
            continue
        names = sorted(set(part["annotator"]))
        shared = part[multi[part.index]]
        agree = (
            float((shared["label"].to_numpy() == cons.loc[shared["micrograph_id"]].to_numpy()).mean())
            if len(shared)
            else math.nan
        )
        ks = [kappa.loc[a, b] for a in names for b in kappa.columns if b != a]
        ks = [k for k in ks if not math.isnan(k)]
        rows.append(
            {
                "expertise": level,
                "n_annotators": len(names),
                "n_labels": len(part),
                "agreement_with_consensus": agree,
                "mean_kappa_vs_others": float(np.mean(ks)) if ks else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=cols)


def confusion_between(latest: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Counts of (a's label, b's label) on the micrographs both labelled; rows a, columns b, LABELS order."""
    series = _by_annotator(latest)
    for name in (a, b):
        if name not in series:
            raise ValueError(f"annotator {name!r} has no current labels")
    common = series[a].index.intersection(series[b].index)
    table = pd.crosstab(
        pd.Categorical(series[a].loc[common], categories=list(LABELS)),
        pd.Categorical(series[b].loc[common], categories=list(LABELS)),
        dropna=False,
    )
    table = table.reindex(index=list(LABELS), columns=list(LABELS), fill_value=0).astype(int)
    table.index.name, table.columns.name = f"{a} \\ {b}", None
    return table


def _fmt(x: float) -> str:
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:5.2f}"


@dataclass
class AgreementReport:
    n_micrographs: int
    n_annotators: int
    n_labels: int
    n_disputed: int
    cohen: pd.DataFrame
    shared: pd.DataFrame
    fleiss: float
    by_expertise: pd.DataFrame
    confusions: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)

    def to_dict(self) -> dict:
        def num(x):
            return None if isinstance(x, float) and math.isnan(x) else x

        return {
            "n_micrographs": self.n_micrographs,
            "n_annotators": self.n_annotators,
            "n_labels": self.n_labels,
            "n_disputed": self.n_disputed,
            "fleiss_kappa": num(self.fleiss),
            "cohen_kappa": {a: {b: num(float(v)) for b, v in row.items()} for a, row in self.cohen.iterrows()},
            "shared": {a: {b: int(v) for b, v in row.items()} for a, row in self.shared.iterrows()},
            "by_expertise": [{k: num(v) for k, v in r.items()} for r in self.by_expertise.to_dict("records")],
            "confusion": [
                {"a": a, "b": b, "labels": list(LABELS), "counts": t.to_numpy().tolist()}
                for (a, b), t in self.confusions.items()
            ],
        }

    def to_text(self, max_confusions: int = 3) -> str:
        lines = [
            f"{self.n_labels} current labels on {self.n_micrographs} micrographs by {self.n_annotators} annotators; "
            f"{self.n_disputed} disputed",
            f"Fleiss' kappa (micrographs with >= 2 annotators): {_fmt(self.fleiss).strip()}",
            "",
            "Cohen's kappa per pair (n/a: fewer than 2 shared micrographs or undefined):",
        ]
        names = list(self.cohen.columns)
        width = max([len(n) for n in names] + [9])
        lines.append(" " * width + " " + " ".join(f"{n[:8]:>8}" for n in names))
        for a in names:
            lines.append(f"{a:<{width}} " + " ".join(f"{_fmt(self.cohen.loc[a, b]):>8}" for b in names))
        lines += ["", "Agreement per expertise level:"]
        if self.by_expertise.empty:
            lines.append("  (no labels)")
        for r in self.by_expertise.to_dict("records"):
            lines.append(
                f"  {r['expertise']:<17} annotators {r['n_annotators']:>3}  labels {r['n_labels']:>5}  "
                f"agree with consensus {_fmt(r['agreement_with_consensus'])}  mean kappa vs others "
                f"{_fmt(r['mean_kappa_vs_others'])}"
            )
        pairs = sorted(self.confusions, key=lambda p: -int(self.shared.loc[p[0], p[1]]))[:max_confusions]
        for a, b in pairs:
            lines += ["", f"Confusion {a} (rows) vs {b} (columns), {int(self.shared.loc[a, b])} shared:"]
            lines += ["  " + ln for ln in self.confusions[(a, b)].to_string().splitlines()]
        return "\n".join(lines)


def agreement_report(latest: pd.DataFrame) -> AgreementReport:
    """Every agreement measure of the current labels, with confusion tables for pairs that share labels."""
    shared = shared_counts(latest)
    names = list(shared.columns)
    confusions = {
        (a, b): confusion_between(latest, a, b)
        for a, b in itertools.combinations(names, 2)
        if shared.loc[a, b] > 0
    }
    return AgreementReport(
        n_micrographs=int(latest["micrograph_id"].nunique()) if not latest.empty else 0,
        n_annotators=len(names),
        n_labels=len(latest),
        n_disputed=int(consensus(latest)["disputed"].sum()) if not latest.empty else 0,
        cohen=cohen_kappa_matrix(latest),
        shared=shared,
        fleiss=fleiss_kappa(latest),
        by_expertise=agreement_by_expertise(latest),
        confusions=confusions,
    )
