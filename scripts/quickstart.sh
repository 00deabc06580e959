#!/usr/bin/env bash
# Install bnnc (into .venv) and run the quick start: compile the trained digits
# BNN and the random-weight example BNN, check them against PyTorch (accuracy,
# outputs), print both timings and the model sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/bnnc ] || bash scripts/install.sh
# a .venv made before the trained example: add scikit-learn (in the [test] extra)
.venv/bin/python -c "import sklearn" 2>/dev/null || .venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python examples/quickstart.py
