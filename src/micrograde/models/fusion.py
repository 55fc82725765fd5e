"""The fused head: the fine-tuned network's features together with the physical measures.

A network sees the micrograph and its power spectrum, but grading is about amounts: how much of
the field is crystalline, how far the stage drifted, how thick the ice is. The measures of
:mod:`micrograde.pipeline.signal.measures` state those amounts in physical units, and the label rules
experts apply are thresholds on them ("bad when any is far out of range"). Gradient-boosted
trees (scikit-learn's ``HistGradientBoostingClassifier``) model such threshold logic well and
accept missing values (an unknown dose leaves ``transmission`` NaN), so the head is:

    PCA(pooled network features, fitted on the training split)  +  measures  ->  boosted trees

trained on the training split with balanced class weights; the number of boosting iterations is
chosen by the validation log-loss (early stopping), and the model is refitted with that number.
The head's log-probabilities play the role of logits: the calibration temperature is fitted on
them. The fitted head is stored beside the weights as ``fusion.joblib`` with its SHA-256 in the
model card, and refused at load when the digest differs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from pydantic import Field
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss

from micrograde.pipeline.io.atomic import atomic_open
from micrograde.pipeline.config import LABELS, FrozenModel

__all__ = ["FusionConfig", "FusionHead", "FusionFit", "fit_fusion", "save_fusion", "load_fusion", "FUSION_FILE",
           "FusionFileError"]

FUSION_FILE = "fusion.joblib"
_MIN_PROB = 1e-7


class FusionFileError(ValueError):
    """The fused head's file is missing or is not the one the model card names."""


class FusionConfig(FrozenModel):
    """The fused head (recorded in the model card)."""

    enabled: bool = Field(True, description="combine the network's features with the physical measures")
    pca_components: int = Field(32, ge=1, description="principal components of the pooled network features")
    max_iter: int = Field(400, ge=1, description="most boosting iterations (early stopping picks fewer)")
    learning_rate: float = Field(0.05, gt=0, le=1)
    max_leaf_nodes: int = Field(31, ge=2)
    l2_regularization: float = Field(0.0, ge=0)
    min_samples_leaf: int = Field(20, ge=1, description="samples a leaf needs; with few labels fewer: "
                                  "min(this, max(5, training samples / 20))")
    seed: int = 0


@dataclass
class FusionHead:
    """PCA of the pooled features + measures -> boosted trees; ``log_proba`` in LABELS order."""

    pca: PCA
    trees: HistGradientBoostingClassifier
    measure_names: tuple[str, ...]
    unused: tuple[str, ...] = ()  # measures missing in every training sample: set to 0, never used

    def inputs(self, pooled: np.ndarray, measures: np.ndarray) -> np.ndarray:
        pooled = np.asarray(pooled, dtype=np.float32)
        measures = np.array(measures, dtype=np.float32).reshape(len(pooled), -1)
        if measures.shape[1] != len(self.measure_names):
            raise ValueError(f"the fused head needs {len(self.measure_names)} measures, got {measures.shape[1]}")
        for i, name in enumerate(self.measure_names):
            if name in self.unused:
                measures[:, i] = 0.0
        return np.hstack([self.pca.transform(pooled).astype(np.float32), measures])

    def log_proba(self, pooled: np.ndarray, measures: np.ndarray) -> np.ndarray:
        """(N, 3) log-probabilities, float32, in LABELS order."""
        if len(pooled) == 0:
            return np.zeros((0, len(LABELS)), np.float32)
        p = _full_proba(self.trees, self.trees.predict_proba(self.inputs(pooled, measures)))
        return np.log(np.clip(p, _MIN_PROB, 1.0)).astype(np.float32)


@dataclass
class FusionFit:
    head: FusionHead
    n_iter: int
    val_log_loss: list[float]  # by boosting iteration
    n_components: int


def _full_proba(trees: HistGradientBoostingClassifier, p: np.ndarray) -> np.ndarray:
    """Probabilities over all of LABELS (a class absent from training gets 0)."""
    out = np.zeros((len(p), len(LABELS)))
    out[:, np.asarray(trees.classes_, dtype=np.int64)] = p
    return out


def _trees(cfg: FusionConfig, n_iter: int, n_train: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=n_iter, learning_rate=cfg.learning_rate, max_leaf_nodes=cfg.max_leaf_nodes,
        min_samples_leaf=min(cfg.min_samples_leaf, max(5, n_train // 20)),
        l2_regularization=cfg.l2_regularization, early_stopping=False, class_weight="balanced",
        random_state=cfg.seed,
    )


def fit_fusion(
    pooled_train: np.ndarray, measures_train: np.ndarray, y_train: np.ndarray,
    pooled_val: np.ndarray, measures_val: np.ndarray, y_val: np.ndarray,
    cfg: FusionConfig, measure_names: tuple[str, ...],
) -> FusionFit:
    """Fit the fused head on the training split; early stopping on the validation log-loss."""
    y_train, y_val = np.asarray(y_train, dtype=np.int64), np.asarray(y_val, dtype=np.int64)
    if len(np.unique(y_train)) < 2:
        raise ValueError("the fused head needs at least two classes in the training split")
    # at most one component per 10 training samples: few labels, few features
    n_comp = int(min(cfg.pca_components, len(pooled_train) // 10, np.asarray(pooled_train).shape[1]))
    pca = PCA(n_components=max(1, n_comp), random_state=cfg.seed).fit(np.asarray(pooled_train, dtype=np.float32))
    missing = np.isnan(np.asarray(measures_train, dtype=np.float32)).all(axis=0)
    unused = tuple(n for n, m in zip(measure_names, missing, strict=True) if m)
    head = FusionHead(pca, _trees(cfg, cfg.max_iter, len(y_train)), tuple(measure_names), unused)
    x_train = head.inputs(pooled_train, measures_train)
    head.trees.fit(x_train, y_train)
    x_val = head.inputs(pooled_val, measures_val)
    losses = [float(log_loss(y_val, _full_proba(head.trees, p), labels=range(len(LABELS))))
              for p in head.trees.staged_predict_proba(x_val)]
    best = int(np.argmin(losses)) + 1
    if best < cfg.max_iter:
        head.trees = _trees(cfg, best, len(y_train)).fit(x_train, y_train)
    return FusionFit(head=head, n_iter=best, val_log_loss=losses, n_components=pca.n_components_)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_fusion(model_dir: Path, head: FusionHead) -> dict:
    """Write ``fusion.joblib`` atomically; returns the card's ``fusion`` file entry (name, sha256)."""
    path = Path(model_dir) / FUSION_FILE
    with atomic_open(path, "wb") as fh:
        joblib.dump({"pca": head.pca, "trees": head.trees, "measure_names": list(head.measure_names),
                     "unused": list(head.unused)}, fh)
    return {"file": FUSION_FILE, "sha256": _sha256(path)}


def load_fusion(model_dir: Path, entry: dict) -> FusionHead:
    """Load the fused head named by the card entry ``entry`` (``file``, ``sha256``), checking the digest."""
    path = Path(model_dir) / str(entry.get("file", FUSION_FILE))
    if not path.is_file():
        raise FusionFileError(f"model {Path(model_dir).name}: the fused head {path.name} is missing")
    digest = _sha256(path)
    if digest != entry.get("sha256"):
        raise FusionFileError(f"model {Path(model_dir).name}: {path.name} has SHA-256 {digest[:12]}..., the "
                              f"model card names {str(entry.get('sha256'))[:12]}...; refusing to load it")
    data = joblib.load(path)
    return FusionHead(data["pca"], data["trees"], tuple(data["measure_names"]), tuple(data.get("unused", ())))
