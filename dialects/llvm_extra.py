"""llvm-dialect ops upstream xDSL 0.74 lacks, with MLIR's names and semantics.

The convert-*-to-llvm passes emit them, `bnnc.context.make_context` loads
them into the context (so textual IR holding them parses), and the
translation to llvmlite (`bnnc.codegen`) prints them. They would move
upstream into `xdsl.dialects.llvm` unchanged.
"""

from __future__ import annotations

from xdsl.dialects import llvm as xllvm
from xdsl.dialects.builtin import IntegerType, VectorType
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import IRDLOperation, irdl_op_definition, operand_def, result_def, traits_def
from xdsl.traits import NoMemoryEffect


@irdl_op_definition
class UIToFPOp(xllvm.GenericCastOp):
    name = "llvm.uitofp"


@irdl_op_definition
class FPToSIOp(xllvm.GenericCastOp):
    name = "llvm.fptosi"


@irdl_op_definition
class FPToUIOp(xllvm.GenericCastOp):
    name = "llvm.fptoui"


@irdl_op_definition
class ExtractElementOp(IRDLOperation):
    """`llvm.extractelement %vec[%idx : i64] : vector<8xi64>` (MLIR's op)."""

    name = "llvm.extractelement"
    vector = operand_def(VectorType)
    position = operand_def(IntegerType)
    res = result_def(Attribute)
    traits = traits_def(NoMemoryEffect())
    assembly_format = "$vector `[` $position `:` type($position) `]` attr-dict `:` type($vector) `->` type($res)"

    def __init__(self, vector: SSAValue | Operation, position: SSAValue | Operation):
        vt = SSAValue.get(vector).type
        assert isinstance(vt, VectorType)
        super().__init__(operands=[vector, position], result_types=[vt.element_type])


EXTRA_LLVM_OPS: tuple[type[IRDLOperation], ...] = (UIToFPOp, FPToSIOp, FPToUIOp, ExtractElementOp)
