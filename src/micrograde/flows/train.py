"""Prefect flows that train and evaluate models on the workspace's consensus labels."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from micrograde.labeling.consensus import consensus_table
from micrograde.models.training.run import TrainOutcome, TrainRunConfig, evaluate_model, train_model
from micrograde.pipeline.catalogue.schema import ModelRow
from micrograde.pipeline.catalogue.query import micrograph_table
from micrograde.pipeline.catalogue.workspace import Workspace, new_run_id

from micrograde.flows.context import RunContext

__all__ = [
    "labelled_table",
    "latest_model_id",
    "ModelNotFoundError",
    "DistributedTrainingError",
    "train_flow",
    "evaluate_flow",
]


class DistributedTrainingError(RuntimeError):
    """A data-parallel (torchrun) training run failed; its processes printed why."""


class ModelNotFoundError(LookupError):
    """No trained model (or not the one asked for) in the workspace."""


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


def latest_model_id(ws: Workspace, model_id: str | None = None) -> str:
    with ws.session() as s:
        if model_id:
            if s.get(ModelRow, model_id) is None:
                known = s.execute(select(ModelRow.id)).scalars().all()
                raise ModelNotFoundError(f"no model {model_id!r} in {ws.root} (have: {', '.join(known) or 'none'})")
            return model_id
        row = s.execute(select(ModelRow).order_by(ModelRow.created_at.desc())).scalars().first()
    if row is None:
        raise ModelNotFoundError(f"no trained model in {ws.root}: run `micrograde train --workspace {ws.root}` first")
    return row.id


@task(name="load-labelled", cache_policy=NO_CACHE)
def load_labelled_task(ctx: RunContext) -> pd.DataFrame:
    return labelled_table(ctx.workspace())


@task(name="fine-tune", cache_policy=NO_CACHE)
def train_task(ctx: RunContext, table: pd.DataFrame, cfg: TrainRunConfig, model_id: str) -> TrainOutcome:
    ws = ctx.workspace()
    return train_model(table, ws.cache_dir, ws.models_dir / model_id, cfg, model_id=model_id,
                       command_line=ctx.command, progress=ctx.progress,
                       log=print if ctx.progress else (lambda _l: None))


@task(name="fine-tune-ddp", cache_policy=NO_CACHE)
def train_ddp_task(ctx: RunContext, cfg: TrainRunConfig, model_id: str, nproc: int) -> TrainOutcome:
    """Fine-tune in ``nproc`` data-parallel processes launched by torchrun (see src/micrograde/flows/train_ddp.py).

    The run context (its catalogue URL may hold a password) goes to the ranks in a file only this user
    can read, never on the command line, which every user of the machine sees in ``ps``."""
    from micrograde.models.checkpoint import read_card
    from micrograde.pipeline.io.atomic import create_private

    model_dir = ctx.workspace().models_dir / model_id
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path, ctx_path = Path(tmp) / "train.json", Path(tmp) / "context.json"
        cfg_path.write_text(cfg.model_dump_json())
        create_private(ctx_path, ctx.model_dump_json().encode())
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "micrograde.flows.train_ddp", str(ctx_path), str(cfg_path), model_id]
        done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        raise DistributedTrainingError(f"distributed training failed (torchrun exit code {done.returncode})")
    card = read_card(model_dir)
    return TrainOutcome(model_id, model_dir, card, card.get("metrics", {}), card.get("warnings", []), [])


@task(name="register-model", cache_policy=NO_CACHE)
def register_task(ctx: RunContext, outcome: TrainOutcome) -> None:
    with ctx.workspace().transaction() as s:
        s.add(ModelRow(id=outcome.model_id, path=str(outcome.model_dir), backbone=outcome.card["backbone"]["name"],
                       card=outcome.card))


def _train_name() -> str:
    return f"train-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


@flow(name="micrograde-train", flow_run_name=_train_name, validate_parameters=False)
def train_flow(ctx: RunContext, cfg: TrainRunConfig | None = None, nproc: int = 1) -> TrainOutcome:
    """Fine-tune a model on the consensus labels and register it (the facility's retrain flow calls it).

    ``nproc`` > 1 fine-tunes in that many data-parallel processes (torchrun; one per GPU)."""
    cfg = cfg or TrainRunConfig()
    model_id = new_run_id("model-")
    if nproc > 1:
        outcome = train_ddp_task(ctx, cfg, model_id, nproc)
    else:
        table = load_labelled_task(ctx)
        outcome = train_task(ctx, table, cfg, model_id)
    register_task(ctx, outcome)
    return outcome


@flow(name="micrograde-evaluate", validate_parameters=False)
def evaluate_flow(ctx: RunContext, model_id: str | None = None, sessions: Sequence[str] | None = None,
                  split: str = "test") -> dict:
    """Metrics of a model on labelled micrographs: its test split (default), or chosen sessions."""
    from micrograde.models.infer import Predictor

    ws = ctx.workspace()
    model_id = latest_model_id(ws, model_id)
    predictor = Predictor(ws.models_dir / model_id, device="cpu")
    table = labelled_table(ws)
    training = predictor.card.get("training", {})
    if sessions:
        table, what = table[table["session"].isin(list(sessions))], f"sessions {', '.join(sessions)}"
    elif split == "all":
        what = "every labelled micrograph"
    else:
        group_by = training.get("split_by", "session")
        groups = training.get("groups", {}).get(split) or []
        table, what = table[table[group_by].astype(str).isin(groups)], f"the {split} split ({group_by}: {', '.join(groups)})"
    key = predictor.card["input"]["preprocess"].get("preprocess_key")
    if key:
        table = table[table["preprocess_key"] == key]
    if table.empty:
        raise ModelNotFoundError(f"no labelled micrographs in {what} to evaluate model {model_id} on")
    metrics = evaluate_model(predictor, ws.cache_dir, table)
    return {"model_id": model_id, "evaluated_on": what, "n": int(len(table)), "metrics": metrics}
