"""Reductions and normalisations of the bnn dialect (sum, max, variance,
softmax, layer/group/instance norm).

Three ops cover the family, so the lowering shares one loop-nest scheme
(statistics per "row" of kept axes, then an elementwise pass):
  bnn.reduce     sum / mean / max / min / var / std over `dims`, keeping them
                 as size-1 axes (a frontend reshapes to drop them);
  bnn.softmax    softmax or log-softmax over one axis, max-subtracted;
  bnn.normalize  (x - mean) / sqrt(var + eps) over `dims`, then an optional
                 elementwise affine: layer, group and instance norm, and batch
                 norm without running statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    I64,
    AnyFloat,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    f32,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    base,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from bnnc.dialects.bnn import _check_float, _shape, i64_array

REDUCE_KINDS = ("sum", "mean", "max", "min", "var", "std")


def _check_dims(op: IRDLOperation, dims: Sequence[int], rank: int) -> None:
    """Reduction axes: in range, ascending, no repeats (one spelling per op)."""
    if any(not 0 <= d < rank for d in dims):
        raise VerifyException(f"{op.name} dims {list(dims)} out of range for rank {rank}")
    if list(dims) != sorted(set(dims)):
        raise VerifyException(f"{op.name} dims {list(dims)} must be ascending without repeats")


def kept_shape(shape: Sequence[int], dims: Sequence[int]) -> tuple[int, ...]:
    """The shape of a reduction over `dims` that keeps them as size-1 axes."""
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


@irdl_op_definition
class ReduceOp(IRDLOperation):
    """`kind` over `dims`, keeping them as size-1 axes, with PyTorch's values:
    sum and mean add in any order (results within float rounding of
    PyTorch's); max and min propagate NaN; var and std divide the sum of
    squared deviations from the mean by max(0, N - correction)."""

    name = "bnn.reduce"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    kind = prop_def(StringAttr)
    dims = prop_def(DenseArrayBase[I64])
    correction = opt_prop_def(FloatAttr[AnyFloat])
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(
        self, input: SSAValue, kind: str, dims: Sequence[int], result_type: Attribute, correction: float | None = None
    ):
        props: dict[str, Attribute] = {"kind": StringAttr(kind), "dims": i64_array(dims)}
        if correction is not None:
            props["correction"] = FloatAttr(correction, f32)
        super().__init__(operands=[input], result_types=[result_type], properties=props)

    def verify_(self) -> None:
        _check_float(self.input, "bnn.reduce input")
        _check_float(self.result, "bnn.reduce result")
        kind = self.kind.data
        if kind not in REDUCE_KINDS:
            raise VerifyException(f"bnn.reduce kind must be one of {list(REDUCE_KINDS)}, got {kind!r}")
        if (self.correction is not None) != (kind in ("var", "std")):
            raise VerifyException("bnn.reduce takes a correction exactly when its kind is var or std")
        shape = _shape(self.input)
        dims = self.dims.get_values()
        _check_dims(self, dims, len(shape))
        expect = kept_shape(shape, dims)
        if _shape(self.result) != expect:
            raise VerifyException(f"bnn.reduce result must be {expect}, got {_shape(self.result)}")


@irdl_op_definition
class SoftmaxOp(IRDLOperation):
    """softmax(x) = exp(x - max) * (1 / sum exp(x - max)) along `dim`, or with
    `log` log_softmax(x) = (x - max) - log(sum exp(x - max)), as PyTorch's CPU
    kernels compute them (a row holding NaN or +inf gives NaN throughout)."""

    name = "bnn.softmax"
    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    result = result_def(T)
    dim = prop_def(IntegerAttr[I64])
    log = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($result)"

    def __init__(self, input: SSAValue, dim: int, log: bool = False):
        props: dict[str, Attribute] = {"dim": IntegerAttr(dim, i64)}
        if log:
            props["log"] = UnitAttr()
        super().__init__(operands=[input], result_types=[input.type], properties=props)

    def verify_(self) -> None:
        _check_float(self.input, "bnn.softmax input")
        rank = len(_shape(self.input))
        if not 0 <= self.dim.value.data < rank:
            raise VerifyException(f"bnn.softmax dim {self.dim.value.data} out of range for rank {rank}")


@irdl_op_definition
class NormalizeOp(IRDLOperation):
    """y = (x * rstd + (-rstd * mean)) * weight + bias with mean and the biased
    variance over `dims` and rstd = 1 / sqrt(var + epsilon), as PyTorch's CPU
    layer norm computes it. `weight` and `bias` are optional, have the input's
    rank and broadcast against it (each axis full or 1)."""

    name = "bnn.normalize"
    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    weight = opt_operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(T)
    dims = prop_def(DenseArrayBase[I64])
    epsilon = prop_def(FloatAttr[AnyFloat])
    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    traits = traits_def(Pure())
    assembly_format = (
        "$input (`weight` $weight^ `:` type($weight))? (`bias` $bias^ `:` type($bias))? attr-dict `:` type($result)"
    )

    def __init__(
        self,
        input: SSAValue,
        dims: Sequence[int],
        eps: float,
        weight: SSAValue | None = None,
        bias: SSAValue | None = None,
    ):
        super().__init__(
            operands=[input, weight, bias],
            result_types=[input.type],
            properties={"dims": i64_array(dims), "epsilon": FloatAttr(eps, f32)},
        )

    def verify_(self) -> None:
        _check_float(self.input, "bnn.normalize input")
        shape = _shape(self.input)
        _check_dims(self, self.dims.get_values(), len(shape))
        for value, what in ((self.weight, "weight"), (self.bias, "bias")):
            if value is None:
                continue
            _check_float(value, f"bnn.normalize {what}")
            p = _shape(value)
            if len(p) != len(shape) or any(a not in (1, b) for a, b in zip(p, shape)):
                raise VerifyException(f"bnn.normalize {what} {p} must have the input's rank and each axis {shape} or 1")


REDUCE_OPS: list[type[Operation]] = [ReduceOp, SoftmaxOp, NormalizeOp]
