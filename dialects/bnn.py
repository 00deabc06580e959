"""The `bnn` dialect: graph-level ops of binary neural networks.

Values are ranked static tensors in PyTorch's NCHW layout (f32 unless said).
Binary ops carry their weights bit-packed: bit 1 means -1, channels are packed
little-endian into i64 words along the last axis, and trailing bits are 0
(`bnnc.dialects.bitpack` holds the layout and its NumPy packers).

Semantics every stage agrees on (README.md, "Semantics"):
  binarize(x) = +1 if x >= 0 else -1, so 0 and -0.0 map to +1.
  A binary conv with `pad_value = 0` adds 0 for padded taps, as PyTorch's
  conv2d(sign(x), padding=p) does; `pad_value = 1` and `-1` pad the binarized
  input with +1 or -1.
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
    TensorType,
    UnitAttr,
    f32,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
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

from bnnc.dialects.bitpack import packed_words, words_for


def i64_array(values: Sequence[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, list(values))


def _shape(value: SSAValue) -> tuple[int, ...]:
    typ = value.type
    assert isinstance(typ, TensorType)
    return tuple(typ.get_shape())


def _tensor(value: SSAValue, what: str) -> TensorType:
    typ = value.type
    if not isinstance(typ, TensorType):
        raise VerifyException(f"{what} must be a tensor, got {typ}")
    if any(d < 0 for d in typ.get_shape()):
        raise VerifyException(f"{what} must have a static shape, got {typ}")
    return typ


def _check_rank(value: SSAValue, rank: int, what: str) -> tuple[int, ...]:
    typ = _tensor(value, what)
    shape = tuple(typ.get_shape())
    if len(shape) != rank:
        raise VerifyException(f"{what} must have rank {rank}, got {typ}")
    return shape


def _check_float(value: SSAValue, what: str) -> None:
    typ = _tensor(value, what)
    if typ.element_type != f32:
        raise VerifyException(f"{what} must have element type f32, got {typ}")


def _check_channel_vector(value: SSAValue | None, channels: int, what: str) -> None:
    if value is None:
        return
    shape = _check_rank(value, 1, what)
    _check_float(value, what)
    if shape[0] != channels:
        raise VerifyException(f"{what} must have {channels} elements, got {shape[0]}")


def _pair(attr: DenseArrayBase, what: str, low: int) -> tuple[int, int]:
    values = attr.get_values()
    if len(values) != 2 or any(v < low for v in values):
        raise VerifyException(f"{what} must be two integers >= {low}, got {list(values)}")
    return int(values[0]), int(values[1])


def conv_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """PyTorch's output size of a convolution or pooling window (floor mode)."""
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


class _WindowOp(IRDLOperation):
    """Shared accessors of ops with 2-D strides, padding and dilations."""

    irdl_options = (ParsePropInAttrDict(),)

    strides = prop_def(DenseArrayBase[I64])
    padding = prop_def(DenseArrayBase[I64])
    dilations = prop_def(DenseArrayBase[I64])

    def window(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        return (
            _pair(self.strides, "strides", 1),
            _pair(self.padding, "padding", 0),
            _pair(self.dilations, "dilations", 1),
        )

    def output_hw(self) -> tuple[int, int]:
        """(OH, OW) of the result (NCHW; ops with another layout override this)."""
        shape = _shape(self.results[0])
        return shape[2], shape[3]

    def _verify_output(self, in_hw: Sequence[int], k_hw: Sequence[int], out_hw: Sequence[int]) -> None:
        (sh, sw), (ph, pw), (dh, dw) = self.window()
        expect = (
            conv_output_size(in_hw[0], k_hw[0], sh, ph, dh),
            conv_output_size(in_hw[1], k_hw[1], sw, pw, dw),
        )
        if expect[0] < 1 or expect[1] < 1:
            raise VerifyException(f"window {tuple(k_hw)} does not fit input {tuple(in_hw)} with this padding")
        if tuple(out_hw) != expect:
            raise VerifyException(f"result spatial size must be {expect}, got {tuple(out_hw)}")


# ---------------------------------------------------------------- binary ops


@irdl_op_definition
class SignOp(IRDLOperation):
    """binarize(x): +1.0 where x >= 0 (including -0.0), else -1.0."""

    name = "bnn.sign"
    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($result)"

    def __init__(self, input: SSAValue | Operation):
        input = SSAValue.get(input)
        super().__init__(operands=[input], result_types=[input.type])

    def verify_(self) -> None:
        _check_float(self.input, "bnn.sign input")


def _check_packed(value: SSAValue, what: str) -> tuple[int, ...]:
    shape = _check_rank(value, 4, what)
    if _tensor(value, what).element_type != i64:
        raise VerifyException(f"{what} must be packed i64 words (N x words x H x W)")
    return shape


class _OutputTransformOp(IRDLOperation):
    """A binary accumulator's epilogue, in this order:
        v = fma(dot, multiplier[o], bias[o])   (one rounding, as PyTorch's BN)
        v = v if v > 0 else slope[o] * v      (PReLU, when `slope` is given)
        v = min(max(v, clamp_min), clamp_max) (when given)
        v = v * post_multiplier[o]            (when given, rounded)
        v = v + post_bias[o]                  (when given, rounded)
    (the post-activation affine: an inference batch norm after the
    activation, as QuickNet has, kept as the graph's own mul and add), or,
    when `threshold` is given, a packed bit per output channel:
        bit[o] = dot[o] < threshold[o]        (bit 1 means -1)
    which `fuse-bn-sign` derives so the bit equals PyTorch's sign decision.
    A layer recognize-binarization marks as the {0, 1}-input popcount form
    computes the first step as (dot + k) * multiplier where bias == f32(m * k)
    (bitpack.epilogue_offsets): exactly 0 where the exact value is."""

    multiplier = opt_operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    slope = opt_operand_def(TensorType)
    threshold = opt_operand_def(TensorType)
    post_multiplier = opt_operand_def(TensorType)
    post_bias = opt_operand_def(TensorType)
    clamp_min = opt_prop_def(FloatAttr[AnyFloat])
    clamp_max = opt_prop_def(FloatAttr[AnyFloat])

    def clamp_bounds(self) -> tuple[float | None, float | None]:
        """(clamp_min, clamp_max) as floats, None where absent."""
        lo, hi = self.clamp_min, self.clamp_max
        return (None if lo is None else lo.value.data, None if hi is None else hi.value.data)

    def constructor_args(self) -> dict[str, object]:
        """The keyword arguments of this op's constructor that rebuild it."""
        raise NotImplementedError

    def _transform_args(self) -> dict[str, object]:
        lo, hi = self.clamp_bounds()
        return dict(
            multiplier=self.multiplier,
            bias=self.bias,
            slope=self.slope,
            clamp_min=lo,
            clamp_max=hi,
            post_multiplier=self.post_multiplier,
            post_bias=self.post_bias,
        )

    def clone_with(self, **changes: object) -> _OutputTransformOp:
        """A new op like this one with some constructor arguments replaced
        (`clone_with(multiplier=None, threshold=t)`), keeping its discardable
        attributes (e.g. `bnnc.binarized`, why the layer is binary) and location."""
        args = self.constructor_args()
        unknown = set(changes) - set(args)
        if unknown:
            raise TypeError(f"{self.name} has no constructor argument {', '.join(sorted(unknown))}")
        args.update(changes)
        new = type(self)(**args)
        new.attributes.update(self.attributes)
        new.location = self.location
        return new

    def _verify_transform(self, channels: int) -> None:
        _check_channel_vector(self.multiplier, channels, f"{self.name} multiplier")
        _check_channel_vector(self.bias, channels, f"{self.name} bias")
        _check_channel_vector(self.slope, channels, f"{self.name} slope")
        _check_channel_vector(self.post_multiplier, channels, f"{self.name} post_multiplier")
        _check_channel_vector(self.post_bias, channels, f"{self.name} post_bias")
        lo, hi = self.clamp_bounds()
        if lo is not None and hi is not None and lo > hi:
            raise VerifyException(f"{self.name} clamp_min {lo} exceeds clamp_max {hi}")
        if self.threshold is not None:
            transform = (self.multiplier, self.bias, self.slope, lo, hi, self.post_multiplier, self.post_bias)
            if any(v is not None for v in transform):
                raise VerifyException(f"{self.name} with a threshold writes bits: it takes no multiplier, bias, slope, clamp or post affine")
            shape = _check_rank(self.threshold, 1, f"{self.name} threshold")
            if shape[0] != channels or _tensor(self.threshold, "threshold").element_type != i64:
                raise VerifyException(f"{self.name} threshold must be tensor<{channels}xi64>")


@irdl_op_definition
class BConv2dOp(_WindowOp, _OutputTransformOp):
    """Binary conv2d on +-1 values with an output transform (see _OutputTransformOp).

    dot[n,o,y,x] = sum over taps of a * w, where a is binarize(input) (f32 NCHW
    input) or the packed input's bit (i64 N x words x H x W input, then
    `in_channels` gives the channel count), and w is +-1 from the packed `weight`
    (Cout x KH x KW x words(Cin/groups) i64, bit 1 = -1). Padded taps contribute
    `pad_value` (0 = PyTorch zero padding, or +1 / -1) times w, and then
    `correction[o,ky,kx]` (i64, Cout x KH x KW) is subtracted for every tap
    (ky, kx) that falls in the padding. The result is f32 NCHW, or with a
    `threshold` the packed bits (i64 N x packed_words(Cout, out_groups) x OH x OW).
    With `channels_last` the float result and the residual are N x OH x OW x Cout
    instead (set by the `channels-last` pass: the epilogue then writes whole
    vectors of channels).
    """

    name = "bnn.bconv2d"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    correction = opt_operand_def(TensorType)
    # Added after the whole output transform (fuse-residual-add): out = v + residual,
    # or residual + v with `residual_lhs` (the unfused add's operand order).
    residual = opt_operand_def(TensorType)
    result = result_def(TensorType)
    residual_lhs = opt_prop_def(UnitAttr)
    channels_last = opt_prop_def(UnitAttr)
    groups = prop_def(IntegerAttr[I64])
    pad_value = prop_def(IntegerAttr[I64])
    in_channels = opt_prop_def(IntegerAttr[I64])
    out_groups = opt_prop_def(IntegerAttr[I64])
    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    traits = traits_def(Pure())
    assembly_format = (
        "$input `,` $weight (`multiplier` $multiplier^ `:` type($multiplier))? "
        "(`bias` $bias^ `:` type($bias))? (`slope` $slope^ `:` type($slope))? "
        "(`threshold` $threshold^ `:` type($threshold))? (`correction` $correction^ `:` type($correction))? "
        "(`post_multiplier` $post_multiplier^ `:` type($post_multiplier))? (`post_bias` $post_bias^ `:` type($post_bias))? "
        "(`residual` $residual^ `:` type($residual))? "
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
        pad_value: int = 0,
        multiplier: SSAValue | None = None,
        bias: SSAValue | None = None,
        slope: SSAValue | None = None,
        threshold: SSAValue | None = None,
        correction: SSAValue | None = None,
        clamp_min: float | None = None,
        clamp_max: float | None = None,
        in_channels: int | None = None,
        out_groups: int | None = None,
        residual: SSAValue | None = None,
        residual_lhs: bool = False,
        channels_last: bool = False,
        post_multiplier: SSAValue | None = None,
        post_bias: SSAValue | None = None,
    ):
        props: dict[str, Attribute] = {
            "strides": i64_array(strides),
            "padding": i64_array(padding),
            "dilations": i64_array(dilations),
            "groups": IntegerAttr(groups, i64),
            "pad_value": IntegerAttr(pad_value, i64),
        }
        for name, value in (("clamp_min", clamp_min), ("clamp_max", clamp_max)):
            if value is not None:
                props[name] = FloatAttr(value, f32)
        for name, value in (("in_channels", in_channels), ("out_groups", out_groups)):
            if value is not None:
                props[name] = IntegerAttr(value, i64)
        if residual_lhs:
            props["residual_lhs"] = UnitAttr()
        if channels_last:
            props["channels_last"] = UnitAttr()
        super().__init__(
            # definition order
            operands=[input, weight, correction, residual, multiplier, bias, slope, threshold, post_multiplier, post_bias],
            result_types=[result_type],
            properties=props,
        )

    def constructor_args(self) -> dict[str, object]:
        strides, padding, dilations = self.window()
        return dict(
            input=self.input,
            weight=self.weight,
            result_type=self.result.type,
            strides=strides,
            padding=padding,
            dilations=dilations,
            groups=self.groups.value.data,
            pad_value=self.pad_value.value.data,
            threshold=self.threshold,
            correction=self.correction,
            in_channels=self.in_channels.value.data if self.in_channels is not None else None,
            out_groups=self.out_groups.value.data if self.out_groups is not None else None,
            residual=self.residual,
            residual_lhs=self.residual_lhs is not None,
            channels_last=self.channels_last is not None,
            **self._transform_args(),
        )

    @property
    def input_is_packed(self) -> bool:
        return isinstance(self.input.type, TensorType) and self.input.type.element_type == i64

    @property
    def channels_in(self) -> int:
        if self.input_is_packed:
            assert self.in_channels is not None
            return self.in_channels.value.data
        return _shape(self.input)[1]

    @property
    def out_channels(self) -> int:
        return _shape(self.weight)[0]

    @property
    def kernel_size(self) -> tuple[int, int]:
        shape = _shape(self.weight)
        return shape[1], shape[2]

    def output_hw(self) -> tuple[int, int]:
        """(OH, OW) of the result, whatever its layout."""
        shape = _shape(self.result)
        return (shape[1], shape[2]) if self.channels_last is not None else (shape[2], shape[3])

    def verify_(self) -> None:
        groups = self.groups.value.data
        if self.input_is_packed:
            if self.in_channels is None:
                raise VerifyException("bnn.bconv2d on a packed input needs in_channels")
            n, words_in, h, w = _check_packed(self.input, "bnn.bconv2d input")
            c = self.in_channels.value.data
            if groups < 1 or c % groups or words_in != packed_words(c, groups):
                raise VerifyException(
                    f"packed input must hold {c} channels in {groups} group(s) as "
                    f"{packed_words(c, groups) if groups > 0 and c % groups == 0 else '?'} words, got {words_in}"
                )
        else:
            n, c, h, w = _check_rank(self.input, 4, "bnn.bconv2d input")
            _check_float(self.input, "bnn.bconv2d input")
        co, kh, kw, words = _check_rank(self.weight, 4, "bnn.bconv2d weight")
        if _tensor(self.weight, "weight").element_type != i64:
            raise VerifyException("bnn.bconv2d weight must be packed i64 words")
        if groups < 1 or c % groups or co % groups:
            raise VerifyException(f"groups={groups} must divide in_channels={c} and out_channels={co}")
        if words != words_for(c // groups):
            raise VerifyException(
                f"weight must pack {c // groups} channels per group into {words_for(c // groups)} words, got {words}"
            )
        if self.pad_value.value.data not in (-1, 0, 1):
            raise VerifyException(f"pad_value must be -1, 0 or 1, got {self.pad_value.value.data}")
        on, oc, oh, ow = _check_rank(self.result, 4, "bnn.bconv2d result")
        if self.channels_last is not None:
            if self.threshold is not None:
                raise VerifyException("bnn.bconv2d channels_last applies to a float result, not packed bits")
            on, oh, ow, oc = on, oc, oh, ow
        if self.threshold is not None:
            og = self.out_groups.value.data if self.out_groups is not None else 1
            if _tensor(self.result, "result").element_type != i64 or og < 1 or co % og or oc != packed_words(co, og):
                raise VerifyException(
                    f"bnn.bconv2d with a threshold must produce packed i64 words "
                    f"({packed_words(co, og) if og >= 1 and co % og == 0 else '?'} per pixel for {co} channels), got {self.result.type}"
                )
            if on != n:
                raise VerifyException(f"result must have batch {n}")
        else:
            _check_float(self.result, "bnn.bconv2d result")
            if (on, oc) != (n, co):
                raise VerifyException(f"result must have batch {n} and {co} channels, got {on}x{oc}")
        self._verify_output((h, w), (kh, kw), (oh, ow))
        self._verify_transform(co)
        if self.correction is not None:
            if _check_rank(self.correction, 3, "bnn.bconv2d correction") != (co, kh, kw):
                raise VerifyException(f"bnn.bconv2d correction must be {co}x{kh}x{kw}")
            if _tensor(self.correction, "correction").element_type != i64:
                raise VerifyException("bnn.bconv2d correction must have element type i64")
        if self.residual is not None and (self.threshold is not None or self.residual.type != self.result.type):
            raise VerifyException("bnn.bconv2d residual must have the float result's type (and no threshold)")
        if self.residual_lhs is not None and self.residual is None:
            raise VerifyException("bnn.bconv2d residual_lhs without a residual")


@irdl_op_definition
class BDenseOp(_OutputTransformOp):
    """Binary dense: dot[n,o] = sum_k binarize(input[n,k]) * w[o,k], then the
    output transform (see _OutputTransformOp)."""

    name = "bnn.bdense"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    result = result_def(TensorType)
    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    traits = traits_def(Pure())
    assembly_format = (
        "$input `,` $weight (`multiplier` $multiplier^ `:` type($multiplier))? "
        "(`bias` $bias^ `:` type($bias))? (`slope` $slope^ `:` type($slope))? "
        "(`threshold` $threshold^ `:` type($threshold))? "
        "(`post_multiplier` $post_multiplier^ `:` type($post_multiplier))? (`post_bias` $post_bias^ `:` type($post_bias))? "
        "attr-dict `:` type($input) `,` type($weight) `->` type($result)"
    )

    def __init__(
        self,
        input: SSAValue,
        weight: SSAValue,
        result_type: Attribute,
        *,
        multiplier: SSAValue | None = None,
        bias: SSAValue | None = None,
        slope: SSAValue | None = None,
        clamp_min: float | None = None,
        clamp_max: float | None = None,
        post_multiplier: SSAValue | None = None,
        post_bias: SSAValue | None = None,
    ):
        props: dict[str, Attribute] = {}
        for name, value in (("clamp_min", clamp_min), ("clamp_max", clamp_max)):
            if value is not None:
                props[name] = FloatAttr(value, f32)
        super().__init__(
            operands=[input, weight, multiplier, bias, slope, None, post_multiplier, post_bias],
            result_types=[result_type],
            properties=props,
        )

    def constructor_args(self) -> dict[str, object]:
        return dict(input=self.input, weight=self.weight, result_type=self.result.type, **self._transform_args())

    def verify_(self) -> None:
        n, k = _check_rank(self.input, 2, "bnn.bdense input")
        _check_float(self.input, "bnn.bdense input")
        m, words = _check_rank(self.weight, 2, "bnn.bdense weight")
        if _tensor(self.weight, "weight").element_type != i64:
            raise VerifyException("bnn.bdense weight must be packed i64 words")
        if words != words_for(k):
            raise VerifyException(f"weight must pack {k} features into {words_for(k)} words, got {words}")
        if self.threshold is not None:
            raise VerifyException("bnn.bdense does not write packed bits")
        if _check_rank(self.result, 2, "bnn.bdense result") != (n, m):
            raise VerifyException(f"result must be {n}x{m}")
        self._verify_transform(m)


@irdl_op_definition
class PackOp(IRDLOperation):
    """binarize and bit-pack along channels: f32 N x C x H x W (N x H x W x C
    with `channels_last`) -> i64 N x packed_words(C, groups) x H x W; bit i of
    word g*words(C/groups)+j is channel g*C/groups + 64j + i, set when the value
    is < 0 (binarize = -1).

    With per-channel f32 `threshold` t and `direction` d (+1 or -1; set by
    fuse-bn-pack), the bit of channel c is x * d[c] < t[c] instead: an
    inference batch norm then sign folded into the pack (x * d is exact)."""

    name = "bnn.pack"
    input = operand_def(TensorType)
    threshold = opt_operand_def(TensorType)
    direction = opt_operand_def(TensorType)
    result = result_def(TensorType)
    groups = prop_def(IntegerAttr[I64])
    channels_last = opt_prop_def(UnitAttr)
    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    traits = traits_def(Pure())
    assembly_format = (
        "$input (`threshold` $threshold^ `:` type($threshold))? (`direction` $direction^ `:` type($direction))? "
        "attr-dict `:` type($input) `->` type($result)"
    )

    def __init__(
        self,
        input: SSAValue,
        groups: int = 1,
        channels_last: bool = False,
        threshold: SSAValue | None = None,
        direction: SSAValue | None = None,
    ):
        if channels_last:
            n, h, w, c = _shape(input)
        else:
            n, c, h, w = _shape(input)
        result = TensorType(i64, [n, packed_words(c, groups), h, w])
        props: dict[str, Attribute] = {"groups": IntegerAttr(groups, i64)}
        if channels_last:
            props["channels_last"] = UnitAttr()
        super().__init__(operands=[input, threshold, direction], result_types=[result], properties=props)

    def input_nchw(self) -> tuple[int, int, int, int]:
        """(N, C, H, W) of the input, whatever its layout."""
        if self.channels_last is not None:
            n, h, w, c = _shape(self.input)
            return n, c, h, w
        n, c, h, w = _shape(self.input)
        return n, c, h, w

    def verify_(self) -> None:
        _check_rank(self.input, 4, "bnn.pack input")
        n, c, h, w = self.input_nchw()
        _check_float(self.input, "bnn.pack input")
        groups = self.groups.value.data
        if groups < 1 or c % groups:
            raise VerifyException(f"bnn.pack groups={groups} must divide {c} channels")
        if _check_packed(self.result, "bnn.pack result") != (n, packed_words(c, groups), h, w):
            raise VerifyException(f"bnn.pack result must be {n}x{packed_words(c, groups)}x{h}x{w}xi64")
        if (self.threshold is None) != (self.direction is None):
            raise VerifyException("bnn.pack takes a threshold and a direction together, or neither")
        _check_channel_vector(self.threshold, c, "bnn.pack threshold")
        _check_channel_vector(self.direction, c, "bnn.pack direction")


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size: floor mode, or ceil mode, where the
    last window must still start inside the input or its left padding."""
    if not ceil_mode:
        return conv_output_size(size, kernel, stride, pad, dilation)
    out = -(-(size + 2 * pad - dilation * (kernel - 1) - 1) // stride) + 1
    if (out - 1) * stride >= size + pad:
        out -= 1
    return out


class _PoolOp(_WindowOp):
    """Shared shape of the pooling ops: one input, a window `kernel`.

    With `ceil_mode` (set only where it changes the result size) the result
    holds PyTorch's ceil-mode windows: the last ones may run past the input's
    bottom/right edge, and those taps count as padding (never win a max; an
    average divides as PyTorch does, see _lower_float._avg_divisors)."""

    input = operand_def(TensorType)
    result = result_def(TensorType)
    kernel = prop_def(DenseArrayBase[I64])
    ceil_mode = opt_prop_def(UnitAttr)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(
        self,
        input: SSAValue,
        result_type: Attribute,
        *,
        kernel,
        strides,
        padding,
        dilations=(1, 1),
        ceil_mode: bool | None = None,
    ):
        props: dict[str, Attribute] = {
            "kernel": i64_array(kernel),
            "strides": i64_array(strides),
            "padding": i64_array(padding),
            "dilations": i64_array(dilations),
        }
        if _wants_ceil(input, result_type, props, ceil_mode):
            props["ceil_mode"] = UnitAttr()
        super().__init__(operands=[input], result_types=[result_type], properties=props)

    def is_channels_last(self) -> bool:
        """Whether input and result are N x H x W x C (the float pools' `channels_last`)."""
        return getattr(self, "channels_last", None) is not None

    def nchw(self, value: SSAValue) -> tuple[int, ...]:
        """(N, C, H, W) of the input or result, whatever its layout."""
        shape = _shape(value)
        if self.is_channels_last() and len(shape) == 4:
            n, h, w, c = shape
            return n, c, h, w
        return shape

    def output_hw(self) -> tuple[int, int]:
        """(OH, OW) of the result, whatever its layout."""
        shape = self.nchw(self.results[0])
        return shape[2], shape[3]

    def _verify_output(self, in_hw: Sequence[int], k_hw: Sequence[int], out_hw: Sequence[int]) -> None:
        (sh, sw), (ph, pw), (dh, dw) = self.window()
        ceil = self.ceil_mode is not None
        expect = (
            pool_output_size(in_hw[0], k_hw[0], sh, ph, dh, ceil),
            pool_output_size(in_hw[1], k_hw[1], sw, pw, dw, ceil),
        )
        if expect[0] < 1 or expect[1] < 1:
            raise VerifyException(f"window {tuple(k_hw)} does not fit input {tuple(in_hw)} with this padding")
        if tuple(out_hw) != expect:
            mode = "ceil" if ceil else "floor"
            raise VerifyException(f"result spatial size must be {expect} ({mode} mode), got {tuple(out_hw)}")

    def _verify_pool(self) -> None:
        _check_rank(self.input, 4, f"{self.name} input")
        _check_rank(self.result, 4, f"{self.name} result")
        n, c, h, w = self.nchw(self.input)
        on, oc, oh, ow = self.nchw(self.result)
        if (on, oc) != (n, c):
            raise VerifyException(f"{self.name} result must keep batch and channels {n}x{c}")
        kh, kw = _pair(self.kernel, "kernel", 1)
        (_, _), (ph, pw), (_, _) = self.window()
        if ph * 2 > kh or pw * 2 > kw:
            raise VerifyException("pad should be at most half of the kernel size")
        self._verify_output((h, w), (kh, kw), (oh, ow))


def _wants_ceil(input: SSAValue, result_type: Attribute, props: dict[str, Attribute], ceil_mode: bool | None) -> bool:
    """Whether a pool needs `ceil_mode`: as asked, or (None) when the result
    type has the ceil-mode size but not the floor-mode one, so rewrites that
    rebuild a pool from its result type (binary-maxpool) keep its windows."""
    if ceil_mode is not None:
        return ceil_mode and _floor_differs(input, result_type, props)
    if not isinstance(result_type, TensorType) or not isinstance(input.type, TensorType):
        return False
    if len(result_type.get_shape()) != 4 or len(input.type.get_shape()) != 4:
        return False
    return _floor_differs(input, result_type, props) and tuple(result_type.get_shape()[2:]) == _pool_hw(input, props, True)


def _pool_hw(input: SSAValue, props: dict[str, Attribute], ceil: bool) -> tuple[int, int]:
    h, w = input.type.get_shape()[2:]  # type: ignore[union-attr]
    k, s, p, d = (props[name].get_values() for name in ("kernel", "strides", "padding", "dilations"))  # type: ignore[union-attr]
    return (
        pool_output_size(h, k[0], s[0], p[0], d[0], ceil),
        pool_output_size(w, k[1], s[1], p[1], d[1], ceil),
    )


def _floor_differs(input: SSAValue, result_type: Attribute, props: dict[str, Attribute]) -> bool:
    """Whether ceil mode changes this pool's result size."""
    if not isinstance(input.type, TensorType) or len(input.type.get_shape()) != 4:
        return True
    return _pool_hw(input, props, True) != _pool_hw(input, props, False)


@irdl_op_definition
class BMaxPool2dOp(_PoolOp):
    """Max pooling of packed +-1 values: a bit is -1 (1) only if every tap in the
    window is -1, so the words are ANDed; padded taps never win (as -inf)."""

    name = "bnn.bmax_pool2d"

    def verify_(self) -> None:
        n, words, h, w = _check_packed(self.input, "bnn.bmax_pool2d input")
        on, owords, oh, ow = _check_packed(self.result, "bnn.bmax_pool2d result")
        if (on, owords) != (n, words):
            raise VerifyException("bnn.bmax_pool2d result must keep batch and words")
        self._verify_output((h, w), _pair(self.kernel, "kernel", 1), (oh, ow))


@irdl_op_definition
class PadOp(IRDLOperation):
    """Constant padding of the two spatial axes (PyTorch's F.pad(x, (l, r, t, b), value))."""

    name = "bnn.pad"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    padding = prop_def(DenseArrayBase[I64])  # left, right, top, bottom
    value = prop_def(FloatAttr[AnyFloat])
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(self, input: SSAValue, padding: Sequence[int], value: float, result_type: Attribute):
        super().__init__(
            operands=[input],
            result_types=[result_type],
            properties={"padding": i64_array(padding), "value": FloatAttr(value, f32)},
        )

    def verify_(self) -> None:
        n, c, h, w = _check_rank(self.input, 4, "bnn.pad input")
        _check_float(self.input, "bnn.pad input")
        pads = self.padding.get_values()
        if len(pads) != 4 or any(p < 0 for p in pads):
            raise VerifyException(f"bnn.pad padding must be 4 non-negative integers (left, right, top, bottom), got {list(pads)}")
        left, right, top, bottom = pads
        expect = (n, c, h + top + bottom, w + left + right)
        if _check_rank(self.result, 4, "bnn.pad result") != expect:
            raise VerifyException(f"bnn.pad result must be {expect}, got {_shape(self.result)}")


# The op families in their own modules (they import the shared bases above);
# the float ops first: the others build on their _UnaryOp / _BinaryOp.
from bnnc.dialects.bnn_float import *  # noqa: E402,F403
from bnnc.dialects.bnn_float import FLOAT_OPS, _BinaryOp, _UnaryOp  # noqa: E402,F401

# isort: split
from bnnc.dialects.bnn_compare import *  # noqa: E402,F403
from bnnc.dialects.bnn_compare import COMPARE_OPS  # noqa: E402
from bnnc.dialects.bnn_linalg import *  # noqa: E402,F403
from bnnc.dialects.bnn_linalg import LINALG_OPS  # noqa: E402
from bnnc.dialects.bnn_math import *  # noqa: E402,F403
from bnnc.dialects.bnn_math import MATH_OPS  # noqa: E402
from bnnc.dialects.bnn_movement import *  # noqa: E402,F403
from bnnc.dialects.bnn_movement import MOVEMENT_OPS  # noqa: E402
from bnnc.dialects.bnn_reduce import *  # noqa: E402,F403
from bnnc.dialects.bnn_reduce import REDUCE_OPS  # noqa: E402

BNN = Dialect(
    "bnn",
    [
        SignOp,
        BConv2dOp,
        BDenseOp,
        PackOp,
        BMaxPool2dOp,
        PadOp,
        *FLOAT_OPS,
        *COMPARE_OPS,
        *LINALG_OPS,
        *MATH_OPS,
        *MOVEMENT_OPS,
        *REDUCE_OPS,
    ],
    [],
)
