"""The ``micrograde`` command line (click). Each area registers its commands from its own module."""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading

import click

from micrograde import __version__

__all__ = ["main", "run", "COMMAND_MODULES"]

#: Modules that add commands: each exposes ``register(main: click.Group)``.
COMMAND_MODULES: tuple[str, ...] = (
    "micrograde.flows.cli.ingest",
    "micrograde.flows.cli.simulate",
    "micrograde.flows.cli.augment",
    "micrograde.flows.cli.train",
    "micrograde.flows.cli.assess",
    "micrograde.flows.cli.masks",
    "micrograde.flows.cli.label",
    "micrograde.flows.cli.facility",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="micrograde")
def main() -> None:
    """micrograde: grade cryo-EM micrographs good / medium / bad.

    \b
    Typical session:
      micrograde simulate sim/ --n 60              # or use your own micrographs
      micrograde ingest sim/ --workspace ws/
      micrograde label import labels.csv --workspace ws/ --annotator ana --expertise postdoc
      micrograde train --workspace ws/
      micrograde assess new/ --workspace ws/      # prints the report folder
    """
    from micrograde.flows.runtime import configure_process

    configure_process()


def _short_help_option(command: click.Command) -> None:
    """``-h`` as well as ``--help`` on every command, however it is invoked."""
    command.context_settings.setdefault("help_option_names", ["-h", "--help"])
    for sub in getattr(command, "commands", {}).values():
        _short_help_option(sub)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(main)
_short_help_option(main)



def run() -> None:
    """The ``micrograde`` program: run the command line, then end the process without tearing down
    the interpreter.

    Freeing the modules a flow imports (Prefect, pydantic models, numpy, SQLAlchemy) takes a second
    or more on 2 cores and serves no purpose once a command has finished: its files are written
    and closed, its transactions committed. Threads are joined, the exit handlers run (Prefect
    sends its last events there) and the output is flushed, as at a normal exit; then the process
    ends with the command's exit code.
    """
    code: str | int | None
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # noqa: SLF001 - what the interpreter itself runs at exit
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
