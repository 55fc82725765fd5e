"""``micrograde simulate``: synthetic micrographs with ground truth (truth.csv)."""

from __future__ import annotations

import click

from micrograde.pipeline.sim.model import FAMILY_CHOICES

__all__ = ["register", "simulate_cmd"]


def _positive(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value < 1:
        raise click.BadParameter(f"must be at least 1, got {value}", ctx=ctx, param=param)
    return value


@click.command("simulate")
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option("--n", "n", type=int, required=True, callback=_positive, help="Number of micrographs (>= 1).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same files).")
@click.option(
    "--family",
    type=click.Choice(FAMILY_CHOICES),
    default="a",
    show_default=True,
    help="Rendering family: a, b (written independently of a), or both (sessions of each).",
)
@click.option(
    "--sessions",
    "n_sessions",
    type=int,
    default=None,
    help="Use only the first K built-in sessions of each family (default: all of them).",
)
@click.option(
    "--unbalanced",
    is_flag=True,
    help="Draw labels at the family's natural frequencies instead of equal numbers.",
)
@click.option("--no-masks", is_flag=True, help="Do not write the ground-truth masks (OUT/<session>/masks/).")
def simulate_cmd(
    out: str, n: int, seed: int, family: str, n_sessions: int | None, unbalanced: bool, no_masks: bool
) -> None:
    """Write N synthetic micrographs with known quality into OUT.

    Micrographs are spread over built-in sessions that differ in detector shape, pixel size, MRC
    mode, dose and grid. OUT/<session>/ holds the micrographs, their ground-truth masks in masks/
    (uint8 label maps: 0 usable, 1 carbon, 2 contamination, 3 crystalline ice, 4 empty) and, for
    most sessions, a session.json; OUT/truth.csv holds each micrograph's family, label (good /
    medium / bad), reason tags, mask area fractions and every simulation parameter. Family b is an
    independent rendering (train on one family, test on the other). Re-running into OUT replaces
    the simulator's own files only.

    \b
    Example:
      micrograde simulate sim/ --n 60 --seed 1
      micrograde simulate sim-b/ --n 60 --seed 1 --family b
      micrograde ingest sim/ --workspace ws/
    """
    from pathlib import Path

    from micrograde.pipeline.sim import family_sessions, write_collection

    try:
        sessions = family_sessions(family, n_sessions)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--sessions") from None
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise click.BadParameter(f"{out} exists and is not a folder", param_hint="OUT")
    truth = write_collection(
        root, n, seed=seed, sessions=sessions, balance=not unbalanced, masks=not no_masks, progress=True
    )
    table = truth.pivot_table(index="session", columns="label", values="micrograph", aggfunc="count", fill_value=0)
    table = table.reindex(columns=[c for c in ("good", "medium", "bad") if c in table.columns])
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    click.echo(f"wrote {len(truth)} micrographs to {root}/ (ground truth: {root / 'truth.csv'})")
    click.echo(table.to_string())


def register(main: click.Group) -> None:
    """Add ``simulate`` to the ``micrograde`` command group."""
    main.add_command(simulate_cmd)
