"""``micrograde ingest`` and ``micrograde status``."""

from __future__ import annotations

import json
import sys

import click

from micrograde.flows.cli.options import (
    check_ctf_files,
    check_sources,
    ctf_options,
    db_option,
    ingest_config_from,
    ingest_options,
    json_option,
    open_workspace,
    run_context,
    workspace_option,
)
from micrograde.flows.runners import check_runner_options, dask_options, task_runner_from_options

__all__ = ["register"]


@click.command("ingest")
@click.argument("sources", nargs=-1, required=True)
@workspace_option
@db_option
@ingest_options
@ctf_options
@dask_options
@click.option("--no-recursive", is_flag=True, help="Do not descend into sub-folders.")
def ingest_cmd(sources, workspace, db, no_recursive, workers, dask_address, dask_workers, **params):
    """Read, validate and preprocess micrographs into the workspace.

    SOURCES are files, folders or glob patterns (quote globs). Bad files are quarantined with a
    reason and the run goes on; exit code 1 only when nothing usable was found.

    With --star (a RELION CtfFind micrographs STAR) or --cs (cryoSPARC Patch CTF exposures), your
    CTF estimates are stored with the micrographs they name and join their features.

    \b
    Example:
      micrograde ingest /data/session1/ "/data/session2/*.mrc" --workspace ws/ --session grid7
      micrograde ingest /data/grid8/ --workspace ws/ --star CtfFind/job003/micrographs_ctf.star
    """
    from micrograde.flows.runtime import begin_prefect, prefect_session

    check_runner_options(dask_address, dask_workers, workers)
    check_sources(sources)
    check_ctf_files(params.get("star"), params.get("cs"))
    ctx = run_context(workspace, db)
    cfg = ingest_config_from(params).model_copy(update={"recursive": not no_recursive})
    begin_prefect(ctx.root)  # its local API starts while the flow's modules load
    from micrograde.flows.ingest import IngestFailed, ingest_flow

    with prefect_session(ctx.root):
        runner = task_runner_from_options(dask_address, dask_workers, workers)
        try:
            summary = ingest_flow.with_options(task_runner=runner)(list(sources), ctx, cfg)
        except IngestFailed as exc:
            for line in exc.summary.lines():
                click.echo(line)
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    for line in summary.lines():
        click.echo(line)
    if summary.usable == 0:
        click.echo("nothing usable was found", err=True)
        sys.exit(1)


@click.command("status")
@workspace_option
@db_option
@json_option
def status_cmd(workspace, db, as_json):
    """Counts: ingested micrographs per session, rejects with reasons, labels, models, reports.

    \b
    Example:
      micrograde status --workspace ws/ --json
    """
    from micrograde.flows.status import status_lines, workspace_status

    status = workspace_status(open_workspace(workspace, db))
    if as_json:
        click.echo(json.dumps(status, indent=2))
    else:
        click.echo("\n".join(status_lines(status)))


def register(main: click.Group) -> None:
    main.add_command(ingest_cmd)
    main.add_command(status_cmd)
