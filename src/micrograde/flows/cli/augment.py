"""``micrograde augment preview``: see the training augmentation before training."""

from __future__ import annotations

from pathlib import Path

import click

from micrograde.flows.cli.options import db_option, open_workspace, workspace_option

__all__ = ["register"]


@click.group("augment")
def augment_group() -> None:
    """Training augmentation (blurred, skewed, fragmented, stretched, turned; dose, ice, stripes, defocus)."""


@augment_group.command("preview")
@workspace_option
@db_option
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG file to write.")
@click.option("--n", "n", type=click.IntRange(min=1), default=6, show_default=True, help="Micrographs (rows).")
@click.option("--k", "k", type=click.IntRange(min=1, max=12), default=4, show_default=True,
              help="Augmented samples per micrograph.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: picks micrographs and draws samples.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="AugmentConfig as JSON (default: the training defaults).")
def preview(workspace: str, db: str | None, out: Path, n: int, k: int, seed: int, config_path: Path | None) -> None:
    """Draw originals and augmented samples (image | power spectrum) side by side.

    Labelled micrographs are shown first; unlabelled ones fill the remaining rows.

    \b
    Example:
      micrograde augment preview --workspace ws/ --out grid.png --n 6 --seed 1
    """
    import numpy as np
    import pydantic
    from sqlalchemy import select

    from micrograde.pipeline.catalogue.cache import CacheMissError
    from micrograde.pipeline.catalogue.query import micrograph_table
    from micrograde.pipeline.catalogue.schema import Annotation
    from micrograde.pipeline.data.augment import AugmentConfig, build_augment
    from micrograde.pipeline.data.preview import preview_grid, preview_samples, save_figure_png

    try:
        cfg = AugmentConfig.model_validate_json(config_path.read_text()) if config_path else AugmentConfig(seed=seed)
    except pydantic.ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from exc
    ws = open_workspace(workspace, db)
    try:
        table = micrograph_table(ws)
        table = table[table["cache_key"].notna()]
        if table.empty:
            click.echo(f"No ingested micrographs in {ws.root}: run `micrograde ingest` first.", err=True)
            raise SystemExit(1)
        with ws.session() as s:
            labelled = set(s.execute(select(Annotation.micrograph_id).where(Annotation.label.is_not(None))).scalars())
        rng = np.random.default_rng(seed)
        is_lab = table["id"].isin(labelled).to_numpy()
        order = np.concatenate([rng.permutation(np.flatnonzero(is_lab)), rng.permutation(np.flatnonzero(~is_lab))])
        chosen = table.iloc[order[:n]]
        try:
            pairs, augmented = preview_samples(ws.cache_dir, list(chosen["cache_key"]), build_augment(cfg), k, seed)
        except CacheMissError as exc:
            click.echo(str(exc), err=True)
            raise SystemExit(1) from exc
        titles = [f"{name}\n{session}" for name, session in zip(chosen["name"], chosen["session"], strict=False)]
        fig = preview_grid(pairs, augmented, titles=titles)
        save_figure_png(fig, out)
    finally:
        ws.close()
    click.echo(f"Wrote {out} ({len(pairs)} micrographs x {k} augmented samples).")


def register(main: click.Group) -> None:
    """Add the ``augment`` group to the ``micrograde`` command line."""
    main.add_command(augment_group)
