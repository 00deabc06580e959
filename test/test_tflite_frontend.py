"""The TFLite / Larq Compute Engine frontend: LCE-converted fixtures
(test/data/tflite, made by scripts/make_tflite_fixtures.py) compiled and
compared with the outputs LCE's own interpreter computed for them, and
hostile files refused with one clean error."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from ir_helpers import op_counts

import bnnc
from bnnc.cli import main
from bnnc.context import make_context
from bnnc.errors import BnncError, ModelLoadError, UnsupportedError
from bnnc.frontend.tflite_import import import_tflite
from bnnc.pipeline import run_passes

DATA = Path(__file__).parent / "data" / "tflite"
MODELS = ["quicknet_block", "birealnet_block", "binary_chain", "dense_bnn"]
# LceBconv2d layers per fixture (each must become a bnn.bconv2d); dense_bnn's
# binary layers are FULLY_CONNECTED on LceQuantize/LceDequantize (-> bnn.bdense)
BINARY_CONVS = {"quicknet_block": 3, "birealnet_block": 2, "binary_chain": 4, "dense_bnn": 0}
# Larq zoo architectures at 64x64, 10 classes, logits (random weights; see the
# fixture script): 16 LceBconv2d layers each, 23 in BinaryDenseNet28 (binary
# convs on batch-normed concatenations). QuickNetLarge (3.7 MB, 32 binary
# layers) is not committed: the script regenerates it; it passes the same tests.
ZOO = ["quicknet_small", "quicknet", "birealnet", "binary_densenet28", "binary_resnet_e18"]


@pytest.fixture(scope="module", params=MODELS + ZOO)
def compiled(request):
    name = request.param
    return name, bnnc.compile(str(DATA / f"{name}.tflite"), num_threads=1)


def test_matches_lce_interpreter(compiled):
    name, fn = compiled
    x = np.load(DATA / f"{name}.input.npy")
    want = np.load(DATA / f"{name}.output.npy")
    got = fn(x)
    assert got.shape == want.shape and got.dtype == np.float32
    # binary accumulators are exact; the float layers (stem, BN folded into
    # LCE's multiplier/bias, classifier) differ from TFLite's only by rounding
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    if name == "binary_chain":  # binary convs end to end: exact
        np.testing.assert_array_equal(got, want)


def test_signature_keeps_nhwc(compiled):
    name, fn = compiled
    x = np.load(DATA / f"{name}.input.npy")
    assert fn.signature.inputs[0].shape == x.shape  # NHWC, as in the file


@pytest.mark.parametrize("name", MODELS)
def test_binary_layers_stay_binary(name):
    module = import_tflite(str(DATA / f"{name}.tflite"))
    assert op_counts(module)["bnn.bconv2d"] == BINARY_CONVS[name]
    run_passes(module, "recognize-binarization,fold-weight-binarization,canonicalize,dce", make_context())
    ops = op_counts(module)
    if name == "dense_bnn":
        assert ops["bnn.bdense"] == 2 and ops["bnn.linear"] > 0, ops  # the float first and binary rest
    else:
        assert ops["bnn.bconv2d"] == BINARY_CONVS[name], ops


@pytest.mark.parametrize("name", ZOO)
def test_zoo_layers_binary_where_lce_is(name):
    """After the graph-level pipeline every LceBconv2d is a bnn.bconv2d and the
    only float convs are the file's CONV_2D / DEPTHWISE_CONV_2D (stem, transitions,
    shortcuts): no binary layer fell back to a float conv."""
    from collections import Counter

    from bnnc.driver import CompileOptions, lower
    from bnnc.frontend.tflite_reader import read_tflite

    path = str(DATA / f"{name}.tflite")
    in_file = Counter(op.name for op in read_tflite(path).ops)
    ops = Counter(op.name for op in lower(import_tflite(path), CompileOptions(), "bnn").walk())
    assert ops["bnn.bconv2d"] == in_file["LceBconv2d"] >= 16
    assert ops["bnn.conv2d"] == in_file["CONV_2D"] + in_file["DEPTHWISE_CONV_2D"]
    assert ops["bnn.pack"] == in_file["LceQuantize"]  # each binary conv reads packed bits


@pytest.mark.parametrize("name", ["birealnet", "binary_resnet_e18", "birealnet_block", "quicknet_block"])
def test_same_max_pool_reads_its_input(name):
    """A SAME max pool whose extra padded row/column is after (stride 2 on an
    even size) becomes a ceil-mode bnn.max_pool2d on its input, not a -inf
    bnn.pad and a VALID pool: these fixtures (matched against LCE above) have
    one, so test_matches_lce_interpreter checks its windows."""
    from bnnc.dialects import bnn

    module = import_tflite(str(DATA / f"{name}.tflite"))
    pools = [op for op in module.walk() if isinstance(op, bnn.MaxPool2dOp)]
    assert [op.ceil_mode is not None for op in pools] == [True], pools
    assert not isinstance(pools[0].input.owner, bnn.PadOp)
    pads = [op for op in module.walk() if isinstance(op, bnn.PadOp)]
    assert all(op.value.value.data != float("-inf") for op in pads)


def test_cli_compile_emit_bnn(capsys):
    rc = main(["compile", str(DATA / "binary_chain.tflite"), "--emit=bnn"])
    out = capsys.readouterr().out
    assert rc == 0
    ops = op_counts(out)
    assert ops["bnn.bconv2d"] > 0 and ops["bnn.bmax_pool2d"] > 0, ops  # LceBMaxPool2d on packed bits


# ------------------------------------------------------------------ hostile files


def _table_vector(tab, slot: int) -> int:
    """Byte position of a table's vector field (its length word is 4 bytes before)."""
    return tab.Vector(tab.Offset(slot))


def _model(buf: bytes):
    import tflite

    return tflite.Model.GetRootAsModel(buf, 0)


def _write(tmp_path: Path, data: bytes, name: str = "bad.tflite") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _refused(path: str, error=ModelLoadError, *needles: str) -> str:
    with pytest.raises(error) as info:
        import_tflite(path)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, msg
    return msg


@pytest.fixture
def chain() -> bytes:
    return (DATA / "binary_chain.tflite").read_bytes()


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated(tmp_path, chain, keep):
    path = _write(tmp_path, chain[: int(len(chain) * keep)])
    _refused(path, ModelLoadError, path)


def test_not_a_tflite_file(tmp_path):
    _refused(_write(tmp_path, b"\x00" * 64), ModelLoadError, "TFL3")


def test_buffer_past_end_of_file(tmp_path, chain):
    buf = bytearray(chain)
    m = _model(chain)
    b = next(m.Buffers(i) for i in range(m.BuffersLength()) if m.Buffers(i).DataLength() > 0)
    start = _table_vector(b._tab, 4)
    struct.pack_into("<I", buf, start - 4, 0x7FFFFFF0)  # the data vector's length
    _refused(_write(tmp_path, bytes(buf)), ModelLoadError, "outside the file")


@pytest.mark.parametrize("dim, needle", [(-3, "must be positive"), (1 << 30, "more than")])
def test_bad_shapes(tmp_path, chain, dim, needle):
    buf = bytearray(chain)
    t = _model(chain).Subgraphs(0).Tensors(0)
    struct.pack_into("<i", buf, _table_vector(t._tab, 4), dim)  # shape[0]
    _refused(_write(tmp_path, bytes(buf)), ModelLoadError, needle)


def test_truncated_custom_options(tmp_path, chain):
    buf = bytearray(chain)
    m = _model(chain)
    g = m.Subgraphs(0)
    op = next(g.Operators(i) for i in range(g.OperatorsLength()) if g.Operators(i).CustomOptionsLength() > 0)
    struct.pack_into("<I", buf, _table_vector(op._tab, 14) - 4, 5)  # custom_options: 5 bytes left
    _refused(_write(tmp_path, bytes(buf)), ModelLoadError, "custom options")


def test_unknown_custom_op(tmp_path, chain):
    buf = chain.replace(b"LceBMaxPool2d", b"LceBMinPool2d")
    _refused(_write(tmp_path, buf), UnsupportedError, "LceBMinPool2d")


def test_random_corruption_never_crashes(tmp_path, chain):
    """Byte flips and truncations: the importer accepts or raises a BnncError, nothing else."""
    rng = np.random.default_rng(7)
    outcomes = set()
    for i in range(120):
        buf = bytearray(chain)
        for _ in range(int(rng.integers(1, 8))):
            buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
        if i % 3 == 0:
            buf = buf[: int(rng.integers(0, len(buf)))]
        try:
            import_tflite(_write(tmp_path, bytes(buf)))
            outcomes.add("ok")
        except BnncError:
            outcomes.add("refused")
    assert "refused" in outcomes


def test_cli_exit_2_one_line(tmp_path, chain, capsys):
    path = _write(tmp_path, chain[:100])
    rc = main(["compile", path, "--emit=bnn"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("bnnc: error:") and path in err[0]
