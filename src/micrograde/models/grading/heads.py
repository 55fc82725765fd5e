"""The grader's heads: the registry of candidate classifiers that cross-validation chooses from.

Every head is a scikit-learn model on named feature blocks (:mod:`.features`); each is cheap to
fit, so all of them are fitted in every fold. The registry, in the order of preference when two
heads tie (simplest first):

- ``baseline``: a random forest on the spectrum profile (level) and the five scores: the 40-line
  reference every training run reports beside the chosen head;
- ``physics``: a random forest on the whole spectrum profile (level and ripple), the scores,
  every cached physical measure and the local statistics of the field (missing values allowed: a
  forest splits on them natively), each both as it is and relative to its session's median (the
  ``session`` block: :mod:`.sessions`);
- ``embedding``: a logistic regression on frozen pretrained image features (power-normalised,
  L2-normalised, standardised; strong L2 penalty, balanced class weights);
- ``combined``: a random forest on the physical inputs and the leading principal components of
  the image features (one component per ten training micrographs, 2 to 16);
- ``blend``: the mean of the ``physics`` forest's and the ``embedding`` regression's probabilities
  (two representations whose errors differ: the average is steadier on sessions unlike the
  training ones). Its members are the same fits as those heads', so in cross-validation its
  out-of-fold predictions cost nothing more.

A class absent from a head's training data gets probability 0 (:meth:`FittedHead.predict_proba`
always returns the three classes in :data:`LABELS` order). Columns missing in every training row
are left out. Fitted heads hold only scikit-learn estimators and numpy arrays, so they are saved
without pickle (skops; :mod:`.store`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from micrograde.models.grading.features import Features
from micrograde.pipeline.config import LABELS

__all__ = ["HeadSpec", "HEADS", "BASELINE", "FittedHead", "fit_head", "needs_embedding", "needs_session"]

PHYSICAL_BLOCKS = ("level", "ripple", "scores", "measures", "local")
#: The physical blocks of heads saved by micrograde 0.2.0, which had no ``local`` block.
LEGACY_PHYSICAL_BLOCKS = ("level", "ripple", "scores", "measures")
FOREST_TREES = 400
LINEAR_C = 0.01


@dataclass(frozen=True)
class HeadSpec:
    name: str
    description: str
    blocks: tuple[str, ...]  # physical (forest) blocks, then "embedding" when used
    kind: str  # "forest" | "linear" | "forest+pca" | "blend"
    members: tuple[str, ...] = ()  # a blend's heads, whose probabilities it averages

    @property
    def physical(self) -> tuple[str, ...]:
        """The blocks read as columns (all but the embedding)."""
        return tuple(b for b in self.blocks if b != "embedding")


HEADS: dict[str, HeadSpec] = {spec.name: spec for spec in (
    HeadSpec("baseline", "random forest on the spectrum profile (level) and the five scores", ("level", "scores"),
             "forest"),
    HeadSpec("physics", "random forest on the spectrum profile, the scores, every physical measure and the "
             "local statistics, as they are and relative to the session's median",
             (*PHYSICAL_BLOCKS, "session"), "forest"),
    HeadSpec("embedding", "logistic regression on frozen pretrained image features", ("embedding",), "linear"),
    HeadSpec("combined", "random forest on the physical inputs and the leading principal components of the "
             "image features", (*PHYSICAL_BLOCKS, "embedding"), "forest+pca"),
    HeadSpec("blend", "mean of the physics forest's and the embedding regression's probabilities",
             (*PHYSICAL_BLOCKS, "session", "embedding"), "blend", members=("physics", "embedding")),
)}
BASELINE = "baseline"


def needs_embedding(names) -> bool:
    return any(n in HEADS and "embedding" in HEADS[n].blocks for n in names)


def needs_session(names) -> bool:
    """Whether any of the heads ``names`` (a blend through its members) reads the ``session`` block."""
    return any(n in HEADS and "session" in HEADS[n].blocks for n in names)


def _power_normalise(x: np.ndarray) -> np.ndarray:
    """Signed square root, then unit L2 norm per row (features of different magnitudes weigh alike)."""
    z = np.sign(x) * np.sqrt(np.abs(x))
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.maximum(norm, 1e-12)


def _forest(seed: int) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=FOREST_TREES, class_weight="balanced_subsample", random_state=seed,
                                  n_jobs=-1)


@dataclass
class FittedHead:
    """A head fitted on some rows; ``predict_proba`` gives (N, 3) probabilities in LABELS order."""

    name: str
    classes: np.ndarray  # class indices the estimator was fitted on
    keep: np.ndarray  # bool mask over the physical columns (False: missing in every training row)
    forest: RandomForestClassifier | None = None
    linear: Pipeline | None = None
    pca: Pipeline | None = None
    #: the physical blocks it was fitted on, in order (None: the spec's)
    blocks: tuple[str, ...] | None = None
    #: a blend's fitted members, by name
    members: dict[str, FittedHead] | None = None

    @property
    def spec(self) -> HeadSpec:
        return HEADS[self.name]

    @property
    def physical_blocks(self) -> tuple[str, ...]:
        if self.blocks is not None:
            return tuple(self.blocks)
        return self.spec.physical

    def _inputs(self, feats: Features) -> np.ndarray:
        spec = self.spec
        physical = list(self.physical_blocks)
        parts = [feats.matrix(physical)[:, self.keep]] if physical else []
        if spec.kind == "forest+pca":
            if self.pca is None:
                raise ValueError(f"head {self.name} has no fitted projection")
            parts.append(self.pca.transform(_power_normalise(feats.matrix(["embedding"]))).astype(np.float32))
        elif spec.kind == "linear":
            parts.append(_power_normalise(feats.matrix(["embedding"])))
        return np.hstack(parts)

    def predict_proba(self, feats: Features) -> np.ndarray:
        out = np.zeros((len(feats), len(LABELS)))
        if len(feats) == 0:
            return out
        if self.spec.kind == "blend":
            if not self.members:
                raise ValueError(f"head {self.name} has no fitted members")
            return np.mean([m.predict_proba(feats) for m in self.members.values()], axis=0)
        if len(self.classes) == 1:
            out[:, self.classes[0]] = 1.0
            return out
        model = self.forest if self.forest is not None else self.linear
        if model is None:
            raise ValueError(f"head {self.name} is not fitted")
        out[:, self.classes] = model.predict_proba(self._inputs(feats))
        return out


def fit_head(name: str, feats: Features, y: np.ndarray, *, seed: int = 0,
             fitted: dict[str, FittedHead] | None = None) -> FittedHead:
    """Fit head ``name`` on every row of ``feats`` with labels ``y`` (class indices).

    ``fitted``: heads already fitted on the same rows and labels, by name; a blend takes its members
    from there when they are, and the members it fits are added to it."""
    spec = HEADS[name]
    y = np.asarray(y, dtype=np.int64)
    classes = np.unique(y)
    if spec.kind == "blend":
        fitted = {} if fitted is None else fitted
        for member in spec.members:
            if member not in fitted:
                fitted[member] = fit_head(member, feats, y, seed=seed)
        return FittedHead(name, classes, np.zeros(0, dtype=bool), blocks=(),
                          members={m: fitted[m] for m in spec.members})
    physical = list(spec.physical)
    keep = (~np.isnan(feats.matrix(physical)).all(axis=0)) if physical else np.zeros(0, dtype=bool)
    head = FittedHead(name, classes, keep, blocks=tuple(physical))
    if len(classes) == 1:  # one class only: nothing to learn, the head answers it
        return head
    if spec.kind == "forest+pca":
        n_comp = int(np.clip(len(y) // 10, 2, 16))
        emb = _power_normalise(feats.matrix(["embedding"]))
        n_comp = min(n_comp, emb.shape[1], max(1, len(y) - 1))
        head.pca = Pipeline([("scale", StandardScaler()), ("pca", PCA(n_comp, random_state=seed))]).fit(emb)
    x = head._inputs(feats)
    if spec.kind == "linear":
        head.linear = Pipeline([("scale", StandardScaler()),
                                ("lr", LogisticRegression(C=LINEAR_C, class_weight="balanced", max_iter=5000))])
        head.linear.fit(x, y)
    else:
        head.forest = _forest(seed).fit(x, y)
    return head
