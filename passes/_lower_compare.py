"""Lowerings of the bnn comparison ops (dialects/bnn_compare.py) to loop nests:
PyTorch's sign, comparisons as f32 masks, and where."""

from __future__ import annotations

from xdsl.ir import Operation, SSAValue

from bnnc.dialects import bnn
from bnnc.passes._loop_builder import LoopBuilder
from bnnc.passes._lower_float import _elementwise_work as elementwise_work
from bnnc.passes._lowering import Lowerer, Lowering, WorkOf, elementwise

# arith.cmpf predicates: ordered (false on NaN) except `ne`, which NaN makes true, as in PyTorch.
_CMPF = {"ge": "oge", "gt": "ogt", "le": "ole", "lt": "olt", "eq": "oeq", "ne": "une"}


def lower_signum(lowerer: Lowerer, op: bnn.SignumOp, args: list[SSAValue], out: SSAValue) -> None:
    def body(lb: LoopBuilder, v: list[SSAValue], _: list[SSAValue]) -> SSAValue:
        # (x > 0) - (x < 0): +-0 and NaN give 0, as torch.sign does
        neg = lb.select(lb.cmpf(v[0], 0.0, "olt"), lb.f32(-1.0), lb.f32(0.0))
        return lb.select(lb.cmpf(v[0], 0.0, "ogt"), lb.f32(1.0), neg)

    elementwise(lowerer, out, args, body)


def lower_compare(lowerer: Lowerer, op: bnn.CompareOp, args: list[SSAValue], out: SSAValue) -> None:
    pred = _CMPF[op.predicate.data]
    elementwise(lowerer, out, args, lambda lb, v, _: lb.select(lb.cmpf(v[0], v[1], pred), lb.f32(1.0), lb.f32(0.0)))


def lower_where(lowerer: Lowerer, op: bnn.WhereOp, args: list[SSAValue], out: SSAValue) -> None:
    elementwise(lowerer, out, args, lambda lb, v, _: lb.select(lb.cmpf(v[0], 0.0, "une"), v[1], v[2]))


COMPARE_LOWERINGS: dict[type[Operation], Lowering] = {
    bnn.SignumOp: lower_signum,
    bnn.CompareOp: lower_compare,
    bnn.WhereOp: lower_where,
}
# Memory-bound: threads split their outer rows, as for the other elementwise ops.
COMPARE_THREADED: dict[type[Operation], WorkOf] = {kind: elementwise_work for kind in COMPARE_LOWERINGS}
