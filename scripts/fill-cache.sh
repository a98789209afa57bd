#!/usr/bin/env bash
# Fill the binary cache (scripts/setup.sh's step). The source: $KUBESMITH_BINARIES_SOURCE, else
# `build` when a Go new enough for the pinned versions is on PATH, else `download` (upstream
# release files checked against the sums pinned in kubesmith/binaries/upstream.py; a file without
# one is refused in one line saying what to install and why). Python: $KUBESMITH_PYTHON, else
# the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${KUBESMITH_PYTHON:-.venv/bin/python}"
export KUBESMITH_CACHE="${KUBESMITH_CACHE:-/var/cache/kubesmith}"
source="${KUBESMITH_BINARIES_SOURCE:-}"
if [ -z "$source" ]; then
  if why=$("$python" -m kubesmith.binaries.toolchain 2>&1); then
    source=build
  else
    echo "setup: $why"
    echo "setup: taking the download path (binaries --source download)"
    source=download
  fi
fi
start=$(date +%s)
"$python" deploy.py binaries --source "$source"
echo "setup: binary cache ready in $(( $(date +%s) - start )) s ($KUBESMITH_CACHE)"
