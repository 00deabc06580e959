"""The `bnnc` command line: refusals (exit 2, one `bnnc: error:` line, no
traceback) and the compile / run / opt paths that work.

Most tests call `bnnc.cli.main([...])` in process (fast); a few run
`python -m bnnc.cli` in a subprocess to check what a user really sees.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from ir_helpers import functions, op_counts

from bnnc.cli import main

HERE = Path(__file__).name

# ---------------------------------------------------------------------------
# models and files
# ---------------------------------------------------------------------------


class BinaryConv(nn.Conv2d):
    def forward(self, x):
        w = self.weight
        alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(x, torch.sign(w) * alpha, None, self.stride, self.padding)


class Net(nn.Module):
    """fp stem -> BN -> sign -> binary conv (alpha) -> BN -> pool -> fp linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(8)
        self.conv = BinaryConv(8, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.bn0(self.stem(x))
        x = self.bn(self.conv(torch.sign(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Interpolate(nn.Module):
    def forward(self, x):
        return torch.sort(x, dim=-1).values  # the unsupported line


class WithInterpolate(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 8, 3), Interpolate())

    def forward(self, x):
        return self.block(x)


class Sorter(nn.Module):
    def forward(self, x):
        return torch.sort(x, dim=1).values


class WithSort(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 8, 1)
        self.sorter = Sorter()

    def forward(self, x):
        return self.sorter(self.head(x))


class MakesMarker:
    """Unpickling this creates a file: what a malicious pickle could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


SHAPE = (1, 3, 8, 8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = Net().eval()
    with torch.no_grad():
        for bn in (model.bn0, model.bn):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2)
    x = torch.randn(*SHAPE)
    f = {"dir": d, "model": model, "x": x}
    f["pt2"] = d / "net.pt2"
    torch.export.save(torch.export.export(model, (x,)), f["pt2"])
    np.save(d / "x.npy", x.numpy())
    f["x.npy"] = d / "x.npy"
    np.save(d / "x64.npy", x.numpy().astype(np.float64))
    f["x64.npy"] = d / "x64.npy"
    np.save(d / "x_shape.npy", np.zeros((1, 3, 9, 9), np.float32))
    f["x_shape.npy"] = d / "x_shape.npy"
    f["ref"] = model(x).detach().numpy()

    f["interp"] = d / "interp.pt2"
    torch.export.save(torch.export.export(WithInterpolate().eval(), (x,)), f["interp"])
    f["sort"] = d / "sort.pt2"
    torch.export.save(torch.export.export(WithSort().eval(), (x,)), f["sort"])

    data = f["pt2"].read_bytes()
    f["truncated"] = d / "truncated.pt2"
    f["truncated"].write_bytes(data[: len(data) // 2])
    f["random"] = d / "random.pt2"
    f["random"].write_bytes(np.random.default_rng(0).bytes(4096))
    f["text"] = d / "notes.pt2"
    f["text"].write_text("this is not a model\n")
    f["textpt"] = d / "notes.pt"
    f["textpt"].write_text("this is not a model\n")
    f["directory"] = d / "adir.pt2"
    f["directory"].mkdir()

    f["dict"] = d / "state.pt"
    torch.save({"w": torch.zeros(3)}, f["dict"])
    f["marker"] = d / "PWNED"
    f["evil"] = d / "evil.pt"
    torch.save(MakesMarker(f["marker"]), f["evil"])
    assert not f["marker"].exists()

    f["script"] = d / "script.pt"
    torch.jit.script(model).save(str(f["script"]))

    f["mlir"] = d / "net.mlir"
    assert main(["compile", str(f["pt2"]), "--emit=bnn", "-o", str(f["mlir"])]) == 0
    f["bad_mlir"] = d / "bad.mlir"
    f["bad_mlir"].write_text("builtin.module {\n  func.func @f(%x: tensor<1xf32>) -> tensor<1xf32> {\n    %y = bnn.nosuchop %x\n")
    f["garbage_mlir"] = d / "garbage.mlir"
    f["garbage_mlir"].write_text("this is not IR at all\n")
    return f


def run_main(capsys, *args) -> tuple[int, str, str]:
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse: --help, usage errors
        rc = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def run_sub(*args, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("BNNC_TRACEBACK", None)
    return subprocess.run(
        [sys.executable, "-m", "bnnc.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env
    )


def assert_user_error(rc: int, err: str, *needles: str) -> str:
    """Exit 2, exactly one `bnnc: error:` message containing every needle, no traceback."""
    assert rc == 2, err
    assert err.count("bnnc: error:") == 1, err
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    message = err[err.index("bnnc: error:") :]
    for needle in needles:
        assert needle in message, f"{needle!r} not in:\n{err}"
    return message


# ---------------------------------------------------------------------------
# unsupported ops
# ---------------------------------------------------------------------------


def test_unsupported_op_subprocess_names_op_module_and_line(files):
    r = run_sub("compile", files["interp"], "--emit=bnn")
    msg = assert_user_error(r.returncode, r.stderr, "aten.sort", "block.1")
    assert re.search(re.escape(HERE) + r":\d+", msg), msg
    line = int(re.search(re.escape(HERE) + r":(\d+)", msg).group(1))
    assert "the unsupported line" in Path(__file__).read_text().splitlines()[line - 1]
    assert r.stdout == ""


def test_unsupported_sort_names_op_and_module(capsys, files):
    rc, out, err = run_main(capsys, "compile", files["sort"], "--emit=bnn")
    msg = assert_user_error(rc, err, "aten.sort", "sorter")
    assert re.search(re.escape(HERE) + r":\d+", msg), msg


def test_unsupported_op_in_run(capsys, files):
    rc, _, err = run_main(capsys, "run", files["interp"], "--input", files["x.npy"], "--output", files["dir"] / "o.npy")
    assert_user_error(rc, err, "aten.sort")
    assert not (files["dir"] / "o.npy").exists()


# ---------------------------------------------------------------------------
# files that are not models
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, needle",
    [
        ("random", "not a torch.export archive"),
        ("text", "not a torch.export archive"),
        ("textpt", "notes.pt"),
        ("directory", "is a directory"),
        ("truncated", "truncated or corrupt"),
    ],
)
def test_not_a_model(capsys, files, key, needle):
    path = files[key]
    rc, out, err = run_main(capsys, "compile", path, "--emit=bnn")
    assert_user_error(rc, err, path.name, needle)
    assert out == ""


def test_missing_file(capsys, files):
    rc, _, err = run_main(capsys, "compile", files["dir"] / "nope.pt2")
    assert_user_error(rc, err, "nope.pt2", "no such file")


def test_unknown_extension(capsys, files):
    p = files["dir"] / "model.caffemodel"
    p.write_bytes(b"\x08\x01")
    rc, _, err = run_main(capsys, "compile", p)
    assert_user_error(rc, err, "model.caffemodel", ".pt2", ".onnx", ".tflite")


def test_garbage_onnx_is_a_clear_error(capsys, files):
    p = files["dir"] / "model.onnx"
    p.write_bytes(b"\x08\x01")
    rc, _, err = run_main(capsys, "compile", p)
    assert_user_error(rc, err, "model.onnx", "truncated or corrupt")


# A name used in an outer region and defined only inside a nested one:
# xDSL's parser leaves the use as a forward reference (found by the mutation
# fuzzer of test_hostile_inputs, on a max pool's loops).
OUT_OF_SCOPE_IR = """func.func @f(%a: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %n step %c1 {
    %n = arith.constant 8 : index
  }
  func.return
}
"""


@pytest.mark.parametrize("command", [["opt", "-p", "convert-scf-to-cf"], ["compile", "--emit=llvm", "-o", "-"]])
def test_value_defined_only_in_a_nested_region_is_refused(capsys, tmp_path, command):
    path = tmp_path / "scope.mlir"
    path.write_text(OUT_OF_SCOPE_IR)
    rc, _, err = run_main(capsys, command[0], path, *command[1:])
    assert_user_error(rc, err, "scope.mlir", "scf.for (operand 1)", "not defined in its scope")


def test_truncated_pt2_subprocess(files):
    r = run_sub("compile", files["truncated"], "--emit=bnn")
    assert_user_error(r.returncode, r.stderr, "truncated.pt2", "truncated or corrupt")


def test_pickle_of_dict_refused_without_trust(capsys, files):
    rc, _, err = run_main(capsys, "compile", files["dict"], "--emit=bnn")
    assert_user_error(rc, err, "state.pt", "arbitrary code", "--trust")
    # with --trust it is unpickled, and is not a module
    rc, _, err = run_main(capsys, "compile", files["dict"], "--emit=bnn", "--trust")
    assert_user_error(rc, err, "state.pt", "holds a dict, not an nn.Module")


def test_malicious_pickle_never_unpickled(files):
    r = run_sub("compile", files["evil"], "--emit=bnn")
    assert_user_error(r.returncode, r.stderr, "evil.pt", "arbitrary code", "--trust")
    r = run_sub("run", files["evil"], "--input", files["x.npy"], "--output", files["dir"] / "evil_out.npy")
    assert_user_error(r.returncode, r.stderr, "evil.pt", "arbitrary code")
    assert not files["marker"].exists()


# ---------------------------------------------------------------------------
# TorchScript and input shapes
# ---------------------------------------------------------------------------


def test_torchscript_needs_input_shape(capsys, files):
    rc, out, err = run_main(capsys, "compile", files["script"], "--emit=bnn")
    assert_user_error(rc, err, "script.pt", "--input-shape")
    assert out == ""


def test_torchscript_with_input_shape_works(capsys, files, tmp_path):
    rc, out, err = run_main(capsys, "compile", files["script"], "--input-shape", "1,3,8,8", "--emit=bnn")
    assert rc == 0, err
    # (the TorchScript path currently yields a float bnn.conv2d for the binary conv: exact, just not binary)
    (arg,) = functions(out)["script"].function_type.inputs.data
    assert arg.get_shape() == (1, 3, 8, 8) and op_counts(out)["bnn.bconv2d"] > 0
    y = tmp_path / "y.npy"
    rc, _, err = run_main(capsys, "run", files["script"], "--input", files["x.npy"], "--output", y)
    assert rc == 0, err
    np.testing.assert_allclose(np.load(y), files["ref"], rtol=1e-4, atol=1e-4)


def test_torchscript_wrong_rank_input_shape(capsys, files):
    rc, out, err = run_main(capsys, "compile", files["script"], "--input-shape", "3,8,8", "--emit=bnn")
    assert_user_error(rc, err, "script.pt", "3x8x8", "--input-shape", "rank")
    assert out == ""


def test_pt2_input_shape_must_agree(capsys, files):
    rc, out, err = run_main(capsys, "compile", files["pt2"], "--input-shape", "3,8,8", "--emit=bnn")
    assert_user_error(rc, err, "--input-shape 3,8,8", "1,3,8,8")
    rc, out, err = run_main(capsys, "compile", files["pt2"], "--input-shape", "1,3,8,8", "--emit=bnn")
    assert rc == 0, err


def test_malformed_input_shape(capsys, files):
    rc, _, err = run_main(capsys, "compile", files["script"], "--input-shape", "1,three,8,8", "--emit=bnn")
    assert_user_error(rc, err, "--input-shape", "1,three,8,8")


# ---------------------------------------------------------------------------
# targets, CPUs, features
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", [["-target=mips"], ["--target", "mips"], ["--target=mips"], ["-target", "mips"]])
def test_unknown_target_both_spellings(capsys, files, spelling):
    rc, out, err = run_main(capsys, "compile", files["pt2"], *spelling, "--emit=obj", "-o", files["dir"] / "t.o")
    assert_user_error(rc, err, "unknown target 'mips'", "x86_64", "aarch64")
    assert not (files["dir"] / "t.o").exists()


def test_unknown_target_subprocess(files):
    r = run_sub("compile", files["pt2"], "-target=mips", "--emit=asm")
    assert_user_error(r.returncode, r.stderr, "unknown target 'mips'")


def test_unknown_cpu(capsys, files):
    rc, _, err = run_main(capsys, "compile", files["pt2"], "--cpu", "pentium9000", "--emit=asm")
    assert_user_error(rc, err, "unknown cpu 'pentium9000'")


@pytest.mark.parametrize("features", ["avx2", "+avx2,,garbage", "+nosuchfeature"])
def test_malformed_or_unknown_features(capsys, files, features):
    rc, _, err = run_main(capsys, "compile", files["pt2"], "-target=x86_64", f"--features={features}", "--emit=asm")
    assert_user_error(rc, err, "feature")


# ---------------------------------------------------------------------------
# passes and IR
# ---------------------------------------------------------------------------


def test_opt_unknown_pass(capsys, files):
    rc, out, err = run_main(capsys, "opt", files["mlir"], "-p", "canonicalize,nope")
    assert_user_error(rc, err, "nope")
    assert out == ""


def test_compile_unknown_pass_in_pipeline(capsys, files):
    rc, out, err = run_main(capsys, "compile", files["pt2"], "--pipeline", "bnn=nope", "--emit=bnn")
    assert_user_error(rc, err, "nope")
    assert out == ""


@pytest.mark.parametrize("key", ["bad_mlir", "garbage_mlir"])
def test_opt_malformed_ir(capsys, files, key):
    rc, out, err = run_main(capsys, "opt", files[key])
    assert_user_error(rc, err, "malformed IR", files[key].name)


@pytest.mark.parametrize("key", ["bad_mlir", "garbage_mlir"])
def test_compile_malformed_ir(capsys, files, key):
    rc, out, err = run_main(capsys, "compile", files[key], "--emit=bnn")
    assert_user_error(rc, err, "malformed IR", files[key].name)


def test_opt_malformed_ir_subprocess(files):
    r = run_sub("opt", files["bad_mlir"])
    assert_user_error(r.returncode, r.stderr, "bad.mlir")


@pytest.mark.parametrize("what", ["missing", "directory", "binary"])
def test_opt_unreadable_input(capsys, files, what, tmp_path):
    binary = tmp_path / "random.mlir"
    binary.write_bytes(np.random.default_rng(1).bytes(2048))
    path = {"missing": files["dir"] / "missing.mlir", "directory": files["directory"], "binary": binary}[what]
    rc, _, err = run_main(capsys, "opt", path)
    assert_user_error(rc, err)
    if what != "binary":
        assert path.name in err


def test_opt_unknown_file_extension(capsys, files):
    rc, _, err = run_main(capsys, "opt", files["pt2"])
    assert_user_error(rc, err, "net.pt2", "'pt2'", "textual IR")


def test_mlir_entry_point_is_the_files_function(capsys, files, tmp_path):
    other = tmp_path / "renamed.mlir"
    other.write_text(files["mlir"].read_text())  # function @net in a file named renamed.mlir
    rc, out, err = run_main(capsys, "compile", other, "--emit=loops")
    assert rc == 0, err
    rc, _, err = run_main(capsys, "compile", other, "--name", "zz", "--emit=bnn")
    assert_user_error(rc, err, "@zz", "@net")
    y = tmp_path / "y.npy"
    rc, _, err = run_main(capsys, "run", other, "--input", files["x.npy"], "--output", y)
    assert rc == 0, err
    np.testing.assert_allclose(np.load(y), files["ref"], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------
# bnnc run: inputs
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_lib(files):
    so = files["dir"] / "net.so"
    assert main(["compile", str(files["pt2"]), "--emit=so", "-o", str(so)]) == 0
    return so


@pytest.mark.parametrize("model_key", ["pt2", "so"])
def test_run_wrong_shape_and_dtype(capsys, files, shared_lib, model_key):
    model = files["pt2"] if model_key == "pt2" else shared_lib
    out = files["dir"] / f"bad_{model_key}.npy"
    rc, _, err = run_main(capsys, "run", model, "--input", files["x_shape.npy"], "--output", out)
    assert_user_error(rc, err, "expected shape [1, 3, 8, 8]", "got [1, 3, 9, 9]")
    rc, _, err = run_main(capsys, "run", model, "--input", files["x64.npy"], "--output", out)
    assert_user_error(rc, err, "float32[1, 3, 8, 8]", "float64")
    if model_key == "so":  # (each `bnnc run model.pt2` compiles the model: keep those few)
        rc, _, err = run_main(capsys, "run", model, "--input", files["x.npy"], "--input", files["x.npy"], "--output", out)
        assert_user_error(rc, err, "expected 1 input(s)", "float32[1, 3, 8, 8]")
    assert not out.exists()


def test_run_input_not_npy(capsys, files):
    rc, _, err = run_main(capsys, "run", files["pt2"], "--input", files["text"], "--output", files["dir"] / "o.npy")
    assert_user_error(rc, err, "notes.pt2", ".npy")


def test_run_wrong_dtype_subprocess(files, shared_lib):
    r = run_sub("run", shared_lib, "--input", files["x64.npy"], "--output", files["dir"] / "o64.npy")
    assert_user_error(r.returncode, r.stderr, "float32[1, 3, 8, 8]", "float64")


# ---------------------------------------------------------------------------
# --help
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command, options",
    [
        ([], ["compile", "run", "opt"]),
        (["compile"], ["--emit", "--target", "--cpu", "--features", "--input-shape", "--trust", "--pipeline",
                       "--print-pipeline", "--print-ir-after-all", "--print-ir-after", "--print-ir-before",
                       "--timing", "--load-pass-plugin", "-o"]),
        (["run"], ["--input", "--output", "--input-shape", "--trust"]),
        (["opt"], ["-p", "--print-ir-after-all", "--print-ir-after", "--print-ir-before", "--timing",
                   "--load-pass-plugin"]),
    ],
)
def test_help(capsys, command, options):
    rc, out, err = run_main(capsys, *command, "--help")
    assert rc == 0, err
    assert "usage: bnnc" in out
    for option in options:
        assert option in out, f"{option} not in {command} --help"


def test_help_subprocess():
    r = run_sub("opt", "--help")
    assert r.returncode == 0 and "usage: bnnc opt" in r.stdout and "--load-pass-plugin" in r.stdout, r.stderr


# ---------------------------------------------------------------------------
# what works
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "emit, markers",
    [
        # the stem's batch norm is in its conv's epilogue (fuse-conv-bn)
        ("bnn", ["bnn.bconv2d", "bnn.conv2d", "post_scale", "bnn.linear", "func.func @net"]),
        ("loops", ["scf.for", "memref"]),
        ("llvm", ["llvm.func", "llvm."]),
        ("ll", ["define", "@net("]),
    ],
)
def test_compile_emit_text(capsys, files, emit, markers):
    rc, out, err = run_main(capsys, "compile", files["pt2"], f"--emit={emit}")
    assert rc == 0, err
    for marker in markers:
        assert marker in out, f"{marker} not in --emit={emit}"
    if emit != "bnn":
        assert "bnn.bconv2d" not in out


def test_compile_emit_asm_has_popcount(capsys, files, tmp_path):
    rc, out, err = run_main(capsys, "compile", files["pt2"], "--emit=asm", "-target=x86_64", "--cpu=x86-64-v2")
    assert rc == 0, err
    assert re.search(r"\bv?popcnt", out), out[:2000]
    # -o writes the file instead of stdout
    asm = tmp_path / "net.s"
    rc, out, err = run_main(capsys, "compile", files["pt2"], "--emit=asm", "-o", asm)
    assert rc == 0 and out == "" and asm.read_text().strip()


def test_compile_emit_obj_writes_elf_and_header(capsys, files, tmp_path):
    obj = tmp_path / "net.o"
    rc, out, err = run_main(capsys, "compile", files["pt2"], "--emit=obj", "-o", obj)
    assert rc == 0, err
    assert obj.read_bytes()[:4] == b"\x7fELF"
    header = obj.with_suffix(".h").read_text()
    assert "void net(const float *in0, float *out0);" in header
    assert f"wrote {obj}" in err


def test_compile_default_output_name(capsys, files, tmp_path):
    rc, _, err = run_main(capsys, "compile", files["pt2"], "--name", "my_model", "--emit=obj", "-o", tmp_path / "k.o")
    assert rc == 0, err
    assert "void my_model(" in (tmp_path / "k.h").read_text()


def test_compile_so_and_run_matches_pytorch(capsys, files, shared_lib, tmp_path):
    assert shared_lib.read_bytes()[:4] == b"\x7fELF"
    y = tmp_path / "y.npy"
    rc, _, err = run_main(capsys, "run", shared_lib, "--input", files["x.npy"], "--output", y)
    assert rc == 0, err
    np.testing.assert_allclose(np.load(y), files["ref"], rtol=1e-4, atol=1e-4)


def test_run_pt2_matches_pytorch_subprocess(files, tmp_path):
    y = tmp_path / "y.npy"
    r = run_sub("run", files["pt2"], "--input", files["x.npy"], "--output", y)
    assert r.returncode == 0, r.stderr
    out = np.load(y)
    assert out.dtype == np.float32 and out.shape == files["ref"].shape
    np.testing.assert_allclose(out, files["ref"], rtol=1e-4, atol=1e-4)


def test_run_wrong_output_count(capsys, files, tmp_path):
    rc, _, err = run_main(capsys, "run", files["pt2"], "--input", files["x.npy"], "--output", tmp_path / "a.npy",
                          "--output", tmp_path / "b.npy")
    assert_user_error(rc, err, "1 output(s)", "2 --output")


def test_llvm_style_single_dash_options(capsys, files):
    rc, out, err = run_main(capsys, "compile", files["pt2"], "-target=host", "-emit=bnn")
    assert rc == 0, err
    assert "net" in functions(out) and op_counts(out)["bnn.bconv2d"] > 0
    rc, out, err = run_main(capsys, "compile", files["pt2"], "-target", "x86_64", "-emit", "loops")
    assert rc == 0, err
    assert op_counts(out)["scf.for"] > 0


def test_print_pipeline(capsys, files):
    rc, out, err = run_main(capsys, "compile", files["pt2"], "--print-pipeline")
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["bnn", "loops", "llvm"]
    assert "convert-bnn-to-loops" in lines[1] and "convert-func-to-llvm" in lines[2]
    rc, out, err = run_main(capsys, "compile", files["pt2"], "--pipeline", "bnn=cse", "--print-pipeline")
    assert rc == 0, err
    assert out.splitlines()[0] == "bnn: cse"


DUMP = "// -----// IR Dump {} {} //----- //"


def _timing_passes(err: str) -> list[str]:
    assert "Pass execution timing report" in err, err
    assert "Total Execution Time" in err
    section = err[err.index("----Wall Time----") :].splitlines()[1:]
    return [line.split()[-1] for line in section if line.strip() and "%" in line]


def _default_passes(capsys, files, *stages: str) -> list[str]:
    """The pass names of `stages` in the default pipeline, from --print-pipeline."""
    rc, out, err = run_main(capsys, "compile", files["pt2"], "--print-pipeline")
    assert rc == 0, err
    specs = dict(line.split(":", 1) for line in out.strip().splitlines())
    names = []
    for stage in stages:
        spec = re.sub(r"\{[^}]*\}", "", specs[stage]).strip()
        names += [n.strip() for n in spec.split(",") if n.strip()]
    return names


def test_compile_instrumentation(capsys, files):
    expected = _default_passes(capsys, files, "bnn", "loops")
    assert "convert-bnn-to-loops" in expected
    rc, out, err = run_main(
        capsys, "compile", files["pt2"], "--emit=loops", "--print-ir-after-all", "--timing",
    )
    assert rc == 0, err
    assert op_counts(out)["scf.for"] > 0
    for name in expected:
        assert DUMP.format("After", name) in err
    assert err.count("// -----// IR Dump After") == len(expected)
    assert _timing_passes(err) == [*expected, "Total"]
    # dumps go to stderr, not into the output IR
    assert "IR Dump" not in out


def test_compile_print_ir_before_after(capsys, files):
    rc, out, err = run_main(
        capsys, "compile", files["pt2"], "--emit=loops",
        "--print-ir-after=convert-bnn-to-loops", "--print-ir-before=convert-bnn-to-loops",
    )
    assert rc == 0, err
    before = err.index(DUMP.format("Before", "convert-bnn-to-loops"))
    after = err.index(DUMP.format("After", "convert-bnn-to-loops"))
    assert before < after
    assert err.count("IR Dump") == 2
    assert "bnn.bconv2d" in err[before:after] and "bnn.bconv2d" not in err[after:]
    assert "scf.for" in err[after:] and "scf.for" not in err[before:after]
    assert "Pass execution timing report" not in err


def test_opt_instrumentation(capsys, files):
    rc, out, err = run_main(
        capsys, "opt", files["mlir"], "-p", "canonicalize,convert-bnn-to-loops,cse",
        "--print-ir-after-all", "--print-ir-before=cse", "--timing",
    )
    assert rc == 0, err
    assert "IR Dump" not in out and op_counts(out)["scf.for"] > 0
    for name in ("canonicalize", "convert-bnn-to-loops", "cse"):
        assert DUMP.format("After", name) in err
    assert DUMP.format("Before", "cse") in err
    assert DUMP.format("Before", "canonicalize") not in err
    assert _timing_passes(err) == ["canonicalize", "convert-bnn-to-loops", "cse", "Total"]


def test_opt_print_ir_after_one_pass(capsys, files):
    rc, out, err = run_main(capsys, "opt", files["mlir"], "-p", "canonicalize,dce", "--print-ir-after=dce")
    assert rc == 0, err
    assert err.count("IR Dump") == 1 and DUMP.format("After", "dce") in err
    assert op_counts(out)["bnn.bconv2d"] > 0


def test_opt_roundtrip(capsys, files):
    rc, out, err = run_main(capsys, "opt", files["mlir"])
    assert rc == 0, err
    assert op_counts(out)["bnn.bconv2d"] > 0 and "net" in functions(out)


def _run_with_closed_stdout(*args) -> subprocess.CompletedProcess:
    """`bnnc ARGS | head -0`, deterministically: the pipe's reader is closed before bnnc starts."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = dict(os.environ)
    env.pop("BNNC_TRACEBACK", None)
    try:
        return subprocess.run(
            [sys.executable, "-m", "bnnc.cli", *map(str, args)], stdout=write_end, stderr=subprocess.PIPE, text=True, env=env
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize("what", ["opt_small", "opt_large", "compile"])
def test_closed_stdout_stops_quietly(files, tmp_path, what):
    """`bnnc opt f.mlir | head -1`: once stdout's reader has gone, bnnc stops as
    a Unix tool does on SIGPIPE (exit 141, nothing on stderr); it used to print
    `bnnc: error: cannot read input: Broken pipe`. Small output fails at the
    final flush, large output while it is written."""
    large = tmp_path / "large.mlir"
    lines = "".join(f"  %c{i} = arith.constant {i} : i64\n" for i in range(3000))
    large.write_text("builtin.module {\n" + lines + "}\n")
    args = {
        "opt_small": ["opt", files["mlir"]],
        "opt_large": ["opt", large],
        "compile": ["compile", files["mlir"], "--emit=bnn"],
    }[what]
    r = _run_with_closed_stdout(*args)
    assert (r.returncode, r.stderr) == (141, "")


def test_internal_error_is_not_a_user_error(capsys, monkeypatch):
    """A frontend's own consistency check (InternalError) is a bnnc bug: exit 3
    and 'internal error', never the user's 'bnnc: error:' (exit 2)."""
    from bnnc.cli_common import EXIT_INTERNAL, run_command
    from bnnc.errors import BnncError, InternalError

    def check_fails() -> int:
        raise InternalError("the imported IR does not verify: bnn.reshape cannot turn (4, 5, 7) into (1, 4, 1, 1)")

    monkeypatch.delenv("BNNC_TRACEBACK", raising=False)
    assert run_command(check_fails, user_errors=(BnncError,)) == EXIT_INTERNAL
    assert run_command(check_fails) == EXIT_INTERNAL  # bnnc opt's broader user errors too
    err = capsys.readouterr().err
    assert err.count("bnnc: internal error: InternalError") == 2 and "bnnc: error:" not in err
