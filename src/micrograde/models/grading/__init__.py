"""The grader: frozen pretrained features and physical measures, candidate heads chosen by
cross-validation grouped by session, refitted on every label, saved without pickle.

The names below load their module on first use (PEP 562): grading with a scikit-learn head
(:class:`Grader`) never imports torch, which only the embedder and training need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from micrograde.models.grading.embedding import Embedder, EmbedderConfig, EmbeddingStore
    from micrograde.models.grading.grader import Grader, GraderFileError
    from micrograde.models.grading.heads import BASELINE, HEADS
    from micrograde.models.grading.protocol import make_folds
    from micrograde.models.grading.run import GraderConfig, GraderOutcome, TrainDataError, train_grader

__all__ = ["BASELINE", "HEADS", "Embedder", "EmbedderConfig", "EmbeddingStore", "Grader", "GraderConfig",
           "GraderFileError", "GraderOutcome", "TrainDataError", "make_folds", "train_grader"]

_HOME = {"Embedder": "embedding", "EmbedderConfig": "embedding", "EmbeddingStore": "embedding",
         "Grader": "grader", "GraderFileError": "grader", "BASELINE": "heads", "HEADS": "heads",
         "make_folds": "protocol", "GraderConfig": "run", "GraderOutcome": "run", "TrainDataError": "run",
         "train_grader": "run"}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
