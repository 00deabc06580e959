"""Handlers of transposed convolution and of matrix products between two
activations (translated into dialects/bnn_linalg.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch.fx import Node
from xdsl.dialects.builtin import TensorType, f32
from xdsl.ir import SSAValue

from bnnc.dialects import bnn

from .fx_helpers import op_name, pair, strip, unsupported
from .registry import Plan, handles
from .torch_import import Importer

aten = torch.ops.aten

_VIEWS = (aten.view.default, aten._unsafe_view.default, aten.reshape.default)


def transposed_convolution(imp: Importer, node: Node) -> Plan:
    """aten.convolution with transposed=True (ops_core hands these over).

    conv_transpose2d(x, W) scatters every input pixel times the kernel into
    the output. The same sums, as a gather: insert stride-1 zeros between the
    input pixels, pad by dilation*(k-1) - padding on each side (+ output_padding
    at the bottom/right; a negative amount crops) and run a stride-1 conv2d
    with the kernel flipped and its in/out channels swapped per group. The
    inserted zeros add exact 0 products, so the result is PyTorch's up to the
    order of the float additions."""
    inp, w, bias, stride, padding, dilation, _transposed, out_pad, groups = node.args[:9]
    if len(stride) != 2:
        raise unsupported(
            node, f"{len(stride)}-D transposed convolution (aten.convolution.default)", "use conv_transpose2d"
        )
    if w not in imp.consts:
        raise unsupported(
            node,
            "transposed convolution with a weight computed from the input (aten.convolution.default)",
            "the weights must be parameters or computed from parameters only",
        )
    if bias is not None and bias not in imp.consts:
        raise unsupported(node, "transposed convolution with a non-constant bias", "use a parameter bias")
    stride, padding, dilation, out_pad, groups = pair(stride), pair(padding), pair(dilation), pair(out_pad), int(groups)
    W = imp.consts[w].detach().to(torch.float32)
    cin, cog, kh, kw = W.shape
    cig = cin // groups
    flipped = (
        W.reshape(groups, cig, cog, kh, kw).transpose(1, 2).flip(3, 4).reshape(groups * cog, cig, kh, kw).contiguous()
    )
    bias_t = imp.consts[bias].detach().to(torch.float32).reshape(-1) if bias is not None else None
    typ = imp.result_type(node)
    n, _, h, wd = inp.meta["val"].shape
    # (before, after) zeros per axis around the stuffed input
    pads = [(d * (k - 1) - p, d * (k - 1) - p + op) for k, p, d, op in zip((kh, kw), padding, dilation, out_pad)]
    direct = stride == (1, 1) and all(lo == hi >= 0 for lo, hi in pads)

    def emit() -> SSAValue:
        x = imp.value(inp)
        conv_pad = (pads[0][0], pads[1][0]) if direct else (0, 0)
        if not direct:
            (top, bottom), (left, right) = pads
            stuffed = TensorType(
                f32, [n, cin, (h - 1) * stride[0] + 1 + top + bottom, (wd - 1) * stride[1] + 1 + left + right]
            )
            x = imp.add(bnn.ZeroInsertOp(x, stride, (left, right, top, bottom), stuffed)).result
        return imp.add(
            bnn.Conv2dOp(
                x,
                imp.const_tensor(flipped),
                typ,
                strides=(1, 1),
                padding=conv_pad,
                dilations=dilation,
                groups=groups,
                bias=imp.const_tensor(bias_t) if bias_t is not None else None,
            )
        ).result

    return Plan(imp.node_deps([inp]), emit)


def _shape(node: Any) -> list[int]:
    val = node.meta.get("val") if isinstance(node, Node) else None
    return list(val.shape) if isinstance(val, torch.Tensor) else []


def _matrix_source(node: Node) -> tuple[Node, bool]:
    """The tensor a matmul operand reads, and whether its last two axes are
    swapped: torch.matmul's decomposition wraps operands in same-shape
    expands and views that only regroup the batch axes, and
    y.transpose(-1, -2) is a permute of the last two axes; these commute, so
    the operand is a row-major reshape of the source, possibly transposed
    (read as such by bnn.matmul instead of being copied)."""
    cur, swapped = node, False
    while True:
        cur = strip(cur)
        if not isinstance(cur, Node) or cur.op != "call_function" or not isinstance(cur.args[0], Node):
            return cur, swapped
        src, out_shape, in_shape = cur.args[0], _shape(cur), _shape(cur.args[0])
        same = cur.target is aten.expand.default and out_shape == in_shape
        batch_view = (
            cur.target in _VIEWS and len(out_shape) >= 2 and len(in_shape) >= 2 and out_shape[-2:] == in_shape[-2:]
        )
        if same or batch_view:
            cur = src
        elif cur.target is aten.permute.default and _swaps_last_two([int(p) for p in cur.args[1]]):
            cur, swapped = src, not swapped
        else:
            return cur, swapped


def _swaps_last_two(perm: list[int]) -> bool:
    r = len(perm)
    perm = [p % r for p in perm] if r else perm
    return r >= 2 and perm[:-2] == list(range(r - 2)) and perm[-2:] == [r - 1, r - 2]


def _matmul_plan(imp: Importer, node: Node, a: Node, b: Node) -> Plan:
    typ = imp.result_type(node)
    sources = [_matrix_source(v) for v in (a, b)]
    for v in (a, b):
        if not isinstance(v, Node):
            raise unsupported(node, f"{op_name(node)} of a non-tensor operand", "multiply tensors")

    def operand(v: Node, source: Node, swapped: bool) -> SSAValue:
        value = imp.value(source)
        shape = _shape(v)
        if swapped:
            shape[-2:] = shape[-1], shape[-2]
        if list(value.type.get_shape()) != shape:
            value = imp.add(bnn.ReshapeOp(value, TensorType(f32, shape))).result
        return value

    def emit() -> SSAValue:
        (sa, ta), (sb, tb) = sources
        lhs, rhs = operand(a, sa, ta), operand(b, sb, tb)
        return imp.add(bnn.MatmulOp(lhs, rhs, typ, transpose_lhs=ta, transpose_rhs=tb)).result

    return Plan(imp.node_deps([s for s, _ in sources]), emit)


def activation_matmul(imp: Importer, node: Node) -> Plan:
    """aten.mm whose second operand is computed from the input (ops_core hands these over)."""
    return _matmul_plan(imp, node, node.args[0], node.args[1])


@handles(aten.bmm.default)
def _bmm(imp: Importer, node: Node) -> Plan:
    """Batched products: what torch.matmul of 3-D and 4-D tensors decomposes into."""
    return _matmul_plan(imp, node, node.args[0], node.args[1])
