"""A compiled model you can call: checks inputs, allocates outputs, calls the
native entry point through ctypes (which releases the GIL during the call)."""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from bnnc.runtime.errors import BnncError, InputError
from bnnc.runtime.signature import ARENA_ALIGNMENT, Signature, TensorSpec


def _check_shape(shape: tuple[int, ...], spec: TensorSpec, position: int) -> None:
    if shape != spec.shape:
        raise InputError(
            f"input {position}: expected shape {list(spec.shape)}, got {list(shape)} "
            f"(the model was compiled for {spec.describe()}; recompile for other shapes)"
        )


def _as_array(value: Any, spec: TensorSpec, position: int) -> tuple[np.ndarray, bool]:
    """A C-contiguous array of the spec's dtype for `value`, and whether it came from torch.
    The shape is checked before copying: a huge expanded view must not be materialised."""
    is_torch = type(value).__module__.startswith("torch")
    if is_torch:
        import torch

        if not isinstance(value, torch.Tensor):
            raise InputError(f"input {position}: expected a tensor, got {type(value).__name__}")
        if str(value.dtype) != f"torch.{spec.dtype}":
            raise InputError(f"input {position}: expected dtype {spec.dtype} ({spec.describe()}), got {value.dtype}")
        if value.device.type != "cpu":
            raise InputError(f"input {position}: expected a CPU tensor, got one on {value.device}")
        _check_shape(tuple(value.shape), spec, position)
        array = value.detach().contiguous().numpy()
    elif isinstance(value, np.ndarray):
        if value.dtype != np.dtype(spec.dtype):
            raise InputError(f"input {position}: expected dtype {spec.dtype} ({spec.describe()}), got {value.dtype}")
        _check_shape(value.shape, spec, position)
        array = np.require(value, requirements="C")  # (ascontiguousarray would make a 0-d array 1-d)
    else:
        raise InputError(f"input {position}: expected a torch.Tensor or numpy.ndarray, got {type(value).__name__}")
    return array, is_torch


def stop_threads_symbol(entry: str) -> str:
    """The function a threaded model exports to join its thread pool's workers
    (bnnc.parallel_runtime defines it): they run the model's code, so they
    must be gone before the code is freed."""
    return f"{entry}_stop_threads"


def _stop_threads(stop: Any, owner: object) -> None:
    """Join the pool's workers; `owner` (the code) is kept alive until then."""
    stop()


class CompiledModel:
    """Calls native code compiled by bnnc with the model's signature.

    `owner` keeps the code alive (a JIT engine or a loaded library)."""

    def __init__(self, address: int, signature: Signature, owner: object, *, single_output: bool = True):
        self.signature = signature
        self._owner = owner
        self._single = single_output and len(signature.outputs) == 1
        n = len(signature.inputs) + len(signature.outputs) + (signature.arena_bytes is not None)
        batch = [ctypes.c_int64] if signature.dynamic_batch else []  # (a dynamic-batch entry takes N first)
        self._fn = ctypes.CFUNCTYPE(None, *batch, *([ctypes.c_void_p] * n))(address)
        try:  # a threaded JIT model: join its workers before its code goes
            stop = owner.address_of(stop_threads_symbol(signature.name))  # type: ignore[attr-defined]
        except (AttributeError, KeyError):
            stop = None
        self._stop = ctypes.CFUNCTYPE(None)(stop) if stop else None
        if self._stop is not None:
            weakref.finalize(self, _stop_threads, self._stop, owner)

    def stop_threads(self) -> None:
        """Join the model's worker threads now (e.g. before fork()); the next
        call starts new ones. Collecting the model does this too."""
        if self._stop is not None:
            self._stop()

    def run_numpy(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        batch = [arrays[0].shape[0]] if self.signature.dynamic_batch else []
        outputs = [np.empty((*batch, *s.shape[len(batch):]), dtype=s.dtype) for s in self.signature.outputs]
        pointers = [*batch, *(a.ctypes.data for a in (*arrays, *outputs))]
        if self.signature.arena_bytes is not None:
            # A static memory plan: the scratch arena is the caller's; one per
            # call keeps concurrent calls independent.
            arena = np.empty(self.signature.arena_bytes + ARENA_ALIGNMENT, dtype=np.uint8)
            pointers.append(arena.ctypes.data + (-arena.ctypes.data) % ARENA_ALIGNMENT)
        self._fn(*pointers)
        return outputs

    def __call__(self, *inputs: Any) -> Any:
        if len(inputs) != len(self.signature.inputs):
            expected = ", ".join(s.describe() for s in self.signature.inputs)
            raise InputError(f"expected {len(self.signature.inputs)} input(s) ({expected}), got {len(inputs)}")
        specs = self._batch_specs(inputs) if self.signature.dynamic_batch else self.signature.inputs
        checked = [_as_array(v, s, i) for i, (v, s) in enumerate(zip(inputs, specs))]
        arrays = [a for a, _ in checked]
        outputs: list[Any] = self.run_numpy(arrays)
        if any(is_torch for _, is_torch in checked):
            import torch

            outputs = [torch.from_numpy(o) for o in outputs]
        return outputs[0] if self._single else tuple(outputs)

    def _batch_specs(self, inputs: Sequence[Any]) -> list[TensorSpec]:
        """The input specs at the batch size of `inputs` (a dynamic-batch model:
        every input holds the same number N >= 1 of samples along dimension 0)."""
        shapes = [tuple(getattr(v, "shape", ())) for v in inputs]
        n = shapes[0][0] if shapes[0] else 0
        for i, (shape, spec) in enumerate(zip(shapes, self.signature.inputs)):
            per_sample = f"[N, {', '.join(map(str, spec.shape[1:]))}]"
            if len(shape) != len(spec.shape) or shape[1:] != spec.shape[1:] or shape[0] != n or n < 1:
                raise InputError(
                    f"input {i}: expected shape {per_sample} with the same batch size N >= 1 for every input, "
                    f"got {list(shape)} (the model was compiled for any batch of {spec.dtype}{per_sample})"
                )
        return [TensorSpec((n, *s.shape[1:]), s.dtype) for s in self.signature.inputs]

    def layer_times_ns(self) -> np.ndarray | None:
        """Nanoseconds spent in each layer call since the last reset, summed
        over calls, from a model compiled with per-layer timing
        (CompileOptions.profile_layers); None for a model without it."""
        counters = self._profile_counters()
        return None if counters is None else counters.copy()

    def reset_layer_times(self) -> None:
        """Zero the per-layer timing counters (if the model has them)."""
        counters = self._profile_counters()
        if counters is not None:
            counters[:] = 0

    def _profile_counters(self) -> np.ndarray | None:
        address_of = getattr(self._owner, "address_of", None)
        if address_of is None:
            return None
        try:
            count_at, counters_at = address_of("__bnnc_profile_layers"), address_of("__bnnc_profile_ns")
        except (KeyError, AttributeError, OSError):
            return None
        count = ctypes.c_int64.from_address(count_at).value
        return np.ctypeslib.as_array((ctypes.c_int64 * count).from_address(counters_at))

    def summary(self) -> Any:
        """Per-layer sizes, MACs and memory of the model (a bnnc.summary.ModelSummary,
        printed as a table), computed once on first use by the compiler that
        built this model; unavailable for a model loaded from an artifact."""
        if getattr(self, "_summary", None) is None:
            source = getattr(self, "summary_source", None)
            if source is None:
                raise BnncError("this model carries no summary: it was not compiled in this process (use `bnnc summary MODEL`)")
            self._summary = source()
        return self._summary

    def __repr__(self) -> str:
        ins = ", ".join(s.describe() for s in self.signature.inputs)
        outs = ", ".join(s.describe() for s in self.signature.outputs)
        return f"<bnnc.CompiledModel {self.signature.name}({ins}) -> ({outs})>"
