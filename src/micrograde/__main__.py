"""``python -m micrograde`` runs the command line."""

from micrograde.flows.cli.main import run

if __name__ == "__main__":
    run()
