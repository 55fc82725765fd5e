"""docs/cli.md is the generated command reference and must match the commands."""

from pathlib import Path

from micrograde.flows.cli.main import main
from micrograde.flows.cli.reference import cli_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_is_up_to_date():
    assert DOC.read_text() == cli_reference(), (
        "docs/cli.md is stale: run `.venv/bin/python -m micrograde.flows.cli.reference > docs/cli.md`"
    )


def test_every_command_has_a_usage_example():
    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    missing = [" ".join(p) for p, cmd in walk(main, ["micrograde"])
               if not getattr(cmd, "commands", None) and "micrograde " not in (cmd.help or "")]
    assert not missing, f"commands without a usage example in their help: {missing}"
