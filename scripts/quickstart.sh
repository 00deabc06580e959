#!/usr/bin/env bash
# Install bnnc (into .venv) and run the quick start: compile the example BNN,
# check it against PyTorch, print both timings.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/bnnc ] || bash scripts/install.sh
.venv/bin/python examples/quickstart.py
