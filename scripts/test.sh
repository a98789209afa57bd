#!/usr/bin/env bash
# Set up (idempotent, cached) and run the whole test suite: unit tests and lab end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
