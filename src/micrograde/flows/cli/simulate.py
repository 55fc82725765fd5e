"""``micrograde simulate``: synthetic micrographs with ground truth (truth.csv)."""

from __future__ import annotations

import click

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
    "--sessions",
    "n_sessions",
    type=int,
    default=None,
    help="Use only the first K built-in sessions (default: all of them).",
)
@click.option(
    "--unbalanced",
    is_flag=True,
    help="Draw labels at natural frequencies (good 0.5, medium 0.3, bad 0.2) instead of equal numbers.",
)
def simulate_cmd(out: str, n: int, seed: int, n_sessions: int | None, unbalanced: bool) -> None:
    """Write N synthetic micrographs with known quality into OUT.

    Micrographs are spread over built-in sessions that differ in detector shape, pixel size, MRC
    mode, dose and grid. OUT/<session>/ holds the .mrc files and a session.json; OUT/truth.csv holds
    each micrograph's label (good / medium / bad), reason tags and every simulation parameter.
    Re-running into OUT replaces the simulator's own files only.

    \b
    Example:
      micrograde simulate sim/ --n 60 --seed 1
      micrograde ingest sim/ --workspace ws/
    """
    from pathlib import Path

    from micrograde.pipeline.sim.physics import DEFAULT_SESSIONS
    from micrograde.pipeline.sim.files import write_collection

    if n_sessions is None:
        n_sessions = len(DEFAULT_SESSIONS)
    if not 1 <= n_sessions <= len(DEFAULT_SESSIONS):
        raise click.BadParameter(
            f"must be between 1 and {len(DEFAULT_SESSIONS)}, got {n_sessions}", param_hint="--sessions"
        )
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise click.BadParameter(f"{out} exists and is not a folder", param_hint="OUT")
    truth = write_collection(
        root, n, seed=seed, sessions=DEFAULT_SESSIONS[:n_sessions], balance=not unbalanced, progress=True
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
