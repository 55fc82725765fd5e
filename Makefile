# The two commands of the README. Each creates ./.venv and installs what is missing first.
.PHONY: demo test setup

setup:
	@bash scripts/bootstrap.sh

demo: setup
	.venv/bin/micrograde demo --workspace demo-workspace

test: setup
	.venv/bin/python -m pytest
