"""What the float-kernel tests share (test_float_kernels, test_float_pool_linalg,
test_float_math, test_float_reduce): compiling IR as written at several thread
counts, writing small test functions as IR text, and the float values kernels
must get right."""

from __future__ import annotations

import numpy as np
from xdsl.parser import Parser

from bnnc.context import make_context
from bnnc.driver import CompileOptions, build, jit

# The results must not depend on the thread count.
THREADS = [1, 2, 3]


def compile_ir(text: str, threads: int):
    """Compile the IR as written (no graph rewrites); thread_min_work=0 makes
    every threaded kernel split its work even on these small tensors."""
    module = Parser(make_context(), text).parse_module()
    options = CompileOptions(num_threads=threads, pipeline="bnn=", thread_min_work=0)
    return jit(build(module, options=options))


def tensor_type(shape, elem: str = "f32") -> str:
    """`tensor<2x3xf32>` for shape (2, 3)."""
    return f"tensor<{'x'.join(map(str, shape))}x{elem}>"


def const_line(name: str, a: np.ndarray) -> str:
    """`%name = arith.constant dense<...>` holding `a`, then the body's indent."""
    return f"%{name} = arith.constant dense<{a.tolist()}> : {tensor_type(a.shape)}\n  "


def forward_func(args: list[tuple[str, tuple]], body: str, out_shape, out_elem: str = "f32") -> str:
    """func.func @forward over f32 tensor arguments (name, shape) whose `body` defines %y."""
    params = ", ".join(f"%{name}: {tensor_type(shape)}" for name, shape in args)
    return f"""func.func @forward({params}) -> {tensor_type(out_shape, out_elem)} {{
  {body}
  func.return %y : {tensor_type(out_shape, out_elem)}
}}"""


def float_bits(a: np.ndarray) -> np.ndarray:
    """The float32 values as int32 bit patterns, so that comparisons see -0.0 and NaN payloads."""
    return np.ascontiguousarray(a, dtype=np.float32).view(np.int32)


def special_values(x: np.ndarray, rng, nan: bool) -> np.ndarray:
    """Sprinkle the values pooling must get right: +-0.0 (the first of equal
    values wins), -inf, and NaN (propagates through max)."""
    u = rng.random(x.shape)
    x = x.copy()
    x[u < 0.08] = 0.0
    x[(u >= 0.08) & (u < 0.16)] = -0.0
    x[(u >= 0.16) & (u < 0.2)] = -np.inf
    if nan:
        x[(u >= 0.2) & (u < 0.23)] = np.nan
    return x
