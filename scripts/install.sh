#!/usr/bin/env bash
# Create .venv and install bnnc with its test dependencies.
# torch==2.13.0 first: it is the CPU wheel; bnnc's own requirement is a range it satisfies.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test]"
