"""The ``micrograde`` command line (click). Each area registers its commands from its own module."""

from __future__ import annotations

import importlib

import click

from micrograde import __version__

__all__ = ["main", "COMMAND_MODULES"]

#: Modules that add commands: each exposes ``register(main: click.Group)``.
COMMAND_MODULES: tuple[str, ...] = (
    "micrograde.flows.cli.ingest",
    "micrograde.flows.cli.simulate",
    "micrograde.flows.cli.augment",
    "micrograde.flows.cli.train",
    "micrograde.flows.cli.assess",
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


def _short_help_option(command: click.Command) -> None:
    """``-h`` as well as ``--help`` on every command, however it is invoked."""
    command.context_settings.setdefault("help_option_names", ["-h", "--help"])
    for sub in getattr(command, "commands", {}).values():
        _short_help_option(sub)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(main)
_short_help_option(main)

