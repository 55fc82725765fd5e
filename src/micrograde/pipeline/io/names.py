"""Matching micrograph names between tools that spell the same file differently.

RELION and cryoSPARC refer to a micrograph by the path of *their* copy of it: relative to the
project (``MotionCorr/job002/Movies/x_fractions.mrc``), with a motion-correction suffix
(``_fractions``, ``_EER``, ``_DW``, ``_doseweighted``, cryoSPARC's
``<uid>_..._patch_aligned_doseweighted``) or another extension (``.tif``, ``.eer``) than the file
micrograde ingested (``/data/session/Movies/x.mrc``). Matching goes by a key made of the file stem
without such suffixes (and the frame number for ``000003@stack.mrcs`` names), then prefers the
candidate sharing the most trailing folder names. A tie is ambiguous and matches nothing, so a
selection never silently picks the wrong micrograph.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["NameMatch", "name_key", "match_names", "match_names_detailed"]

#: Extensions stripped from a file name before matching (longest first).
EXTENSIONS: tuple[str, ...] = (".mrc.bz2", ".tif.bz2", ".mrcs", ".mrc", ".tiff", ".tif", ".eer", ".png", ".st")
#: Suffixes motion correction or dose weighting add to a stem (case-insensitive, repeatable).
SUFFIXES: tuple[str, ...] = (
    "_fractions",
    "_eer",
    "_doseweighted",
    "_dw",
    "_noDW",
    "_aligned",
    "_patch",
    "_rigid",
    "_sum",
    "_corrected",
)
#: cryoSPARC prefixes the files it imports or writes with a numeric uid: ``<uid>_<name>``.
_UID_PREFIX_RE = re.compile(r"^\d{15,22}_(?=.)")
_SUFFIX_RE = re.compile("(" + "|".join(re.escape(s) for s in SUFFIXES) + ")$", re.IGNORECASE)


def _split_frame(name: str) -> tuple[int | None, str]:
    """``'000003@a/b.mrcs'`` -> ``(3, 'a/b.mrcs')``; a plain path -> ``(None, path)``."""
    head, sep, tail = name.partition("@")
    if sep and head.strip().isdigit():
        return int(head), tail
    return None, name


def _parts(path: str) -> list[str]:
    return [p for p in re.split(r"[\\/]+", path.strip()) if p not in ("", ".")]


def _stem(filename: str) -> str:
    filename = _UID_PREFIX_RE.sub("", filename)
    low = filename.lower()
    for ext in EXTENSIONS:
        if low.endswith(ext) and len(filename) > len(ext):
            filename = filename[: -len(ext)]
            break
    while True:
        stripped = _SUFFIX_RE.sub("", filename)
        if stripped == filename or not stripped:
            return filename.lower()
        filename = stripped


def name_key(name: str) -> str:
    """The matching key of a path: frame number (if any) plus the stem without motion suffixes."""
    frame, path = _split_frame(str(name))
    parts = _parts(path)
    stem = _stem(parts[-1]) if parts else ""
    return stem if frame is None else f"{frame}@{stem}"


def _shared_dirs(a: list[str], b: list[str]) -> int:
    """Number of trailing folder names two paths share (file names excluded)."""
    n = 0
    for x, y in zip(reversed(a[:-1]), reversed(b[:-1]), strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass
class NameMatch:
    """Result of matching: ``mapping`` star name -> micrograph (None when unmatched or ambiguous)."""

    mapping: dict[str, str | None] = field(default_factory=dict)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)

    @property
    def unmatched(self) -> list[str]:
        return [name for name, hit in self.mapping.items() if hit is None]


def match_names_detailed(star_names: Sequence[str], micrographs: Sequence[str]) -> NameMatch:
    """Match each name of ``star_names`` to at most one of ``micrographs``.

    Score of a candidate with the same key: exact string equality beats everything; then an equal
    file name (before suffix stripping) and the number of trailing folder names both paths share.
    Several candidates with the best score make the name ambiguous (``None``).
    """
    by_key: dict[str, list[str]] = defaultdict(list)
    for m in dict.fromkeys(str(m) for m in micrographs):
        by_key[name_key(m)].append(m)
    result = NameMatch()
    for raw in star_names:
        name = str(raw)
        candidates = by_key.get(name_key(name), [])
        if name in candidates:
            result.mapping[name] = name
            continue
        _, path = _split_frame(name)
        parts = _parts(path)
        scored = []
        for cand in candidates:
            cparts = _parts(_split_frame(cand)[1])
            same_file = bool(parts and cparts and parts[-1] == cparts[-1])
            scored.append(((same_file, _shared_dirs(parts, cparts)), cand))
        if not scored:
            result.mapping[name] = None
            continue
        best = max(score for score, _ in scored)
        winners = [cand for score, cand in scored if score == best]
        if len(winners) == 1:
            result.mapping[name] = winners[0]
        else:
            result.mapping[name] = None
            result.ambiguous[name] = sorted(winners)
    return result


def match_names(star_names: Sequence[str], micrographs: Sequence[str]) -> dict[str, str | None]:
    """``{star name: matched micrograph or None}``; see :func:`match_names_detailed`."""
    return match_names_detailed(star_names, micrographs).mapping
