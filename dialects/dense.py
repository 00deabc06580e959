"""Dense constants <-> NumPy arrays, through the attribute's raw bytes
(fast for megabytes of weights, unlike per-element Python lists)."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import (
    BytesAttr,
    DenseIntOrFPElementsAttr,
    Float32Type,
    Float64Type,
    IntegerType,
    MemRefType,
    TensorType,
)
from xdsl.ir import Attribute

_NUMPY_OF = {
    "f32": np.float32,
    "f64": np.float64,
    "i64": np.int64,
    "i32": np.int32,
    "i8": np.int8,
    "i1": np.bool_,
}


def numpy_dtype(element_type: Attribute) -> np.dtype:
    if isinstance(element_type, Float32Type):
        return np.dtype(np.float32)
    if isinstance(element_type, Float64Type):
        return np.dtype(np.float64)
    if isinstance(element_type, IntegerType) and f"i{element_type.width.data}" in _NUMPY_OF:
        return np.dtype(_NUMPY_OF[f"i{element_type.width.data}"])
    raise TypeError(f"no NumPy dtype for {element_type}")


def to_numpy(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    """The attribute's values as a read-only array of its shape."""
    dtype = numpy_dtype(attr.get_element_type())
    return np.frombuffer(attr.data.data, dtype=dtype).reshape(attr.get_shape())


def from_numpy(array: np.ndarray, element_type: Attribute, *, memref: bool = False) -> DenseIntOrFPElementsAttr:
    """A dense attribute of tensor (or memref) type holding `array`."""
    dtype = numpy_dtype(element_type)
    data = np.ascontiguousarray(array, dtype=dtype)
    shape = list(data.shape)
    typ = MemRefType(element_type, shape) if memref else TensorType(element_type, shape)
    return DenseIntOrFPElementsAttr(typ, BytesAttr(data.tobytes()))
