#!/usr/bin/env bash
# Install (if needed) and run every test: the lit/FileCheck IR suite, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/bnnc ] || bash scripts/install.sh
.venv/bin/lit -sv test/lit
.venv/bin/python -m pytest test -q
