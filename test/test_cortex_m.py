"""Bare-metal Cortex-M objects (issue 14): `-target=cortex-m4` / `cortex-m7`
compile to a self-contained thumbv7em object (static memory plan, no heap,
no threads, weights in read-only data, no symbol beyond the mem* functions),
which the harness in examples/cortex-m links and runs on QEMU's emulated
boards (mps2-an386: Cortex-M4; mps2-an500: Cortex-M7), reading the input and
writing the output through semihosting; the outputs match PyTorch.

The tools are REQUIRED (the tests fail, never skip, without them):
gcc-arm-none-eabi + libnewlib-arm-none-eabi (the harness only) and
qemu-system-arm; scripts/test.sh installs them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import artifact_models as am
import numpy as np
import pytest
import torch
from differential import assert_matches_torch

from bnnc.artifacts import write_artifact
from bnnc.driver import CompileOptions, build
from bnnc.errors import TargetError
from bnnc.runtime.emulated_run import run_artifact

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "examples" / "cortex-m"
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-nm", "arm-none-eabi-size", "arm-none-eabi-readelf", "qemu-system-arm")
# The mem* functions, also under the ARM run-time ABI's names LLVM calls them by.
MEM_SYMBOL = re.compile(r"^(__aeabi_)?mem(cpy|set|move|clr)[48]?$")
BOARDS = {"cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500"}


@pytest.fixture(scope="session")
def arm_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not missing:
        libc = subprocess.run(
            ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-print-file-name=libc.a"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()
        if not Path(libc).is_file():
            missing.append("newlib's libc.a")
    if missing:
        pytest.fail(
            f"the Cortex-M tests need {', '.join(missing)}: scripts/test.sh installs them "
            "(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)",
            pytrace=False,
        )


def _digits():
    sys.path.insert(0, str(REPO / "examples"))
    try:
        from digits_bnn import load_trained
    finally:
        sys.path.remove(str(REPO / "examples"))
    torch.manual_seed(0)
    return load_trained().eval(), torch.randn(1, 1, 8, 8), False


MODELS = {
    "pure_binary": lambda: am.make_pure_binary(0),  # one binary conv layer, exact integers
    "bireal_block": lambda: am.make_bireal_block(0),  # binary convs, BN, shortcuts, pooling, fp 1x1 conv
    "digits": _digits,  # the trained example network (examples/digits_bnn.pt)
}


def _compile(tmp_path: Path, model, x, target: str) -> tuple[Path, object]:
    built = build(model, (x,), CompileOptions(target=target, num_threads=1))
    obj = tmp_path / "model.o"
    write_artifact(built.llvm_module, built.target, built.signature, str(obj), kind="obj")
    return obj, built.signature


def _run_on_board(tmp_path: Path, obj: Path, target: str, x: torch.Tensor, n_out: int) -> np.ndarray:
    elf = tmp_path / "harness.elf"
    make = subprocess.run(
        ["make", "-s", "-C", str(HARNESS), f"MODEL={obj}", f"OUT={elf}"], capture_output=True, text=True, check=False
    )
    assert make.returncode == 0, make.stderr
    x.numpy().astype(np.float32).tofile(tmp_path / "in0.bin")
    run = subprocess.run(
        ["qemu-system-arm", "-M", BOARDS[target], "-nographic", "-semihosting", "-kernel", str(elf)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, (run.returncode, run.stdout, run.stderr)
    out = np.fromfile(tmp_path / "out0.bin", dtype=np.float32)
    assert out.size == n_out
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_runs_on_emulated_cortex_m4(arm_tools, tmp_path, name):
    model, x, exact = MODELS[name]()
    obj, signature = _compile(tmp_path, model, x, "cortex-m4")
    assert signature.arena_bytes is not None and signature.arena_bytes > 0
    header = obj.with_suffix(".h").read_text()
    assert f"#define FORWARD_ARENA_BYTES {signature.arena_bytes}" in header
    assert "void forward(const float *in0, float *out0, void *arena);" in header
    out = _run_on_board(tmp_path, obj, "cortex-m4", x, signature.outputs[0].numel)
    assert_matches_torch(model, (x,), torch.from_numpy(out).reshape(signature.outputs[0].shape), exact=exact)


def test_object_is_self_contained(arm_tools, tmp_path):
    """No heap, no threads, no libc but mem*, weights read-only, hard-float ABI."""
    model, x, _ = am.make_bireal_block(0)
    obj, _ = _compile(tmp_path, model, x, "cortex-m4")
    nm = subprocess.run(["arm-none-eabi-nm", "-u", str(obj)], capture_output=True, text=True, check=True).stdout
    undefined = [line.split()[-1] for line in nm.splitlines() if line.strip()]
    assert all(MEM_SYMBOL.match(s) for s in undefined), undefined
    sizes = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True, text=True, check=True).stdout
    sections = {parts[0]: int(parts[1]) for line in sizes.splitlines() if len(parts := line.split()) == 3 and parts[1].isdigit()}
    writable = {k: v for k, v in sections.items() if k.startswith((".data", ".bss")) and v}
    assert not writable, writable  # weights and tables are const: nothing in RAM but the caller's arena
    assert sum(v for k, v in sections.items() if k.startswith(".rodata")) > 20_000  # the weights
    attrs = subprocess.run(["arm-none-eabi-readelf", "-A", str(obj)], capture_output=True, text=True, check=True).stdout
    assert "Tag_CPU_arch: v7E-M" in attrs and "Tag_ABI_VFP_args: VFP registers" in attrs, attrs
    # `bnnc run` cannot run firmware under qemu-user: one clear error, naming the harness.
    with pytest.raises(TargetError, match="bare-metal Cortex-M object.*examples/cortex-m"):
        run_artifact(str(obj), [x.numpy()])


def test_cortex_m7_runs_on_mps2_an500(arm_tools, tmp_path):
    model, x, exact = am.make_pure_binary(0)
    obj, signature = _compile(tmp_path, model, x, "cortex-m7")
    out = _run_on_board(tmp_path, obj, "cortex-m7", x, signature.outputs[0].numel)
    assert_matches_torch(model, (x,), torch.from_numpy(out).reshape(signature.outputs[0].shape), exact=exact)
