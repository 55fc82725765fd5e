"""View model of "How good is this model? Out-of-fold estimate": the card's ``evaluation`` block.

The training protocol makes every choice (head, iterations, temperature) by cross-validation
grouped by session and records the out-of-fold figures in the model card::

    evaluation: {protocol, protocol_note, group_by, n_folds, n_labelled, class_counts,
                 chosen, baseline, candidates: [{name, description, macro_f1, accuracy,
                 balanced_accuracy, ece, log_loss, skipped}], oof: {labels, n, macro_f1, accuracy,
                 balanced_accuracy, ece, log_loss, recall, precision, confusion_matrix,
                 per_session: [{session, n, macro_f1, accuracy}]}, baseline_oof, temperature,
                 warnings, fold_choices, chosen_oof (the last two in cards written after 0.2.0)}

``oof`` is the whole procedure's estimate: each fold graded by the head and temperature chosen on
the other folds (``fold_choices``); ``chosen_oof`` the chosen head's own figures, optimistic.

Any figure may be null (e.g. macro-F1 undefined for a fold without a class): it shows as ``n/a``.
A card without the block (micrograde < 0.2) gets a note instead.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from micrograde.pipeline.config import LABELS
from micrograde.pipeline.report import plots
from micrograde.pipeline.report.render import NA, fmt, image

__all__ = ["NO_CARD", "NO_EVALUATION", "METRIC_NAMES", "oof_view"]

NO_CARD = "No model card was given, so there is no out-of-fold estimate."
NO_EVALUATION = "This model's card has no out-of-fold evaluation (trained by micrograde < 0.2)"
#: The candidate and out-of-fold figures shown, in order, with their column names.
METRIC_NAMES: dict[str, str] = {
    "macro_f1": "macro-F1",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "ece": "ECE",
    "log_loss": "log loss",
}


def _mapping(value: object) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list:
    return list(value) if isinstance(value, list | tuple) else []


def _candidates(evaluation: Mapping) -> list[dict]:
    chosen, baseline = evaluation.get("chosen"), evaluation.get("baseline")
    rows = []
    for cand in _list(evaluation.get("candidates")):
        cand = _mapping(cand)
        name = cand.get("name")
        tags = [t for t, hit in (("chosen", name == chosen), ("baseline", name == baseline)) if hit]
        rows.append(
            {
                "name": fmt(name),
                "description": fmt(cand.get("description")),
                "figures": [fmt(cand.get(k)) for k in METRIC_NAMES],
                "tags": tags,
                "skipped": None if cand.get("skipped") is None else str(cand["skipped"]),
            }
        )
    return rows


def _confusion(oof: Mapping, labels: list[str]) -> tuple[list[dict], dict | None]:
    """Table rows (consensus x predicted) and the heat-map; ([], None) when the matrix is unusable."""
    cm = _list(oof.get("confusion_matrix"))
    if len(cm) != len(labels) or any(len(_list(r)) != len(labels) for r in cm):
        return [], None
    rows = [
        {"label": lab, "cells": [{"predicted": labels[j], "n": fmt(v)} for j, v in enumerate(r)]}
        for lab, r in zip(labels, cm, strict=True)
    ]
    try:
        png = plots.confusion_matrix_plot(
            np.asarray(cm, dtype=float), labels, title="Out-of-fold confusion matrix", size=(3.4, 3.0)
        )
    except (TypeError, ValueError):  # a null cell: the table still shows it as n/a
        return rows, None
    return rows, image(png, "out-of-fold confusion matrix")


def _per_session(oof: Mapping, baseline_oof: Mapping) -> tuple[list[str], list[list[str]]]:
    base = {str(_mapping(s).get("session")): _mapping(s) for s in _list(baseline_oof.get("per_session"))}
    header = ["session", "n", "macro-F1", "accuracy"] + (["baseline macro-F1"] if base else [])
    rows = []
    for s in _list(oof.get("per_session")):
        s = _mapping(s)
        row = [fmt(s.get("session")), fmt(s.get("n")), fmt(s.get("macro_f1")), fmt(s.get("accuracy"))]
        if base:
            row.append(fmt(base.get(str(s.get("session")), {}).get("macro_f1")))
        rows.append(row)
    return header, rows


def _class_counts(counts: object) -> str:
    return ", ".join(f"{k}: {fmt(v)}" for k, v in _mapping(counts).items()) or NA


def oof_view(card: Mapping | None) -> dict:
    """The section's view model: ``{"present": False, "message"}`` without a card or without an
    ``evaluation`` block, else the protocol, candidates, the chosen head's out-of-fold figures."""
    if not card:
        return {"present": False, "message": NO_CARD}
    evaluation = card.get("evaluation")
    if not isinstance(evaluation, Mapping) or not evaluation:
        return {"present": False, "message": NO_EVALUATION}
    oof = _mapping(evaluation.get("oof"))
    labels = [str(x) for x in _list(oof.get("labels"))] or list(LABELS)
    recall, precision = _mapping(oof.get("recall")), _mapping(oof.get("precision"))
    confusion, heatmap = _confusion(oof, labels)
    session_header, session_rows = _per_session(oof, _mapping(evaluation.get("baseline_oof")))
    protocol = fmt(evaluation.get("protocol"))
    facts = [
        ("protocol", protocol),
        ("grouped by", fmt(evaluation.get("group_by"))),
        ("folds", fmt(evaluation.get("n_folds"))),
        ("labelled micrographs", fmt(evaluation.get("n_labelled"))),
        ("labels per class", _class_counts(evaluation.get("class_counts"))),
        ("chosen head", fmt(evaluation.get("chosen"))),
        ("baseline head", fmt(evaluation.get("baseline"))),
        ("calibration temperature", fmt(evaluation.get("temperature"))),
    ]
    if evaluation.get("fold_choices") is not None:  # newer cards: the estimate repeats the choice per fold
        facts += [
            ("heads chosen inside the folds", ", ".join(map(str, _list(evaluation.get("fold_choices")))) or NA),
            ("the chosen head's own out-of-fold macro-F1 (optimistic: it was chosen on it)",
             fmt(_mapping(evaluation.get("chosen_oof")).get("macro_f1"))),
        ]
    return {
        "present": True,
        "protocol_note": str(evaluation.get("protocol_note") or f"Protocol: {protocol}."),
        "facts": facts,
        "metric_names": list(METRIC_NAMES.values()),
        "candidates": _candidates(evaluation),
        "chosen": fmt(evaluation.get("chosen")),
        "oof_title": (f"The training procedure, out of fold (the head chosen inside each fold; shipped: "
                      f"{fmt(evaluation.get('chosen'))})" if evaluation.get("fold_choices") is not None
                      else f"The chosen head ({fmt(evaluation.get('chosen'))}), out of fold"),
        "oof": [("micrographs", fmt(oof.get("n")))] + [(name, fmt(oof.get(k))) for k, name in METRIC_NAMES.items()],
        "labels": labels,
        "confusion": confusion,
        "heatmap": heatmap,
        "per_class": [[lab, fmt(recall.get(lab)), fmt(precision.get(lab))] for lab in labels],
        "session_header": session_header,
        "sessions": session_rows,
        "warnings": [str(w) for w in _list(evaluation.get("warnings"))],
    }

