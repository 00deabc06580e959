"""Random BNN graph recipes: what the random-graph tests and the fuzzer generate.

A recipe is a plain dict (JSON-able, so a failing example prints and replays
as data): input shape, an fp32 stem width, a list of blocks, a head. Blocks:

- ``bconv``: [BN] -> binarizer -> [max-pool] -> binary conv -> [BN] -> [act] -> [residual add | concat];
- ``pool``: max / avg pooling (also 3x3/2 padded, ceil mode);
- ``fp_down``: avg-pool 2 -> float 1x1 conv -> BN;
- ``float``: one float op between binary layers (tanh, softmax over channels,
  layer / group norm, permute, slicing, reflect pad, upsampling, ...).

``generate(draw, extended)`` draws a recipe through a ``Draw`` (hypothesis's
``draw`` in the tests, ``random.Random`` in the fuzzer). With
``extended=False`` it makes exactly the draws test_random_graphs has always
made, so its derandomised sample stays the same graphs; ``extended=True``
adds the binarizers, padding modes, group counts, pooling placements and
float blocks the fuzzer covers. ``legalize(recipe)`` walks the shapes and
repairs or drops what no longer fits (the shrinker edits recipes freely and
relies on it); a generated recipe is already legal.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

# binarizers that go through torch.sign: only applied where the input cannot
# be 0 by construction (always after a BN or a learnable shift here)
SIGN_BINARIZERS = ["sign", "sign_nozero", "ste", "hardtanh_ste", "approxsign_fn", "approxsign", "rsign"]
ZERO_SAFE_BINARIZERS = ["where", "ge"]
# extended spellings: where/compare forms (zero-safe), sign(x) * alpha (scaled
# {-a, +a}, through torch.sign), unipolar {0, 1} (exact zeros by construction),
# comparisons with a nonzero threshold (where(x >= t_c), (x > 0.25).float())
EXTRA_SIGN_BINARIZERS = ["scaled_sign", "scaled_sign_c"]
EXTRA_ZERO_SAFE_BINARIZERS = ["where_lt", "where_gt", "ge_float", "sign_relu", "gt_float", "where_ge_t", "gt_float_t"]
WEIGHTS = ["xnor_mean", "nested_mean", "l1norm", "no_alpha", "weight_ste", "hardbinary", "overwrite", "pad_minus_one"]
EXTRA_WEIGHTS = ["pad_plus_one"]
ACTS = ["none", "relu", "prelu", "hardtanh", "rprelu"]
POOLS = ["max2", "avg2", "max3s2p1", "avg3s2p1"]
EXTRA_POOLS = ["max3s2c", "avg3s2c", "max2c"]  # ceil_mode=True
FLOAT_OPS = [
    "tanh", "sigmoid", "gelu", "gelu_tanh", "leaky_relu", "elu", "softmax_c", "layer_norm", "group_norm",
    "permute_hw", "permute_roundtrip", "slice", "slice_c", "reflect_pad", "replicate_pad", "upsample_nearest",
    "upsample_bilinear", "upsample_bilinear_ac", "flip", "channel_shuffle", "hardtanh", "abs_neg",
]
PAD_MODES_NEEDING_2 = {"reflect_pad"}


class Draw(Protocol):
    """The choices a recipe is made of."""

    def choice(self, options: Sequence[T]) -> T: ...
    def integer(self, lo: int, hi: int) -> int: ...
    def boolean(self) -> bool: ...


class HypothesisDraw:
    """hypothesis's `draw` (inside @st.composite) as a Draw."""

    def __init__(self, draw: Any):
        from hypothesis import strategies as st

        self._draw, self._st = draw, st

    def choice(self, options: Sequence[T]) -> T:
        return self._draw(self._st.sampled_from(list(options)))

    def integer(self, lo: int, hi: int) -> int:
        return self._draw(self._st.integers(lo, hi))

    def boolean(self) -> bool:
        return self._draw(self._st.booleans())


class RandomDraw:
    """A seeded random.Random as a Draw (the fuzzer: recipe i of seed s is reproducible)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def choice(self, options: Sequence[T]) -> T:
        return self.rng.choice(list(options))

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def boolean(self) -> bool:
        return self.rng.random() < 0.5


def conv_out(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out(name: str, h: int, w: int) -> tuple[int, int]:
    """Output size of a named pool (floor or ceil mode, PyTorch's rule that the
    last window must start inside the input or left padding)."""
    if name in ("max2", "avg2"):
        return h // 2, w // 2
    if name == "max2c":
        return -(-h // 2), -(-w // 2)
    if name in ("max3s2p1", "avg3s2p1"):
        return conv_out(h, 3, 2, 1, 1), conv_out(w, 3, 2, 1, 1)
    # 3x3 stride 2, no padding, ceil mode
    def ceil_out(n: int) -> int:
        o = -(-(n - 3) // 2) + 1
        return o - 1 if (o - 1) * 2 >= n else o

    return ceil_out(h), ceil_out(w)


def pool_fits(name: str, h: int, w: int) -> bool:
    return min(h, w) >= (3 if name in ("max3s2c", "avg3s2c") else 2)


def float_out(op: str, c: int, h: int, w: int) -> tuple[int, int, int] | None:
    """(c, h, w) after a float block, or None when the op does not fit the shape."""
    if op == "permute_hw":
        return c, w, h
    if op == "slice":
        return (c, h - 1, -(-w // 2)) if h >= 2 else None
    if op == "slice_c":
        return (-(-c // 2), h, w)
    if op in ("reflect_pad", "replicate_pad"):
        return (c, h + 2, w + 2) if op != "reflect_pad" or min(h, w) >= 2 else None
    if op.startswith("upsample"):
        return (c, 2 * h, 2 * w) if h * w <= 64 else None
    if op == "channel_shuffle":
        return (c, h, w) if c % 2 == 0 else None
    if op == "group_norm":
        return (c, h, w) if c % 2 == 0 else None
    return c, h, w


def _bconv_block(draw: Draw, c: int, h: int, w: int, extended: bool) -> tuple[dict, int, int, int] | None:
    """A binary conv block on a (c, h, w) input and its output shape (None: no room)."""
    sign_b = SIGN_BINARIZERS + (EXTRA_SIGN_BINARIZERS if extended else [])
    safe_b = ZERO_SAFE_BINARIZERS + (EXTRA_ZERO_SAFE_BINARIZERS if extended else [])
    binarizer = draw.choice(sign_b + safe_b)
    bn_before = True if binarizer in sign_b else draw.boolean()
    weights = draw.choice(WEIGHTS + (EXTRA_WEIGHTS if extended else []))
    k = draw.choice([1, 3])
    stride = draw.choice([1, 1, 2])
    dilation = draw.choice([1, 1, 2]) if k == 3 else 1
    padding = draw.choice([0, 1, 2]) if k == 3 else 0
    if weights in ("pad_minus_one", "pad_plus_one"):
        padding = 1 if k == 3 else 0
    if weights == "hardbinary":
        dilation = 1
    cout = draw.choice([1, 3, 8, 16, 24, 33, 40])
    groups = 1
    if weights not in ("hardbinary",) and c % 2 == 0 and cout % 2 == 0:
        groups = draw.choice([1, 1, 2] + ([4] if extended and c % 4 == 0 and cout % 4 == 0 else []))
    oh, ow = conv_out(h, k, stride, padding, dilation), conv_out(w, k, stride, padding, dilation)
    if oh < 1 or ow < 1:
        stride, padding, dilation = 1, (1 if k == 3 else 0), 1
        oh, ow = conv_out(h, k, stride, padding, dilation), conv_out(w, k, stride, padding, dilation)
        if oh < 1 or ow < 1:
            return None
    block = {
        "kind": "bconv", "binarizer": binarizer, "bn_before": bn_before, "weights": weights,
        "cout": cout, "k": k, "stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
        "bn_after": draw.boolean() or draw.boolean(),
        "act": draw.choice(ACTS),
    }
    merge = "none"
    if (oh, ow) == (h, w):
        options = ["none", "cat"] + (["add"] if cout == c else [])
        merge = draw.choice(options)
    block["merge"] = merge
    if extended and min(h, w) >= 2 and stride == 1 and draw.choice([False, False, False, True]):
        # max-pool between the binarizer and the conv (binary-maxpool on packed bits)
        block["pool_after_sign"] = "max2"
        h2, w2 = h // 2, w // 2
        oh, ow = conv_out(h2, k, 1, padding, dilation), conv_out(w2, k, 1, padding, dilation)
        if oh < 1 or ow < 1:
            del block["pool_after_sign"]
            oh, ow = conv_out(h, k, 1, padding, dilation), conv_out(w, k, 1, padding, dilation)
        else:
            block["merge"] = "none"
    return block, (c + cout if block["merge"] == "cat" else cout), oh, ow


def generate(draw: Draw, extended: bool = False) -> dict:
    """A legal recipe (module docstring)."""
    batch = draw.choice([1, 2])
    cin = draw.choice([1, 3, 4])
    h = draw.integer(5, 14)
    w = draw.integer(5, 14)
    c = draw.choice([4, 8, 16, 33, 40])
    spec: dict = {"input": [batch, cin, h, w], "stem": c, "blocks": [], "seed": draw.integer(0, 2**16)}
    n_blocks = draw.integer(1, 6 if extended else 4)
    kinds = ["bconv", "bconv", "bconv", "pool", "fp_down"] + (["float", "float"] if extended else [])
    for _ in range(n_blocks):
        kind = draw.choice(kinds)
        if kind == "pool":
            if min(h, w) < 2:
                continue
            pool = draw.choice(POOLS + (EXTRA_POOLS if extended else []))
            if not pool_fits(pool, h, w):
                continue
            spec["blocks"].append({"kind": "pool", "pool": pool})
            h, w = pool_out(pool, h, w)
            continue
        if kind == "fp_down":
            if min(h, w) < 2:
                continue
            cout = draw.choice([c, 2 * c if c <= 24 else c])
            spec["blocks"].append({"kind": "fp_down", "cout": cout})
            h, w, c = h // 2, w // 2, cout
            continue
        if kind == "float":
            op = draw.choice(FLOAT_OPS)
            shape = float_out(op, c, h, w)
            if shape is None:
                continue
            spec["blocks"].append({"kind": "float", "op": op})
            c, h, w = shape
            continue
        made = _bconv_block(draw, c, h, w, extended)
        if made is None:
            continue
        block, c, h, w = made
        spec["blocks"].append(block)
    spec["head"] = draw.choice(["gap", "flatten"]) if h * w * c <= 2048 else "gap"
    spec["classes"] = draw.choice([1, 5, 10])
    return spec


def _legal_bconv(b: dict, c: int, h: int, w: int) -> tuple[dict, int, int, int] | None:
    b = dict(b)
    if b["binarizer"] in SIGN_BINARIZERS + EXTRA_SIGN_BINARIZERS:
        b["bn_before"] = True
    if b["weights"] in ("pad_minus_one", "pad_plus_one"):
        b["padding"] = 1 if b["k"] == 3 else 0
    if b["k"] == 1:
        b["padding"], b["dilation"] = 0, 1
    if b["weights"] == "hardbinary":
        b["dilation"], b["groups"] = 1, 1
    if c % b["groups"] or b["cout"] % b["groups"]:
        b["groups"] = 1
    ih, iw = h, w
    if b.get("pool_after_sign", "none") != "none":
        if min(h, w) < 2:
            b.pop("pool_after_sign")
        else:
            ih, iw = h // 2, w // 2
            b["stride"] = 1
    k, p, d = b["k"], b["padding"], b["dilation"]
    oh, ow = conv_out(ih, k, b["stride"], p, d), conv_out(iw, k, b["stride"], p, d)
    if oh < 1 or ow < 1:
        b["stride"], b["padding"], b["dilation"] = 1, (1 if k == 3 else 0), 1
        oh, ow = conv_out(ih, k, 1, b["padding"], 1), conv_out(iw, k, 1, b["padding"], 1)
        if oh < 1 or ow < 1:
            return None
    if (oh, ow) != (h, w) or (b["merge"] == "add" and b["cout"] != c):
        b["merge"] = "none"
    return b, (c + b["cout"] if b["merge"] == "cat" else b["cout"]), oh, ow


def legalize(spec: dict) -> dict:
    """A copy of `spec` whose every block fits the shape it receives: options
    that no longer fit are reset, blocks that cannot fit are dropped."""
    spec = copy.deepcopy(spec)
    _, _, h, w = spec["input"]
    c = spec["stem"]
    blocks = []
    for b in spec["blocks"]:
        kind = b["kind"]
        if kind == "pool":
            if not pool_fits(b["pool"], h, w):
                continue
            h, w = pool_out(b["pool"], h, w)
        elif kind == "fp_down":
            if min(h, w) < 2:
                continue
            h, w, c = h // 2, w // 2, b["cout"]
        elif kind == "float":
            shape = float_out(b["op"], c, h, w)
            if shape is None:
                continue
            c, h, w = shape
        else:
            made = _legal_bconv(b, c, h, w)
            if made is None:
                continue
            b, c, h, w = made
        blocks.append(b)
    spec["blocks"] = blocks
    if spec.get("head") == "flatten" and h * w * c > 2048:
        spec["head"] = "gap"
    return spec


def random_recipe(seed: int, index: int) -> dict:
    """Recipe `index` of fuzz seed `seed` (extended), independent of the others."""
    return generate(RandomDraw(random.Random(f"bnnc-fuzz:{seed}:{index}")), extended=True)
