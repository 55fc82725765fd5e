"""Checking an assessment's inputs before any work.

A bad input is found before anything is ingested, graded or written: the user's RELION STAR and
cryoSPARC ``.cs`` files are read and checked (a particles STAR is refused, as is a file that is
not a STAR), the thresholds, then the model (it must exist in the workspace, and its card must be
readable and predict the three classes). The command line turns :class:`AssessInputError` into one
line and exit code 2; a model that exists but cannot be used gives exit code 1, as does a
workspace without any model. The assess flow runs the same check first, so the facility's session
reports fail the same way, before work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from micrograde.flows.assess import AssessConfig
    from micrograde.pipeline.catalogue.workspace import Workspace

__all__ = ["AssessInputError", "check_assess_inputs"]


class AssessInputError(ValueError):
    """An input of an assessment given by the user is unusable (a usage error: exit code 2)."""


def check_assess_inputs(ws: Workspace, cfg: AssessConfig) -> str:
    """Check ``cfg``'s files, thresholds and model; returns the model id to grade with.

    Raises :class:`AssessInputError` for a bad STAR/.cs file, threshold or ``--model`` id; the
    model errors of :mod:`micrograde.models.cards` (``ModelLoadError``, ``ModelCardMismatch``; a grader's file
    that is altered, outside its folder or of untrusted types is a ``GraderFileError``, a ``ModelLoadError``)
    for an unusable model, and ``ModelNotFoundError`` when the workspace has no model at all.
    """
    from micrograde.models.cards import check_card, read_card
    from micrograde.models.thresholds import check_thresholds
    from micrograde.pipeline.catalogue.query import ModelNotFoundError, latest_model_id
    from micrograde.pipeline.export.cryosparc import CsFormatError, read_cs
    from micrograde.pipeline.export.relion import StarFormatError, read_star
    from micrograde.pipeline.io.ctf import CtfFormatError, read_ctf

    try:
        if cfg.star:
            read_star(cfg.star)
        if cfg.cs:
            read_cs(cfg.cs)
        read_ctf(cfg.star, cfg.cs, strict=False)  # CTF columns, when present, hold numbers
    except (StarFormatError, CsFormatError, CtfFormatError, FileNotFoundError) as exc:
        raise AssessInputError(str(exc)) from exc
    try:
        check_thresholds(cfg.thresholds)
    except ValueError as exc:
        raise AssessInputError(f"thresholds: {exc}") from exc
    try:
        model_id = latest_model_id(ws, cfg.model_id)
    except ModelNotFoundError as exc:
        if cfg.model_id is not None:
            raise AssessInputError(str(exc)) from exc
        raise
    check_card(read_card(ws.models_dir / model_id))
    from micrograde.models.grading.grader import check_grader_files

    check_grader_files(ws.models_dir / model_id)  # altered, replaced or untrusted files: before any work
    return model_id
