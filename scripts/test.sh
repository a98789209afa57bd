#!/usr/bin/env bash
# Set up (idempotent, cached) and run the whole test suite: unit tests and lab end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
# Two lab modules at a time (each worker its own bridge and subnet: tests/lab/conftest.py), the
# longest first in the order tests/lab/conftest.py gives (not xdist's, by number of tests).
# The slowest tests are listed at the end (where CI time goes).
exec .venv/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=30 "$@"
