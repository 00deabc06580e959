"""Float linear algebra beyond conv2d/linear with constant weights: products
of two activations (attention's q @ k^T, torch.matmul) and the zero-stuffing
that turns a transposed convolution into an ordinary bnn.conv2d."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import I64, DenseArrayBase, TensorType, UnitAttr, f32, i64
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException


def _float_shape(value: SSAValue, what: str) -> tuple[int, ...]:
    typ = value.type
    if not isinstance(typ, TensorType) or typ.element_type != f32 or any(d < 0 for d in typ.get_shape()):
        raise VerifyException(f"{what} must be a static f32 tensor, got {typ}")
    return tuple(typ.get_shape())


@irdl_op_definition
class MatmulOp(IRDLOperation):
    """(Batched) matrix product of two tensors: out[b, i, j] = sum_k
    lhs[b, i, k] * rhs[b, k, j], rank 2 (no b) or 3 (the same batch on both).
    `transpose_lhs` / `transpose_rhs` read that operand with its last two axes
    swapped (lhs stored as [b, k, i], rhs as [b, j, k]): PyTorch's
    x @ y.transpose(-1, -2) without materialising the transpose."""

    name = "bnn.matmul"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    transpose_lhs = opt_prop_def(UnitAttr)
    transpose_rhs = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    def __init__(
        self,
        lhs: SSAValue,
        rhs: SSAValue,
        result_type: Attribute,
        *,
        transpose_lhs: bool = False,
        transpose_rhs: bool = False,
    ):
        props: dict[str, Attribute] = {}
        if transpose_lhs:
            props["transpose_lhs"] = UnitAttr()
        if transpose_rhs:
            props["transpose_rhs"] = UnitAttr()
        super().__init__(operands=[lhs, rhs], result_types=[result_type], properties=props)

    def dims(self) -> tuple[int, int, int, int]:
        """(batch, M, K, N); batch 1 for rank-2 operands."""
        a, b = _float_shape(self.lhs, "lhs"), _float_shape(self.rhs, "rhs")
        m, k = (a[-1], a[-2]) if self.transpose_lhs is not None else (a[-2], a[-1])
        n = b[-2] if self.transpose_rhs is not None else b[-1]
        return (a[0] if len(a) == 3 else 1), m, k, n

    def verify_(self) -> None:
        a = _float_shape(self.lhs, "bnn.matmul lhs")
        b = _float_shape(self.rhs, "bnn.matmul rhs")
        out = _float_shape(self.result, "bnn.matmul result")
        if len(a) not in (2, 3) or len(b) != len(a) or len(out) != len(a):
            raise VerifyException(
                f"bnn.matmul operands and result must all have rank 2 or all rank 3, got {a}, {b} -> {out}"
            )
        if len(a) == 3 and not a[0] == b[0] == out[0]:
            raise VerifyException(f"bnn.matmul batch sizes differ: {a[0]}, {b[0]} -> {out[0]}")
        _, m, k, n = self.dims()
        k_rhs = b[-1] if self.transpose_rhs is not None else b[-2]
        if k != k_rhs:
            raise VerifyException(f"bnn.matmul contracts {k} lhs columns with {k_rhs} rhs rows")
        if out[-2:] != (m, n):
            raise VerifyException(f"bnn.matmul result must end in {m}x{n}, got {out}")


@irdl_op_definition
class ZeroInsertOp(IRDLOperation):
    """Zero-stuffing of the spatial axes of an NCHW tensor: `strides - 1`
    zeros between neighbouring pixels, then `padding` (left, right, top,
    bottom) zeros around, where a negative amount crops instead:

        out[n, c, top + y*sh, left + x*sw] = in[n, c, y, x], 0 elsewhere

    so out is ((H-1)*sh + 1 + top + bottom) x ((W-1)*sw + 1 + left + right).
    A stride-1 bnn.conv2d over it computes conv_transpose2d exactly as its
    definition (a sum of products; see ops_linalg.transposed_convolution)."""

    name = "bnn.zero_insert"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    strides = prop_def(DenseArrayBase[I64])
    padding = prop_def(DenseArrayBase[I64])  # left, right, top, bottom; negative crops
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(self, input: SSAValue, strides: Sequence[int], padding: Sequence[int], result_type: Attribute):
        super().__init__(
            operands=[input],
            result_types=[result_type],
            properties={
                "strides": DenseArrayBase.from_list(i64, list(strides)),
                "padding": DenseArrayBase.from_list(i64, list(padding)),
            },
        )

    def verify_(self) -> None:
        shape = _float_shape(self.input, "bnn.zero_insert input")
        out = _float_shape(self.result, "bnn.zero_insert result")
        strides, pads = self.strides.get_values(), self.padding.get_values()
        if len(shape) != 4 or len(out) != 4:
            raise VerifyException("bnn.zero_insert works on NCHW tensors")
        if len(strides) != 2 or min(strides) < 1 or len(pads) != 4:
            raise VerifyException("bnn.zero_insert needs two strides >= 1 and four paddings (left, right, top, bottom)")
        left, right, top, bottom = pads
        expect = (
            shape[0],
            shape[1],
            (shape[2] - 1) * strides[0] + 1 + top + bottom,
            (shape[3] - 1) * strides[1] + 1 + left + right,
        )
        if expect[2] < 1 or expect[3] < 1:
            raise VerifyException(f"bnn.zero_insert crops away the whole input ({expect})")
        if out != expect:
            raise VerifyException(f"bnn.zero_insert result must be {expect}, got {out}")


LINALG_OPS: list[type[Operation]] = [MatmulOp, ZeroInsertOp]
