"""Exceptions of the labelling library (the command line and the web app map them to exit codes / HTTP codes)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LabelingError",
    "AnnotatorError",
    "UnknownAnnotatorError",
    "InactiveAnnotatorError",
    "UnknownMicrographError",
    "UnknownAnnotationError",
    "InvalidLabelError",
    "ImportProblem",
    "LabelImportError",
]


class LabelingError(ValueError):
    """Base class: a labelling request that cannot be carried out as asked."""


class AnnotatorError(LabelingError):
    """An annotator cannot be created or used as asked (bad name, expertise mismatch, duplicate)."""


class UnknownAnnotatorError(AnnotatorError):
    """No annotator with this name or id."""


class InactiveAnnotatorError(AnnotatorError):
    """The annotator exists but has been deactivated."""


class UnknownMicrographError(LabelingError):
    """No micrograph with this catalogue id (or name, for imports)."""


class UnknownAnnotationError(LabelingError):
    """No annotation with this id belongs to the annotator."""


class InvalidLabelError(LabelingError):
    """A label, reason tag, source or comment is not one of the allowed values."""


@dataclass(frozen=True)
class ImportProblem:
    """One problem found in a labels CSV: the 1-based line number in the file and what is wrong."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class LabelImportError(LabelingError):
    """A labels CSV has problems; nothing was written. ``problems`` lists every one with its line."""

    def __init__(self, path: str, problems: list[ImportProblem]):
        self.path = path
        self.problems = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{path}: {len(self.problems)} problem(s), nothing imported:\n{shown}{more}")
