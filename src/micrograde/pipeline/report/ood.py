"""Out-of-distribution warnings: micrographs unlike anything the model was trained on.

Compares each session of a predictions table with the model card's training diversity table
(detector, pixel size, grid material) and score ranges, and says plainly what is new. A model
still predicts on such data, but its grades deserve a reviewer's look and a few labels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import pandas as pd

from micrograde.pipeline.features import feature

__all__ = ["reference_warnings", "OodWarning", "ood_warnings", "PIXEL_SIZE_TOLERANCE", "SCORE_OUTSIDE_FRACTION"]

#: A pixel size counts as seen when within this relative distance of a training pixel size.
PIXEL_SIZE_TOLERANCE = 0.10
#: A score warns when more than this fraction of a session's micrographs fall outside its range.
SCORE_OUTSIDE_FRACTION = 0.20
#: A session's score warning names at most this many features (the rest are counted).
MAX_LISTED = 4

_ADVICE = "Treat its grades with care: review some of them and label a few for the next training."


def _feature_name(name: str) -> str:
    """How a warning names a feature: its registry title (lower case) and unit."""
    f = feature(name)
    if f is None:
        return name
    title = f.title[0].lower() + f.title[1:]
    return f"{title} ({f.unit})" if f.unit else title


@dataclass(frozen=True)
class OodWarning:
    """One warning: ``kind`` is ``detector``, ``pixel_size``, ``grid_material``, ``score``, ``card`` or
    ``session-reference``."""

    session: str
    kind: str
    message: str
    values: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return asdict(self)


def _known(values: Iterable) -> list:
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
            continue
        out.append(v)
    return out


def _fmt_list(values: Iterable) -> str:
    items = sorted({str(v) for v in values})
    return ", ".join(items) if items else "none recorded"


def _category_warnings(
    session: str, rows: pd.DataFrame, seen_records: list[Mapping], column: str, what: str
) -> list[OodWarning]:
    if column not in rows.columns:
        return []
    seen = _known(rec.get(column) for rec in seen_records)
    if not seen:  # training data did not record it: nothing to compare against
        return []
    seen_norm = {str(v).strip().casefold() for v in seen}
    new = sorted({str(v) for v in _known(rows[column].tolist()) if str(v).strip().casefold() not in seen_norm})
    if not new:
        return []
    plural = "s" if len(new) > 1 else ""
    msg = (
        f"Session {session!r}: {what}{plural} {', '.join(repr(v) for v in new)} never seen in training "
        f"(the model saw: {_fmt_list(seen)}). {_ADVICE}"
    )
    return [OodWarning(session, column, msg, tuple(new))]


def _pixel_size_warnings(session: str, rows: pd.DataFrame, seen_records: list[Mapping]) -> list[OodWarning]:
    if "pixel_size" not in rows.columns:
        return []
    seen = [float(v) for v in _known(rec.get("pixel_size") for rec in seen_records)]
    if not seen:
        return []
    sizes = sorted({round(float(v), 4) for v in _known(pd.to_numeric(rows["pixel_size"], errors="coerce").tolist())})
    new = [s for s in sizes if not any(abs(s - t) <= PIXEL_SIZE_TOLERANCE * t for t in seen)]
    if not new:
        return []
    msg = (
        f"Session {session!r}: pixel size {', '.join(f'{s:g} A' for s in new)} is more than "
        f"{PIXEL_SIZE_TOLERANCE:.0%} away from every pixel size seen in training "
        f"({', '.join(f'{s:g} A' for s in sorted(set(seen)))}). {_ADVICE}"
    )
    return [OodWarning(session, "pixel_size", msg, tuple(f"{s:g}" for s in new))]


def _score_warnings(session: str, rows: pd.DataFrame, ranges: Mapping) -> list[OodWarning]:
    """One warning per session for every feature outside its training range (one line however many)."""
    found = []  # (name, outside, n, lo, hi, session min, session max)
    for score, bounds in ranges.items():
        if score not in rows.columns or bounds is None or len(bounds) != 2:
            continue
        lo, hi = (float(b) for b in bounds)
        values = pd.to_numeric(rows[score], errors="coerce").dropna()
        if values.empty:
            continue
        outside = int(((values < lo) | (values > hi)).sum())
        if outside / len(values) > SCORE_OUTSIDE_FRACTION:
            found.append((score, outside, len(values), lo, hi, float(values.min()), float(values.max())))
    if not found:
        return []
    if len(found) == 1:
        score, outside, n, lo, hi, vmin, vmax = found[0]
        msg = (f"Session {session!r}: {outside} of {n} micrographs ({outside / n:.0%}) have a {_feature_name(score)} "
               f"outside the training range {lo:.3g} to {hi:.3g} (this session: {vmin:.3g} to {vmax:.3g}). {_ADVICE}")
    else:
        found.sort(key=lambda f: -f[1] / f[2])  # the most often outside first
        parts = [f"{_feature_name(score)}: {outside} of {n} outside {lo:.3g} to {hi:.3g}"
                 for score, outside, n, lo, hi, _vmin, _vmax in found[:MAX_LISTED]]
        more = f"; and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
        msg = (f"Session {session!r}: {len(found)} features lie outside their training range for more than "
               f"{SCORE_OUTSIDE_FRACTION:.0%} of its micrographs ({'; '.join(parts)}{more}). {_ADVICE}")
    return [OodWarning(session, "score", msg, tuple(f[0] for f in found))]


def ood_warnings(predictions: pd.DataFrame, card: Mapping | None) -> list[OodWarning]:
    """Warnings per session for detectors, pixel sizes and grid materials absent from the card's
    ``training.diversity`` table (pixel sizes within +-10% count as seen), and for scores outside
    ``score_ranges`` for more than 20% of a session's micrographs."""
    if card is None or predictions.empty:
        return []
    training = card.get("training") or {}
    diversity = [r for r in (training.get("diversity") or []) if isinstance(r, Mapping)]
    ranges = card.get("score_ranges") or training.get("score_ranges") or {}
    warnings: list[OodWarning] = []
    if not diversity:
        warnings.append(
            OodWarning(
                "",
                "card",
                "The model card has no training diversity table, so detectors, pixel sizes and grids "
                "of these micrographs could not be compared with the training data.",
            )
        )
    sessions = predictions["session"].fillna("(no session)").astype(str) if "session" in predictions.columns else None
    groups = predictions.groupby(sessions, sort=True) if sessions is not None else [("(all)", predictions)]
    for session, rows in groups:
        if diversity:
            warnings += _category_warnings(session, rows, diversity, "detector", "detector")
            warnings += _pixel_size_warnings(session, rows, diversity)
            warnings += _category_warnings(session, rows, diversity, "grid_material", "grid material")
        if ranges:
            warnings += _score_warnings(session, rows, ranges)
    return warnings


def reference_warnings(sizes: Mapping[str, int], *, minimum: int) -> list[OodWarning]:
    """A warning for every session whose reference (``sizes``: micrographs that stand for it) is below
    ``minimum``, so that a grader measuring micrographs against their session measured them against
    its training micrographs instead (``micrograde.models.grading.sessions``)."""
    return [OodWarning(str(session), "session-reference",
                       f"Session {session!r}: only {n} micrograph{'s' if n != 1 else ''} in the workspace, fewer than "
                       f"{minimum}, so its micrographs were measured against the training micrographs' median, not "
                       f"their own session's; its grades will change once it has {minimum}.")
            for session, n in sorted(sizes.items()) if n < minimum]
