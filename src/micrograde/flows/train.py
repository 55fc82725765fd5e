"""Prefect flows that train and evaluate models on the workspace's consensus labels."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from micrograde.flows.context import RunContext
from micrograde.flows.runners import make_task_runner
from micrograde.labeling.consensus import consensus_table
from micrograde.models.grading import GraderConfig, GraderOutcome, train_grader
from micrograde.pipeline.catalogue.query import ModelNotFoundError, latest_model_id, micrograph_table
from micrograde.pipeline.catalogue.schema import ModelRow
from micrograde.pipeline.catalogue.workspace import Workspace, new_run_id

__all__ = [
    "labelled_table",
    "latest_model_id",
    "ModelNotFoundError",
    "train_flow",
    "evaluate_flow",
]


def labelled_table(ws: Workspace) -> pd.DataFrame:
    """Catalogue rows of every micrograph with a consensus label (``label``, ``disputed``...)."""
    labels = consensus_table(ws)
    table = micrograph_table(ws, ids=list(labels["micrograph_id"]))
    table = table.merge(
        labels[["micrograph_id", "label", "disputed", "n_annotators", "support"]],
        left_on="id",
        right_on="micrograph_id",
    )
    # a stable order (not catalogue ids, which follow the order parallel ingest tasks finished in),
    # so that the same labelled data and seed give the same split and the same training run
    return table.sort_values(["session", "path", "frame"], kind="stable").reset_index(drop=True)


@task(name="load-labelled", cache_policy=NO_CACHE)
def load_labelled_task(ctx: RunContext) -> pd.DataFrame:
    return labelled_table(ctx.workspace())


@task(name="train-grader", cache_policy=NO_CACHE)
def train_task(ctx: RunContext, table: pd.DataFrame, cfg: GraderConfig, model_id: str) -> GraderOutcome:
    from micrograde.flows.assess import reference_rows, workspace_references

    ws = ctx.workspace()
    # every micrograph of a labelled session may stand for it, labelled or not (the first ones ingested)
    references = (workspace_references(ws, table["session"].dropna().unique(), cfg.preprocess.digest())
                  if "session" in table.columns else None)
    return train_grader(table, ws.cache_dir, ws.models_dir / model_id, cfg, model_id=model_id,
                        command_line=ctx.command, progress=ctx.progress,
                        log=print if ctx.progress else (lambda _l: None), references=references,
                        reference_rows=reference_rows(ws, references))


@task(name="register-model", cache_policy=NO_CACHE)
def register_task(ctx: RunContext, outcome: GraderOutcome) -> None:
    with ctx.workspace().transaction() as s:
        s.add(ModelRow(id=outcome.model_id, path=str(outcome.model_dir), backbone=outcome.card["backbone"]["name"],
                       card=outcome.card))


def _train_name() -> str:
    return f"train-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


@flow(name="micrograde-train", flow_run_name=_train_name, validate_parameters=False, task_runner=make_task_runner())
def train_flow(ctx: RunContext, cfg: GraderConfig | None = None) -> GraderOutcome:
    """Train a grader on the consensus labels (candidate heads cross-validated by session, the best refitted on
    every label) and register it (the facility's retrain flow calls it)."""
    cfg = cfg or GraderConfig()
    model_id = new_run_id("model-")
    outcome = train_task(ctx, load_labelled_task(ctx), cfg, model_id)
    register_task(ctx, outcome)
    return outcome


def _training_keys(grader, model_dir: Path) -> set[str]:
    from micrograde.models.grading.grader import read_training_rows

    card = grader.card
    if card.get("kind") == "grader":
        return set(read_training_rows(model_dir, card)["cache_key"])
    return set()  # a micrograde 0.1 model: its training set is not recorded per micrograph


@flow(name="micrograde-evaluate", validate_parameters=False, task_runner=make_task_runner())
def evaluate_flow(ctx: RunContext, model_id: str | None = None, sessions: Sequence[str] | None = None,
                  split: str = "unseen") -> dict:
    """Metrics of a model on labelled micrographs: those it never saw in training (default), every
    labelled one (``split="all"``), or the labelled micrographs of chosen sessions that it never saw."""
    from micrograde.models.grading.grader import load_grader
    from micrograde.models.thresholds import apply_thresholds
    from micrograde.pipeline.data.metrics import classification_metrics

    ws = ctx.workspace()
    model_id = latest_model_id(ws, model_id)
    grader = load_grader(ws.models_dir / model_id)
    table = labelled_table(ws)
    key = grader.card["input"]["preprocess"].get("preprocess_key")
    if key:
        table = table[table["preprocess_key"] == key]
    seen = _training_keys(grader, ws.models_dir / model_id)
    if split == "all":
        what = "every labelled micrograph (including those it was trained on)"
    else:
        table = table[~table["cache_key"].isin(seen)]
        what = "labelled micrographs it was not trained on"
    if sessions:
        table = table[table["session"].isin(list(sessions))]
        what += f" in sessions {', '.join(sessions)}"
    if table.empty:
        raise ModelNotFoundError(f"no {what} to evaluate model {model_id} on: label micrographs it has not seen "
                                 "(its out-of-fold figures are in its card and `micrograde train`'s summary)")
    from micrograde.flows.assess import session_references, with_reference_rows

    known_rows: dict[str, pd.DataFrame] = {}  # the reference micrographs' catalogue rows, read once
    table, references = session_references(ws, grader, table, known_rows=known_rows)
    extra = ({"extra": with_reference_rows(ws, grader, table, references, known_rows)}
             if getattr(grader, "catalogue_features", ()) else {})
    if references is not None:
        extra["references"] = references
    probs = grader.predict(list(table["cache_key"]), cache_dir=ws.cache_dir, **extra)
    predicted, _conf = apply_thresholds(probs, grader.thresholds)
    metrics = classification_metrics(list(table["label"]), predicted, probs)
    return {"model_id": model_id, "evaluated_on": what, "n": int(len(table)), "metrics": metrics,
            "out_of_fold": (grader.card.get("evaluation") or {}).get("oof")}
