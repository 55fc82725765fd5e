"""The grader: frozen pretrained features and physical measures, candidate heads chosen by
cross-validation grouped by session, refitted on every label, saved without pickle."""

from micrograde.models.grading.embedding import Embedder, EmbedderConfig, EmbeddingStore
from micrograde.models.grading.grader import Grader, GraderFileError
from micrograde.models.grading.heads import BASELINE, HEADS
from micrograde.models.grading.protocol import make_folds
from micrograde.models.grading.run import GraderConfig, GraderOutcome, TrainDataError, train_grader

__all__ = ["BASELINE", "HEADS", "Embedder", "EmbedderConfig", "EmbeddingStore", "Grader", "GraderConfig",
           "GraderFileError", "GraderOutcome", "TrainDataError", "make_folds", "train_grader"]
