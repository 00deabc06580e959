"""Comparison, selection and PyTorch's three-valued sign: the ops a frontend
translates binarisers into, before recognize-binarization reads their values.

Boolean tensors are f32 masks (1.0 = true, 0.0 = false): a comparison's
result, `where`'s condition and a bool->float cast are the same tensor, and
PyTorch's bool arithmetic (a mask times a float) is the same f32 arithmetic.
"""

from __future__ import annotations

from xdsl.dialects.builtin import StringAttr, TensorType
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from bnnc.dialects.bnn import _BinaryOp, _check_float, _shape, _UnaryOp, broadcast_shape


@irdl_op_definition
class SignumOp(_UnaryOp):
    """torch.sign: -1 where x < 0, +1 where x > 0, 0 where x is +-0 or NaN.

    Unlike bnn.sign it is three-valued; recognize-binarization decides from
    the values its operand can take whether it is a binarisation."""

    name = "bnn.signum"


PREDICATES: dict[str, str] = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "eq": "==", "ne": "!="}


@irdl_op_definition
class CompareOp(_BinaryOp):
    """lhs `predicate` rhs elementwise (broadcasting), as an f32 mask.

    IEEE semantics: every predicate but `ne` is false when an operand is NaN."""

    name = "bnn.compare"
    predicate = prop_def(StringAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    def __init__(self, lhs: SSAValue, rhs: SSAValue, predicate: str, result_type: Attribute):
        IRDLOperation.__init__(
            self, operands=[lhs, rhs], result_types=[result_type], properties={"predicate": StringAttr(predicate)}
        )

    def verify_(self) -> None:
        super().verify_()
        if self.predicate.data not in PREDICATES:
            raise VerifyException(f"bnn.compare predicate must be one of {sorted(PREDICATES)}, got {self.predicate.data!r}")


@irdl_op_definition
class WhereOp(IRDLOperation):
    """cond != 0 ? lhs : rhs elementwise, the three operands broadcast together (torch.where)."""

    name = "bnn.where"
    cond = operand_def(TensorType)
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$cond `,` $lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    def __init__(self, cond: SSAValue, lhs: SSAValue, rhs: SSAValue, result_type: Attribute):
        super().__init__(operands=[cond, lhs, rhs], result_types=[result_type])

    def verify_(self) -> None:
        for v, what in ((self.cond, "cond"), (self.lhs, "lhs"), (self.rhs, "rhs"), (self.result, "result")):
            _check_float(v, f"bnn.where {what}")
        expect = broadcast_shape(_shape(self.cond), _shape(self.lhs))
        expect = broadcast_shape(expect, _shape(self.rhs)) if expect is not None else None
        if expect is None:
            raise VerifyException(
                f"bnn.where operand shapes {_shape(self.cond)}, {_shape(self.lhs)}, {_shape(self.rhs)} do not broadcast"
            )
        if _shape(self.result) != expect:
            raise VerifyException(f"bnn.where result shape must be {expect}, got {_shape(self.result)}")


COMPARE_OPS: list[type[Operation]] = [SignumOp, CompareOp, WhereOp]
__all__ = ["PREDICATES", "CompareOp", "SignumOp", "WhereOp"]
