"""Where mask models live in a workspace, the default one built on first use, and painted examples.

``WORKSPACE/mask_models/<id>/`` holds each mask model (card + weights; :mod:`.store`). The default
model (``default``) is trained on first use from simulated sessions of both rendering families,
with a fixed seed and the default :class:`~.train.MaskTrainConfig` (a few minutes on 2 CPU cores,
with a progress bar), and reused afterwards; a lock keeps two runs from building it at once.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from micrograde.models.segmentation.inputs import MaskInputConfig
from micrograde.models.segmentation.store import MaskModel, load_mask_model, save_mask_model
from micrograde.models.segmentation.train import (
    MaskExample,
    MaskTrainConfig,
    prepare_example,
    simulated_examples,
    train_mask_model,
)
from micrograde.pipeline.io.locks import file_lock

__all__ = ["MASK_MODELS_DIR", "DEFAULT_MASK_MODEL", "DEFAULT_SIM_COUNT", "DEFAULT_SIM_FAMILY", "mask_model_dir",
           "build_mask_model", "ensure_default_mask_model", "painted_examples"]

MASK_MODELS_DIR = "mask_models"
DEFAULT_MASK_MODEL = "default"
#: simulated micrographs the default model is trained on, and their family
DEFAULT_SIM_COUNT = 48
DEFAULT_SIM_FAMILY = "both"


def mask_model_dir(root: str | os.PathLike, model_id: str) -> Path:
    """``WORKSPACE/mask_models/<model_id>`` (the id must be a plain folder name)."""
    if not model_id or Path(model_id).name != model_id or model_id in (".", ".."):
        raise ValueError(f"a mask model id is a plain folder name, got {model_id!r}")
    return Path(root) / MASK_MODELS_DIR / model_id


def painted_examples(pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
                     cfg: MaskInputConfig) -> Iterator[MaskExample]:
    """Examples from (micrograph file, mask file) pairs: painted masks or a simulated collection's."""
    from micrograde.pipeline.io.label_maps import read_label_map
    from micrograde.pipeline.io.readers import read_micrographs

    for image_path, mask_path in pairs:
        raw = read_micrographs(Path(image_path))
        if len(raw) != 1:
            raise ValueError(f"{image_path}: holds {len(raw)} micrographs; give one micrograph per mask")
        mask, _ = read_label_map(mask_path)
        yield prepare_example(raw[0].data, raw[0].pixel_size, mask, cfg, name=Path(image_path).name)


def build_mask_model(folder: Path, cfg: MaskTrainConfig, examples, *, base: Path | None = None,
                     data_source: str = "", progress: bool = False) -> dict:
    """Train a mask model (from scratch, or fine-tuning the model in ``base``) and save it in ``folder``."""
    base_net = None
    if base is not None:
        base_model = load_mask_model(base, pixel_size=cfg.input.pixel_size)
        base_net = base_model.net
        cfg = cfg.model_copy(update={"input": base_model.input_config})
    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else ""
    net, card = train_mask_model(cfg, examples, base=base_net, model_id=Path(folder).name, command=command,
                                 data_source=data_source, progress=progress)
    if base is not None:
        card["base_model"] = {
            "id": base_model.model_id,
            "weights_sha256": base_model.card["files"]["weights"]["sha256"],
        }
    return save_mask_model(folder, net, card)


def ensure_default_mask_model(root: str | os.PathLike, *, progress: bool = False,
                              cfg: MaskTrainConfig | None = None, n: int = DEFAULT_SIM_COUNT) -> MaskModel:
    """The workspace's default mask model, trained first if it is not there yet (loaded once, returned)."""
    folder = mask_model_dir(root, DEFAULT_MASK_MODEL)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(folder.parent / ".default.lock"):
        if not (folder / "card.json").is_file():
            cfg = cfg or MaskTrainConfig()
            examples = simulated_examples(n, seed=cfg.seed, family=DEFAULT_SIM_FAMILY, cfg=cfg.input,
                                          balance_regions=cfg.balance_regions)
            build_mask_model(folder, cfg, examples, progress=progress,
                             data_source=f"simulated: {n} micrographs, family {DEFAULT_SIM_FAMILY}, seed {cfg.seed}")
    return load_mask_model(folder, pixel_size=(cfg or MaskTrainConfig()).input.pixel_size)
