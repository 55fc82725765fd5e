"""``micrograde masks train``: build a mask model (from simulated sessions, or fine-tuned on painted masks)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from micrograde.flows.cli.options import InputError, workspace_option

__all__ = ["register"]


@click.group("masks")
def masks_group() -> None:
    """Mask models: per-pixel masks of carbon, contamination, crystalline ice and empty regions."""


def _pairs(csv_path: str) -> list[tuple[Path, Path]]:
    import pandas as pd

    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = {"micrograph", "mask"} - set(table.columns)
    if missing:
        raise InputError(f"{csv_path}: needs columns micrograph,mask (missing {sorted(missing)})")
    base = Path(csv_path).resolve().parent
    pairs = [(base / m, base / k) for m, k in zip(table["micrograph"], table["mask"], strict=True) if m and k]
    absent = [str(p) for pair in pairs for p in pair if not p.is_file()]
    if absent:
        raise InputError(f"{csv_path}: {len(absent)} files not found, e.g. {', '.join(absent[:5])}")
    if not pairs:
        raise InputError(f"{csv_path}: no rows with both a micrograph and a mask")
    return pairs


@masks_group.command("train")
@workspace_option
@click.option("--id", "model_id", default=None,
              help="Id of the new mask model (default: 'default' from simulation, 'painted-<time>' from masks).")
@click.option("--masks-csv", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV with columns micrograph,mask (paths relative to the CSV), e.g. a simulation's truth.csv "
                   "or exported painted masks. Without it: simulated sessions.")
@click.option("--base", default=None, help="Fine-tune this mask model (id) instead of starting from ImageNet.")
@click.option("--n", "n_sim", type=click.IntRange(min=1), default=None,
              help="Simulated micrographs (without --masks-csv; default 48).")
@click.option("--family", type=click.Choice(["a", "b", "both"]), default="both", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Optimiser steps (default 300).")
@click.option("--seed", type=int, default=0, show_default=True)
def train_cmd(workspace, model_id, masks_csv, base, n_sim, family, steps, seed):
    """Train a mask model into WORKSPACE/mask_models/<id>/ and print its folder.

    \b
    Examples:
      micrograde masks train --workspace ws/                          # the default model, explicitly
      micrograde masks train --workspace ws/ --masks-csv painted.csv --base default --id facility
    """
    from micrograde.models.segmentation.default import (
        DEFAULT_MASK_MODEL,
        DEFAULT_SIM_COUNT,
        build_mask_model,
        mask_model_dir,
        painted_examples,
    )
    from micrograde.models.segmentation.train import MaskTrainConfig, simulated_examples

    model_id = model_id or (DEFAULT_MASK_MODEL if not masks_csv else f"painted-{dt.datetime.now():%Y%m%d-%H%M%S}")
    try:
        folder = mask_model_dir(workspace, model_id)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if (folder / "card.json").exists():
        raise InputError(f"mask model {model_id!r} already exists in {folder}; choose another --id")
    base_dir = mask_model_dir(workspace, base) if base else None
    if base_dir is not None and not (base_dir / "card.json").is_file():
        raise InputError(f"--base {base}: no mask model in {base_dir}")
    if masks_csv and n_sim:
        raise InputError("give --masks-csv or --n (simulated), not both")
    cfg = MaskTrainConfig(seed=seed, **({"steps": steps} if steps else {}))
    if masks_csv:
        pairs = _pairs(masks_csv)
        examples = list(painted_examples(pairs, cfg.input))
        source = f"masks: {masks_csv} ({len(pairs)} micrographs)"
    else:
        n = n_sim or DEFAULT_SIM_COUNT
        examples = simulated_examples(n, seed=seed, family=family, cfg=cfg.input, balance_regions=cfg.balance_regions)
        source = f"simulated: {n} micrographs, family {family}, seed {seed}"
    build_mask_model(folder, cfg, examples, base=base_dir, data_source=source, progress=True)
    click.echo(str(folder))


@masks_group.command("import")
@click.argument("mask_file", type=click.Path(exists=True, dir_okay=False))
@workspace_option
@click.option("--micrograph", required=True, help="The micrograph it masks: its path as ingested, or its file name.")
@click.option("--annotator", required=True, help="Who painted it (created with --expertise when new).")
@click.option("--expertise", type=click.Choice(["undergrad", "grad", "postdoc", "senior-scientist"]), default=None,
              help="Expertise of a new annotator.")
def import_cmd(mask_file, workspace, micrograph, annotator, expertise):
    """Store an MRC label map (codes 0-4) as a painted mask (a new version; nothing is overwritten).

    \b
    Example:
      micrograde masks import painted/x.mrc --workspace ws/ --micrograph x.mrc --annotator ana
    """
    from micrograde.labeling.annotators import get_annotator, get_or_create_annotator
    from micrograde.labeling.painted import save_painted
    from micrograde.pipeline.catalogue.query import micrograph_table
    from micrograde.pipeline.catalogue.workspace import Workspace
    from micrograde.pipeline.io.label_maps import read_label_map

    try:
        mask, _ = read_label_map(mask_file)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    with Workspace.open(workspace) as ws:
        table = micrograph_table(ws)
        hit = table[(table["path"] == str(Path(micrograph).resolve())) | (table["path"] == micrograph)
                    | (table["name"] == micrograph)]
        if len(hit) != 1:
            raise InputError(f"--micrograph {micrograph}: {'no' if hit.empty else len(hit)} catalogued micrographs "
                             "match (give its path as ingested)")
        row = hit.iloc[0]
        if mask.shape != (int(row["shape_y"]), int(row["shape_x"])):
            raise InputError(f"{mask_file}: shape {mask.shape} differs from the micrograph's "
                             f"{(int(row['shape_y']), int(row['shape_x']))}")
        try:
            who = get_or_create_annotator(ws, annotator, expertise) if expertise else get_annotator(ws, annotator)
        except Exception as exc:  # noqa: BLE001 - unknown annotator, bad name
            raise InputError(str(exc)) from exc
        saved = save_painted(ws.root, int(row["id"]), str(row["name"]), mask, float(row["pixel_size"]),
                             annotator=who.name, annotator_id=who.id, expertise=who.expertise, source="import")
    click.echo(str(saved.path))


@masks_group.command("export")
@workspace_option
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the masks and masks.csv.")
def export_cmd(workspace, out):
    """Write the painted masks (per micrograph: its most expert annotator's latest) as MRC label maps and
    OUT/masks.csv (micrograph,mask), the input of `masks train --masks-csv`.

    \b
    Example:
      micrograde masks export --workspace ws/ --out painted/
    """
    from micrograde.labeling.painted import export_painted
    from micrograde.pipeline.catalogue.query import micrograph_table
    from micrograde.pipeline.catalogue.workspace import Workspace

    with Workspace.open(workspace) as ws:
        table = micrograph_table(ws)
        written = export_painted(ws.root, out, dict(zip(table["id"].astype(int), table["path"], strict=True)))
    click.echo(f"{len(written)} painted masks written to {out}", err=True)
    click.echo(str(Path(out) / "masks.csv"))


def register(main: click.Group) -> None:
    main.add_command(masks_group)
