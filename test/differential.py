"""Differential comparison of a compiled model's outputs against PyTorch eager.

``assert_matches_torch(model, inputs, compiled_outputs)`` passes when

1. every compiled output has the eager output's shape and dtype, and
2. it equals the eager output: exactly when the eager output is an
   integer-valued binary accumulator (or ``exact=True``), otherwise within
   ``|got - ref| <= atol + rtol * |ref|`` with ``atol = rtol_scale * max|ref|``.

When the outputs differ, a mismatch is accepted ONLY if it is explained by a
binarizer whose PyTorch pre-sign value is within float rounding of 0 (there
the compiled model may legitimately decide the other sign). To find those, the
eager run is traced with a ``TorchFunctionMode`` that records the input of
every binarizer (``sign`` and comparisons of a tensor against 0: ``ge``,
``gt``, ``le``, ``lt``; against a finite threshold t, the pre-sign value is
x - t in float64) applied to an activation (weights, i.e. tensors that
share storage with a parameter or buffer, are exact constants and ignored).
A pre-sign element is *ambiguous* when

* the tensor is float-computed and ``|x| <= presign_rtol * max|x of its channel|``,
* or a float64 re-run of the model gives it the other sign,
* or the float64 re-run computes it as exactly 0 (``|x64| <= ZERO_ATOL``) and
  its float32 value is within ``TIE_ATOL32`` of 0 (see below),
* or the tensor is an exact integer accumulator and ``x == 0`` under
  ``torch.sign`` (PyTorch says 0, a binary result cannot).

If there are no ambiguous elements the mismatch is a failure. Otherwise the
mismatch must be *reproduced*: the compiled output has to match the float64
run, or an eager float32 run in which some of the ambiguous binarizer outputs
are forced to the other sign (searched exhaustively for up to 8 ambiguous
elements; otherwise every single flip, then a descent that keeps a flip when
it brings the outputs closer to the compiled ones: fuzz seed 20261399 graph
10 needed 3 of 28 flipped, beyond the pairs a budget of 400 runs reaches).
Whatever the search, a match is a concrete assignment of near-zero
decisions that reproduces the compiled output. If none reproduces it, the
assertion fails and reports the near-zero values it tried.

Pre-signs that are exactly 0 in exact arithmetic. A binary conv computed by
PyTorch in float (``conv2d(±1 activations, ±alpha_c weights)``) is
``alpha_c * dot`` with ``dot`` an integer in [-K, K]; ``dot == 0`` is common
(a fraction ~sqrt(2 / (pi K)) of the pixels: 13% for K = 36). PyTorch's float32 sum of K terms ``±alpha_c``
does not cancel exactly: it leaves rounding noise of a few ulp of alpha_c
(``±1.49e-8``, ``±5.96e-8`` for alpha ~ 0.1-0.3; float64 leaves ``±2.8e-17``
or 0). A binarizer reading that value directly (no BN in between:
``where(x >= 0)`` / ``ge(0)`` after the conv, PReLU or hardtanh) then decides
on the sign of the noise, while bnnc counts ``dot`` exactly (popcount) and
decides ``binarize(0) = +1``, which is the exact-arithmetic answer. Such a
value is ambiguous by construction (PyTorch's own value is within rounding of
0), but there are hundreds of them per tensor, so neither the float64 re-run
(its ``±2.8e-17`` noise picks signs too) nor a subset search from the float32
signs can reproduce the compiled output. Hence the *exact-zero reference*:
the model is re-run in float64 with every binarizer input ``|x| <=
ZERO_RTOL * max|x of its channel|`` or ``|x| <= ZERO_ATOL`` snapped to the
decision at exactly 0 (``x >= 0``: true, ``x > 0``: false, ``sign``: +1 as
bnnc, but 0 for a sign of a never-negative tensor such as ``sign(relu(x))``,
whose {0, 1} form bnnc computes exactly), then in float32 with the same
positions forced the same way (only where the float32 value is itself
ambiguous as defined above, or within ``TIE_ATOL32`` of 0). The absolute
bounds matter for a channel that is exact zeros at every pixel: its maximum is
rounding noise itself, so no bound relative to it finds them (fuzz seed
20261131 graph 359, test/test_differential_ties.py). They only add positions
that float64 computes as 0: a decision there is a tie by construction, and
forcing it to the decision at 0 is what exact arithmetic does. The compiled
output matching this run is explained; otherwise the subset search starts
from it.

Cancellation in a float output. A float output computed by a linear layer
(``F.linear``: the heads of most models) as a sum of ``n`` terms can be much
smaller than the terms themselves; float32 then cannot compute it to within
``rtol`` of itself (PyTorch's own float32 result is off by as much as the
compiled one, which sums in another order). Such an output is accepted when
the compiled value is within ``CANCEL_LAMBDA * sqrt(n) * 2**-24 * M`` of the
float64 run, where ``M = |x| @ |W|.T + |b|`` (float64, from the traced call)
is the magnitude of its terms: the probabilistic bound on float32 rounding
of an n-term sum (Higham and Mary, 2019), with room for the rounding of the
terms themselves. The rule applies only where no binarizer input is within
rounding of 0 (those go through the search below); a wrong decision of a
clearly signed binarizer moves a term of average size M / n, far beyond it. Fuzz seed 20261314 graph 27: an output of 0.0011 from terms
of total magnitude 12 (1352 of them); bnnc through ONNX was 4.1e-7 from the
float64 value (0.6 ulp of 12), PyTorch 2.7e-9, the tolerance 1.1e-7.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

_SIGN_NAMES = {"sign", "sgn"}
_CMP_NAMES = {
    "ge": "ge", "__ge__": "ge", "greater_equal": "ge",
    "gt": "gt", "__gt__": "gt", "greater": "gt",
    "le": "le", "__le__": "le", "less_equal": "le",
    "lt": "lt", "__lt__": "lt", "less": "lt",
    # reflected forms: 0 <= x arrives as x.__ge__(0), but be safe
    "__rge__": "le", "__rle__": "ge", "__rgt__": "lt", "__rlt__": "gt",
}

MAX_SEARCH_RUNS = 400
# |x| <= ZERO_RTOL * channel max in float64: exactly 0 in exact arithmetic (the
# float64 rounding noise of a K-term sum is ~K * 1.1e-16 of its terms; a true
# non-zero this small is also far inside float32 rounding, 1.2e-7)
ZERO_RTOL = 1e-10
# ... or |x| <= ZERO_ATOL in float64, whatever the channel: a channel that is
# exact zeros at every pixel has only rounding noise for its maximum (float64
# +-1e-16, float32 +-6e-8 in test_differential_ties.py). The fuzz models'
# activations and weights are O(0.01-10) (BN-normalised, |alpha| < 2), so float64
# noise of their sums is below 1e-13, and an exact value below 1e-12 is far
# inside float32 rounding of any such sum anyway.
ZERO_ATOL = 1e-12
# float32 noise of such an exact zero: PyTorch's float32 value there must be
# within this (absolute) bound to be forced, a few ulp of the largest sums the
# fuzzer builds (K * eps32 * sum|terms| is ~1e-7..1e-6 for K <= 300 terms of
# |alpha| <= 0.3; observed: 2.2e-9..6e-8). A float32 value larger than this where
# float64 says 0 means the runs diverged upstream; it is not forced.
TIE_ATOL32 = 1e-6
# The factor on the rounding bound sqrt(n) * 2**-24 * M of an n-term linear
# output (see "Cancellation" above); observed errors are below 1 * M * 2**-24.
CANCEL_LAMBDA = 8.0
# binarizer decision at exactly 0, as a forced choice (see _Tracer): sign -> +1
# (bnnc's binarize; torch says 0), x >= 0 true, x > 0 false, x <= 0 true, x < 0 false.
# A sign of a tensor that is never negative (sign(relu(x)): {0, 1}) keeps
# PyTorch's 0, as bnnc's unipolar form does (_choice_at_zero).
_CHOICE_AT_ZERO = {"sign": 1.0, "ge": 1.0, "gt": -1.0, "le": -1.0, "lt": 1.0}


def _unipolar(kind: str, values: torch.Tensor) -> bool:
    """sign of a never-negative tensor: its outputs are {0, 1}, 0 included."""
    return kind == "sign" and values.numel() > 0 and bool(values.min() >= 0)


def _choice_at_zero(kind: str, values: torch.Tensor) -> float:
    return 0.0 if _unipolar(kind, values) else _CHOICE_AT_ZERO[kind]


def _other_choice(kind: str, values: torch.Tensor, choice: float) -> float:
    """The other decision: +-1 swapped, or 0 <-> 1 for a unipolar sign."""
    return 1.0 - choice if _unipolar(kind, values) else -choice


def _exact_zero64(values: torch.Tensor, scale: torch.Tensor, rtol: float) -> torch.Tensor:
    """Float64 values that are exactly 0 in exact arithmetic (ZERO_RTOL / ZERO_ATOL)."""
    return (values.abs() <= rtol * scale) | (values.abs() <= ZERO_ATOL)


def _is_zero_scalar(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return v == 0
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return bool(v.item() == 0)
    return False


def _classify(func, args, kwargs):
    """Return (kind, pre_sign_tensor, activation) when func is a binarizer, else
    None; `activation` is the operand the weight check looks at."""
    name = getattr(func, "__name__", "")
    if name in _SIGN_NAMES and args and isinstance(args[0], torch.Tensor):
        return "sign", args[0], args[0]
    if name in _CMP_NAMES and len(args) >= 2:
        a, b = args[0], args[1]
        if isinstance(a, torch.Tensor) and a.is_floating_point() and _is_zero_scalar(b):
            return _CMP_NAMES[name], a, a
        if isinstance(b, torch.Tensor) and b.is_floating_point() and _is_zero_scalar(a):
            # torch.ge(0, x) == x <= 0
            flipped = {"ge": "le", "le": "ge", "gt": "lt", "lt": "gt"}[_CMP_NAMES[name]]
            return flipped, b, b
        shifted = _threshold_pre_sign(a, b)
        if shifted is not None:
            return (_CMP_NAMES[name], *shifted)
    return None


def _threshold_pre_sign(a, b):
    """(a - b, the activation) for a comparison of a float activation with a
    finite threshold (a number or a smaller tensor broadcasting to it): `a pred b`
    is `(a - b) pred 0` in exact arithmetic, which is how bnnc binarizes it
    (recognize-binarization), so a - b, computed in float64, is the pre-sign
    value whose near-zero elements may legitimately decide either way."""
    tensors = [t for t in (a, b) if isinstance(t, torch.Tensor)]
    if not tensors or any(not t.is_floating_point() for t in tensors):
        return None
    if any(isinstance(v, bool) or not isinstance(v, (int, float, torch.Tensor)) for v in (a, b)):
        return None
    x = max(tensors, key=lambda t: t.numel())
    if any(isinstance(v, torch.Tensor) and v is not x and v.numel() == x.numel() for v in (a, b)):
        return None  # two activations compared: not a threshold
    t = b if x is a else a
    if not bool(torch.isfinite(torch.as_tensor(t)).all()) or torch.broadcast_shapes(x.shape, torch.as_tensor(t).shape) != x.shape:
        return None

    def f64(v):
        return v.detach().to(torch.float64) if isinstance(v, torch.Tensor) else float(v)

    return f64(a) - f64(b), x


@dataclass
class _Record:
    kind: str
    group: int  # index of the first record binarizing the same tensor
    tensor: torch.Tensor  # keeps the pre-sign tensor alive (stable identity)
    values: torch.Tensor  # float64 copy of the pre-sign values
    threshold: bool = False  # a comparison with a nonzero threshold (x - t): a binarizer, or a clamp's or mask's test


class _Tracer(TorchFunctionMode):
    """Records binarizer inputs; optionally forces binarizer outputs; in
    float64 mode promotes every float32 result to float64."""

    def __init__(self, weight_storages, overrides=None, promote64=False, snap_rtol=None, force_rtol=None):
        super().__init__()
        self.weight_storages = weight_storages
        self.records: list[_Record] = []
        self.overrides = overrides or {}  # group -> {flat index: +1/-1}
        self.promote64 = promote64
        # snap_rtol: force every |x| <= snap_rtol * channel max to the decision at 0
        self.snap_rtol = snap_rtol
        self.snapped: dict[int, dict[int, float]] = {}  # group -> {flat index: choice}
        # force_rtol: force an override only where |x| <= force_rtol * channel max
        self.force_rtol = force_rtol
        self.forced = 0
        self.refused: list[tuple[int, int, float, float]] = []  # (group, index, x, channel max)
        # F.linear results: (result, float64 magnitude |x| @ |W|.T + |b| of its terms, terms per element)
        self.linear_terms: list[tuple[torch.Tensor, torch.Tensor, int]] = []

    def _group_of(self, t):
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        for r in self.records:
            u = r.tensor
            if (u.untyped_storage().data_ptr(), u.storage_offset(), tuple(u.shape), tuple(u.stride()), u.dtype) == key:
                return r.group
        return len(self.records)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.promote64:
            out = _promote(out)
        if func is torch.nn.functional.linear and isinstance(out, torch.Tensor) and out.is_floating_point():
            self._record_linear(out, *args, **kwargs)
        cls = _classify(func, args, kwargs)
        if cls is None:
            return out
        kind, x, activation = cls
        if activation.untyped_storage().data_ptr() in self.weight_storages:
            return out  # weight binarisation: exact, not a rounding question
        group = self._group_of(x)
        values = x.detach().to(torch.float64).clone()
        self.records.append(_Record(kind, group, x, values, threshold=x is not activation))
        forced = self.overrides.get(group)
        if self.snap_rtol is not None and values.numel():
            near = _exact_zero64(values, _channel_scale(values).expand_as(values), self.snap_rtol)
            at_zero = _choice_at_zero(kind, values)
            snap = {i: at_zero for i in torch.nonzero(near.reshape(-1)).flatten().tolist()}
            if snap:
                self.snapped[group] = snap
                forced = {**snap, **(forced or {})}
        if forced and self.force_rtol is not None:
            scale = _channel_scale(values).expand_as(values).reshape(-1)
            flat_x = values.reshape(-1)
            allowed = {}
            for idx, choice in forced.items():
                v = abs(float(flat_x[idx]))
                if v <= self.force_rtol * float(scale[idx]) or v <= TIE_ATOL32:
                    allowed[idx] = choice
                else:
                    self.refused.append((group, idx, float(flat_x[idx]), float(scale[idx])))
            forced = allowed
            self.forced += len(allowed)
        if forced and isinstance(out, torch.Tensor) and out.shape == x.shape:
            out = out.contiguous().clone()
            flat = out.view(-1)
            for idx, choice in forced.items():
                if kind == "sign":
                    flat[idx] = choice
                elif kind in ("ge", "gt"):
                    flat[idx] = choice > 0
                else:
                    flat[idx] = choice < 0
        return out


    def _record_linear(self, out, x, weight, bias=None):
        if not all(isinstance(t, torch.Tensor) for t in (x, weight, *([] if bias is None else [bias]))):
            return  # (a quantizer library's tensor-like, e.g. Brevitas' QuantTensor)
        with torch.no_grad():
            b = None if bias is None else bias.detach().abs().double()
            mag = torch.nn.functional.linear(x.detach().abs().double(), weight.detach().abs().double(), b)
        self.linear_terms.append((out, mag, int(weight.shape[-1])))

    def terms_of(self, output: torch.Tensor) -> tuple[torch.Tensor, int] | None:
        """The magnitude of the terms of `output` if a traced F.linear computed it."""
        for out, mag, n in self.linear_terms:
            if out is output:
                return mag, n
        return None


def _promote(out):
    if isinstance(out, torch.Tensor) and out.dtype == torch.float32:
        return out.to(torch.float64)
    if isinstance(out, (tuple, list)):
        return type(out)(_promote(o) for o in out)
    return out


def _weight_storages(model):
    s = set()
    for t in itertools.chain(model.parameters(), model.buffers()):
        s.add(t.untyped_storage().data_ptr())
    return s


def _as_tuple(out):
    if isinstance(out, (tuple, list)):
        return tuple(out)
    return (out,)


def _to_torch(o):
    if isinstance(o, np.ndarray):
        return torch.from_numpy(o)
    if isinstance(o, np.generic):
        return torch.as_tensor(o)
    if isinstance(o, torch.Tensor):
        return o.detach()
    return o


def run_traced(model, inputs, overrides=None, float64=False, tracer_out=None, **tracer_kw):
    """Run the model eagerly under the tracer that records every binarizer's
    input: (outputs, records). `overrides` forces chosen sign decisions,
    `float64` runs a float64 copy, `tracer_out` receives the tracer."""
    if float64:
        model = copy.deepcopy(model).double()
        inputs = tuple(i.double() if isinstance(i, torch.Tensor) and i.dtype == torch.float32 else i for i in inputs)
    tracer = _Tracer(_weight_storages(model), overrides, promote64=float64, **tracer_kw)
    if tracer_out is not None:
        tracer_out.append(tracer)
    old = torch.get_default_dtype()
    try:
        if float64:
            torch.set_default_dtype(torch.float64)
        with torch.no_grad(), tracer:
            out = model(*inputs)
    finally:
        torch.set_default_dtype(old)
    tracer.output_terms = [tracer.terms_of(o) for o in _as_tuple(out)]
    outs = tuple(o.detach().clone() for o in _as_tuple(out))
    return outs, tracer.records


def _integer_valued(t: torch.Tensor) -> bool:
    if not t.is_floating_point():
        return True
    if t.numel() == 0:
        return True
    return bool(torch.isfinite(t).all() and (t == t.round()).all() and t.abs().max() < 2**24)


def _channel_scale(x: torch.Tensor) -> torch.Tensor:
    """max |x| per channel (dim 1), broadcastable to x; whole tensor for ndim < 2."""
    a = x.abs()
    if x.ndim >= 2:
        dims = [d for d in range(x.ndim) if d != 1]
        return a.amax(dim=dims, keepdim=True)
    return a.max() if a.numel() else torch.tensor(0.0, dtype=x.dtype)


@dataclass
class _Ambiguous:
    group: int
    record: int
    kind: str
    index: int
    value32: float
    value64: float | None
    scale: float


def find_ambiguous(rec32, rec64, presign_rtol):
    """The binarizer inputs close enough to zero (relative to `presign_rtol`,
    or whose float64 value disagrees in sign) that float rounding may decide them."""
    amb: list[_Ambiguous] = []
    seen = set()
    use64 = rec64 is not None and len(rec64) == len(rec32) and all(
        a.values.shape == b.values.shape for a, b in zip(rec32, rec64)
    )
    for i, r in enumerate(rec32):
        x = r.values
        if x.numel() == 0:
            continue
        if _integer_valued(x):
            mask = (x == 0) if r.kind == "sign" else torch.zeros_like(x, dtype=torch.bool)
            scale = torch.zeros_like(x)
        else:
            scale = _channel_scale(x).expand_as(x)
            mask = x.abs() <= presign_rtol * scale
        x64 = rec64[i].values if use64 else None
        if x64 is not None:
            mask = mask | (torch.sign(x) != torch.sign(x64))
            # exactly 0 in exact arithmetic and within float32 noise of it, in
            # a channel whose maximum is itself noise (ZERO_ATOL, TIE_ATOL32)
            mask = mask | ((x64.abs() <= ZERO_ATOL) & (x.abs() <= TIE_ATOL32))
        for idx in torch.nonzero(mask.reshape(-1)).flatten().tolist():
            key = (r.group, idx)
            if key in seen:
                continue
            seen.add(key)
            amb.append(
                _Ambiguous(
                    r.group, i, r.kind, idx, float(x.reshape(-1)[idx]),
                    None if x64 is None else float(x64.reshape(-1)[idx]),
                    float(scale.reshape(-1)[idx]),
                )
            )
    return amb


@dataclass
class _Cmp:
    ok: bool
    lines: list[str] = field(default_factory=list)


def _compare(refs, gots, exact, rtol, atol) -> _Cmp:
    lines = []
    ok = True
    for k, (ref, got) in enumerate(zip(refs, gots)):
        ref32 = ref
        if got.dtype != ref.dtype:
            ref = ref.to(got.dtype)
        is_exact = exact if exact is not None else _integer_valued(ref32)
        if is_exact:
            bad = got != ref
            tol_desc = "exact"
        else:
            scale = float(ref.abs().max()) if ref.numel() else 0.0
            a = atol if atol is not None else rtol * scale
            diff = (got.double() - ref.double()).abs()
            bad = ~(diff <= a + rtol * ref.double().abs())  # NaN counts as bad
            tol_desc = f"atol={a:.3g} rtol={rtol:.1g}"
        nbad = int(bad.sum())
        if nbad:
            ok = False
            diff = (got.double() - ref.double()).abs()
            diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
            flat = int(diff.reshape(-1).argmax())
            pos = tuple(int(i) for i in np.unravel_index(flat, tuple(ref.shape))) if ref.ndim else ()
            lines.append(
                f"  output[{k}] shape {tuple(ref.shape)}: {nbad}/{ref.numel()} elements differ ({tol_desc}); "
                f"max |diff| {float(diff.max()):.6g} at {pos}: torch {float(ref.reshape(-1)[flat]):.8g} "
                f"vs compiled {float(got.reshape(-1)[flat]):.8g}; max |torch| {float(ref.abs().max()) if ref.numel() else 0:.6g}"
            )
    return _Cmp(ok, lines)


def _distance(outs, gots) -> float:
    """Sum of |output - compiled| over every output (the descent's objective)."""
    total = 0.0
    for o, g in zip(outs, gots):
        d = (o.double() - g.double()).abs()
        total += float(torch.where(torch.isnan(d), torch.full_like(d, float("inf")), d).sum())
    return total


def _describe_zeros(fixed, records) -> str:
    """How many exact-arithmetic zeros were forced, their float32 noise, and
    how many of them PyTorch's float32 run decided the other way."""
    n = noise = other = 0
    by_group = {}
    for r in records:
        by_group.setdefault(r.group, r)
    for g, d in fixed.items():
        r = by_group.get(g)
        if r is None:
            continue
        flat = r.values.reshape(-1)
        for idx, choice in d.items():
            v = float(flat[idx])
            n += 1
            noise = max(noise, abs(v))
            eager = (1.0 if v >= 0 else -1.0) if r.kind in ("sign", "ge", "lt") else (1.0 if v > 0 else -1.0)
            if r.kind == "sign" and v == 0:
                eager = 0.0
            other += eager != choice
    return (
        f"{n} binarizer input(s) exactly 0 in exact arithmetic (float64 |x| <= {ZERO_RTOL:g} * channel max "
        f"or <= {ZERO_ATOL:g}) "
        f"taken as the decision at 0; PyTorch float32 has rounding noise up to {noise:.3g} there and decides "
        f"{other} of them the other way"
    )


class Verdict(str):
    """How assert_matches_torch passed: the text, and whether the match needed
    the tie-aware explanation (binarizer decisions within rounding of 0),
    which the fuzzer counts without reading the text."""

    explained: bool

    def __new__(cls, text: str, *, explained: bool) -> Verdict:
        verdict = super().__new__(cls, text)
        verdict.explained = explained
        return verdict


def _within_cancellation(refs, refs64, gots, terms, exact, rtol, atol) -> bool:
    """Every output passes the plain comparison, or is a float output of an
    F.linear whose every element is within CANCEL_LAMBDA * sqrt(n) * 2**-24 * M
    of the float64 run (module docstring: "Cancellation")."""
    for ref, ref64, got, term in zip(refs, refs64, gots, terms):
        if _compare((ref,), (got,), exact, rtol, atol).ok:
            continue
        if term is None or exact or _integer_valued(ref) or tuple(term[0].shape) != tuple(got.shape):
            return False
        mag, n = term
        bound = CANCEL_LAMBDA * n**0.5 * 2.0**-24 * mag
        if not bool(((got.double() - ref64.double()).abs() <= bound).all()):
            return False
    return True


def assert_matches_torch(
    model: torch.nn.Module,
    inputs,
    compiled_outputs,
    *,
    exact: bool | None = None,
    rtol: float = 1e-4,
    atol: float | None = None,
    accum_size: int | None = None,
    presign_rtol: float = 1e-5,
):
    """Assert that ``compiled_outputs`` are what ``model(*inputs)`` computes.

    exact: None = exact iff the eager output is integer-valued; True/False force.
    rtol/atol: float closeness; atol defaults to rtol * max|eager output|, widened
      to 8 * accum_size * eps32 * max|eager output| when ``accum_size`` (the
      length of the longest float accumulation feeding the output) is given.
    presign_rtol: |pre-sign| below this times its channel's max |x| counts as
      "within float rounding of 0".
    Returns a Verdict: a short string describing how the comparison passed.
    """
    inputs = tuple(_to_torch(i) for i in _as_tuple(inputs))
    gots = tuple(_to_torch(o) for o in _as_tuple(compiled_outputs))
    t32: list = []
    refs, rec32 = run_traced(model, inputs, tracer_out=t32)

    header = f"{type(model).__name__} on inputs {[tuple(i.shape) for i in inputs if isinstance(i, torch.Tensor)]}"
    assert len(gots) == len(refs), f"{header}: compiled returned {len(gots)} outputs, torch {len(refs)}"
    for k, (r, g) in enumerate(zip(refs, gots)):
        assert isinstance(g, torch.Tensor), f"{header}: output[{k}] is {type(g).__name__}, not a tensor"
        assert tuple(g.shape) == tuple(r.shape), f"{header}: output[{k}] shape {tuple(g.shape)} != torch {tuple(r.shape)}"
        assert g.dtype == r.dtype, f"{header}: output[{k}] dtype {g.dtype} != torch {r.dtype}"
    if exact:
        for k, r in enumerate(refs):
            assert _integer_valued(r), f"{header}: exact comparison requested but torch output[{k}] is not integer-valued"

    if atol is None and accum_size is not None:
        scale = max((float(r.abs().max()) for r in refs if r.numel()), default=0.0)
        atol = max(rtol, 8 * accum_size * float(torch.finfo(torch.float32).eps)) * scale

    first = _compare(refs, gots, exact, rtol, atol)
    if first.ok:
        return Verdict("matches eager float32", explained=False)

    try:
        refs64, rec64 = run_traced(model, inputs, float64=True)
    except Exception as e:  # the model may not run in float64; the search below still works
        refs64, rec64 = None, None
        f64_note = f"(float64 re-run failed: {type(e).__name__}: {e})"
    else:
        f64_note = ""
    amb = find_ambiguous(rec32, rec64, presign_rtol)

    report = [f"{header}: compiled output differs from PyTorch eager", *first.lines]
    report.append(f"  binarizer calls on activations traced: {len(rec32)} {f64_note}")
    if not amb:
        # (only with no near-zero binarizer input: a decision there is for the
        # search below, whose verdict says which; rounding cannot flip the others)
        if refs64 is not None and _within_cancellation(refs, refs64, gots, t32[0].output_terms, exact, rtol, atol):
            return Verdict(
                "explained: within float32 rounding of the float64 result for the magnitude of the terms "
                "of a linear output (cancellation)",
                explained=True,
            )
        report.append(
            "  no binarizer pre-sign value is within float rounding of 0 "
            f"(|x| <= {presign_rtol:g} * channel max, or float32/float64 sign disagreement): "
            "the mismatch is NOT explained -> compiler bug"
        )
        raise AssertionError("\n".join(report))

    if refs64 is not None:
        refs64_cast = tuple(r.to(r32.dtype) for r, r32 in zip(refs64, refs))
        if _compare(refs64_cast, gots, exact if exact is not None else None, rtol, atol).ok:
            text = f"explained: matches the float64 reference ({len(amb)} near-zero pre-sign values)"
            return Verdict(text, explained=True)

    # The exact-zero reference (module docstring): float64 with exact zeros
    # snapped to the decision at 0, then float32 forced the same way.
    fixed: dict[int, dict[int, float]] = {}
    rec_base, rec64_base, refused = rec32, rec64, []
    if rec64 is not None:
        t64: list[_Tracer] = []
        try:
            _, rec64z = run_traced(model, inputs, float64=True, tracer_out=t64, snap_rtol=ZERO_RTOL)
        except Exception:  # noqa: BLE001 (the float64 run worked above; be safe)
            t64 = []
        if t64 and t64[0].snapped:
            t32: list[_Tracer] = []
            refs_z, rec32z = run_traced(model, inputs, overrides=t64[0].snapped, tracer_out=t32, force_rtol=presign_rtol)
            refused = t32[0].refused
            not_forced = {(r[0], r[1]) for r in refused}
            fixed = {g: {i: c for i, c in d.items() if (g, i) not in not_forced} for g, d in t64[0].snapped.items()}
            n_zero = sum(len(d) for d in fixed.values())
            if _compare(refs_z, gots, exact, rtol, atol).ok and n_zero:
                return Verdict(f"explained: {_describe_zeros(fixed, rec32z)}", explained=True)
            if len(rec32z) == len(rec32):
                rec_base = rec32z
                rec64_base = rec64z if len(rec64z) == len(rec32z) else None
                amb = find_ambiguous(rec_base, rec64_base, presign_rtol)
            else:
                fixed = {}

    n_fixed = sum(len(d) for d in fixed.values())
    if n_fixed:
        report.append(
            f"  {n_fixed} pre-sign value(s) exactly 0 in exact arithmetic, forced to the decision at 0 "
            f"(the exact-zero reference does not match either)"
        )
    for g, i, v, sc in refused[:4]:
        report.append(f"    not forced (float32 value not near 0): group {g} index {i} x32={v:.3g} channel max {sc:.3g}")
    report.append(f"  {len(amb)} ambiguous pre-sign value(s):")
    for a in amb[:12]:
        report.append(
            f"    binarizer #{a.record} ({a.kind}) flat index {a.index}: x32={a.value32:.6g} "
            f"x64={a.value64 if a.value64 is None else f'{a.value64:.6g}'} channel scale {a.scale:.4g}"
        )

    # Search over forced sign choices at the ambiguous positions, starting
    # from the exact-zero reference when there is one.
    base = {}
    for a in amb:
        r = rec_base[a.record]
        v = a.value32
        if r.kind == "sign" or r.kind in ("ge", "lt"):
            base[(a.group, a.index)] = 1.0 if v >= 0 else -1.0
        else:  # gt / le: eager treats 0 as "not positive"
            base[(a.group, a.index)] = 1.0 if v > 0 else -1.0
        if r.kind == "sign" and v == 0:
            base[(a.group, a.index)] = _choice_at_zero(r.kind, r.values)  # bnnc's choice for an exact 0
        if a.index in fixed.get(a.group, {}):
            base[(a.group, a.index)] = fixed[a.group][a.index]
    keys = list(base)
    other = [_other_choice(rec_base[a.record].kind, rec_base[a.record].values, base[k]) for a, k in zip(amb, keys)]

    def run_flipped(flipped: set[int]):
        overrides: dict[int, dict[int, float]] = {g: dict(d) for g, d in fixed.items()}
        for j, (g, idx) in enumerate(keys):
            overrides.setdefault(g, {})[idx] = other[j] if j in flipped else base[(g, idx)]
        return run_traced(model, inputs, overrides=overrides)[0]

    def explained(flipped, runs: int, how: str) -> Verdict:
        desc = ", ".join(
            f"#{a.record}[{a.index}] x={a.value32:.3g} (|x|/scale {abs(a.value32) / a.scale if a.scale else 0:.2g})"
            for a in (amb[j] for j in sorted(flipped))
        )
        zero_note = f" and {n_fixed} exact-arithmetic zeros at the decision at 0" if n_fixed else ""
        return Verdict(
            f"explained: matches eager with {len(flipped)} near-zero binarizer decision(s) "
            f"taken the other way [{desc}]{zero_note} (after {runs} tries{how})",
            explained=True,
        )

    # 1. every subset of flips, smallest first, within the budget
    runs = 0
    exhaustive = len(keys) <= 8
    subset_budget = MAX_SEARCH_RUNS if exhaustive else 1 + len(keys)  # (no flip, each single flip)
    for subset in itertools.chain.from_iterable(
        itertools.combinations(range(len(keys)), size) for size in range(len(keys) + 1)
    ):
        if runs >= subset_budget:
            break
        runs += 1
        if _compare(run_flipped(set(subset)), gots, exact, rtol, atol).ok:
            return explained(subset, runs, "")
    # 2. many ambiguous positions (a float op that makes many exact zeros, e.g.
    # a bilinear upsample of integer activations): descend on the distance to
    # the compiled output, one flip at a time; every accepted state is a real
    # assignment of decisions, so a match is as sound as the subset search's
    if not exhaustive:
        flipped: set[int] = set()
        best = _distance(run_flipped(flipped), gots)
        improved = True
        while improved and runs < MAX_SEARCH_RUNS:
            improved = False
            for j in range(len(keys)):
                if runs >= MAX_SEARCH_RUNS:
                    break
                trial = flipped ^ {j}
                runs += 1
                outs = run_flipped(trial)
                if _compare(outs, gots, exact, rtol, atol).ok:
                    return explained(trial, runs, ", descent")
                d = _distance(outs, gots)
                if d < best:
                    flipped, best, improved = trial, d, True
    report.append(
        f"  no choice of signs at the ambiguous positions reproduces the compiled output "
        f"({runs} tries, {'exhaustive' if exhaustive and runs < MAX_SEARCH_RUNS else 'single flips, then descent'}): "
        "NOT explained"
    )
    raise AssertionError("\n".join(report))
