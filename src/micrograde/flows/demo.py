"""``micrograde demo``: the whole pipeline on a simulated facility collection, in one command.

Steps (one Prefect flow; embedded defaults only: SQLite workspace, local Prefect, CPU):

1. simulate ``sessions`` sessions of ``n_per_session`` micrographs (``WORKSPACE/sim/``, with
   ``truth.csv``); the last session is held back;
2. ingest the other sessions;
3. import labels from two annotators: a ``senior-scientist`` with the true labels on most
   micrographs (``senior_fraction``) and a ``grad`` with every label but ``grad_flip_rate`` of them
   moved to a neighbouring class; consensus weighs them by expertise;
4. train the grader: every candidate head cross-validated leaving one session out, the best
   refitted on every label; the out-of-fold estimate is printed;
5. ingest the held-back session and import the senior scientist's labels for it (after training,
   so the model never saw them; they give the report its evaluation section);
6. assess the held-back session and write the report; the agreement of its grades with the held-back
   labels is printed beside the out-of-fold estimate, and the report folder is returned (and printed
   last by the command line).

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

from micrograde.flows.context import RunContext
from micrograde.flows.ingest import ingest_flow
from micrograde.flows.runners import make_task_runner, subflow
from micrograde.pipeline.config import FrozenModel, IngestConfig
from micrograde.pipeline.io.atomic import atomic_write_text

__all__ = ["DemoConfig", "DemoOutcome", "demo_flow", "SENIOR", "GRAD"]

SENIOR = ("senior-scientist-sim", "senior-scientist")
GRAD = ("grad-sim", "grad")


class DemoConfig(FrozenModel):
    sessions: int = Field(4, ge=2, description="simulated sessions; the last one is held back")
    n_per_session: int = Field(40, ge=3)
    seed: int = 0
    senior_fraction: float = Field(0.85, gt=0, le=1, description="share of micrographs the senior scientist labels")
    grad_flip_rate: float = Field(0.2, ge=0, le=1)
    finetune: str = Field("auto", description="the grader's fine-tuning candidate (auto: only with a GPU)")

    @classmethod
    def quick(cls) -> DemoConfig:
        """A reduced size for the test suite (about a minute on 2 cores)."""
        return cls(n_per_session=9)


@dataclass
class DemoOutcome:
    report_dir: Path
    model_id: str
    held_back: str
    counts: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    oof_macro_f1: float | None = None  # the grader's out-of-fold estimate
    held_back_macro_f1: float | None = None  # the held-back session's grades against its labels


def _step(i: int, text: str) -> None:
    print(f"[{i}/6] {text}", flush=True)


def _labels_csv(path: Path, table: pd.DataFrame) -> Path:
    atomic_write_text(path, table[["micrograph", "label"]].to_csv(index=False))
    return path


def _import(ws, csv: Path, who: tuple[str, str]) -> str:
    from micrograde.labeling.store import import_labels

    res = import_labels(ws, csv, who[0], who[1])
    return f"{res.annotator} ({res.expertise}): {res.n_written} labels written, {res.n_unchanged} unchanged"


@flow(name="micrograde-demo", flow_run_name="demo", validate_parameters=False, task_runner=make_task_runner())
def demo_flow(ctx: RunContext, cfg: DemoConfig | None = None) -> DemoOutcome:
    """Simulate, ingest, label, train, assess: see the module docstring (the steps are subflows)."""
    from micrograde.flows.assess import AssessConfig, assess_flow
    from micrograde.flows.train import train_flow
    from micrograde.models.grading import GraderConfig
    from micrograde.pipeline.sim.files import noisy_labels, write_collection
    from micrograde.pipeline.sim.physics import DEFAULT_SESSIONS

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

    _step(4, "training the grader (candidate heads cross-validated leaving one session out)")
    trained = subflow(train_flow)(ctx, GraderConfig(finetune=cfg.finetune, seed=cfg.seed))
    ev = trained.card["evaluation"]
    print(f"      model {trained.model_id}: head {ev['chosen']!r}; out-of-fold estimate on {ev['n_labelled']} labels: "
          f"macro-F1 {ev['oof']['macro_f1']:.3f}, accuracy {ev['oof']['accuracy']:.3f} "
          f"(baseline {ev['baseline_oof']['macro_f1']:.3f})")
    seconds["train"], t = time.perf_counter() - t, time.perf_counter()

    _step(5, f"ingesting the held-back session {held} and its senior-scientist labels (for evaluation)")
    subflow(ingest_flow)([str(sim / held)], ctx, IngestConfig())
    print("      " + _import(ws, _labels_csv(labels / "senior-held-back.csv", held_truth), SENIOR))
    seconds["held-back"], t = time.perf_counter() - t, time.perf_counter()

    _step(6, f"assessing {held} with model {trained.model_id} and writing the report")
    assessed = subflow(assess_flow)([str(sim / held)], ctx, IngestConfig(), AssessConfig(model_id=trained.model_id))
    print("      " + ", ".join(f"{k}: {v}" for k, v in assessed.counts.items()))
    held_f1 = _held_back_macro_f1(assessed.report_dir)
    if held_f1 is not None:
        print(f"      held-back session {held}: grades agree with its labels at macro-F1 {held_f1:.3f} "
              f"(out-of-fold estimate {ev['oof']['macro_f1']:.3f})")
    seconds["assess"] = time.perf_counter() - t
    return DemoOutcome(assessed.report_dir, trained.model_id, held, dict(assessed.counts), seconds,
                       list(trained.warnings) + list(assessed.warnings), ev["oof"]["macro_f1"], held_f1)


def _held_back_macro_f1(report_dir: Path) -> float | None:
    """Macro-F1 of the report's grades against the consensus labels it shows (None without labels)."""
    from micrograde.pipeline.data.metrics import classification_metrics

    pred = pd.read_csv(Path(report_dir) / "predictions.csv")
    if "consensus" not in pred:
        return None
    known = pred[pred["consensus"].isin(["good", "medium", "bad"])]
    return classification_metrics(list(known["consensus"]), list(known["label"]))["macro_f1"] if len(known) else None


def _numbers(metrics: dict) -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)][:4]
