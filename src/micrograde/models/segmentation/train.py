"""Training a mask model: from simulated sessions' ground truth, or from painted masks (fine-tune).

An example is a micrograph (full resolution, its pixel size) and its label map; it is turned once
into the network's 2-channel input and the target on the same grid (:mod:`.inputs`). Training draws
crops (a share of them centred on a defect pixel: :func:`crop_origin`) in random symmetries of the
square, with cross-entropy plus Dice loss (pixels outside the micrograph are ignored), AdamW, a fixed
seed and a tqdm bar. ``train_mask_model`` returns the trained network and its card;
:func:`~.store.save_mask_model` writes them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field
from tqdm.auto import tqdm

from micrograde import __version__
from micrograde.models.segmentation.inputs import IGNORE_INDEX, MaskInputConfig, mask_inputs, mask_to_view
from micrograde.models.segmentation.network import build_unet
from micrograde.pipeline.config import FrozenModel
from micrograde.pipeline.masks import DEFECT_CLASSES, MASK_CLASSES, USABLE
from micrograde.pipeline.signal.views import dihedral

__all__ = ["MaskTrainConfig", "MaskExample", "REGION_CYCLE", "prepare_example", "simulated_examples", "crop_origin",
           "train_mask_model"]


class MaskTrainConfig(FrozenModel):
    """Options of one mask-model training (the defaults build the default model)."""

    seed: int = 0
    steps: int = Field(300, ge=1, description="optimiser steps")
    batch_size: int = Field(8, ge=1)
    crop: int = Field(96, ge=32, description="training crop side, pixels at the input pixel size (multiple of 32)")
    lr: float = Field(2e-3, gt=0)
    pretrained: bool = True
    threads: int = Field(1, ge=1, description="torch CPU threads while training")
    balance_regions: bool = Field(True, description="simulated training micrographs: each defect class "
                                  "(carbon, contamination, crystalline, empty) is drawn to be present in an "
                                  "equal share of them, one in five drawn naturally")
    focus_crops: float = Field(0.5, ge=0, le=1, description="share of training crops centred on a pixel of a "
                               "defect class present in the example (the class drawn uniformly), the rest "
                               "placed uniformly")
    input: MaskInputConfig = MaskInputConfig()


@dataclass(frozen=True)
class MaskExample:
    """One training micrograph on the network's grid."""

    x: np.ndarray  # (2, h, w) float32
    y: np.ndarray  # (h, w) uint8 codes
    name: str
    digest: str  # of the micrograph's pixels and mask


def prepare_example(image: np.ndarray, pixel_size: float, mask: np.ndarray, cfg: MaskInputConfig,
                    name: str = "") -> MaskExample:
    """An example from a full-resolution micrograph and its label map (same shape)."""
    image, mask = np.asarray(image), np.asarray(mask)
    if image.shape != mask.shape:
        raise ValueError(f"{name or 'example'}: micrograph {image.shape} and mask {mask.shape} differ in shape")
    if mask.size and int(mask.max()) >= len(MASK_CLASSES):
        raise ValueError(f"{name or 'example'}: mask codes above {len(MASK_CLASSES) - 1}")
    x = mask_inputs(image, pixel_size, cfg)
    h = hashlib.sha256(np.ascontiguousarray(image, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(mask, dtype=np.uint8).tobytes())
    return MaskExample(x, mask_to_view(mask, x.shape[1:]), name, h.hexdigest())


#: the region each simulated training micrograph is drawn to show, in turn (None: a natural draw)
REGION_CYCLE: tuple[str | None, ...] = (None, *DEFECT_CLASSES)


def simulated_examples(n: int, *, seed: int, family: str, cfg: MaskInputConfig,
                       sessions: Sequence | None = None, balance_regions: bool = False) -> Iterator[MaskExample]:
    """``n`` simulated micrographs with their ground-truth masks, rendered in memory over the default
    sessions of ``family`` (``a``, ``b`` or ``both``) or the given ``sessions``.

    Without ``balance_regions`` the labels cycle bad/medium/good, and the rare regions (vacuum, carbon)
    appear in few micrographs; with it the micrographs show in turn each entry of
    :data:`REGION_CYCLE` (:func:`~micrograde.pipeline.sim.families.sample_with_region`).
    """
    from micrograde.pipeline.sim.families import family_sessions, get_family, sample_with_region

    sessions = tuple(sessions) if sessions is not None else family_sessions(family)
    targets = ("bad", "medium", "good")
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        session = sessions[i % len(sessions)]
        fam = get_family(session.family)
        rng = np.random.default_rng(child)
        if balance_regions:
            params = sample_with_region(rng, session, REGION_CYCLE[i % len(REGION_CYCLE)])
        else:
            params = fam.sample(rng, session, targets[(i // len(sessions)) % len(targets)])
        rendered = fam.render(params, session, rng)
        yield prepare_example(rendered.image, session.pixel_size, rendered.mask, cfg, name=f"{session.name}#{i}")


def _pad_crop(a: np.ndarray, crop: int, fill: float) -> np.ndarray:
    h, w = a.shape[-2:]
    ph, pw = max(0, crop - h), max(0, crop - w)
    if not (ph or pw):
        return a
    pad = [(0, 0)] * (a.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(a, pad, mode="constant", constant_values=fill)


def crop_origin(y: np.ndarray, crop: int, rng: np.random.Generator, focus: float) -> tuple[int, int]:
    """Top-left corner of a ``crop``-sized window of the label map ``y`` (at least ``crop`` each side).

    With probability ``focus`` the window is centred (as far as the edges allow) on a random pixel of
    a defect class present in ``y``, the class drawn uniformly among those present; otherwise, or
    when only usable pixels are present, it is placed uniformly.
    """
    hi_y, hi_x = y.shape[0] - crop, y.shape[1] - crop
    if focus > 0 and rng.random() < focus:
        present = [c.code for c in MASK_CLASSES if c.code != USABLE and np.any(y == c.code)]
        if present:
            idx = np.flatnonzero(y == present[int(rng.integers(0, len(present)))])
            cy, cx = divmod(int(idx[int(rng.integers(0, idx.size))]), y.shape[1])
            return int(np.clip(cy - crop // 2, 0, hi_y)), int(np.clip(cx - crop // 2, 0, hi_x))
    return int(rng.integers(0, hi_y + 1)), int(rng.integers(0, hi_x + 1))


def _batch(examples: Sequence[MaskExample], rng: np.random.Generator, cfg: MaskTrainConfig):
    xs, ys = [], []
    for k in rng.integers(0, len(examples), cfg.batch_size):
        ex = examples[int(k)]
        x, y = _pad_crop(ex.x, cfg.crop, 0.0), _pad_crop(ex.y, cfg.crop, IGNORE_INDEX)
        y0, x0 = crop_origin(y, cfg.crop, rng, cfg.focus_crops)
        sym = int(rng.integers(0, 8))
        xs.append(np.stack([dihedral(c[y0 : y0 + cfg.crop, x0 : x0 + cfg.crop], sym) for c in x]))
        ys.append(dihedral(y[y0 : y0 + cfg.crop, x0 : x0 + cfg.crop], sym))
    return (torch.from_numpy(np.ascontiguousarray(np.stack(xs), dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(np.stack(ys)).astype(np.int64)))


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_mask_model(cfg: MaskTrainConfig, examples: Iterable[MaskExample], *, base: torch.nn.Module | None = None,
                     model_id: str = "mask", command: str = "", data_source: str = "",
                     progress: bool = False) -> tuple[torch.nn.Module, dict]:
    """Train (or, from ``base``, fine-tune) a mask network on ``examples``; returns it and its card."""
    from micrograde.models.backbones.tv_shim import ensure_torchvision

    ensure_torchvision()  # before smp imports torchvision

    examples = list(examples)
    if not examples:
        raise ValueError("no training examples: give simulated sessions or painted masks")
    if cfg.crop % 32:
        raise ValueError(f"crop must be a multiple of 32, got {cfg.crop}")
    if base is None:
        net, weights = build_unet(len(MASK_CLASSES), pretrained=cfg.pretrained, seed=cfg.seed)
        weights_info = weights.to_dict()
    else:
        net, weights_info = base, {"source": "fine-tuned", "digest": None, "pretrained": True}
    from segmentation_models_pytorch.losses import DiceLoss

    dice = DiceLoss(mode="multiclass", ignore_index=IGNORE_INDEX)
    ce = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    rng = np.random.default_rng(cfg.seed)
    history: list[float] = []
    with _threads(cfg.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
        net.train()
        bar = tqdm(range(cfg.steps), desc="train mask model", unit="step", disable=not progress)
        for _ in bar:
            x, y = _batch(examples, rng, cfg)
            logits = net(x)
            loss = ce(logits, y) + dice(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(history[-20:]):.3f}")
        net.eval()
    digest = hashlib.sha256("".join(sorted(e.digest for e in examples)).encode()).hexdigest()
    card = {
        "id": model_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "micrograde_version": __version__,
        "command_line": command,
        "seed": cfg.seed,
        "input": {"pixel_size": cfg.input.pixel_size, "channels": ["image", "lattice_power"],
                  "normalisation": "image: robust standardisation (median/MAD clip at clip_sigma, then mean 0 std 1); "
                                   "lattice: clip((log power ratio - offset) * scale, -2, 6)",
                  "size": "whole field at pixel_size, padded to a multiple of 32", "train_crop": cfg.crop,
                  "config": cfg.input.model_dump()},
        "initial_weights": weights_info,
        "training": {"config": cfg.model_dump(), "n_examples": len(examples), "data_digest": digest,
                     "source": data_source, "final_loss": float(np.mean(history[-20:]))},
        "history": [round(v, 5) for v in history],
    }
    return net, card
