#!/usr/bin/env bash
# Create bench/.venv: the peer tools from bench/requirements.txt (from PyPI), torch (CPU) to
# generate checkpoints, and mlward itself installed from this repository (editable, so every
# run measures the working tree as it is now, through the same `mlward` CLI users run).
# Usage: bash bench/setup.sh            (idempotent: re-run after adding lines to requirements.txt)
set -euo pipefail
cd "$(dirname "$0")"
BENCH="$PWD"
PY="${PYTHON:-python3}"

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned, so a peer's looser requirement cannot pull a different build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -r requirements.txt "torch==2.13.0"
# mlward with every extra, so what it examines does not depend on which peers happen to be here.
.venv/bin/python -m pip install -q -e "$BENCH/..[all]"
.venv/bin/python -m pip freeze > .venv/freeze.txt
echo "bench venv ready: $BENCH/.venv ($(wc -l < .venv/freeze.txt) packages, see .venv/freeze.txt)"
# cdxgen (npm) for bom_bench.py, in its own folder beside the venv (needs Node 20+).
if command -v npm >/dev/null; then
  npm install -s --no-audit --no-fund --prefix "$BENCH/.node" "@cyclonedx/cdxgen@12.8.4"
  echo "cdxgen ready: $BENCH/.node/node_modules/.bin/cdxgen"
fi
