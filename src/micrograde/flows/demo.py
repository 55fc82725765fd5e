"""``micrograde demo``: the whole pipeline on a simulated facility collection, in one command.

Steps (one Prefect flow; embedded defaults only: SQLite workspace, local Prefect, CPU):

1. simulate ``sessions`` sessions of ``n_per_session`` micrographs (``WORKSPACE/sim/``, with
   ``truth.csv``); the last session is held back;
2. ingest the other sessions;
3. import labels from two annotators: a ``senior-scientist`` with the true labels on most
   micrographs (``senior_fraction``) and a ``grad`` with every label but ``grad_flip_rate`` of them
   moved to a neighbouring class; consensus weighs them by expertise;
4. fine-tune the default pretrained backbone briefly (balanced classes, split by session);
5. ingest the held-back session and import the senior scientist's labels for it (after training,
   so the model never saw them; they give the report its evaluation section);
6. assess the held-back session and write the report; its folder is returned (and printed last
   by the command line).

Re-running in the same workspace reuses everything already done (simulation files, ingest cache,
identical label imports) and trains and assesses again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from prefect import flow
from pydantic import Field

from micrograde.pipeline.io.atomic import atomic_write_text
from micrograde.pipeline.config import FrozenModel, IngestConfig

from micrograde.flows.context import RunContext
from micrograde.flows.ingest import ingest_flow
from micrograde.flows.runners import subflow

__all__ = ["DemoConfig", "DemoOutcome", "demo_flow", "SENIOR", "GRAD"]

SENIOR = ("senior-scientist-sim", "senior-scientist")
GRAD = ("grad-sim", "grad")


class DemoConfig(FrozenModel):
    sessions: int = Field(4, ge=2, description="simulated sessions; the last one is held back")
    n_per_session: int = Field(30, ge=3)
    seed: int = 0
    senior_fraction: float = Field(0.85, gt=0, le=1, description="share of micrographs the senior scientist labels")
    grad_flip_rate: float = Field(0.2, ge=0, le=1)
    epochs_head: int = Field(8, ge=0)
    epochs_finetune: int = Field(6, ge=0)
    batch_size: int = Field(16, ge=1)
    input_size: int = Field(224, ge=32)
    min_per_class: int = Field(10, ge=1, description="fewest labelled micrographs per class to train")

    @classmethod
    def quick(cls) -> DemoConfig:
        """A reduced size for the test suite (about a minute on 2 cores)."""
        return cls(n_per_session=9, epochs_head=2, epochs_finetune=1, batch_size=8, input_size=96, min_per_class=3)


@dataclass
class DemoOutcome:
    report_dir: Path
    model_id: str
    held_back: str
    counts: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _step(i: int, text: str) -> None:
    print(f"[{i}/6] {text}", flush=True)


def _labels_csv(path: Path, table: pd.DataFrame) -> Path:
    atomic_write_text(path, table[["micrograph", "label"]].to_csv(index=False))
    return path


def _import(ws, csv: Path, who: tuple[str, str]) -> str:
    from micrograde.labeling.store import import_labels

    res = import_labels(ws, csv, who[0], who[1])
    return f"{res.annotator} ({res.expertise}): {res.n_written} labels written, {res.n_unchanged} unchanged"


@flow(name="micrograde-demo", flow_run_name="demo", validate_parameters=False)
def demo_flow(ctx: RunContext, cfg: DemoConfig | None = None) -> DemoOutcome:
    """Simulate, ingest, label, train, assess: see the module docstring (the steps are subflows)."""
    from micrograde.pipeline.sim.physics import DEFAULT_SESSIONS
    from micrograde.pipeline.sim.files import noisy_labels, write_collection

    from micrograde.models.training.recipe import TrainConfig
    from micrograde.models.training.run import TrainRunConfig
    from micrograde.pipeline.data.splits import SplitConfig

    from micrograde.flows.assess import AssessConfig, assess_flow
    from micrograde.flows.train import train_flow

    cfg = cfg or DemoConfig()
    if cfg.sessions > len(DEFAULT_SESSIONS):
        raise ValueError(f"the simulator has {len(DEFAULT_SESSIONS)} sessions; asked for {cfg.sessions}")
    root_path = Path(ctx.root)
    ws = ctx.workspace()
    progress = ctx.progress
    sim = root_path / "sim"
    seconds: dict[str, float] = {}
    t = time.perf_counter()

    sessions = DEFAULT_SESSIONS[: cfg.sessions]
    _step(1, f"simulating {cfg.sessions} sessions x {cfg.n_per_session} micrographs into {sim}")
    truth = write_collection(sim, cfg.sessions * cfg.n_per_session, seed=cfg.seed, sessions=sessions,
                             balance=True, progress=progress)
    truth = truth.assign(micrograph=[str((sim / m).resolve()) for m in truth["micrograph"]])
    held = sessions[-1].name
    train_truth, held_truth = truth[truth["session"] != held], truth[truth["session"] == held]
    seconds["simulate"], t = time.perf_counter() - t, time.perf_counter()

    train_dirs = [str(sim / s.name) for s in sessions[:-1]]
    _step(2, f"ingesting {len(train_truth)} micrographs of {len(train_dirs)} sessions (holding back {held})")
    summary = subflow(ingest_flow)(train_dirs, ctx, IngestConfig())
    print(f"      ingested {summary.ingested}, already present {summary.skipped}, rejected {summary.rejected}")
    seconds["ingest"], t = time.perf_counter() - t, time.perf_counter()

    _step(3, "importing labels from a senior scientist and a (noisier) grad student")
    labels = root_path / "labels"
    senior = train_truth.sample(frac=cfg.senior_fraction, random_state=cfg.seed).sort_index()
    grad = noisy_labels(train_truth, flip_rate=cfg.grad_flip_rate, seed=cfg.seed + 1)
    print("      " + _import(ws, _labels_csv(labels / "senior.csv", senior), SENIOR))
    print("      " + _import(ws, _labels_csv(labels / "grad.csv", grad), GRAD))
    seconds["labels"], t = time.perf_counter() - t, time.perf_counter()

    _step(4, f"fine-tuning the default backbone ({cfg.epochs_head} + {cfg.epochs_finetune} epochs, CPU)")
    train_cfg = TrainRunConfig(
        train=TrainConfig(epochs_head=cfg.epochs_head, epochs_finetune=cfg.epochs_finetune,
                          batch_size=cfg.batch_size, seed=cfg.seed),
        # the held-back session is the test set: train and validate on whole sessions
        split=SplitConfig(test_fraction=0.0, seed=cfg.seed),
        input_size=cfg.input_size,
        min_per_class=cfg.min_per_class,
    )
    trained = subflow(train_flow)(ctx, train_cfg)
    print(f"      model {trained.model_id}: " + ", ".join(f"{k} {v:.3g}" for k, v in _numbers(trained.metrics)))
    seconds["train"], t = time.perf_counter() - t, time.perf_counter()

    _step(5, f"ingesting the held-back session {held} and its senior-scientist labels (for evaluation)")
    subflow(ingest_flow)([str(sim / held)], ctx, IngestConfig())
    print("      " + _import(ws, _labels_csv(labels / "senior-held-back.csv", held_truth), SENIOR))
    seconds["held-back"], t = time.perf_counter() - t, time.perf_counter()

    _step(6, f"assessing {held} with model {trained.model_id} and writing the report")
    assessed = subflow(assess_flow)([str(sim / held)], ctx, IngestConfig(), AssessConfig(model_id=trained.model_id))
    print("      " + ", ".join(f"{k}: {v}" for k, v in assessed.counts.items()))
    seconds["assess"] = time.perf_counter() - t
    return DemoOutcome(assessed.report_dir, trained.model_id, held, dict(assessed.counts), seconds,
                       list(trained.warnings) + list(assessed.warnings))


def _numbers(metrics: dict) -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)][:4]
