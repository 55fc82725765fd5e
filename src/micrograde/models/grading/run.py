"""One training run of the grader: cross-validate every candidate head, choose from the out-of-fold
predictions, refit the chosen head on every label, calibrate, and save the model with its card.

The flow (``flows/train.py``) gathers the labelled table (catalogue rows with consensus labels) and
calls :func:`train_grader`; this function reads the cache and writes only the new model folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from micrograde.models.grading.embedding import Embedder, EmbedderConfig, EmbeddingStore
from micrograde.models.grading.features import load_features
from micrograde.models.grading.grader import TRAINING_FILE, apply_temperature_to_probs, save_heads
from micrograde.models.grading.heads import BASELINE, HEADS, fit_head, needs_embedding, needs_session
from micrograde.models.grading.protocol import (
    PREFERRED,
    choose_robust,
    cross_validate,
    make_folds,
    selection_oof,
    summarise,
)
from micrograde.models.training.dataset import DEFAULT_LAYOUT
from micrograde.models.training.recipe import TrainConfig
from micrograde.models.training.run import TrainDataError
from micrograde.pipeline.config import LABELS, FrozenModel, PreprocessConfig
from micrograde.pipeline.data.augment import AugmentConfig
from micrograde.pipeline.data.diversity import diversity_lines, diversity_table, score_ranges
from micrograde.pipeline.io.atomic import atomic_write_bytes, atomic_write_text
from micrograde.pipeline.io.digest import digest_of

__all__ = ["GraderConfig", "GraderOutcome", "TrainDataError", "train_grader", "MIN_LABELLED", "MIN_PER_CLASS",
           "MIN_FOR_CHOICE"]

MIN_LABELLED = 9  # below this nothing is trained
MIN_PER_CLASS = 5  # below this a class is reported as unreliable
MIN_FOR_CHOICE = 20  # below this no head is chosen by cross-validation: the baseline ships


class GraderConfig(FrozenModel):
    """Everything a grader training run depends on (recorded in the model card)."""

    heads: tuple[str, ...] = Field(tuple(HEADS), description="candidate heads (cross-validation chooses)")
    embedder: EmbedderConfig = EmbedderConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    group_by: str = Field("session", description="catalogue column the folds keep whole")
    finetune: Literal["auto", "never", "cv"] = Field(
        "auto", description="fine-tuning candidate: cv = evaluate it in the same folds (slow on CPU); auto = only "
        "when a CUDA device is present; never")
    recipe: TrainConfig = Field(TrainConfig(), description="the fine-tuning candidate's recipe")
    augment: AugmentConfig = Field(AugmentConfig(), description="the fine-tuning candidate's augmentation")
    layout: str = Field(DEFAULT_LAYOUT, description="the fine-tuning candidate's input channels")
    nproc: int = Field(1, ge=1, description="data-parallel processes per fine-tuning run (torchrun)")
    thresholds: dict[str, float] | None = None
    include_disputed: bool = True
    seed: int = 0


@dataclass
class GraderOutcome:
    model_id: str
    model_dir: Path
    card: dict
    metrics: dict  # the chosen head's out-of-fold figures
    warnings: list[str]
    lines: list[str]


def _check(table: pd.DataFrame, cfg: GraderConfig) -> pd.DataFrame:
    for col in ("cache_key", "label", cfg.group_by):
        if col not in table.columns:
            raise TrainDataError(f"the labelled table has no {col!r} column")
    if not cfg.include_disputed and "disputed" in table:
        table = table[~table["disputed"].astype(bool)]
    if "preprocess_key" in table:
        stale = table[table["preprocess_key"] != cfg.preprocess.digest()]
        if len(stale):
            raise TrainDataError(f"{len(stale)} labelled micrographs were preprocessed with other parameters; re-run "
                                 "`micrograde ingest` on them with the current parameters")
    unknown = sorted(set(table["label"]) - set(LABELS))
    if unknown:
        raise TrainDataError(f"unknown labels {unknown}; labels are {', '.join(LABELS)}")
    if len(table) < MIN_LABELLED:
        raise TrainDataError(f"only {len(table)} labelled micrographs: label at least {MIN_LABELLED} to train")
    if table["label"].nunique() < 2:
        raise TrainDataError(f"every labelled micrograph is {table['label'].iloc[0]!r}: label at least two classes")
    return table.reset_index(drop=True)


def _class_warnings(counts: dict[str, int]) -> list[str]:
    out = []
    for label, n in counts.items():
        if n == 0:
            out.append(f"no {label!r} labels: this model never grades a micrograph {label}; label some to change that")
        elif n < MIN_PER_CLASS:
            out.append(f"only {n} {label!r} label{'s' if n > 1 else ''} (fewer than {MIN_PER_CLASS}): grades of "
                       f"{label} are unreliable; label more {label} micrographs")
    return out


def _candidates(cfg: GraderConfig, n: int) -> tuple[list[str], dict[str, str]]:
    """Heads to cross-validate, and those skipped with the reason."""
    unknown = [h for h in cfg.heads if h not in HEADS]
    if unknown:
        raise TrainDataError(f"unknown head(s) {', '.join(unknown)}; heads are {', '.join(HEADS)}")
    heads = [BASELINE, *[h for h in cfg.heads if h != BASELINE]]
    skipped: dict[str, str] = {}
    if n < MIN_FOR_CHOICE:
        few = f"not evaluated: {n} labels are too few to choose between heads (fewer than {MIN_FOR_CHOICE})"
        skipped = dict.fromkeys([*heads[1:], "finetune"], few)
        return [BASELINE], skipped
    from micrograde.models.grading.finetune import finetune_available

    reason = finetune_available(cfg.finetune)
    if reason:
        skipped["finetune"] = reason
    else:
        heads.append("finetune")
    return heads, skipped


def train_grader(
    table: pd.DataFrame,
    cache_dir: Path,
    model_dir: Path,
    cfg: GraderConfig | None = None,
    *,
    model_id: str,
    command_line: str | Sequence[str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _line: None,
    references: Mapping[str, Sequence[str]] | None = None,
    reference_rows: pd.DataFrame | None = None,
) -> GraderOutcome:
    """Cross-validate, choose, refit on every label and save; see the module docstring.

    ``references``: the cache keys that stand for each session (:func:`.sessions.reference_keys` of every
    micrograph of the session in the workspace, labelled or not); default: its labelled micrographs.
    ``reference_rows``: the catalogue rows of those micrographs (``cache_key`` and the CTF columns), so that
    the user's CTF estimates of unlabelled reference micrographs enter the sessions' medians too."""
    cfg = cfg or GraderConfig()
    table = _check(table, cfg)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        log(line)

    y = np.array([LABELS.index(v) for v in table["label"]], dtype=np.int64)
    groups = table[cfg.group_by].fillna("(missing)").astype(str).to_numpy()
    counts = {label: int((y == i).sum()) for i, label in enumerate(LABELS)}
    warnings = _class_warnings(counts)
    heads, skipped = _candidates(cfg, len(table))
    for w in warnings:
        say(f"WARNING: {w}")
    say(f"{len(table)} labelled micrographs ({', '.join(f'{k} {v}' for k, v in counts.items())}) "
        f"in {len(set(groups))} {cfg.group_by}(s)")

    embedder = Embedder(cfg.embedder) if needs_embedding(heads) else None
    store = EmbeddingStore(Path(cache_dir), embedder) if embedder is not None else None
    feats = load_features(list(table["cache_key"]), Path(cache_dir), embeddings=store, extra=table, progress=progress)
    session_ref = None
    if needs_session(heads):
        feats, session_ref = _session_block(feats, table, Path(cache_dir), references, reference_rows)
        say(session_ref["note"])
    folds = make_folds(groups, y, group_by=cfg.group_by, seed=cfg.seed)
    say(folds.note)
    sklearn_heads = [h for h in heads if h in HEADS]
    oof = cross_validate(feats, y, folds, sklearn_heads, seed=cfg.seed,
                         on_fold=lambda i, n: say(f"cross-validation: fold {i}/{n} done"))
    if "finetune" in heads:
        from micrograde.models.grading.finetune import finetune_oof

        oof["finetune"] = finetune_oof(table, Path(cache_dir), y, folds, cfg, progress=progress, log=say)
    summaries = {h: summarise(y, oof[h], groups) for h in heads}
    choice = choose_robust(y, {h: oof[h] for h in heads}, summaries=summaries)
    chosen = choice.head
    for h in heads:
        s = summaries[h]
        mark = " <- chosen" if h == chosen else (" (baseline)" if h == BASELINE else "")
        say(f"  {h:10s} out-of-fold macro-F1 {s['macro_f1']:.3f}  accuracy {s['accuracy']:.3f}  "
            f"log-loss {s['log_loss']:.3f}{mark}")
    for h, why in skipped.items():
        say(f"  {h:10s} {why}")
    if choice.note:
        say(f"  {choice.note}")

    from micrograde.models.calibration import calibration_summary

    log_p = np.log(np.clip(oof[chosen], 1e-6, 1.0))
    calibration = calibration_summary(log_p, y) | {"fitted_on": "out-of-fold predictions of the chosen head"}
    temperature = float(calibration["temperature"])
    evaluation = _evaluation(folds, table, y, groups, counts, oof, summaries, heads, skipped, chosen, temperature,
                             warnings)
    evaluation["choice"] = {
        "rule": f"the best out-of-fold macro-F1 ships only if it beats {PREFERRED} by more than one bootstrap "
                f"standard error of the paired difference, and {PREFERRED} ships only if it is not below the baseline",
        "preferred": PREFERRED,
        "best_out_of_fold": choice.best, "lead_over_preferred": choice.gap, "noise": choice.noise,
    }
    oof_fig = evaluation["oof"]
    say(f"out-of-fold estimate (head and temperature chosen inside each fold: "
        f"{', '.join(evaluation['fold_choices'])}): macro-F1 {oof_fig['macro_f1']:.3f}, accuracy "
        f"{oof_fig['accuracy']:.3f}, ECE {oof_fig['ece']:.3f} on {len(table)} labels; the chosen head's own "
        f"{evaluation['chosen_oof']['macro_f1']:.3f} (optimistic: chosen on it); baseline macro-F1 "
        f"{evaluation['baseline_oof']['macro_f1']:.3f}")

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if chosen == "finetune":
        from micrograde.models.grading.finetune import finetune_refit

        files = finetune_refit(table, Path(cache_dir), y, model_dir, cfg, progress=progress, log=say)
        final = {}
    else:
        final = {chosen: fit_head(chosen, feats, y, seed=cfg.seed)}
        files = {"heads": save_heads(model_dir, final)}
    training_csv = table[["cache_key", "label", cfg.group_by]].to_csv(index=False).encode()
    atomic_write_bytes(model_dir / TRAINING_FILE, training_csv)
    import hashlib

    files["training"] = {"file": TRAINING_FILE, "sha256": hashlib.sha256(training_csv).hexdigest()}
    card = _card(model_id, cfg, table, counts, chosen, evaluation, calibration, files, embedder, feats,
                 command_line, warnings)
    if session_ref is not None and chosen in HEADS and needs_session([chosen]):
        card["input"]["session_reference"] = {k: v for k, v in session_ref.items() if k != "note"}
    import json

    atomic_write_text(model_dir / "card.json", json.dumps(card, indent=2, allow_nan=False) + "\n")
    for line in diversity_lines(diversity_table(table)):
        say(line)
    return GraderOutcome(model_id, model_dir, card, oof_fig, warnings, lines)


def _session_block(feats, table: pd.DataFrame, cache_dir: Path, references, reference_rows=None) -> tuple:
    """``feats`` with the ``session`` block, and what the card keeps of it (the fallback median).
    ``reference_rows``: catalogue rows of the reference micrographs, whose CTF estimates enter the medians."""
    from micrograde.models.grading.features import reference_median
    from micrograde.models.grading.sessions import MAX_REFERENCE, MIN_REFERENCE, add_session_block, reference_keys

    sessions = list(table["session"]) if "session" in table.columns else [None] * len(table)
    if references is None:
        references = reference_keys(list(table["cache_key"]), sessions)
    fallback = reference_median(feats)
    measures = feats.names["measures"]
    extra = table if reference_rows is None else pd.concat([reference_rows, table], ignore_index=True)
    feats, used = add_session_block(
        feats, sessions, references, fallback=fallback,
        load=lambda keys: load_features(keys, cache_dir, measure_names=measures, extra=extra))
    measured = [f"{s}: {n}" for s, n in sorted(used.items()) if n]
    short = sorted(s for s, n in used.items() if n == 0)
    parts = []
    if measured:
        parts.append(f"each micrograph also measured against its session's median (reference micrographs: "
                     f"{', '.join(measured)})")
    if short or not measured or any(s is None or s != s for s in sessions):  # s != s: NaN
        parts.append(f"{'' if measured else 'each micrograph '}measured against the training micrographs' median "
                     f"where a session has fewer than {MIN_REFERENCE} micrographs or none is named"
                     f"{' (' + ', '.join(short) + ')' if short else ''}")
    note = "; ".join(parts)
    return feats, {"min_micrographs": MIN_REFERENCE, "max_micrographs": MAX_REFERENCE,
                   "fallback": [None if np.isnan(v) else float(v) for v in fallback], "note": note}


def _evaluation(folds, table, y, groups, counts, oof, summaries, heads, skipped, chosen, temperature, warnings) -> dict:
    calibrated = apply_temperature_to_probs(oof[chosen], temperature)
    procedure, picks = selection_oof(y, {h: oof[h] for h in heads}, folds)
    return {
        "protocol": folds.protocol,
        "protocol_note": folds.note,
        "group_by": folds.group_by,
        "n_folds": len(folds),
        "n_labelled": int(len(table)),
        "class_counts": counts,
        "chosen": chosen,
        "baseline": BASELINE,
        "candidates": [
            {"name": h, "description": HEADS[h].description if h in HEADS else "fine-tuned network",
             **({k: summaries[h][k] for k in ("macro_f1", "accuracy", "balanced_accuracy", "ece", "log_loss")}
                if h in summaries else dict.fromkeys(("macro_f1", "accuracy", "balanced_accuracy", "ece", "log_loss"))),
             "skipped": skipped.get(h)}
            for h in [*heads, *[s for s in skipped if s not in heads]]
        ],
        "oof": summarise(y, procedure, groups),
        "oof_estimate": ("the whole procedure's out-of-fold figures: each fold graded by the head and temperature "
                         "chosen on the other folds' out-of-fold predictions"),
        "fold_choices": picks,
        "chosen_oof": summarise(y, calibrated, groups),
        "baseline_oof": summaries[BASELINE],
        "temperature": temperature,
        "warnings": list(warnings),
    }


def _feature_card(feats) -> list[dict]:
    """Name, unit, group and version of every registry feature the heads may read (scores, measures and local
    blocks)."""
    from micrograde.pipeline.features import feature

    out = []
    for name in (*feats.names["scores"], *feats.names["measures"], *feats.names.get("local", ())):
        f = feature(name)
        out.append({"name": name, "unit": f.unit if f else None, "title": f.title if f else name,
                    "group": f.group if f else None, "version": f.version if f else None})
    return out


def _card(model_id, cfg, table, counts, chosen, evaluation, calibration, files, embedder, feats, command_line,
          warnings) -> dict:
    from micrograde.models.cards import jsonable, versions

    weights = embedder.weights.to_dict() if embedder is not None else None
    return jsonable({
        "schema": 2,
        "kind": "grader",
        "id": model_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "micrograde_version": versions()["micrograde"],
        "command_line": command_line,
        "classes": list(LABELS),
        "backbone": {"name": cfg.embedder.backbone},
        "weights": weights,
        "input": {
            "preprocess": cfg.preprocess.model_dump() | {"preprocess_key": cfg.preprocess.digest()},
            "target_pixel_size": cfg.preprocess.target_pixel_size,
            "layout": "views",
            "size": cfg.embedder.input_size,
            "embedder": cfg.embedder.model_dump(),
            "embedder_id": embedder.id if embedder is not None else None,
            "measures": list(feats.names["measures"]),
            "features": _feature_card(feats),
        },
        "head": {"kind": chosen, "description": evaluation["candidates"][[c["name"] for c in evaluation["candidates"]]
                                                                         .index(chosen)]["description"],
                 "blocks": list(HEADS[chosen].blocks) if chosen in HEADS else ["views"]},
        "evaluation": evaluation,
        "metrics": evaluation["oof"],
        "calibration": calibration,
        "training": {
            "n_labelled": int(len(table)),
            "n_fitted": int(len(table)),
            "class_counts": counts,
            "group_by": cfg.group_by,
            "groups": sorted(map(str, table[cfg.group_by].dropna().unique())),
            "data_digest": digest_of(f"{k}:{lab}" for k, lab in sorted(zip(table["cache_key"], table["label"],
                                                                           strict=True))),
            "diversity": diversity_table(table).to_dict("records"),
            "score_ranges": score_ranges(table),
            "evaluated_on": f"out-of-fold predictions ({evaluation['protocol']})",
        },
        "train_config": cfg.model_dump(mode="json"),
        "thresholds": cfg.thresholds or {},
        "warnings": warnings,
        "versions": versions(),
        "files": files,
    })
