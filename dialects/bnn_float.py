"""The bnn dialect's float ops: the full-precision layers of a BNN (conv,
linear, batch norm, activations, elementwise arithmetic, pooling, reshape).
`from bnnc.dialects import bnn; bnn.Conv2dOp` finds them (bnn.py star-imports
this module, as the other op families)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    I64,
    AnyFloat,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    IntegerType,
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
    var_operand_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from bnnc.dialects.bnn import (
    _check_channel_vector,
    _check_float,
    _check_rank,
    _pair,
    _PoolOp,
    _shape,
    _wants_ceil,
    _WindowOp,
    conv_output_size,
    i64_array,
    pool_output_size,
)

# ----------------------------------------------------------------- float ops


@irdl_op_definition
class Conv2dOp(_WindowOp):
    """Float conv2d with PyTorch's semantics (zero padding, groups).

    With `post_scale` and `post_shift` (both or neither, one value per output
    channel) the result is fma(conv + bias, post_scale[o], post_shift[o]) with
    one rounding: an inference batch norm fused into the epilogue, computed
    exactly as the unfused bnn.batch_norm computes it (see batch_norm_affine).

    With `relu` (set by fuse-conv-relu) the epilogue then applies torch.relu
    (x < 0 ? 0 : x, so NaN stays NaN and -0.0 stays -0.0), before a fused max
    pool reads the values.

    With `channels_last` the result is N x OH x OW x Cout, with
    `channels_last_input` the input is N x H x W x Cin (set by the
    channels-last pass where the neighbours are NHWC: the values are the same,
    only where they are stored changes).

    With `pool_kernel`, `pool_strides` and `pool_padding` (set together by
    fuse-conv-maxpool, only on a `channels_last` conv) the result is PyTorch's
    max_pool2d (dilation 1, `pool_ceil_mode` for ceil mode) of that conv's
    output: the N x OH x OW x Cout conv output is never stored.
    `output_hw()` stays the conv's size (the MACs), `result_nchw()` the
    pooled result's.
    """

    name = "bnn.conv2d"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    post_scale = opt_operand_def(TensorType)
    post_shift = opt_operand_def(TensorType)
    result = result_def(TensorType)
    groups = prop_def(IntegerAttr[I64])
    channels_last = opt_prop_def(UnitAttr)
    channels_last_input = opt_prop_def(UnitAttr)
    pool_kernel = opt_prop_def(DenseArrayBase[I64])
    pool_strides = opt_prop_def(DenseArrayBase[I64])
    pool_padding = opt_prop_def(DenseArrayBase[I64])
    pool_ceil_mode = opt_prop_def(UnitAttr)
    relu = opt_prop_def(UnitAttr)
    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    traits = traits_def(Pure())
    assembly_format = (
        "$input `,` $weight (`bias` $bias^ `:` type($bias))? "
        "(`post_scale` $post_scale^ `:` type($post_scale))? (`post_shift` $post_shift^ `:` type($post_shift))? "
        "attr-dict `:` type($input) `,` type($weight) `->` type($result)"
    )

    def __init__(
        self,
        input: SSAValue,
        weight: SSAValue,
        result_type: Attribute,
        *,
        strides: Sequence[int],
        padding: Sequence[int],
        dilations: Sequence[int],
        groups: int = 1,
        bias: SSAValue | None = None,
        post_scale: SSAValue | None = None,
        post_shift: SSAValue | None = None,
    ):
        super().__init__(
            operands=[input, weight, bias, post_scale, post_shift],
            result_types=[result_type],
            properties={
                "strides": i64_array(strides),
                "padding": i64_array(padding),
                "dilations": i64_array(dilations),
                "groups": IntegerAttr(groups, i64),
            },
        )

    def input_nchw(self) -> tuple[int, int, int, int]:
        """(N, C, H, W) of the input, whatever its layout."""
        n, a, b, c = _check_rank(self.input, 4, "bnn.conv2d input")
        return (n, c, a, b) if self.channels_last_input is not None else (n, a, b, c)

    def result_nchw(self) -> tuple[int, int, int, int]:
        """(N, C, OH, OW) of the result, whatever its layout."""
        n, a, b, c = _check_rank(self.result, 4, "bnn.conv2d result")
        return (n, c, a, b) if self.channels_last is not None else (n, a, b, c)

    def max_pool(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], bool] | None:
        """(kernel, strides, padding, ceil_mode) of a fused max pool, or None."""
        if self.pool_kernel is None or self.pool_strides is None or self.pool_padding is None:
            return None
        return (
            _pair(self.pool_kernel, "pool_kernel", 1),
            _pair(self.pool_strides, "pool_strides", 1),
            _pair(self.pool_padding, "pool_padding", 0),
            self.pool_ceil_mode is not None,
        )

    def has_fused_epilogue(self) -> bool:
        """Whether a fusion already folded ops after the conv into it (a batch
        norm, a ReLU, a max pool): rewrites that rebuild the conv skip it."""
        return self.post_scale is not None or self.relu is not None or self.pool_kernel is not None

    def output_hw(self) -> tuple[int, int]:
        """(OH, OW) of the convolution, whatever its layout (with a fused max
        pool: of the conv output the pool reads, not of the result)."""
        if self.max_pool() is None:
            return self.result_nchw()[2:]
        _, _, h, w = self.input_nchw()
        _, _, kh, kw = _check_rank(self.weight, 4, "bnn.conv2d weight")
        (sh, sw), (ph, pw), (dh, dw) = self.window()
        return conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)

    def _verify_pool(self) -> tuple[int, int]:
        """The conv's output size when a fused max pool's result is this op's."""
        pool = self.max_pool()
        present = [p is not None for p in (self.pool_kernel, self.pool_strides, self.pool_padding)]
        if pool is None:
            if any(present) or self.pool_ceil_mode is not None:
                raise VerifyException("bnn.conv2d pool_kernel, pool_strides and pool_padding come together")
            return self.result_nchw()[2:]
        if self.channels_last is None:
            raise VerifyException("bnn.conv2d with a fused max pool must be channels_last")
        (pkh, pkw), (psh, psw), (pph, ppw), ceil = pool
        if 2 * pph > pkh or 2 * ppw > pkw:
            raise VerifyException("fused max pool: pad should be at most half of the kernel size")
        oh, ow = self.output_hw()
        pooled = (pool_output_size(oh, pkh, psh, pph, 1, ceil), pool_output_size(ow, pkw, psw, ppw, 1, ceil))
        if pooled[0] < 1 or pooled[1] < 1 or self.result_nchw()[2:] != pooled:
            raise VerifyException(f"result spatial size must be the fused max pool's {pooled}")
        return oh, ow

    def verify_(self) -> None:
        n, c, h, w = self.input_nchw()
        co, ci, kh, kw = _check_rank(self.weight, 4, "bnn.conv2d weight")
        on, oc, _, _ = self.result_nchw()
        oh, ow = self._verify_pool()
        for v, what in ((self.input, "input"), (self.weight, "weight"), (self.result, "result")):
            _check_float(v, f"bnn.conv2d {what}")
        groups = self.groups.value.data
        if groups < 1 or c % groups or co % groups or ci != c // groups:
            raise VerifyException(f"weight {co}x{ci}x{kh}x{kw} does not match {c} input channels in {groups} groups")
        if (on, oc) != (n, co):
            raise VerifyException(f"result must have batch {n} and {co} channels, got {on}x{oc}")
        self._verify_output((h, w), (kh, kw), (oh, ow))
        _check_channel_vector(self.bias, co, "bnn.conv2d bias")
        if (self.post_scale is None) != (self.post_shift is None):
            raise VerifyException("bnn.conv2d post_scale and post_shift come together")
        _check_channel_vector(self.post_scale, co, "bnn.conv2d post_scale")
        _check_channel_vector(self.post_shift, co, "bnn.conv2d post_shift")


@irdl_op_definition
class LinearOp(IRDLOperation):
    """out = input @ weight^T + bias (PyTorch's nn.Linear)."""

    name = "bnn.linear"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = (
        "$input `,` $weight (`bias` $bias^ `:` type($bias))? attr-dict "
        "`:` type($input) `,` type($weight) `->` type($result)"
    )

    def __init__(self, input: SSAValue, weight: SSAValue, result_type: Attribute, bias: SSAValue | None = None):
        super().__init__(operands=[input, weight, bias], result_types=[result_type])

    def verify_(self) -> None:
        n, k = _check_rank(self.input, 2, "bnn.linear input")
        m, k2 = _check_rank(self.weight, 2, "bnn.linear weight")
        if k != k2:
            raise VerifyException(f"weight has {k2} input features, input has {k}")
        if _check_rank(self.result, 2, "bnn.linear result") != (n, m):
            raise VerifyException(f"result must be {n}x{m}")
        _check_channel_vector(self.bias, m, "bnn.linear bias")


def batch_norm_affine(mean, var, gamma, beta, eps: float):
    """The per-channel (scale, shift) PyTorch's CPU batch norm applies as
    fma(x, scale, shift): scale = (1 / sqrt(var + eps)) * gamma and
    shift = beta - mean * scale, in float32 (numpy arrays in and out)."""
    import numpy as np

    f = np.float32
    invstd = f(1.0) / np.sqrt(np.asarray(var, f) + f(eps))
    scale = (invstd * np.asarray(gamma, f)).astype(f)
    shift = (np.asarray(beta, f) - np.asarray(mean, f) * scale).astype(f)
    return scale, shift


@irdl_op_definition
class BatchNormOp(IRDLOperation):
    """Inference batch norm over axis 1: (x - mean) / sqrt(var + eps) * gamma + beta.

    With `channels_last` (set by the channels-last pass on a rank-4 tensor
    that is N x H x W x C) the channel axis is the last one."""

    name = "bnn.batch_norm"
    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    mean = operand_def(TensorType)
    var = operand_def(TensorType)
    gamma = operand_def(TensorType)
    beta = operand_def(TensorType)
    result = result_def(T)
    epsilon = prop_def(FloatAttr[AnyFloat])
    channels_last = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())
    assembly_format = "$input `,` $mean `,` $var `,` $gamma `,` $beta attr-dict `:` functional-type(operands, results)"

    def __init__(self, input: SSAValue, mean: SSAValue, var: SSAValue, gamma: SSAValue, beta: SSAValue, eps: float):
        super().__init__(
            operands=[input, mean, var, gamma, beta],
            result_types=[input.type],
            properties={"epsilon": FloatAttr(eps, f32)},
        )

    def verify_(self) -> None:
        shape = _shape(self.input)
        if len(shape) < 2:
            raise VerifyException("bnn.batch_norm input must have a channel axis")
        if self.channels_last is not None and len(shape) != 4:
            raise VerifyException("bnn.batch_norm channels_last needs an N x H x W x C input")
        channels = shape[-1] if self.channels_last is not None else shape[1]
        for v, what in ((self.mean, "mean"), (self.var, "var"), (self.gamma, "gamma"), (self.beta, "beta")):
            _check_channel_vector(v, channels, f"bnn.batch_norm {what}")


class _UnaryOp(IRDLOperation):
    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($result)"

    def __init__(self, input: SSAValue | Operation, properties: dict[str, Attribute] | None = None):
        input = SSAValue.get(input)
        super().__init__(operands=[input], result_types=[input.type], properties=properties or {})

    def verify_(self) -> None:
        _check_float(self.input, f"{self.name} input")


@irdl_op_definition
class ReluOp(_UnaryOp):
    name = "bnn.relu"


@irdl_op_definition
class AbsOp(_UnaryOp):
    name = "bnn.abs"


@irdl_op_definition
class HardtanhOp(_UnaryOp):
    """clamp(x, min_val, max_val); also torch.clamp with both bounds."""

    name = "bnn.hardtanh"
    min_val = prop_def(FloatAttr[AnyFloat])
    max_val = prop_def(FloatAttr[AnyFloat])
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($result)"

    def __init__(self, input: SSAValue | Operation, min_val: float = -1.0, max_val: float = 1.0):
        super().__init__(input, {"min_val": FloatAttr(min_val, f32), "max_val": FloatAttr(max_val, f32)})

    def verify_(self) -> None:
        super().verify_()
        if self.min_val.value.data > self.max_val.value.data:
            raise VerifyException("bnn.hardtanh min_val must not exceed max_val")


@irdl_op_definition
class PReluOp(IRDLOperation):
    """x if x >= 0 else slope[c] * x, with one slope per channel (axis 1) or one in all."""

    name = "bnn.prelu"
    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    slope = operand_def(TensorType)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$input `,` $slope attr-dict `:` functional-type(operands, results)"

    def __init__(self, input: SSAValue, slope: SSAValue):
        super().__init__(operands=[input, slope], result_types=[input.type])

    def verify_(self) -> None:
        shape = _shape(self.input)
        (k,) = _check_rank(self.slope, 1, "bnn.prelu slope")
        if k != 1 and (len(shape) < 2 or shape[1] != k):
            raise VerifyException(f"bnn.prelu slope must have 1 or {shape[1] if len(shape) > 1 else 1} elements, got {k}")


def broadcast_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """NumPy broadcasting of two static shapes, or None if they do not broadcast."""
    rank = max(len(a), len(b))
    a = (1,) * (rank - len(a)) + tuple(a)
    b = (1,) * (rank - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(out)


class _BinaryOp(IRDLOperation):
    """Elementwise f32 op with NumPy broadcasting of static shapes."""

    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    def __init__(self, lhs: SSAValue, rhs: SSAValue, result_type: Attribute):
        super().__init__(operands=[lhs, rhs], result_types=[result_type])

    def verify_(self) -> None:
        for v, what in ((self.lhs, "lhs"), (self.rhs, "rhs"), (self.result, "result")):
            _check_float(v, f"{self.name} {what}")
        expect = broadcast_shape(_shape(self.lhs), _shape(self.rhs))
        if expect is None:
            raise VerifyException(f"{self.name} operand shapes {_shape(self.lhs)} and {_shape(self.rhs)} do not broadcast")
        if _shape(self.result) != expect:
            raise VerifyException(f"{self.name} result shape must be {expect}, got {_shape(self.result)}")


@irdl_op_definition
class AddOp(_BinaryOp):
    name = "bnn.add"


@irdl_op_definition
class SubOp(_BinaryOp):
    name = "bnn.sub"


@irdl_op_definition
class MulOp(_BinaryOp):
    name = "bnn.mul"


@irdl_op_definition
class DivOp(_BinaryOp):
    name = "bnn.div"


@irdl_op_definition
class CatOp(IRDLOperation):
    """Concatenation along `axis`."""

    name = "bnn.cat"
    inputs = var_operand_def(TensorType)
    result = result_def(TensorType)
    axis = prop_def(IntegerAttr[I64])
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())
    assembly_format = "$inputs attr-dict `:` functional-type(operands, results)"

    def __init__(self, inputs: Sequence[SSAValue], axis: int, result_type: Attribute):
        super().__init__(operands=[inputs], result_types=[result_type], properties={"axis": IntegerAttr(axis, i64)})

    def verify_(self) -> None:
        if not self.inputs:
            raise VerifyException("bnn.cat needs at least one input")
        out = _shape(self.result)
        axis = self.axis.value.data
        if not 0 <= axis < len(out):
            raise VerifyException(f"bnn.cat axis {axis} out of range for rank {len(out)}")
        total = 0
        for v in self.inputs:
            s = _shape(v)
            if len(s) != len(out) or any(s[i] != out[i] for i in range(len(out)) if i != axis):
                raise VerifyException(f"bnn.cat input {s} does not match result {out} off axis {axis}")
            total += s[axis]
        if total != out[axis]:
            raise VerifyException(f"bnn.cat result axis {axis} must be {total}, got {out[axis]}")


@irdl_op_definition
class MaxPool2dOp(_PoolOp):
    """Max pooling; padded taps are -inf (PyTorch): a tap is taken if it is
    greater than the running max or NaN, in row-major window order."""

    name = "bnn.max_pool2d"
    channels_last = opt_prop_def(UnitAttr)
    """Input and result are N x H x W x C (set by the channels-last pass)."""

    def verify_(self) -> None:
        self._verify_pool()


@irdl_op_definition
class AvgPool2dOp(_PoolOp):
    """Average pooling; `count_include_pad` and `divisor_override` as in PyTorch."""

    name = "bnn.avg_pool2d"
    count_include_pad = prop_def(IntegerAttr[IntegerType])
    divisor_override = opt_prop_def(IntegerAttr[I64])
    channels_last = opt_prop_def(UnitAttr)
    """Input and result are N x H x W x C (set by the channels-last pass)."""

    def __init__(
        self,
        input: SSAValue,
        result_type: Attribute,
        *,
        kernel,
        strides,
        padding,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        ceil_mode: bool | None = None,
    ):
        props: dict[str, Attribute] = {
            "kernel": i64_array(kernel),
            "strides": i64_array(strides),
            "padding": i64_array(padding),
            "dilations": i64_array((1, 1)),
            "count_include_pad": IntegerAttr(int(count_include_pad), IntegerType(1)),
        }
        if _wants_ceil(input, result_type, props, ceil_mode):
            props["ceil_mode"] = UnitAttr()
        if divisor_override is not None:
            props["divisor_override"] = IntegerAttr(divisor_override, i64)
        IRDLOperation.__init__(self, operands=[input], result_types=[result_type], properties=props)

    def verify_(self) -> None:
        self._verify_pool()
        if self.dilations.get_values() != (1, 1):
            raise VerifyException("bnn.avg_pool2d has no dilation")


@irdl_op_definition
class AdaptiveAvgPool2dOp(IRDLOperation):
    """PyTorch's adaptive average pooling to the result's spatial size."""

    name = "bnn.adaptive_avg_pool2d"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(self, input: SSAValue, result_type: Attribute):
        super().__init__(operands=[input], result_types=[result_type])

    def verify_(self) -> None:
        n, c, _, _ = _check_rank(self.input, 4, "bnn.adaptive_avg_pool2d input")
        on, oc, oh, ow = _check_rank(self.result, 4, "bnn.adaptive_avg_pool2d result")
        if (on, oc) != (n, c) or oh < 1 or ow < 1:
            raise VerifyException("bnn.adaptive_avg_pool2d result must keep batch and channels")


@irdl_op_definition
class AdaptiveMaxPool2dOp(IRDLOperation):
    """PyTorch's adaptive max pooling to the result's spatial size: bins
    [floor(i*H/OH), ceil((i+1)*H/OH)), max by the rule of bnn.max_pool2d."""

    name = "bnn.adaptive_max_pool2d"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(self, input: SSAValue, result_type: Attribute):
        super().__init__(operands=[input], result_types=[result_type])

    def verify_(self) -> None:
        n, c, _, _ = _check_rank(self.input, 4, "bnn.adaptive_max_pool2d input")
        _check_float(self.input, "bnn.adaptive_max_pool2d input")
        on, oc, oh, ow = _check_rank(self.result, 4, "bnn.adaptive_max_pool2d result")
        if (on, oc) != (n, c) or oh < 1 or ow < 1:
            raise VerifyException("bnn.adaptive_max_pool2d result must keep batch and channels")


@irdl_op_definition
class MeanOp(IRDLOperation):
    """Mean over `dims`, keeping them as size-1 axes (reshape to drop them)."""

    name = "bnn.mean"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    dims = prop_def(DenseArrayBase[I64])
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(self, input: SSAValue, dims: Sequence[int], result_type: Attribute):
        super().__init__(operands=[input], result_types=[result_type], properties={"dims": i64_array(dims)})

    def verify_(self) -> None:
        shape = _shape(self.input)
        dims = self.dims.get_values()
        if any(not 0 <= d < len(shape) for d in dims):
            raise VerifyException(f"bnn.mean dims {list(dims)} out of range for rank {len(shape)}")
        expect = tuple(1 if i in dims else s for i, s in enumerate(shape))
        if _shape(self.result) != expect:
            raise VerifyException(f"bnn.mean result must be {expect}, got {_shape(self.result)}")


@irdl_op_definition
class ReshapeOp(IRDLOperation):
    """Row-major reshape (flatten, view) to the result type."""

    name = "bnn.reshape"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(self, input: SSAValue, result_type: Attribute):
        super().__init__(operands=[input], result_types=[result_type])

    def verify_(self) -> None:
        import math

        a, b = _shape(self.input), _shape(self.result)
        if math.prod(a) != math.prod(b):
            raise VerifyException(f"bnn.reshape cannot turn {a} ({math.prod(a)} elements) into {b}")


FLOAT_OPS = [
    Conv2dOp,
    LinearOp,
    BatchNormOp,
    ReluOp,
    AbsOp,
    HardtanhOp,
    PReluOp,
    AddOp,
    SubOp,
    MulOp,
    DivOp,
    CatOp,
    MaxPool2dOp,
    AvgPool2dOp,
    AdaptiveAvgPool2dOp,
    AdaptiveMaxPool2dOp,
    MeanOp,
    ReshapeOp,
]
