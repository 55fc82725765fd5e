"""The command reference (docs/cli.md), generated from the commands' own ``--help``.

Regenerate after changing a command: ``.venv/bin/python -m micrograde.flows.cli.reference > docs/cli.md``
(a test fails while the checked-in file is out of date).
"""

from __future__ import annotations

import click

from micrograde.flows.cli.main import main

__all__ = ["cli_reference"]


def _walk(command: click.Command, name: str, parent: click.Context | None):
    settings = {**main.context_settings, "max_content_width": 100, "terminal_width": 100}
    ctx = click.Context(command, info_name=name, parent=parent, **settings)
    yield ctx
    if isinstance(command, click.Group):
        for sub in sorted(command.commands):
            yield from _walk(command.commands[sub], sub, ctx)


def cli_reference() -> str:
    """Markdown with every command's help text (groups first, then their commands, by name)."""
    parts = ["# Command reference\n", "Generated from `micrograde --help`; do not edit by hand.\n"]
    for ctx in _walk(main, "micrograde", None):
        parts.append(f"\n## `{ctx.command_path}`\n\n```text\n{ctx.get_help().rstrip()}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    print(cli_reference(), end="")
