"""Sections of ``report.html`` other than the galleries (see :mod:`.report` for the page)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from micrograde.pipeline.report import plots
from micrograde.pipeline.config import LABELS
from micrograde.pipeline.data.metrics import classification_metrics, reliability_curve
from micrograde.pipeline.report.html import NA, esc, fmt, img_tag, kv_table, section, table

__all__ = [
    "summary_section",
    "rejects_section",
    "warnings_section",
    "scores_section",
    "timeline_section",
    "evaluation_section",
    "model_section",
    "labelled_rows",
    "evaluation_metrics",
]

MAX_REJECT_ROWS = 300


def _count_cell(n: int, **attrs: str) -> str:
    extra = "".join(f' data-{k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    return f'<td class="num" data-count="{int(n)}"{extra}>{int(n)}</td>'


def summary_section(predictions: pd.DataFrame, rejects: pd.DataFrame) -> str:
    counts = predictions["label"].value_counts()
    total = len(predictions)
    cards = "".join(
        f'<div class="card {lab}"><div class="n">{int(counts.get(lab, 0))}</div>'
        f'<div class="l">{lab} ({(counts.get(lab, 0) / total if total else 0):.0%})</div></div>'
        for lab in LABELS
    )
    cards += f'<div class="card rejected"><div class="n">{len(rejects)}</div><div class="l">rejected files</div></div>'
    header = ["", *LABELS, "total"]
    rows = [
        [
            "<th>all sessions</th>",
            *(_count_cell(counts.get(lab, 0), label=lab) for lab in LABELS),
            _count_cell(total, label="total"),
        ]
    ]
    body = table(header, rows, raw=True, css_class="summary-counts")
    sessions = predictions["session"].fillna("(no session)").astype(str)
    per = pd.crosstab(sessions, predictions["label"]).reindex(columns=list(LABELS), fill_value=0)
    srows = []
    for name, r in per.iterrows():
        srows.append(
            [
                f"<th>{esc(name)}</th>",
                *(_count_cell(r[lab], label=lab, session=name) for lab in LABELS),
                _count_cell(r.sum(), label="total", session=name),
            ]
        )
    body += "<h3>Per session</h3>" + table(["session", *LABELS, "total"], srows, raw=True, css_class="session-counts")
    if len(per) > 1:
        body += img_tag(
            plots.class_counts_bar(per, title="Micrographs per class and session"), "class counts per session"
        )
    body += (
        f'<p class="note">{len(rejects)} input file(s) were rejected; see <a href="#rejects">Rejected files</a>.</p>'
    )
    return section("summary", "Run summary", f'<div class="cards">{cards}</div>{body}')


def rejects_section(rejects: pd.DataFrame) -> str:
    if rejects is None or rejects.empty:
        return section("rejects", "Rejected files (0)", '<p class="ok" data-count="0">No input file was rejected.</p>')
    reasons = rejects["reason"].fillna("unknown").astype(str).value_counts()
    by_reason = table(
        ["reason", "files"], ([f"<td>{esc(k)}</td>", _count_cell(v, reason=k)] for k, v in reasons.items()), raw=True
    )
    shown = rejects.head(MAX_REJECT_ROWS)
    listing = table(
        ["file", "reason", "detail"],
        (
            [str(r.get("path", "")), str(r.get("reason", "")), str(r.get("detail", "") or "")]
            for _, r in shown.iterrows()
        ),
    )
    more = (
        f'<p class="note">... and {len(rejects) - len(shown)} more (see the catalogue).</p>'
        if len(rejects) > len(shown)
        else ""
    )
    note = "Rejected files were quarantined and not graded; fix or re-acquire them and run again."
    return section("rejects", f"Rejected files ({len(rejects)})", by_reason + listing + more, note=note)


def _warning_text(w: object) -> tuple[str, str]:
    if isinstance(w, Mapping):
        return str(w.get("session", "")), str(w.get("message", w))
    if hasattr(w, "message"):
        return str(getattr(w, "session", "")), str(w.message)
    return "", str(w)


def warnings_section(warnings: Sequence) -> str:
    if not warnings:
        body = '<p class="ok">No out-of-distribution warning: every session looks like the training data.</p>'
        return section("warnings", "Out-of-distribution warnings (0)", body)
    items = "".join(f'<li class="warn" data-session="{esc(s)}">{esc(m)}</li>' for s, m in map(_warning_text, warnings))
    note = "The model was not trained on data like these; its grades for them are less reliable."
    return section(
        "warnings", f"Out-of-distribution warnings ({len(warnings)})", f'<ul class="warnings">{items}</ul>', note=note
    )


def scores_section(predictions: pd.DataFrame) -> str:
    png = plots.score_histograms(predictions)
    extra = [s for s in ("anisotropy", "contrast", "dark_fraction") if s in predictions.columns]
    body = img_tag(png, "score histograms by class")
    if extra:
        body += img_tag(plots.score_histograms(predictions, tuple(extra)), "further score histograms by class")
    rows = []
    for score in ("ice_ring_score", "thon_reach_A", *extra):
        if score not in predictions.columns:
            continue
        cells = [score]
        for lab in LABELS:
            v = pd.to_numeric(predictions.loc[predictions["label"] == lab, score], errors="coerce").dropna()
            cells.append(f"{fmt(v.median())} ({fmt(v.quantile(0.1))} to {fmt(v.quantile(0.9))})" if len(v) else NA)
        rows.append(cells)
    body += table(["score", *(f"{lab}: median (10th to 90th pct)" for lab in LABELS)], rows)
    note = (
        "Interpretable scores from the full-resolution power spectrum: a high ice-ring score means crystalline "
        "ice; Thon-ring reach is the finest resolution (A) where rings are still visible."
    )
    return section("scores", "Scores by class", body, note=note)


def timeline_section(predictions: pd.DataFrame) -> str:
    has_time = (
        "acquired_at" in predictions and pd.to_datetime(predictions["acquired_at"], errors="coerce").notna().any()
    )
    note = (
        "Fraction of good / medium / bad micrographs along each session's acquisition time"
        + ("" if has_time else " (no timestamps: ingest order instead)")
        + ". A rising red band is a quality collapse during the session."
    )
    return section(
        "timeline",
        "Class fraction over acquisition time",
        img_tag(plots.class_fraction_over_time(predictions), "class fraction over time"),
        note=note,
    )


def labelled_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    if "consensus" not in predictions.columns:
        return predictions.iloc[0:0]
    c = predictions["consensus"]
    return predictions.loc[c.notna() & c.astype(str).isin(LABELS)]


def _probs(rows: pd.DataFrame) -> np.ndarray:
    return rows[[f"p_{lab}" for lab in LABELS]].apply(pd.to_numeric, errors="coerce").fillna(0.0).to_numpy()


def evaluation_metrics(rows: pd.DataFrame) -> dict:
    """Metrics of predictions against consensus labels (:func:`.metrics.classification_metrics`)."""
    return classification_metrics(
        rows["consensus"].astype(str).to_numpy(), rows["label"].astype(str).to_numpy(), _probs(rows)
    )


def _scalar_metrics(metrics: Mapping) -> dict[str, object]:
    return {
        k: v
        for k, v in metrics.items()
        if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
    }


def evaluation_section(predictions: pd.DataFrame, metrics: Mapping | None) -> str:
    rows = labelled_rows(predictions)
    if rows.empty:
        body = (
            '<p class="note">None of these micrographs has a consensus label, so accuracy cannot be measured here. '
            "Label a few of them in the labelling app (the gallery links) to see it in the next report.</p>"
        )
        return section("evaluation", "Evaluation against consensus labels", body)
    metrics = dict(metrics) if metrics else evaluation_metrics(rows)
    body = f'<p class="note">{len(rows)} of {len(predictions)} micrographs have a consensus label.</p>'
    body += kv_table({k.replace("_", " "): fmt(v) for k, v in _scalar_metrics(metrics).items()})
    cm = metrics.get("confusion") or metrics.get("confusion_matrix")
    per_class = metrics.get("per_class")
    if isinstance(per_class, Mapping) and per_class:
        body += table(
            ["class", "precision", "recall", "F1", "labelled micrographs"],
            (
                [lab, fmt(v.get("precision")), fmt(v.get("recall")), fmt(v.get("f1")), fmt(v.get("support"))]
                for lab, v in per_class.items()
                if isinstance(v, Mapping)
            ),
        )
    figs = []
    if cm is not None:
        figs.append(
            img_tag(
                plots.confusion_matrix_plot(np.asarray(cm), LABELS, title="Confusion matrix (this run)"),
                "confusion matrix",
            )
        )
    curve = reliability_curve(_probs(rows), rows["consensus"].astype(str).to_numpy())
    figs.append(
        img_tag(plots.calibration_plot(curve, title="Calibration on these labelled micrographs"), "calibration curve")
    )
    body += '<div class="row">' + "".join(figs) + "</div>"
    return section("evaluation", "Evaluation against consensus labels", body)


def _get(d: Mapping | None, *path: str, default: object = NA) -> object:
    cur: object = d
    for key in path:
        if not isinstance(cur, Mapping) or key not in cur:
            return default
        cur = cur[key]
    return default if cur is None else cur


def model_section(card: Mapping | None) -> str:
    if not card:
        return section("model", "Model", '<p class="note">No model card was given.</p>')
    classes = _get(card, "classes")
    weights = _get(card, "weights", "source")
    pretrained = _get(card, "weights", "pretrained")
    summary = {
        "model id": _get(card, "id"),
        "created": _get(card, "created_at"),
        "backbone": _get(card, "backbone"),
        "weights": f"{fmt(weights)} (pretrained: {fmt(pretrained)})",
        "classes": ", ".join(map(str, classes)) if isinstance(classes, list | tuple) else classes,
        "input": (
            f"{fmt(_get(card, 'input', 'layout'))}, {fmt(_get(card, 'input', 'size'))} px at "
            f"{fmt(_get(card, 'input', 'target_pixel_size'))} A/px"
        ),
        "training class counts": ", ".join(
            f"{k}: {v}" for k, v in (_get(card, "training", "class_counts", default={}) or {}).items()
        )
        or NA,
        "calibration temperature": _get(card, "calibration", "temperature"),
        "ECE before / after calibration": (
            f"{fmt(_get(card, 'calibration', 'ece_before'))} / {fmt(_get(card, 'calibration', 'ece_after'))}"
        ),
    }
    metrics = _get(card, "metrics", default={})
    for k, v in _scalar_metrics(metrics if isinstance(metrics, Mapping) else {}).items():
        summary[f"validation {k.replace('_', ' ')}"] = v
    versions = _get(card, "versions", default={})
    if isinstance(versions, Mapping) and versions:
        summary["versions"] = ", ".join(f"{k} {v}" for k, v in versions.items())
    body = kv_table(summary)
    diversity = _get(card, "training", "diversity", default=[])
    if isinstance(diversity, list) and diversity:
        cols = ["detector", "grid_material", "grid_maker", "pixel_size", *LABELS]
        body += "<h3>Training data diversity</h3>" + table(
            cols, ([fmt(rec.get(c)) for c in cols] for rec in diversity if isinstance(rec, Mapping))
        )
    ranges = _get(card, "score_ranges", default={})
    if isinstance(ranges, Mapping) and ranges:
        body += "<h3>Training score ranges</h3>" + table(
            ["score", "low", "high"],
            ([k, fmt(v[0]), fmt(v[1])] for k, v in ranges.items() if isinstance(v, list | tuple) and len(v) == 2),
        )
    history = _get(card, "history", default=[])
    figs = []
    if isinstance(history, list) and history:
        figs.append(img_tag(plots.training_curves(history), "training curves"))
    else:
        body += '<p class="note">The model card has no training history.</p>'
    curve = _get(card, "calibration", "curve", default=None)
    if curve:
        try:
            figs.append(
                img_tag(
                    plots.calibration_plot(curve, title="Calibration on the validation split"), "validation calibration"
                )
            )
        except (ValueError, TypeError):
            body += '<p class="note">The calibration curve in the model card could not be read.</p>'
    cm = _get(card, "metrics", "confusion", default=None) or _get(card, "metrics", "confusion_matrix", default=None)
    if cm:
        try:
            figs.append(
                img_tag(
                    plots.confusion_matrix_plot(np.asarray(cm), LABELS, title="Confusion matrix (validation split)"),
                    "validation confusion matrix",
                )
            )
        except (ValueError, TypeError, IndexError):
            pass
    if figs:
        body += "<h3>Training</h3>" + '<div class="row">' + "".join(figs) + "</div>"
    return section("model", f"Model {fmt(_get(card, 'id'))}", body)
