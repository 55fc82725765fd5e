"""``python -m micrograde`` runs the command line."""

from micrograde.flows.cli.main import main

if __name__ == "__main__":
    main()
