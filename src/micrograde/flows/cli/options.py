"""Options shared by every command, defined once (never copied per command)."""

from __future__ import annotations

import shlex
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # imported when a command runs, not for `micrograde --help`
    from micrograde.flows.context import RunContext
    from micrograde.pipeline.catalogue.workspace import Workspace

__all__ = [
    "InputError",
    "workspace_option",
    "db_option",
    "open_workspace",
    "run_context",
    "command_line",
    "check_sources",
    "json_option",
    "ingest_options",
    "ingest_config_from",
    "ctf_options",
    "check_ctf_files",
]

workspace_option = click.option(
    "--workspace",
    "workspace",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    envvar="MICROGRADE_WORKSPACE",
    help="Workspace folder (catalogue, cache, models, reports). Env: MICROGRADE_WORKSPACE.",
)

db_option = click.option(
    "--db",
    "db",
    default=None,
    envvar="MICROGRADE_DB",
    metavar="URL",
    help="SQLAlchemy URL of the catalogue, e.g. postgresql+psycopg://user@host/db "
    "(default: SQLite in the workspace). Env: MICROGRADE_DB.",
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


class InputError(click.ClickException):
    """A bad input file or option, found before any work: one line (``Error: ...``), exit code 2."""

    exit_code = 2


def command_line() -> str:
    """The command line as typed (stamped on runs, models and reports)."""
    return shlex.join(["micrograde", *sys.argv[1:]])


def run_context(workspace: str, db: str | None, *, progress: bool = True) -> RunContext:
    """The run context of a command, its workspace opened first (a usage error, exit 2, when it cannot be)."""
    from micrograde.flows.context import RunContext

    ctx = RunContext(root=workspace, db_url=db, command=command_line(), progress=progress)
    _opened(ctx)
    return ctx


def check_sources(sources) -> None:
    """Every source names an existing file or folder, or a glob whose folder exists (exit 2 otherwise)."""
    from micrograde.pipeline.io.discover import check_sources as check

    try:
        check(list(sources))
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from exc


def open_workspace(workspace: str, db: str | None) -> Workspace:
    """Open (creating if needed) the workspace, turning failures into a usage error (exit 2)."""
    from micrograde.flows.context import RunContext

    return _opened(RunContext(root=workspace, db_url=db))


def _opened(ctx: RunContext) -> Workspace:
    from micrograde.pipeline.catalogue.workspace import WorkspaceError

    try:
        return ctx.workspace()
    except WorkspaceError as exc:
        raise click.UsageError(str(exc)) from exc


def ingest_options(func):
    """Options that shape an ingest (``ingest``, ``assess`` and ``flows serve`` share them)."""
    options = [
        click.option(
            "--session",
            default=None,
            help="Session name (default: session.json, EPU/SerialEM metadata, else the nearest folder "
            "whose name is not generic like Data, Movies or GridSquare_N).",
        ),
        click.option(
            "--pixel-size",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Angstrom/pixel; overrides the header (recorded as 'override').",
        ),
        click.option(
            "--stack",
            type=click.Choice(["auto", "movie", "micrographs"]),
            default="auto",
            show_default=True,
            help="How to read a stack: sum a movie, split a stack of micrographs, or decide from the data.",
        ),
        click.option("--permissive", is_flag=True, help="Accept slightly malformed MRC headers (default: strict)."),
        click.option("--microscope", default=None, help="Session metadata: microscope."),
        click.option("--detector", default=None, help="Session metadata: detector (e.g. K3, Falcon 4i)."),
        click.option("--grid-material", default=None, help="Session metadata: grid material (Cu, Au)."),
        click.option("--grid-maker", default=None, help="Session metadata: grid maker (Quantifoil, C-flat...)."),
        click.option("--dose", type=click.FloatRange(min=0), default=None, help="Session metadata: total dose, e/A^2."),
        click.option(
            "--voltage",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            metavar="KV",
            help="Session metadata: accelerating voltage, kV, for the defocus measure (default: the EPU "
            "header, session.json, else 300 assumed).",
        ),
        click.option(
            "--workers", type=click.IntRange(min=1), default=None, help="Parallel files (default: CPU count)."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def ctf_options(func):
    """``--star`` and ``--cs``: the user's RELION / cryoSPARC micrographs files (``ingest`` and ``assess`` share them).

    Their CTF estimates join the micrographs' features (predictions.csv, the report, the grader's inputs);
    ``assess`` also filters them into selected.star / selected.cs."""
    options = [
        click.option("--star", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Your RELION micrographs STAR (e.g. CtfFind/job003/micrographs_ctf.star): its CTF estimates "
                          "(max resolution, figure of merit, astigmatism, defocus, ice-ring density) are stored with "
                          "the micrographs; assess also keeps its optics and columns in selected.star."),
        click.option("--cs", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Your cryoSPARC exposures .cs (e.g. Patch CTF's): its CTF fit resolution, defocus and "
                          "relative ice thickness are stored with the micrographs; assess also writes the filtered "
                          "selected.cs and selected.csg."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def check_ctf_files(star: str | None, cs: str | None, *, strict: bool = True) -> None:
    """Read and check ``--star`` / ``--cs`` before any work (a usage error, exit 2, when one is unusable)."""
    from micrograde.pipeline.io.ctf import CtfFormatError, read_ctf

    try:
        read_ctf(star, cs, strict=strict)
    except (CtfFormatError, FileNotFoundError) as exc:
        raise InputError(str(exc)) from exc


def ingest_config_from(params: dict, preprocess=None):
    """Build the typed :class:`IngestConfig` from the shared ingest options' values."""
    from micrograde.pipeline.config import IngestConfig, PreprocessConfig, SessionMeta

    meta = SessionMeta(
        microscope=params.get("microscope"),
        detector=params.get("detector"),
        grid_material=params.get("grid_material"),
        grid_maker=params.get("grid_maker"),
        dose=params.get("dose"),
        voltage_kv=params.get("voltage"),
    )
    return IngestConfig(
        session=params.get("session"),
        pixel_size=params.get("pixel_size"),
        stack=params.get("stack", "auto"),
        permissive=bool(params.get("permissive")),
        meta=meta,
        preprocess=preprocess or PreprocessConfig(),
        star=params.get("star"),
        cs=params.get("cs"),
    )
