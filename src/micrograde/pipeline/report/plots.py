"""Report figures (matplotlib) returned as PNG bytes.

Each function builds its own :class:`matplotlib.figure.Figure` with an Agg canvas, so nothing
touches pyplot's global state or the process-wide backend.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from micrograde.pipeline.config import LABELS
from micrograde.pipeline.features import feature, feature_names

__all__ = [
    "CLASS_COLORS",
    "feature_title",
    "score_histograms",
    "class_fraction_over_time",
    "confusion_matrix_plot",
    "calibration_plot",
    "training_curves",
    "class_counts_bar",
]

CLASS_COLORS: dict[str, str] = {"good": "#2e7d32", "medium": "#f9a825", "bad": "#c62828"}
_DPI = 96
_PANELS_PER_ROW = 3


def feature_title(name: str) -> str:
    """A plot title for a feature: its registry title and unit, and which direction is worse."""
    f = feature(name)
    if f is None:
        return name
    worse = {"high": ", lower is better", "low": ", higher is better"}.get(f.worse or "", "")
    return f"{f.title} ({f.unit}{worse})" if f.unit else (f"{f.title} ({worse[2:]})" if worse else f.title)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def score_histograms(
    predictions: pd.DataFrame,
    scores: Sequence[str] | None = None,
    bins: int = 30,
    ranges: Mapping[str, Sequence[float]] | None = None,
) -> bytes:
    """One panel per feature (default: the registry's scores): histograms of the predicted classes,
    overlaid; the training range (``ranges[name]`` = [low, high], from the model card) shaded grey."""
    scores = tuple(scores) if scores is not None else feature_names("score")
    ncols = max(1, min(_PANELS_PER_ROW, len(scores)))
    nrows = max(1, -(-len(scores) // ncols))
    fig = _figure(5.2 * ncols, 3.4 * nrows)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[len(scores):]:
        ax.set_axis_off()
    for ax, score in zip(axes, scores, strict=False):
        ax.set_title(feature_title(score), fontsize=10)
        bounds = (ranges or {}).get(score)
        values = pd.to_numeric(predictions.get(score, pd.Series(dtype=float)), errors="coerce")
        finite = values[np.isfinite(values)]
        if finite.empty:
            _empty(ax, "no values")
            continue
        lo, hi = float(finite.min()), float(finite.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        if bounds is not None and len(bounds) == 2:
            ax.axvspan(float(bounds[0]), float(bounds[1]), color="#9e9e9e", alpha=0.18, linewidth=0,
                       label="training range")
        for label in LABELS:
            v = finite[predictions.loc[finite.index, "label"] == label]
            if len(v):
                ax.hist(
                    v,
                    bins=edges,
                    histtype="stepfilled",
                    alpha=0.35,
                    color=CLASS_COLORS[label],
                    edgecolor=CLASS_COLORS[label],
                    linewidth=1.2,
                    label=f"{label} ({len(v)})",
                )
        ax.set_ylabel("micrographs")
        ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def _time_axis(rows: pd.DataFrame) -> tuple[np.ndarray, str]:
    times = pd.to_datetime(
        rows.get("acquired_at", pd.Series(index=rows.index, dtype="datetime64[ns]")), errors="coerce"
    )
    if times.notna().sum() >= 2 and times.notna().mean() >= 0.5:
        t0 = times.min()
        return ((times - t0).dt.total_seconds() / 60.0).to_numpy(dtype=float), f"minutes since {t0:%Y-%m-%d %H:%M}"
    return np.arange(len(rows), dtype=float), "acquisition order (no timestamps)"


def class_fraction_over_time(predictions: pd.DataFrame, bins: int = 12, max_sessions: int = 8) -> bytes:
    """Per session: stacked fraction of good / medium / bad per time bin (acquisition time, or
    the ingest order when timestamps are missing). A collapse of quality shows as red rising."""
    sessions = (
        predictions["session"].fillna("(no session)").astype(str)
        if "session" in predictions
        else pd.Series("(all)", index=predictions.index)
    )
    names = sorted(sessions.unique())[:max_sessions]
    fig = _figure(10, 2.4 * max(1, len(names)) + 0.4)
    axes = fig.subplots(max(1, len(names)), 1, squeeze=False)[:, 0]
    if not names:
        _empty(axes[0], "no micrographs")
        return _png(fig)
    for ax, name in zip(axes, names, strict=False):
        rows = predictions.loc[sessions == name]
        x, xlabel = _time_axis(rows)
        ok = np.isfinite(x)
        x, labels = x[ok], rows["label"].to_numpy()[ok]
        nb = int(max(1, min(bins, len(x) // 3 or 1)))
        edges = np.linspace(x.min(), x.max() if x.max() > x.min() else x.min() + 1, nb + 1)
        idx = np.clip(np.digitize(x, edges[1:-1]), 0, nb - 1)
        counts = np.array([[np.sum((idx == b) & (labels == lab)) for b in range(nb)] for lab in LABELS], float)
        totals = counts.sum(axis=0)
        frac = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        centers = (edges[:-1] + edges[1:]) / 2
        width = (edges[1] - edges[0]) * 0.95
        bottom = np.zeros(nb)
        for lab, f in zip(LABELS, frac, strict=True):
            ax.bar(centers, f, width=width, bottom=bottom, color=CLASS_COLORS[lab], label=lab, alpha=0.9)
            bottom += f
        for c, t in zip(centers, totals, strict=True):
            ax.text(c, 1.02, f"{int(t)}", ha="center", va="bottom", fontsize=7, color="#555")
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("fraction")
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_title(f"session {name} ({len(rows)} micrographs; numbers = micrographs per bin)", fontsize=9, loc="left")
    axes[0].legend(ncols=3, fontsize=8, frameon=False, loc="upper right", bbox_to_anchor=(1, 1.35))
    return _png(fig)


def confusion_matrix_plot(
    cm: Sequence[Sequence[int]] | np.ndarray,
    labels: Sequence[str] = LABELS,
    *,
    title: str = "Confusion matrix",
    size: tuple[float, float] = (4.2, 3.6),
) -> bytes:
    """Counts with row-normalised shading; rows = consensus label, columns = predicted.
    ``size`` is the figure's (width, height) in inches."""
    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig = _figure(*size)
    ax = fig.subplots()
    ax.set_title(title, fontsize=9)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}\n{norm[i, j]:.0%}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.6 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("consensus label")
    return _png(fig)


_X_KEYS = ("confidence", "mean_confidence", "mean_predicted", "prob_pred", "bin_confidence", "x")
_Y_KEYS = ("accuracy", "fraction_correct", "prob_true", "bin_accuracy", "y")


def _curve_xy(curve) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(curve, Mapping):
        x = next((curve[k] for k in _X_KEYS if k in curve), None)
        y = next((curve[k] for k in _Y_KEYS if k in curve), None)
        if x is None or y is None:
            raise ValueError(f"calibration curve needs one of {_X_KEYS} and one of {_Y_KEYS}, got {sorted(curve)}")
        return np.asarray(x, float), np.asarray(y, float)
    rows = list(curve)
    if rows and isinstance(rows[0], Mapping):
        return _curve_xy({k: [r.get(k) for r in rows] for k in rows[0]})
    arr = np.asarray(rows, float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def calibration_plot(
    curve, *, title: str = "Reliability (top-label confidence vs accuracy)", extra: Mapping | None = None
) -> bytes:
    """Reliability diagram of one curve, or of several (``extra`` = {name: curve}) overlaid."""
    fig = _figure(4.6, 3.8)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "--", color="#999", linewidth=1, label="perfect calibration")
    for name, c in [("this run", curve), *((extra or {}).items())]:
        if c is None:
            continue
        x, y = _curve_xy(c)
        ok = np.isfinite(x) & np.isfinite(y)
        ax.plot(x[ok], y[ok], "o-", label=name)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.04)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return _png(fig)


def training_curves(history: Sequence[Mapping]) -> bytes:
    """Train vs validation loss per epoch (left) and validation macro-F1 (right)."""
    df = pd.DataFrame(list(history))
    fig = _figure(9, 3.2)
    ax_loss, ax_f1 = fig.subplots(1, 2)
    if df.empty or "epoch" not in df:
        _empty(ax_loss, "no training history")
        _empty(ax_f1, "no training history")
        return _png(fig)
    x = np.arange(1, len(df) + 1) if df["epoch"].duplicated().any() else df["epoch"].to_numpy()
    for col, style, name in (("train_loss", "o-", "train"), ("val_loss", "s-", "validation")):
        if col in df:
            ax_loss.plot(x, pd.to_numeric(df[col], errors="coerce"), style, markersize=3, label=name)
    if "stage" in df and df["stage"].nunique() > 1:
        for stage_start in np.flatnonzero(df["stage"].ne(df["stage"].shift()).to_numpy())[1:]:
            for ax in (ax_loss, ax_f1):
                ax.axvline(x[stage_start] - 0.5, color="#aaa", linestyle=":", linewidth=1)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("Loss per epoch", fontsize=10)
    ax_loss.legend(fontsize=8, frameon=False)
    if "val_macro_f1" in df:
        ax_f1.plot(x, pd.to_numeric(df["val_macro_f1"], errors="coerce"), "o-", color="#6a1b9a", markersize=3)
        ax_f1.set_ylim(0, 1)
        ax_f1.set_title("Validation macro-F1", fontsize=10)
        ax_f1.set_xlabel("epoch")
    else:
        _empty(ax_f1, "no validation F1")
    return _png(fig)


def class_counts_bar(counts: Mapping[str, int] | pd.DataFrame, *, title: str = "Micrographs per class") -> bytes:
    """Bars of counts per class; a DataFrame (index = session, columns = classes) gives stacked
    horizontal bars per session."""
    if isinstance(counts, pd.DataFrame):
        df = counts.reindex(columns=list(LABELS), fill_value=0)
        fig = _figure(7, 0.45 * len(df) + 1.2)
        ax = fig.subplots()
        left = np.zeros(len(df))
        for lab in LABELS:
            ax.barh([str(i) for i in df.index], df[lab].to_numpy(), left=left, color=CLASS_COLORS[lab], label=lab)
            left += df[lab].to_numpy()
        ax.invert_yaxis()
        ax.set_xlabel("micrographs")
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        fig = _figure(4.5, 3)
        ax = fig.subplots()
        labels = [lab for lab in LABELS if lab in counts] + [k for k in counts if k not in LABELS]
        values = [int(counts[k]) for k in labels]
        ax.bar(labels, values, color=[CLASS_COLORS.get(k, "#607d8b") for k in labels])
        for i, v in enumerate(values):
            ax.text(i, v, str(v), ha="center", va="bottom", fontsize=9)
        ax.set_ylabel("micrographs")
    ax.set_title(title, fontsize=10)
    return _png(fig)
