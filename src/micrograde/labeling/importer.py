"""Import a labels CSV (``micrograph,label[,reasons,comment]``) for one annotator, all or nothing.

``micrograph`` is the path as ingested, ``NNNNNN@path`` for one frame of a stack, or the
micrograph's name (its file name, ``NNNNNN@file.mrcs`` for a frame); a name several micrographs
share is an error that lists the candidates. Every problem in the file (unknown micrograph,
ambiguous name, bad label, bad reason tag, a micrograph listed twice) is collected with its line
number and raised as one :class:`LabelImportError`; nothing is written unless the whole file is
good, and then every row is written in one transaction with ``source="import"``. Rows identical to
the annotator's current label (same label, reasons and comment) are skipped, so re-importing a file
adds nothing.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from micrograde.labeling.annotators import validate_expertise, validate_name
from micrograde.labeling.errors import AnnotatorError, ImportProblem, LabelImportError, LabelingError
from micrograde.labeling.validation import normalize_comment, normalize_label, normalize_reasons
from micrograde.pipeline.catalogue.schema import Annotation, Annotator, Micrograph
from micrograde.pipeline.catalogue.workspace import Workspace

__all__ = ["ImportResult", "import_labels", "MicrographResolver"]

REQUIRED = ("micrograph", "label")
OPTIONAL = ("reasons", "comment")


@dataclass(frozen=True)
class ImportResult:
    annotator: str
    expertise: str
    n_rows: int
    n_written: int
    n_unchanged: int
    created_annotator: bool
    ignored_columns: tuple[str, ...] = ()


class MicrographResolver:
    """Finds catalogue ids from the names a user writes for micrographs."""

    def __init__(self, rows: list[tuple[int, str, str]]):
        self._by_path: dict[str, list[int]] = defaultdict(list)
        self._by_name: dict[str, list[int]] = defaultdict(list)
        self._label: dict[int, str] = {}
        for mid, path, name in rows:
            self._label[mid] = f"{name} ({path})"
            keys = {path, os.path.normpath(path)}
            frame, sep, _ = name.partition("@")
            if sep and frame.isdigit():
                keys |= {f"{frame}@{path}", f"{int(frame)}@{path}"}
            for k in keys:
                self._by_path[k].append(mid)
            for k in {name, Path(path).name}:
                self._by_name[k].append(mid)

    @classmethod
    def from_workspace(cls, ws: Workspace) -> MicrographResolver:
        with ws.session() as s:
            rows = s.execute(select(Micrograph.id, Micrograph.path, Micrograph.name)).all()
        return cls([(int(i), str(p), str(n)) for i, p, n in rows])

    def resolve(self, value: str) -> int:
        """The id for ``value``; raises LabelingError (unknown or ambiguous) with a clear message."""
        value = value.strip()
        if not value:
            raise LabelingError("empty micrograph")
        for table in (self._by_path, self._by_name):
            ids = sorted(set(table.get(value, []) or table.get(os.path.normpath(value), [])))
            if len(ids) == 1:
                return ids[0]
            if len(ids) > 1:
                shown = "; ".join(self._label[i] for i in ids[:5])
                more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
                raise LabelingError(f"ambiguous micrograph {value!r}: matches {shown}{more}; give the full path")
        if "/" in value:  # a relative path (e.g. as in the simulator's truth.csv): match the path's tail
            tail = "/" + os.path.normpath(value).lstrip("./")
            ids = sorted({i for path, found in self._by_path.items() if path.endswith(tail) for i in found})
            if len(ids) == 1:
                return ids[0]
            if len(ids) > 1:
                shown = "; ".join(self._label[i] for i in ids[:5])
                raise LabelingError(f"ambiguous micrograph {value!r}: matches {shown}; give the full path")
        raise LabelingError(f"unknown micrograph {value!r} (not in the catalogue; ingest it first?)")


def _read(csv_path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        fh = open(csv_path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed by the `with fh` below
    except OSError as exc:
        raise LabelImportError(str(csv_path), [ImportProblem(0, f"cannot read file: {exc.strerror}")]) from exc
    line = 0
    with fh:
        try:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            rows = []
            line = reader.line_num
            for values in reader:
                start, line = line + 1, reader.line_num
                if not any(v.strip() for v in values):
                    continue
                rows.append((start, values))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise LabelImportError(str(csv_path), [ImportProblem(line + 1, f"not a readable CSV: {exc}")]) from exc
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise LabelImportError(
            str(csv_path),
            [ImportProblem(1, f"missing column(s) {', '.join(missing)}; the header must have micrograph,label")],
        )
    out = []
    for line, values in rows:
        out.append((line, {h: (values[i] if i < len(values) else "") for i, h in enumerate(header)}))
    return header, out


def import_labels(ws: Workspace, csv_path: Path, annotator: str, expertise: str) -> ImportResult:
    """Import a labels CSV for ``annotator`` (created if new); see the module docstring."""
    csv_path = Path(csv_path)
    try:
        name, level = validate_name(annotator), validate_expertise(expertise)
    except AnnotatorError as exc:
        raise LabelImportError(str(csv_path), [ImportProblem(0, str(exc))]) from exc
    header, rows = _read(csv_path)
    if not rows:
        raise LabelImportError(str(csv_path), [ImportProblem(2, "no label rows")])
    resolver = MicrographResolver.from_workspace(ws)
    problems: list[ImportProblem] = []
    parsed: list[tuple[int, str, str, str]] = []
    first_line: dict[int, int] = {}
    for line, rec in rows:
        try:
            mid = resolver.resolve(rec.get("micrograph", ""))
            label = normalize_label(rec.get("label"))
            reasons = normalize_reasons(rec.get("reasons", ""))
            comment = normalize_comment(rec.get("comment", ""))
        except LabelingError as exc:
            problems.append(ImportProblem(line, str(exc)))
            continue
        if mid in first_line:
            problems.append(
                ImportProblem(
                    line, f"micrograph {rec['micrograph'].strip()!r} already listed on line {first_line[mid]}"
                )
            )
            continue
        first_line[mid] = line
        parsed.append((mid, label, reasons, comment))
    if problems:
        raise LabelImportError(str(csv_path), sorted(problems, key=lambda p: p.line))

    with ws.transaction() as s:
        row = s.execute(select(Annotator).where(Annotator.name == name)).scalar_one_or_none()
        created = row is None
        if row is None:
            row = Annotator(name=name, expertise=level, active=True, token_hash=None)
            s.add(row)
            s.flush()
        elif row.expertise != level:
            raise LabelImportError(
                str(csv_path),
                [ImportProblem(0, f"annotator {name!r} exists with expertise {row.expertise!r}, not {level!r}")],
            )
        latest = (
            select(func.max(Annotation.id)).where(Annotation.annotator_id == row.id).group_by(Annotation.micrograph_id)
        )
        current = {
            a.micrograph_id: (a.label, a.reasons, a.comment)
            for a in s.execute(select(Annotation).where(Annotation.id.in_(latest))).scalars()
        }
        written = 0
        for mid, label, reasons, comment in parsed:
            if current.get(mid) == (label, reasons, comment):
                continue
            s.add(
                Annotation(
                    micrograph_id=mid,
                    annotator_id=row.id,
                    label=label,
                    reasons=reasons,
                    comment=comment,
                    source="import",
                )
            )
            written += 1
    ignored = tuple(h for h in header if h not in REQUIRED + OPTIONAL)
    return ImportResult(
        annotator=name,
        expertise=level,
        n_rows=len(parsed),
        n_written=written,
        n_unchanged=len(parsed) - written,
        created_annotator=created,
        ignored_columns=ignored,
    )
