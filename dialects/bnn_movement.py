"""Data movement of the bnn dialect: ops that only rearrange, repeat or select
elements (permute, slice, expand, pad modes, upsampling), plus bilinear
resizing, the one movement-like op that computes.

`bnn.gather` is the one op for every pure movement: its constant index tensor
says, for each output element, which input element it copies. Frontends
compute that tensor with the framework's own op, so the semantics are the
framework's by construction; the lowering reads the constant and emits
strided loops where the pattern allows (see passes/_lower_movement.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from xdsl.dialects import arith
from xdsl.dialects.builtin import (
    AnyFloat,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerType,
    TensorType,
    UnitAttr,
    f32,
    f64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from bnnc.dialects.bnn import _check_float, _check_rank, _shape, _tensor


@irdl_op_definition
class GatherOp(IRDLOperation):
    """out[i] = inputs_flat[index[i]]: a copy of input elements in any arrangement.

    The inputs are read as one row-major sequence (input 0's elements first,
    then input 1's, ...); `index` has the result's shape and holds a position in
    that sequence for every output element, or -1 for the constant `fill`
    (constant padding). Permute, slice, select, expand, repeat, flip, the
    padding modes, nearest upsampling, pixel (un)shuffle and indexing with
    constant indices are all this op."""

    name = "bnn.gather"
    inputs = var_operand_def(TensorType)
    index = operand_def(TensorType)
    result = result_def(TensorType)
    fill = opt_prop_def(FloatAttr[AnyFloat])
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())
    assembly_format = "$inputs `at` $index attr-dict `:` functional-type(operands, results)"

    def __init__(
        self, inputs: Sequence[SSAValue], index: SSAValue, result_type: Attribute, fill: float | None = None
    ):
        props = {} if fill is None else {"fill": FloatAttr(fill, f32)}
        super().__init__(operands=[list(inputs), index], result_types=[result_type], properties=props)

    def fill_value(self) -> float | None:
        return None if self.fill is None else float(self.fill.value.data)

    def verify_(self) -> None:
        if not self.inputs:
            raise VerifyException("bnn.gather needs at least one input")
        for v in self.inputs:
            _check_float(v, "bnn.gather input")
        _check_float(self.result, "bnn.gather result")
        index_type = _tensor(self.index, "bnn.gather index")
        if not isinstance(index_type.element_type, IntegerType):
            raise VerifyException(f"bnn.gather index must have an integer element type, got {index_type}")
        if _shape(self.index) != _shape(self.result):
            raise VerifyException(f"bnn.gather index shape {_shape(self.index)} must be the result shape {_shape(self.result)}")
        idx = gather_index(self)
        if idx is not None:
            total = sum(math.prod(_shape(v)) for v in self.inputs)
            low = -1 if self.fill is not None else 0
            if idx.size and (int(idx.min()) < low or int(idx.max()) >= total):
                raise VerifyException(
                    f"bnn.gather index values must lie in [{low}, {total}), got [{int(idx.min())}, {int(idx.max())}]"
                )


def gather_index(op: GatherOp) -> np.ndarray | None:
    """The constant index of a gather as an int64 array, or None if it is not a constant."""
    owner = op.index.owner
    if not (isinstance(owner, arith.ConstantOp) and isinstance(owner.value, DenseIntOrFPElementsAttr)):
        return None
    attr = owner.value
    element = attr.get_element_type()
    if not isinstance(element, IntegerType) or element.width.data not in (8, 16, 32, 64):
        return None
    raw = np.frombuffer(attr.data.data, dtype=f"<i{element.width.data // 8}")
    shape = tuple(attr.get_shape())
    if raw.size == 1 and math.prod(shape) != 1:  # a splat
        return np.full(shape, int(raw[0]), dtype=np.int64)
    return raw.astype(np.int64).reshape(shape)


@irdl_op_definition
class UpsampleBilinear2dOp(IRDLOperation):
    """PyTorch's upsample_bilinear2d on NCHW: each output pixel blends the 2x2
    input pixels around its source position. `scales` (h, w) are the user's
    scale factors, which PyTorch uses (as 1/scale) instead of in/out sizes
    when align_corners is false."""

    name = "bnn.upsample_bilinear2d"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    align_corners = opt_prop_def(UnitAttr)
    scales = opt_prop_def(DenseArrayBase)
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(
        self,
        input: SSAValue,
        result_type: Attribute,
        align_corners: bool,
        scales: Sequence[float] | None = None,
    ):
        props: dict[str, Attribute] = {}
        if align_corners:
            props["align_corners"] = UnitAttr()
        if scales is not None:
            props["scales"] = DenseArrayBase.from_list(f64, [float(s) for s in scales])
        super().__init__(operands=[input], result_types=[result_type], properties=props)

    def scale_values(self) -> tuple[float | None, float | None]:
        if self.scales is None:
            return None, None
        h, w = self.scales.get_values()
        return float(h), float(w)

    def verify_(self) -> None:
        n, c, _, _ = _check_rank(self.input, 4, "bnn.upsample_bilinear2d input")
        _check_float(self.input, "bnn.upsample_bilinear2d input")
        on, oc, oh, ow = _check_rank(self.result, 4, "bnn.upsample_bilinear2d result")
        _check_float(self.result, "bnn.upsample_bilinear2d result")
        if (on, oc) != (n, c) or oh < 1 or ow < 1:
            raise VerifyException(f"bnn.upsample_bilinear2d result {(on, oc, oh, ow)} must keep N and C of {(n, c)}")
        if self.scales is not None:
            if self.scales.elt_type != f64 or len(self.scales.get_values()) != 2:
                raise VerifyException("bnn.upsample_bilinear2d scales must be two f64 values (h, w)")


MOVEMENT_OPS: list[type[Operation]] = [GatherOp, UpsampleBilinear2dOp]

__all__ = ["GatherOp", "UpsampleBilinear2dOp", "gather_index", "MOVEMENT_OPS"]
