"""``micrograde flows serve|sweep|retrain`` (facility operations) and ``micrograde demo``."""

from __future__ import annotations

import time
from pathlib import Path

import click

from micrograde.flows.cli.options import db_option, ingest_config_from, ingest_options, run_context, workspace_option
from micrograde.flows.runners import dask_options

__all__ = ["register"]


watch_option = click.option(
    "--watch",
    "watch_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=str),
    help="Folder the microscope writes micrographs into.",
)


def _facility_options(func):
    options = [
        click.option("--model", "model_id", default=None, help="Model for the session reports (default: the latest)."),
        click.option("--include-medium", is_flag=True, help="Selections include medium micrographs too."),
        click.option("--review-url", default=None, help="Base URL of the labelling app, for review links."),
        click.option("--min-age", type=click.FloatRange(min=0), default=2.0, show_default=True,
                     help="Seconds a file's size and mtime must stay unchanged before it is read."),
        click.option("--give-up", type=click.FloatRange(min=1), default=600.0, show_default=True,
                     help="Seconds after which a file that never becomes complete is ingested anyway "
                          "(and quarantined as truncated)."),
        click.option("--retrain-after", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Start the retrain deployment when N new labels exist since the latest model."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _facility_config(params: dict, **extra):
    from micrograde.flows.facility import FacilityConfig
    from micrograde.pipeline.io.watch import WatchConfig

    return FacilityConfig(
        watch=WatchConfig(min_age_s=params["min_age"], give_up_s=params["give_up"]),
        model_id=params.get("model_id"),
        include_medium=bool(params.get("include_medium")),
        review_url=params.get("review_url"),
        retrain_after=params.get("retrain_after"),
        **extra,
    )


_FACILITY_KEYS = ("model_id", "include_medium", "review_url", "min_age", "give_up", "retrain_after")


@click.group("flows")
def flows_group() -> None:
    """Facility operations: serve the watch-folder, sweep and retrain flows with Prefect."""


@flows_group.command("serve")
@workspace_option
@db_option
@watch_option
@click.option("--cron", default=None, metavar="CRON", help='Schedule of the full sweep, e.g. "*/10 * * * *".')
@click.option("--interval", type=click.FloatRange(min=5), default=30.0, show_default=True,
              help="Seconds between watch runs.")
@click.option("--limit", type=click.IntRange(min=1), default=2, show_default=True,
              help="Flow runs at once in this process.")
@_facility_options
@dask_options
@ingest_options
def serve_cmd(workspace, db, watch_dir, cron, interval, limit, dask_address, dask_workers, workers, **params):
    """Serve the facility deployments until Ctrl-C: watch (every --interval s), sweep (--cron), retrain.

    Uses the Prefect server in PREFECT_API_URL, else starts a private local one (its database in
    PREFECT_HOME, WORKSPACE/.prefect by default). Trigger a retrain with
    `prefect deployment run micrograde-retrain/retrain` (with PREFECT_API_URL set to the URL printed at start).

    \b
    Example:
      micrograde flows serve --workspace ws/ --watch /data/epu/session7 --cron "*/10 * * * *" \\
          --dask-workers 4 --retrain-after 200
    """
    from micrograde.flows.runners import check_runner_options
    from micrograde.flows.runtime import configure_prefect

    check_runner_options(dask_address, dask_workers, workers)
    if cron is not None:
        _check_cron(cron)
    ctx = run_context(workspace, db, progress=False)
    configure_prefect(ctx.root)
    facility = _facility_config({k: params.pop(k) for k in _FACILITY_KEYS})
    ingest_cfg = ingest_config_from(params)
    from micrograde.flows.deployments import ServeConfig, local_prefect_server, serve_facility

    serve = ServeConfig(ctx=ctx, watch_dir=str(Path(watch_dir).resolve()), cron=cron, interval_s=interval,
                        dask_address=dask_address, workers=workers, limit=limit)
    log = Path(ctx.root) / "facility" / "prefect-server.log"
    with local_prefect_server(log) as url:
        click.echo(f"Prefect API: {url}")
        serve_facility(serve, facility, ingest_cfg, dask_workers=dask_workers)


def _check_cron(cron: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron)
    except ValidationError as exc:
        raise click.BadParameter(f"not a cron expression: {cron!r}", param_hint="--cron") from exc


@flows_group.command("sweep")
@workspace_option
@db_option
@watch_option
@_facility_options
@dask_options
@ingest_options
def sweep_cmd(workspace, db, watch_dir, dask_address, dask_workers, workers, **params):
    """Run one sweep now: ingest every settled file of the folder, rebuild its session reports.

    \b
    Example:
      micrograde flows sweep --workspace ws/ --watch /data/epu/session7
    """
    from micrograde.flows.runners import check_runner_options, task_runner_from_options
    from micrograde.flows.runtime import prefect_session

    check_runner_options(dask_address, dask_workers, workers)
    ctx = run_context(workspace, db)
    with prefect_session(ctx.root):
        runner = task_runner_from_options(dask_address, dask_workers, workers)
        facility = _facility_config({k: params.pop(k) for k in _FACILITY_KEYS})
        ingest_cfg = ingest_config_from(params)
        from micrograde.flows.facility import sweep_flow

        out = sweep_flow.with_options(task_runner=runner)(str(Path(watch_dir).resolve()), ctx, ingest_cfg, facility)
    click.echo(out.title())
    for note in out.notes:
        click.echo(f"  note: {note}")
    for session, folder in sorted(out.reports.items()):
        click.echo(f"  {session}: {folder}")


@flows_group.command("retrain")
@workspace_option
@db_option
@click.option("--after", "retrain_after", type=click.IntRange(min=1), default=None, metavar="N",
              help="Only train when N new labels exist since the latest model.")
def retrain_cmd(workspace, db, retrain_after):
    """Train a new model from the current consensus labels (the retrain flow, run here).

    \b
    Example:
      micrograde flows retrain --workspace ws/ --after 100
    """
    from micrograde.flows.runtime import prefect_session

    ctx = run_context(workspace, db)
    with prefect_session(ctx.root):
        from micrograde.flows.facility import FacilityConfig, retrain_flow

        out = retrain_flow(ctx, FacilityConfig(retrain_after=retrain_after), force=retrain_after is None)
    click.echo(out.title())
    if out.model_dir:
        click.echo(out.model_dir)


@click.command("demo")
@click.option("--workspace", default="micrograde-demo", show_default=True,
              type=click.Path(file_okay=False, path_type=str), help="Workspace folder for the demo.")
@click.option("--n", "n_per_session", type=click.IntRange(min=3), default=None,
              help="Micrographs per simulated session (default 40; 9 with --quick).")
@click.option("--quick", is_flag=True, help="A reduced size (tests, a first look): about a minute.")
@click.option("--seed", type=int, default=0, show_default=True)
def demo_cmd(workspace, n_per_session, quick, seed):
    """Simulate a facility collection, label, train, assess a held-back session; print the report folder.

    Four simulated sessions (three for training, one held back), labels from a senior scientist and
    a noisier grad student, a grader trained with every choice made by leave-one-session-out
    cross-validation (its out-of-fold estimate is printed), the held-back session graded and compared
    with its labels. The last line printed is the report folder (open its report.html in a browser).

    \b
    Example:
      micrograde demo --workspace micrograde-demo
    """
    from micrograde.flows.runtime import prefect_session

    root = Path(workspace).expanduser().resolve()
    check_demo_workspace(root)
    ctx = run_context(str(root), None)
    t0 = time.perf_counter()
    with prefect_session(root):  # before Prefect is imported
        from micrograde.flows.demo import DemoConfig, demo_flow

        cfg = DemoConfig.quick() if quick else DemoConfig()
        cfg = cfg.model_copy(update={"seed": seed, **({"n_per_session": n_per_session} if n_per_session else {})})
        out = demo_flow(ctx, cfg)
    for warning in out.warnings:
        click.echo(f"warning: {warning}")
    click.echo(f"demo finished in {time.perf_counter() - t0:.0f} s; report:")
    click.echo(str(out.report_dir))


def check_demo_workspace(root: Path) -> None:
    """Refuse a non-empty folder that is not a micrograde workspace (the demo never mixes into other files)."""
    if root.exists() and not root.is_dir():
        raise click.UsageError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not (root / "micrograde.db").is_file():
        raise click.UsageError(f"{root} is not empty and is not a micrograde workspace; choose another --workspace")


def register(main: click.Group) -> None:
    main.add_command(flows_group)
    main.add_command(demo_cmd)
