"""``micrograde assess``: grade micrographs with a trained model and write a report folder."""

from __future__ import annotations

import sys

import click

from micrograde.flows.cli.options import (
    InputError,
    check_ctf_files,
    check_sources,
    ctf_options,
    db_option,
    ingest_config_from,
    ingest_options,
    run_context,
    workspace_option,
)
from micrograde.flows.cli.train import parse_thresholds, threshold_option
from micrograde.flows.runners import check_runner_options, dask_options, task_runner_from_options
from micrograde.pipeline.config import ASSESS_CHUNK_SIZE

__all__ = ["register"]


@click.command("assess")
@click.argument("sources", nargs=-1)
@workspace_option
@db_option
@click.option("--model", "model_id", default=None, help="Model id (default: the workspace's latest).")
@ctf_options
@click.option("--masks", is_flag=True,
              help="Predict masks of bad regions: REPORT/masks/<stem>.mrc, area_<class> and usable_area columns.")
@click.option("--mask-model", default=None,
              help="Mask model id under WORKSPACE/mask_models/ (default: 'default', trained on first use).")
@click.option(
    "--particles",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Picks to filter by the masks (.star, .cs, .box, .txt; repeatable): REPORT/particles_selected.<ext>.",
)
@click.option("--particle-margin", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Also remove picks within this distance (A) of a masked region.")
@click.option("--include-medium", is_flag=True, help="Select good and medium micrographs (default: good only).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=ASSESS_CHUNK_SIZE, show_default=True,
              help="Micrographs graded and written at a time: the run's memory depends on it, not on its size.")
@threshold_option
@click.option("--assess-session", "sessions", multiple=True,
              help="Also assess the catalogued micrographs of this session (repeatable).")
@click.option("--review-url", default="http://127.0.0.1:8000", show_default=True,
              help="Base URL of the labelling app: gallery items link there for review ('' for none).")
@ingest_options
@dask_options
def assess_cmd(sources, workspace, db, model_id, star, cs, masks, mask_model, particles, particle_margin,
               include_medium, chunk_size, thresholds, sessions, review_url, workers, dask_address, dask_workers,
               **params):
    """Grade micrographs good / medium / bad and print the report folder.

    SOURCES (files, folders, globs) are ingested first when new (same rules and quarantine as
    `micrograde ingest`). Writes WORKSPACE/reports/<run-id>/ with report.html, predictions.csv,
    selected.star and the cryoSPARC selection.

    \b
    Example:
      micrograde assess /data/grid8/ --workspace ws/ --star micrographs_ctf.star --threshold good=0.7
      micrograde assess /data/grid8/ --workspace ws/ --masks --particles autopick.star --particle-margin 50
    """
    if not sources and not sessions:
        raise click.UsageError("give micrograph files/folders to assess, or --assess-session NAME")
    from micrograde.flows.runtime import early_prefect, prefect_session

    check_runner_options(dask_address, dask_workers, workers)
    check_sources(sources)
    check_ctf_files(star, cs, strict=False)  # a selection STAR without CTF columns is fine here
    ingest_cfg = ingest_config_from(params)
    ctx = run_context(workspace, db)
    # Prefect's settings before it is imported; its local API starts while the modules load and the inputs are
    # checked, and is stopped again when an input is bad
    with early_prefect(ctx.root):
        from micrograde.flows.assess import AssessConfig, NothingToAssessError, assess_flow
        from micrograde.flows.inputs import AssessInputError, check_assess_inputs
        from micrograde.models.cards import ModelCardMismatch, ModelLoadError
        from micrograde.pipeline.catalogue.query import ModelNotFoundError

        cfg = AssessConfig(model_id=model_id, thresholds=parse_thresholds(thresholds) or None,
                           include_medium=include_medium, star=star, cs=cs, review_url=review_url or None,
                           sessions=tuple(sessions) or None, masks=masks, mask_model=mask_model,
                           particles=tuple(particles), particle_margin=particle_margin, chunk_size=chunk_size)
        try:  # every input before any work: nothing ingested, no report folder, no Prefect run
            check_assess_inputs(ctx.workspace(), cfg)
            _check_mask_inputs(ctx.root, cfg, sources)
        except AssessInputError as exc:
            raise InputError(str(exc)) from exc
        except (ModelNotFoundError, ModelLoadError, ModelCardMismatch) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    with prefect_session(ctx.root):  # its API
        runner = task_runner_from_options(dask_address, dask_workers, workers)
        try:
            outcome = assess_flow.with_options(task_runner=runner)(list(sources), ctx, ingest_cfg, cfg)
        except (NothingToAssessError, ModelLoadError, ModelCardMismatch) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    counts = ", ".join(f"{k} {v}" for k, v in outcome.counts.items())
    click.echo(f"assessed {outcome.n_micrographs} micrographs ({counts}); {outcome.n_rejected} rejected", err=True)
    for w in outcome.warnings:
        click.echo(f"WARNING (out of distribution): {w}", err=True)
    if outcome.unmatched:
        shown = ", ".join(outcome.unmatched[:10]) + (" ..." if len(outcome.unmatched) > 10 else "")
        click.echo(f"{len(outcome.unmatched)} names in your star/cs matched no assessed micrograph: {shown}", err=True)
    if not star:
        click.echo("note: without --star, selected.star has only the optics micrograde knows (pixel size; voltage "
                   "where a header, session.json or --voltage gave it), no Cs or amplitude contrast", err=True)
    click.echo(str(outcome.report_dir))


def _check_mask_inputs(root, cfg, sources) -> None:
    """The mask model (when named) and the particle files, before any work (AssessInputError: exit 2)."""
    from pathlib import Path

    from micrograde.flows.inputs import AssessInputError
    from micrograde.flows.masks import ParticleInputError, check_particle_inputs

    if cfg.mask_model:
        from micrograde.models.cards import ModelLoadError, read_card
        from micrograde.models.segmentation.default import mask_model_dir
        from micrograde.models.segmentation.inputs import MaskInputConfig
        from micrograde.models.segmentation.store import check_mask_card

        try:
            check_mask_card(
                read_card(mask_model_dir(Path(root), cfg.mask_model)), pixel_size=MaskInputConfig().pixel_size
            )
        except (ModelLoadError, ValueError) as exc:
            raise AssessInputError(f"--mask-model {cfg.mask_model}: {exc}") from exc
    if cfg.particles:
        from micrograde.pipeline.io.discover import discover

        try:
            check_particle_inputs(cfg.particles, [str(p) for p in discover(sources)] if sources else None)
        except ParticleInputError as exc:
            raise AssessInputError(str(exc)) from exc


def register(main: click.Group) -> None:
    main.add_command(assess_cmd)
