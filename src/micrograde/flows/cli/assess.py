"""``micrograde assess``: grade micrographs with a trained model and write a report folder."""

from __future__ import annotations

import sys

import click

from micrograde.flows.cli.options import db_option, ingest_config_from, ingest_options, run_context, workspace_option
from micrograde.flows.cli.train import parse_thresholds, threshold_option
from micrograde.flows.runners import check_runner_options, dask_options, task_runner_from_options

__all__ = ["register"]


@click.command("assess")
@click.argument("sources", nargs=-1)
@workspace_option
@db_option
@click.option("--model", "model_id", default=None, help="Model id (default: the workspace's latest).")
@click.option("--star", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Your RELION micrographs star (e.g. micrographs_ctf.star): keep its optics and columns, filter rows.")
@click.option("--cs", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Your cryoSPARC exposures .cs: write the filtered selected.cs and selected.csg.")
@click.option("--include-medium", is_flag=True, help="Select good and medium micrographs (default: good only).")
@threshold_option
@click.option("--assess-session", "sessions", multiple=True,
              help="Also assess the catalogued micrographs of this session (repeatable).")
@click.option("--review-url", default="http://127.0.0.1:8000", show_default=True,
              help="Base URL of the labelling app: gallery items link there for review ('' for none).")
@ingest_options
@dask_options
def assess_cmd(sources, workspace, db, model_id, star, cs, include_medium, thresholds, sessions, review_url,
               workers, dask_address, dask_workers, **params):
    """Grade micrographs good / medium / bad and print the report folder.

    SOURCES (files, folders, globs) are ingested first when new (same rules and quarantine as
    `micrograde ingest`). Writes WORKSPACE/reports/<run-id>/ with report.html, predictions.csv,
    selected.star and the cryoSPARC selection.

    \b
    Example:
      micrograde assess /data/grid8/ --workspace ws/ --star micrographs_ctf.star --threshold good=0.7
    """
    if not sources and not sessions:
        raise click.UsageError("give micrograph files/folders to assess, or --assess-session NAME")
    from micrograde.flows.runtime import prefect_session

    check_runner_options(dask_address, dask_workers, workers)
    ctx = run_context(workspace, db)
    with prefect_session(ctx.root):  # before Prefect is imported: its home, logging and API
        runner = task_runner_from_options(dask_address, dask_workers, workers)
        from micrograde.flows.assess import AssessConfig

        cfg = AssessConfig(model_id=model_id, thresholds=parse_thresholds(thresholds) or None,
                           include_medium=include_medium, star=star, cs=cs, review_url=review_url or None,
                           sessions=tuple(sessions) or None)
        from micrograde.models.checkpoint import ModelCardMismatch, ModelLoadError
        from micrograde.pipeline.export.cryosparc import CsFormatError
        from micrograde.pipeline.export.relion import StarFormatError

        from micrograde.flows.assess import NothingToAssessError, assess_flow
        from micrograde.flows.train import ModelNotFoundError

        try:
            outcome = assess_flow.with_options(task_runner=runner)(list(sources), ctx, ingest_config_from(params), cfg)
        except FileNotFoundError as exc:
            raise click.UsageError(str(exc)) from exc
        except (StarFormatError, CsFormatError) as exc:
            raise click.UsageError(str(exc)) from exc
        except (ModelNotFoundError, ModelLoadError, ModelCardMismatch, NothingToAssessError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    counts = ", ".join(f"{k} {v}" for k, v in outcome.counts.items())
    click.echo(f"assessed {outcome.n_micrographs} micrographs ({counts}); {outcome.n_rejected} rejected", err=True)
    for w in outcome.warnings:
        click.echo(f"WARNING (out of distribution): {w}", err=True)
    if outcome.unmatched:
        shown = ", ".join(outcome.unmatched[:10]) + (" ..." if len(outcome.unmatched) > 10 else "")
        click.echo(f"{len(outcome.unmatched)} names in your star/cs matched no assessed micrograph: {shown}", err=True)
    click.echo(str(outcome.report_dir))


def register(main: click.Group) -> None:
    main.add_command(assess_cmd)
