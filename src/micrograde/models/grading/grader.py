"""A trained grader on disk and in memory: heads saved without pickle, loaded once per run.

``WORKSPACE/models/<id>/`` holds ``card.json`` (the model card), ``heads.skops`` (the fitted
scikit-learn heads, written with skops: no pickle, so a model folder received from elsewhere
cannot run code when loaded) and ``training.csv`` (cache key, label and session of every
micrograph the shipped head was fitted on). The card names every file with its SHA-256; a file
that does not match, a file name that leaves the model folder, or a skops file holding types
other than those the heads are made of (a forest, its trees, a logistic regression, a scaler, a
PCA, a pipeline) are refused with :class:`GraderFileError`. Reading a grader imports neither torch
nor all of scikit-learn (:func:`_skops_io`); only a head that reads image embeddings loads torch.

:class:`Grader` loads a model folder once and gives calibrated probabilities for cache keys.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from micrograde.models.cards import ModelLoadError, check_card, read_card
from micrograde.models.grading.features import load_features
from micrograde.models.grading.heads import HEADS, LEGACY_PHYSICAL_BLOCKS, FittedHead, needs_embedding
from micrograde.pipeline.config import LABELS
from micrograde.pipeline.io.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from micrograde.models.grading.embedding import Embedder, EmbeddingStore

__all__ = ["HEADS_FILE", "TRAINING_FILE", "GraderFileError", "save_heads", "load_heads", "model_file", "load_grader",
           "check_grader_files",
           "read_training_rows",
           "apply_temperature_to_probs", "Grader"]

HEADS_FILE = "heads.skops"
TRAINING_FILE = "training.csv"

def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _trusted() -> tuple[str, ...]:
    """The scikit-learn types a heads file may hold (what the heads are made of), beyond skops's own
    primitives and numpy: anything else in a heads file is refused."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import Tree

    return tuple(_type_name(c) for c in (PCA, RandomForestClassifier, LogisticRegression, Pipeline, StandardScaler,
                                         DecisionTreeClassifier, Tree))


def _skops_io():
    """``skops.io``, imported without its list of every scikit-learn estimator.

    When ``skops.io`` loads, it lists ``sklearn.utils.all_estimators()`` for its default trusted types, which
    imports every scikit-learn module and, through scikit-learn's array-API shims, torch: about 1.5 s of
    every command that reads a grader (``bench/README.md``, start-up). micrograde does not rely on that
    list: :func:`load_heads` names every type it accepts (:func:`_trusted`). So the list is made empty
    while skops loads (``all_estimators`` is restored at once). Where ``skops.io`` was imported before (by
    other code in the same process), it is used as it is: skops then also trusts, by default, every
    scikit-learn estimator, which skops holds safe to load; a command's own process never imports it first."""
    import importlib
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    scan = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        return importlib.import_module("skops.io")
    finally:
        sklearn.utils.all_estimators = scan


_EPS = 1e-6


class GraderFileError(ModelLoadError):
    """A grader's file is missing, altered, outside its folder, or holds types that are not trusted."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_file(model_dir: Path, entry: Mapping) -> tuple[Path, bytes]:
    """The bytes of the file a card ``entry`` ({"file", "sha256"}) names, checked: inside ``model_dir``
    and matching its digest."""
    model_dir = Path(model_dir).resolve()
    name = str(entry.get("file", ""))
    path = (model_dir / name).resolve()
    if not name or path.parent != model_dir:
        raise GraderFileError(
            f"model {model_dir.name}: the card names {name!r}, which is not a file of the model folder"
        )
    if not path.is_file():
        raise GraderFileError(f"model {model_dir.name}: {name} is missing")
    data = path.read_bytes()
    if _sha256(data) != entry.get("sha256"):
        raise GraderFileError(f"model {model_dir.name}: {name} does not match the SHA-256 its card names "
                              "(altered or replaced); refusing to load it")
    return path, data


def save_heads(model_dir: Path, heads: Mapping[str, FittedHead]) -> dict:
    """Write ``heads.skops`` atomically; returns its card entry ``{"file", "sha256"}``."""
    data = _skops_io().dumps({name: _head_payload(h) for name, h in heads.items()})
    atomic_write_bytes(Path(model_dir) / HEADS_FILE, data)
    return {"file": HEADS_FILE, "sha256": _sha256(data)}


def _head_payload(h: FittedHead) -> dict:
    out = {"name": h.name, "classes": h.classes, "keep": h.keep, "forest": h.forest, "linear": h.linear,
           "pca": h.pca, "blocks": list(h.physical_blocks)}
    if h.members is not None:  # a blend: its members, each saved as a head of its own
        out["members"] = {name: _head_payload(m) for name, m in h.members.items()}
    return out


def _head_from_payload(d: Mapping) -> FittedHead:
    members = ({name: _head_from_payload(m) for name, m in d["members"].items()} if d.get("members") is not None
               else None)
    return FittedHead(d["name"], np.asarray(d["classes"]), np.asarray(d["keep"], dtype=bool), d["forest"],
                      d["linear"], d["pca"], blocks=_saved_blocks(d), members=members)


def _audited(model_dir: Path, data: bytes) -> list[str]:
    """The non-default types of a heads file's bytes, once checked to be the heads' own (GraderFileError)."""
    trusted = set(_trusted())
    untrusted = set(_skops_io().get_untrusted_types(data=data))
    if not untrusted <= trusted:
        raise GraderFileError(f"model {Path(model_dir).name}: {HEADS_FILE} holds types micrograde does not trust: "
                              f"{', '.join(sorted(untrusted - trusted))}")
    return sorted(untrusted)


def load_heads(model_dir: Path, entry: Mapping) -> dict[str, FittedHead]:
    """Load the heads a card entry names (digest, folder and types checked)."""
    _path, data = model_file(model_dir, entry)
    payload = _skops_io().loads(data, trusted=_audited(model_dir, data))
    return {name: _head_from_payload(d) for name, d in payload.items()}


def check_grader_files(model_dir: Path) -> None:
    """The checks loading a grader makes of its files, made before any work (a command's input checks): every
    file its card names is in its folder and matches its SHA-256, and its heads file holds only the heads'
    own types (:class:`GraderFileError`). Nothing is unpickled or built. A folder of another kind passes."""
    card = read_card(Path(model_dir))
    if card.get("kind") != "grader":
        return
    for name, entry in (card.get("files") or {}).items():
        if isinstance(entry, Mapping) and "file" in entry:
            _path, data = model_file(model_dir, entry)
            if name == "heads":
                _audited(model_dir, data)


def _saved_blocks(d: Mapping) -> tuple[str, ...]:
    """The physical blocks a saved head was fitted on (heads saved by 0.2.0 do not say: theirs)."""
    if "blocks" in d:
        return tuple(str(b) for b in d["blocks"])
    return tuple(b for b in HEADS[d["name"]].physical if b in LEGACY_PHYSICAL_BLOCKS)


def apply_temperature_to_probs(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities sharpened or softened by ``temperature``: softmax(log p / T)."""
    z = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0)) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Grader:
    """A trained grader (``card["kind"] == "grader"``) loaded once for a run."""

    model_dir: Path
    device: str = "cpu"
    card: dict = field(init=False, repr=False)
    heads: dict[str, FittedHead] = field(init=False, repr=False)
    _embedder: Embedder | None = field(init=False, repr=False, default=None)
    _session_medians: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.model_dir = Path(self.model_dir)
        self.card = read_card(self.model_dir)
        if self.card.get("kind") != "grader":
            raise GraderFileError(f"{self.model_dir} is not a grader model folder")
        check_card(self.card)
        files = self.card.get("files", {})
        self.heads = load_heads(self.model_dir, files["heads"]) if "heads" in files else {}
        if self.head not in self.heads and self.head != "finetune":
            raise GraderFileError(f"model {self.model_id}: its card names head {self.head!r}, which is not saved")

    @property
    def model_id(self) -> str:
        return str(self.card.get("id", self.model_dir.name))

    @property
    def head(self) -> str:
        return str(self.card["head"]["kind"])

    @property
    def temperature(self) -> float:
        return float(self.card.get("calibration", {}).get("temperature", 1.0))

    @property
    def thresholds(self) -> dict[str, float]:
        from micrograde.models.thresholds import check_thresholds

        return check_thresholds(self.card.get("thresholds"))

    @property
    def measure_names(self) -> tuple[str, ...]:
        return tuple(self.card["input"]["measures"])

    @property
    def catalogue_features(self) -> tuple[str, ...]:
        """The features this grader reads from catalogue rows (the user's CTF estimates), not from the cache:
        :meth:`predict` needs them as ``extra``; with :attr:`needs_session`, also ``session_reference`` (a
        digest of the session's reference keys, which keys the prediction cache)."""
        from micrograde.pipeline.features import feature_names

        if self.head == "finetune":
            return ()
        imported = set(feature_names("ctf"))
        own = tuple(n for n in self.measure_names if n in imported)
        return (*own, "session_reference") if self.needs_session else own

    @property
    def needs_session(self) -> bool:
        """Whether the shipped head (a blend through its members) measures micrographs against their session."""
        if self.head not in self.heads:
            return False
        head = self.heads[self.head]
        parts = [head, *(head.members or {}).values()]
        return any("session" in h.physical_blocks for h in parts)

    def _session_fallback(self) -> np.ndarray:
        ref = self.card["input"].get("session_reference") or {}
        if "fallback" not in ref:
            raise GraderFileError(f"model {self.model_id}: its head reads the session block but its card keeps no "
                                  "session_reference")
        return np.array([np.nan if v is None else float(v) for v in ref["fallback"]], dtype=np.float32)

    def _with_sessions(self, feats, cache_dir: Path, extra, sessions, references):
        from micrograde.models.grading.sessions import add_session_block, reference_keys

        sessions = list(sessions) if sessions is not None else _sessions_of(feats.keys, extra)
        if references is None:
            references = reference_keys(feats.keys, sessions)
        return add_session_block(feats, sessions, references, fallback=self._session_fallback(),
                                 load=lambda keys: load_features(keys, cache_dir, measure_names=self.measure_names,
                                                                 extra=extra), memo=self._session_medians)[0]

    def embeddings(self, cache_dir: Path) -> EmbeddingStore | None:
        """The embedding store this grader reads (the backbone is loaded on first use only)."""
        if not needs_embedding([self.head]):
            return None
        from micrograde.models.grading.embedding import Embedder, EmbedderConfig, EmbeddingStore

        if self._embedder is None:
            self._embedder = Embedder(EmbedderConfig.from_card(self.card["input"]["embedder"]), device=self.device)
            expected = self.card["input"].get("embedder_id")
            if expected and self._embedder.id != expected:
                raise GraderFileError(f"model {self.model_id} was trained on embedder {expected}, but these "
                                      f"weights give {self._embedder.id}: the backbone's weights file differs")
        return EmbeddingStore(Path(cache_dir), self._embedder)

    def predict(self, cache_keys: Sequence[str], *, cache_dir: Path, extra=None, progress: bool = False,
                sessions: Sequence | None = None, references: Mapping[str, Sequence[str]] | None = None,
                **_ignored) -> np.ndarray:
        """Calibrated probabilities (N, 3) in LABELS order for cached micrographs.

        ``extra``: catalogue rows (``cache_key`` and the :attr:`catalogue_features` columns); a value they
        lack is missing (NaN), which the heads tolerate. With :attr:`needs_session`: ``sessions`` (one per key;
        default: ``extra``'s ``session`` column) and ``references``, the cache keys that stand for each session
        (default: the keys graded here, by session; :mod:`.sessions`)."""
        keys = [str(k) for k in cache_keys]
        if not keys:
            return np.zeros((0, len(LABELS)))
        if self.head == "finetune":
            from micrograde.models.grading.finetune import NETWORK_DIR, network_probs

            return apply_temperature_to_probs(network_probs(self.model_dir / NETWORK_DIR, keys, Path(cache_dir)),
                                              self.temperature)
        feats = load_features(keys, cache_dir, embeddings=self.embeddings(cache_dir),
                              measure_names=self.measure_names, extra=extra, progress=progress)
        if self.needs_session:
            feats = self._with_sessions(feats, Path(cache_dir), extra, sessions, references)
        return apply_temperature_to_probs(self.heads[self.head].predict_proba(feats), self.temperature)


def _sessions_of(keys: Sequence[str], extra) -> list:
    if extra is None or "session" not in extra.columns:
        return [None] * len(keys)
    by_key = extra.drop_duplicates("cache_key", keep="last").set_index("cache_key")["session"]
    return [by_key.get(k) for k in keys]


def read_training_rows(model_dir: Path, card: Mapping):
    """The training table (cache_key, label, session) the card names, checked."""
    import pandas as pd

    _path, data = model_file(model_dir, card["files"]["training"])
    return pd.read_csv(io.BytesIO(data), dtype=str)


def load_grader(model_dir: Path, *, device: str = "cpu"):
    """The model in ``model_dir``, loaded once: a :class:`Grader`, or a :class:`~micrograde.models.infer.Predictor`
    for a fine-tuned network trained by micrograde 0.1. A 0.1 model whose fused head was saved with
    pickle (``fusion.joblib``) is refused: retrain it."""
    card = read_card(Path(model_dir))
    if card.get("kind") == "grader":
        return Grader(Path(model_dir), device=device)
    if (card.get("head") or {}).get("kind") == "fusion":
        raise GraderFileError(f"model {card.get('id', Path(model_dir).name)} was made by micrograde 0.1 with a fused "
                              "head saved as a pickle file, which micrograde no longer loads: retrain with "
                              "`micrograde train`")
    from micrograde.models.infer import Predictor

    return Predictor(Path(model_dir), device=device)
