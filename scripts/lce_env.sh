#!/usr/bin/env bash
# Create the environment for Larq Compute Engine's own interpreter: the oracle
# for .tflite files and the reference side of bench/lce_table.py.
#
#   bash scripts/lce_env.sh [DIR]        # default: $LCE_ENV or ~/.cache/bnnc-lce-env
#
# It is separate from bnnc's venv because LCE 0.16 is built against numpy<2.
# Only the interpreter is used (larq_compute_engine.tflite.python.interpreter),
# which needs flatbuffers, tqdm and numpy, not TensorFlow: bench/lce_table.py
# imports it without running the package's __init__ (that imports the
# converter, which needs TensorFlow). The converter environment that makes the
# fixtures is described in scripts/make_tflite_fixtures.py.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-${LCE_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/bnnc-lce-env}}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x "$DIR/bin/python" ]; then
  "$PY" -m venv "$DIR"
fi
"$DIR/bin/pip" install -q "larq-compute-engine==0.16.*" "numpy<2"
# the check: the interpreter loads and runs a committed fixture without TensorFlow
"$DIR/bin/python" - <<'PY'
import importlib.util, sys, types
import numpy as np
spec = importlib.util.find_spec("larq_compute_engine")
pkg = types.ModuleType("larq_compute_engine")
pkg.__path__ = list(spec.submodule_search_locations)
sys.modules["larq_compute_engine"] = pkg
from larq_compute_engine.tflite.python.interpreter import Interpreter
x = np.load("test/data/tflite/binary_chain.input.npy")
y = Interpreter(open("test/data/tflite/binary_chain.tflite", "rb").read(), num_threads=1).predict(x)
assert np.array_equal(y, np.load("test/data/tflite/binary_chain.output.npy"))
assert "tensorflow" not in sys.modules
print("LCE interpreter ready:", sys.executable)
PY
