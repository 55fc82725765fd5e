#!/usr/bin/env bash
# Create ./.venv and install micrograde from the exact working set in constraints.txt (pyproject.toml
# declares compatible ranges; constraints.txt is the tested lock). Idempotent: re-runs only when
# pyproject.toml or constraints.txt changed. torch==2.13.0 goes first (the local CPU wheel), so
# nothing pulls CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.micrograde-installed
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "micrograde: installing into .venv (first run takes a few minutes)" >&2
  pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@"; }
  pip_install --upgrade pip
  pip_install -c constraints.txt torch
  pip_install -c constraints.txt -e ".[test]"
  echo "$want" > "$stamp"
fi
