"""A mask model on disk and in memory: ``card.json`` + ``weights.pt`` (a state_dict only).

``<folder>/card.json`` says what the model is (kind ``mask``): classes and their codes (the table
of :mod:`micrograde.pipeline.masks`), the input (pixel size, channels, lattice tile and scaling,
normalisation), the network (encoder, decoder), where the initial weights came from (digest),
training data digest, seed, metrics, version, time and command line; ``files`` names the weights
file with its SHA-256. Weights are saved with ``torch.save`` of a state_dict of tensors and read
with ``weights_only=True``; a file name that leaves the folder or does not match its digest is
refused (:func:`micrograde.models.grading.grader.model_file`). A model whose code table or pixel
size differs from what the caller expects is refused with :class:`MaskModelMismatch`.

:class:`MaskModel` is loaded once per run and predicts full-resolution label maps.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from micrograde.models.checkpoint import ModelCardMismatch, ModelLoadError, read_card, versions
from micrograde.models.grading.grader import model_file
from micrograde.models.segmentation.inputs import MaskInputConfig, mask_inputs, mask_to_full, pad_to_multiple
from micrograde.models.segmentation.network import DECODER_CHANNELS, ENCODER, IN_CHANNELS, build_unet
from micrograde.pipeline.io.atomic import atomic_write_bytes, atomic_write_text
from micrograde.pipeline.masks import MASK_CLASSES, MASK_DTYPE

__all__ = ["MASK_KIND", "MASK_WEIGHTS", "MaskModelMismatch", "code_table", "save_mask_model", "check_mask_card",
           "MaskModel", "load_mask_model"]

MASK_KIND = "mask"
MASK_WEIGHTS = "weights.pt"


class MaskModelMismatch(ModelCardMismatch):
    """A mask model made for another pixel size or another code table."""


def code_table() -> list[dict]:
    """The code table a mask model is stamped with: ``[{"code": 0, "name": "usable"}, ...]``."""
    return [{"code": c.code, "name": c.name} for c in MASK_CLASSES]


def save_mask_model(folder: Path, model: torch.nn.Module, card: dict) -> dict:
    """Write the weights (state_dict only) then the card (with the weights' digest); returns the card."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, buf)
    data = buf.getvalue()
    atomic_write_bytes(folder / MASK_WEIGHTS, data)
    full = dict(card) | {"kind": MASK_KIND, "classes": code_table(), "versions": versions(),
                         "files": {"weights": {"file": MASK_WEIGHTS, "sha256": hashlib.sha256(data).hexdigest()}}}
    full.setdefault("network", {"architecture": "Unet", "encoder": ENCODER, "decoder_channels": list(DECODER_CHANNELS),
                                "in_channels": IN_CHANNELS})
    atomic_write_text(folder / "card.json", json.dumps(full, indent=2, allow_nan=False) + "\n")
    return full


def check_mask_card(card: dict, *, pixel_size: float | None = None) -> None:
    """Refuse a card that is not a mask model, holds another code table, or (when ``pixel_size`` is
    given) was made for another pixel size."""
    name = card.get("id", "?")
    if card.get("kind") != MASK_KIND:
        raise ModelLoadError(f"model {name} is not a mask model (kind {card.get('kind')!r})")
    if card.get("classes") != code_table():
        have = ", ".join(f"{c.get('code')}={c.get('name')}" for c in card.get("classes") or [])
        want = ", ".join(f"{c['code']}={c['name']}" for c in code_table())
        raise MaskModelMismatch(f"mask model {name} uses the code table [{have}], but this micrograde uses [{want}]: "
                                "train a mask model for this code table")
    trained = float(card.get("input", {}).get("pixel_size", float("nan")))
    if pixel_size is not None and not abs(trained - float(pixel_size)) <= 1e-3 * float(pixel_size):
        raise MaskModelMismatch(
            f"mask model {name} was trained on inputs at {trained:g} A/px, but {float(pixel_size):g} "
            "A/px is asked for: train a mask model at this pixel size"
        )


@dataclass
class MaskModel:
    """A mask model loaded once for a run."""

    folder: Path
    pixel_size: float | None = None  # expected input pixel size (None: the card's)
    device: str = "cpu"
    card: dict = field(init=False, repr=False)
    net: torch.nn.Module = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.card = read_card(self.folder)
        check_mask_card(self.card, pixel_size=self.pixel_size)
        _path, data = model_file(self.folder, self.card.get("files", {}).get("weights", {}))
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any reader error means an unusable file
            raise ModelLoadError(f"mask model {self.model_id}: cannot read {MASK_WEIGHTS}: {exc}") from None
        net, _ = build_unet(len(MASK_CLASSES), pretrained=False)
        try:
            net.load_state_dict(state)
        except (RuntimeError, TypeError) as exc:
            raise ModelLoadError(
                f"mask model {self.model_id}: {MASK_WEIGHTS} does not fit the network: {exc}"
            ) from None
        self.net = net.to(self.device).eval()

    @property
    def model_id(self) -> str:
        return str(self.card.get("id", self.folder.name))

    @property
    def input_config(self) -> MaskInputConfig:
        return MaskInputConfig(**self.card["input"]["config"])

    @torch.inference_mode()
    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(C, h, w) class probabilities for one (2, h, w) input on the view grid.

        Full precision on every device: on an H200 a K3 micrograph's view took 7.2 ms in fp32 and
        10.5 ms under bf16 autocast, which changed the class of 0.6 % of its pixels
        (bench/bench_gpu.py)."""
        padded, (h, w) = pad_to_multiple(x, 32)
        logits = self.net(torch.from_numpy(np.ascontiguousarray(padded))[None].to(self.device))
        return torch.softmax(logits[0, :, :h, :w].float(), dim=0).cpu().numpy()

    def predict_view(self, image: np.ndarray, pixel_size: float) -> np.ndarray:
        """The label map on the network's grid (``input.pixel_size`` A/px)."""
        x = mask_inputs(image, pixel_size, self.input_config)
        return self.probabilities(x).argmax(axis=0).astype(MASK_DTYPE)

    def predict(self, image: np.ndarray, pixel_size: float) -> np.ndarray:
        """The full-resolution uint8 label map (codes of the table) of a micrograph."""
        return mask_to_full(self.predict_view(image, pixel_size), np.asarray(image).shape)


def load_mask_model(folder: Path, *, pixel_size: float | None = None, device: str = "cpu") -> MaskModel:
    """The mask model in ``folder`` (checked: kind, code table, pixel size, weights digest and folder)."""
    return MaskModel(Path(folder), pixel_size=pixel_size, device=device)
