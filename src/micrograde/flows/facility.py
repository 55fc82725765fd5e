"""Facility flows: watch a microscope's folder, sweep it on a schedule, retrain when labels grow.

* :func:`watch_flow` - one watch run: a few polls of the folder (see
  :mod:`micrograde.pipeline.io.watch` for when a file counts as complete); each poll's complete files
  are ingested and committed; then the rolling report of every session that received micrographs
  (``reports/session-<name>/``) is rewritten; finally, when ``retrain_after`` new labels exist
  since the latest model, the retrain deployment is started (served mode).
* :func:`sweep_flow` - the cron flow: the same over the whole folder (every file unchanged for
  ``min_age_s`` that passes the probe, plus those given up on), and every session report of the
  folder is rebuilt.
* :func:`retrain_flow` - trains a new model (on demand, or when enough new labels exist).

Retries: only transient I/O errors are retried (the ingest tasks and the folder poll); validation
failures are quarantined by ingest and never retried. A file that fails for another reason (a bug,
the database gone) is not committed: the watcher delivers it again at its next run, the next sweep
tries it again, and the run fails loudly after finishing the other files and the reports. A lock
beside the watch state keeps two runs from polling one folder at once, two sweeps of one folder
wait for each other, and each report folder has one writer at a time (``flows/assess.py``); how
many flow runs and tasks run at once is set where the flows are served
(:mod:`micrograde.flows.deployments`). Each run is renamed after what it did, e.g. ``watch: 3 new
files, 1 rejected``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE as NO_CACHE
from pydantic import Field
from sqlalchemy import select

from micrograde.flows.context import RunContext
from micrograde.flows.ingest import IngestFailed, ingest_flow
from micrograde.flows.runners import make_task_runner, subflow
from micrograde.pipeline.catalogue.ingest import IngestSummary, is_transient
from micrograde.pipeline.catalogue.schema import Micrograph, ModelRow, SessionRow
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.config import FrozenModel, IngestConfig
from micrograde.pipeline.io.watch import CompletionTracker, Handover, WatchConfig, settled_files, state_lock

__all__ = [
    "FacilityConfig",
    "SweepOutcome",
    "RetrainOutcome",
    "watch_flow",
    "sweep_flow",
    "retrain_flow",
    "watch_state_path",
    "session_report_name",
    "new_labels_since_model",
]

log = logging.getLogger(__name__)


class FacilityConfig(FrozenModel):
    """How the facility flows watch, assess and retrain (the deployments' parameters)."""

    watch: WatchConfig = WatchConfig()
    polls: int = Field(3, ge=1, description="polls of the folder in one watch run")
    poll_interval_s: float = Field(5.0, ge=0, description="seconds between polls in one watch run")
    assess: bool = Field(True, description="write the rolling session reports (needs a trained model)")
    model_id: str | None = Field(None, description="model for the reports (default: the latest)")
    include_medium: bool = False
    thresholds: dict[str, float] | None = None
    star: str | None = None
    cs: str | None = None
    review_url: str | None = None
    retrain_after: int | None = Field(None, ge=1, description="new labels since the latest model that start a retrain")
    retrain_deployment: str | None = Field(None, description="deployment the watch flow starts to retrain")
    train: dict[str, Any] = Field(default_factory=dict, description="GraderConfig fields for retraining")


@dataclass
class SweepOutcome:
    """What one watch or sweep run did."""

    kind: str  # "watch" | "sweep"
    files: int = 0  # files handed to ingest
    ingested: int = 0
    skipped: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    waiting: int = 0  # files seen but not complete yet
    gave_up: int = 0  # files handed over although they never passed the completeness probe
    micrograph_ids: list[int] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)  # session -> report folder
    retrain_started: bool = False
    notes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # path -> error; tried again by the next run

    def add(self, summary: IngestSummary, handed: list[Handover]) -> None:
        self.files += summary.n_files
        self.ingested += summary.ingested
        self.skipped += summary.skipped
        self.rejected += summary.rejected
        for reason, n in summary.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n
        self.micrograph_ids.extend(summary.micrograph_ids)
        self.gave_up += sum(h.reason == "gave-up" for h in handed)

    def title(self) -> str:
        if self.kind == "watch" and self.files == 0:
            text = "watch: nothing new" + (f" ({self.waiting} being written)" if self.waiting else "")
        else:
            noun = "new files" if self.kind == "watch" else "files"
            text = f"{self.kind}: {self.files} {noun}, {self.rejected} rejected"
        if self.reports:
            text += f", {len(self.reports)} session report{'s' * (len(self.reports) != 1)}"
        if self.retrain_started:
            text += ", retrain started"
        return text


@dataclass
class RetrainOutcome:
    trained: bool
    new_labels: int
    model_id: str | None = None
    model_dir: str | None = None
    metrics: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def title(self) -> str:
        if not self.trained:
            return f"retrain: skipped ({self.new_labels} new labels)"
        return f"retrain: model {self.model_id} ({self.new_labels} new labels)"


# -- helpers ------------------------------------------------------------------------------------
def watch_state_path(ws: Workspace, watch_dir: str | Path) -> Path:
    """The tracker's state file for one watched folder (inside the workspace)."""
    folder = Path(watch_dir).expanduser().resolve()
    tag = hashlib.sha256(str(folder).encode()).hexdigest()[:10]
    return ws.root / "facility" / f"watch-{re.sub(r'[^A-Za-z0-9._-]+', '_', folder.name)}-{tag}.json"


def session_report_name(session: str) -> str:
    """The stable report folder of a session (``reports/session-<name>/``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", session).strip("._")
    return f"session-{safe or 'unnamed'}"


def sessions_of(ws: Workspace, micrograph_ids: list[int]) -> list[str]:
    if not micrograph_ids:
        return []
    ids = sorted(set(micrograph_ids))
    with ws.session() as s:
        names: set[str] = set()
        for i in range(0, len(ids), 500):
            names.update(
                s.execute(
                    select(SessionRow.name).join(Micrograph, Micrograph.session_id == SessionRow.id)
                    .where(Micrograph.id.in_(ids[i : i + 500])).distinct()
                ).scalars()
            )
    return sorted(names)


def _latest_model(ws: Workspace) -> ModelRow | None:
    with ws.session() as s:
        return s.execute(select(ModelRow).order_by(ModelRow.created_at.desc()).limit(1)).scalar_one_or_none()


def new_labels_since_model(ws: Workspace) -> int:
    """Micrographs with a consensus label whose latest annotation is newer than the latest model.

    Counts new labels and changed ones (review corrections) alike; with no model yet, every
    labelled micrograph counts. Time-based, so it needs nothing from the model card.
    """
    from micrograde.labeling.consensus import consensus_table
    from micrograde.labeling.store import latest_annotations

    labelled = set(consensus_table(ws)["micrograph_id"])
    model = _latest_model(ws)
    if model is None:
        return len(labelled)
    latest = latest_annotations(ws)
    if latest.empty:
        return 0
    created = latest["created_at"].map(_as_utc)
    cutoff = _as_utc(model.created_at)
    newer = set(latest.loc[created > cutoff, "micrograph_id"])
    return len(newer & labelled)


def _as_utc(value):
    import datetime as dt

    if value.tzinfo is None:  # SQLite drops the zone; everything is written in UTC
        return value.replace(tzinfo=dt.UTC)
    return value


def _rename_run(name: str) -> None:
    """Give the current flow run a name that says what it did (best effort)."""
    try:
        from prefect.client.orchestration import get_client
        from prefect.runtime import flow_run

        if flow_run.id:
            with get_client(sync_client=True) as client:
                client.update_flow_run(flow_run.id, name=name)
    except Exception as exc:  # noqa: BLE001 - a cosmetic step must never fail a run
        log.debug("could not rename the flow run: %s", exc)


def _retry_io(_task, _task_run, state) -> bool:
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - only classified
        return is_transient(exc)
    return False


@task(name="watch-poll", retries=2, retry_delay_seconds=2, retry_condition_fn=_retry_io, cache_policy=NO_CACHE)
def poll_task(tracker: CompletionTracker, watch_dir: str) -> list[Handover]:
    return tracker.scan(watch_dir)


@task(name="sweep-list", retries=2, retry_delay_seconds=2, retry_condition_fn=_retry_io, cache_policy=NO_CACHE)
def settled_task(watch_dir: str, cfg: WatchConfig) -> list[Handover]:
    return settled_files(watch_dir, cfg)


def _ingest_config(ws: Workspace, ingest_cfg: IngestConfig | None, cfg: FacilityConfig) -> IngestConfig:
    """Ingest with the preprocessing of the model the reports use, so assessing needs no second pass."""
    ingest_cfg = ingest_cfg or IngestConfig()
    if not cfg.assess or (cfg.model_id is None and _latest_model(ws) is None):
        return ingest_cfg
    from micrograde.flows.assess import model_preprocess
    from micrograde.pipeline.catalogue.query import latest_model_id

    model_dir = ws.models_dir / latest_model_id(ws, cfg.model_id)
    return ingest_cfg.model_copy(update={"preprocess": model_preprocess(model_dir)})


def _ingest(out: SweepOutcome, handed: list[Handover], ctx: RunContext, ingest_cfg: IngestConfig) -> list[Handover]:
    """Ingest the handed files that still exist; returns those done with (all but the failed ones)."""
    present = [h for h in handed if os.path.exists(h.path)]
    if len(present) < len(handed):
        out.notes.append(f"{len(handed) - len(present)} file(s) vanished before ingest")
    if not present:
        return handed
    try:
        summary = subflow(ingest_flow)([h.path for h in present], ctx, ingest_cfg)
    except IngestFailed as exc:
        summary = exc.summary
        out.failed.update(summary.failed)
    out.add(summary, present)
    return [h for h in handed if h.path not in summary.failed]


def _assess_config(cfg: FacilityConfig, session: str):
    from micrograde.flows.assess import AssessConfig

    return AssessConfig(
        model_id=cfg.model_id,
        thresholds=cfg.thresholds,
        include_medium=cfg.include_medium,
        star=cfg.star,
        cs=cfg.cs,
        review_url=cfg.review_url,
        sessions=(session,),
        report_name=session_report_name(session),
    )


def _update_reports(out: SweepOutcome, ctx: RunContext, cfg: FacilityConfig, sessions: list[str]) -> list[str]:
    """Rewrite each session's rolling report; returns the failures (session: error)."""
    if not cfg.assess or not sessions:
        return []
    if cfg.model_id is None and _latest_model(ctx.workspace()) is None:
        out.notes.append("no model trained yet: micrographs ingested, reports wait for `micrograde train`")
        return []
    from micrograde.flows.assess import assess_flow

    failures = []
    for session in sessions:
        try:
            res = subflow(assess_flow)([], ctx, None, _assess_config(cfg, session))
        except Exception as exc:  # noqa: BLE001 - one session's report must not block the others
            log.exception("session report for %s failed", session)
            failures.append(f"{session}: {type(exc).__name__}: {exc}")
            continue
        out.reports[session] = str(res.report_dir)
        out.notes.extend(res.warnings)
    return failures


def _maybe_start_retrain(out: SweepOutcome, ws: Workspace, cfg: FacilityConfig) -> None:
    if cfg.retrain_after is None:
        return
    n_new = new_labels_since_model(ws)
    if n_new < cfg.retrain_after:
        return
    if cfg.retrain_deployment is None:
        out.notes.append(f"{n_new} new labels since the latest model: run `micrograde train` to retrain")
        return
    from prefect.deployments import run_deployment

    run_deployment(cfg.retrain_deployment, parameters={"force": False}, timeout=0, as_subflow=False)
    out.retrain_started = True


def _finish(out: SweepOutcome, failures: list[str]) -> SweepOutcome:
    failed = f", {len(out.failed)} file(s) failed" if out.failed else ""
    _rename_run(out.title() + failed + (f", {len(failures)} report(s) failed" if failures else ""))
    problems = [f"{path}: {error}" for path, error in out.failed.items()] + failures
    if problems:
        raise RuntimeError(f"{out.kind} finished with failures (files are tried again by the next run): "
                           + "; ".join(problems))
    return out


# -- flows ----------------------------------------------------------------------------------------
@flow(name="micrograde-watch", flow_run_name="watch", log_prints=True, task_runner=make_task_runner())
def watch_flow(watch_dir: str, ctx: RunContext, ingest_cfg: IngestConfig | None = None,
               cfg: FacilityConfig | None = None) -> SweepOutcome:
    """Pick up the files the microscope finished writing, ingest them, update their session reports."""
    cfg = cfg or FacilityConfig()
    watch_dir = str(Path(watch_dir).expanduser().resolve())
    ws = ctx.workspace()
    out = SweepOutcome("watch")
    state = watch_state_path(ws, watch_dir)
    with state_lock(state) as got:
        if not got:
            out.notes.append("another run is watching this folder; nothing done")
            _rename_run("watch: skipped (another run holds the folder)")
            return out
        tracker = CompletionTracker(cfg.watch, state_path=state)
        ingest_cfg = _ingest_config(ws, ingest_cfg, cfg)
        for i in range(cfg.polls):
            if i:
                time.sleep(cfg.poll_interval_s)
            handed = poll_task(tracker, watch_dir)
            if handed:
                tracker.commit(_ingest(out, handed, ctx, ingest_cfg))  # a failed file stays delivered
        out.waiting = len(tracker.waiting)
    failures = _update_reports(out, ctx, cfg, sessions_of(ws, out.micrograph_ids))
    _maybe_start_retrain(out, ws, cfg)
    return _finish(out, failures)


@flow(name="micrograde-sweep", flow_run_name="sweep", log_prints=True, task_runner=make_task_runner())
def sweep_flow(watch_dir: str, ctx: RunContext, ingest_cfg: IngestConfig | None = None,
               cfg: FacilityConfig | None = None) -> SweepOutcome:
    """Ingest every settled file of the folder and rebuild its session reports."""
    cfg = cfg or FacilityConfig()
    watch_dir = str(Path(watch_dir).expanduser().resolve())
    ws = ctx.workspace()
    out = SweepOutcome("sweep")
    state = watch_state_path(ws, watch_dir)
    with state_lock(state, blocking=True):
        handed = settled_task(watch_dir, cfg.watch)
        done = _ingest(out, handed, ctx, _ingest_config(ws, ingest_cfg, cfg))
        tracker = CompletionTracker(cfg.watch, state_path=state)
        tracker.commit(done)  # the watcher need not hand these over again
    failures = _update_reports(out, ctx, cfg, sessions_of(ws, out.micrograph_ids))
    _maybe_start_retrain(out, ws, cfg)
    return _finish(out, failures)


@flow(name="micrograde-retrain", flow_run_name="retrain", log_prints=True, task_runner=make_task_runner())
def retrain_flow(ctx: RunContext, cfg: FacilityConfig | None = None, force: bool = True) -> RetrainOutcome:
    """Train a new model from the current consensus labels (``force=False``: only past the threshold)."""
    cfg = cfg or FacilityConfig()
    n_new = new_labels_since_model(ctx.workspace())
    threshold = cfg.retrain_after or 1
    if not force and n_new < threshold:
        out = RetrainOutcome(False, n_new)
    else:
        from micrograde.flows.train import train_flow
        from micrograde.models.grading import GraderConfig

        res = subflow(train_flow)(ctx, GraderConfig.model_validate(cfg.train))
        out = RetrainOutcome(True, n_new, res.model_id, str(res.model_dir), dict(res.metrics), list(res.warnings))
    _rename_run(out.title())
    return out
