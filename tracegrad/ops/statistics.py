"""Counting, searching and order statistics: unique, bincount, histc, searchsorted, bucketize, cummax/cummin,
logcumsumexp, median, nanmedian, mode, kthvalue, quantile and nanquantile.

The values of median (along a dim), mode, kthvalue, cummax and cummin are a `gather` at their indices, so their
gradient goes to the element each value came from (PyTorch's rule); the global `median` spreads it evenly over
the elements equal to the median, as PyTorch's does. Indices follow PyTorch's CPU kernels, ties included: median
picks the lower median by (value, position), kthvalue runs PyTorch's quickselect where the k-th value repeats,
mode takes the smallest of the most frequent values at its last position (PyTorch's for up to 16 elements; beyond,
its sort leaves that position unspecified), cummax and cummin the last position of the running extremum.
`unique` and `bincount` read their output's size as a Python int: a guard under `tracegrad.compile`.

>>> import tracegrad as tg
>>> tg.tensor([3, 1, 3, 2]).unique(return_counts=True)
(tensor([1, 2, 3]), tensor([1, 1, 2]))
>>> tg.tensor([[1.0, 5.0, 2.0, 4.0]]).median(1)
tracegrad.return_types.median(
values=tensor([2.]),
indices=tensor([2]))
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from .. import _tracing, dtypes
from .._tensor import Tensor, apply
from ..creation import ones
from ..dtypes import result_type
from . import order_primitives as OP
from .arithmetic import (
    add,
    clamp,
    div,
    eq,
    floor_divide,
    ge,
    isnan,
    le,
    logical_and,
    logical_not,
    logical_or,
    minimum,
    mul,
    ne,
    sub,
    where,
)
from .base import _named, _tensor, to
from .indexing import getitem, getitem_raw
from .inplace import lerp
from .reductions import amax, amin, argmax
from .reductions import any as any_
from .reductions import sum as sum_
from .scans import cumsum_raw
from .shapes import fmt, normalize_dim
from .shaping import cat, permute, reshape
from .sorting import _return_type, argsort, gather_raw, scatter_add_raw, sort
from .structure import _along, _size_from, _value_from, movedim

median_result, mode_result, kthvalue_result = (_return_type(n) for n in ("median", "mode", "kthvalue"))
nanmedian_result, cummax_result, cummin_result = (_return_type(n) for n in ("nanmedian", "cummax", "cummin"))


def _as_1d(x: Tensor, dim, name: str):
    """(x with at least one dim, the normalized dim, whether x was 0-d): a 0-d input reduces as one element."""
    d = normalize_dim(name, dim, x.ndim)
    return (reshape(x, 1), 0, True) if x.ndim == 0 else (x, d, False)


def _drop_dim(t: Tensor, d: int, keepdim: bool, was_scalar: bool) -> Tensor:
    if was_scalar:
        return reshape(t, ())
    return t if keepdim else reshape(t, t.shape[:d] + t.shape[d + 1:])


def _nonempty(name: str, x: Tensor, d: int) -> None:
    if x.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


# ------------------------------------------------------------------------------------------ unique
def _runs(s: Tensor, starts_at, source: Tensor) -> tuple:
    """For a 1-D tensor whose equal values are adjacent (computed from `source`): (whether each element starts a
    run, where the runs start); the number of runs is a guard under compile."""
    n = s.shape[0]
    first = Tensor._make(np.ones(builtins.min(n, 1), np.bool_))
    is_start = cat([first, starts_at(s)], 0) if n > 1 else first
    count = _size_from(sum_(is_start), "unique", source) if n else 0
    starts = getitem(argsort(logical_not(is_start), stable=True), slice(0, count))
    return is_start, starts


def _run_outputs(values, is_start, starts, n, order, shape, return_inverse, return_counts):
    out = [values]
    if return_inverse:
        run = sub(cumsum_raw(to(is_start, dtypes.int64), 0, False), 1) if n else \
            Tensor._make(np.zeros(0, np.int64))
        if order is not None:  # back from sorted order to the input's
            run = getitem(run, argsort(order, stable=True))
        out.append(reshape(run, shape))
    if return_counts:
        ends = cat([getitem(starts, slice(1, None)), Tensor._make(np.array([n], np.int64))], 0)
        out.append(sub(ends, starts))
    return out[0] if len(out) == 1 else tuple(out)


def unique(x: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,  # noqa: A002
           dim=None):
    """The distinct values of `x` in ascending order (nan values stay distinct); with `return_inverse`, where
    each element's value is in them; with `return_counts`, how often each occurs. With `dim`, the distinct slices.

    The values carry no gradient. `sorted=False` gives them sorted too (as PyTorch's CPU kernel does).

    >>> import tracegrad as tg
    >>> tg.unique(tg.tensor([[2, 1], [2, 0]]), return_inverse=True)
    (tensor([0, 1, 2]), tensor([[2, 1],
            [2, 0]]))
    """
    source = _tensor(x)
    x = source.detach()
    if dim is not None:
        return _unique_dim(source, x, dim, return_inverse, return_counts)
    flat = reshape(x, -1)
    order = argsort(flat, stable=True)
    s = getitem(flat, order)
    is_start, starts = _runs(s, lambda s: ne(getitem(s, slice(1, None)), getitem(s, slice(0, -1))), source)
    return _run_outputs(getitem(s, starts), is_start, starts, flat.shape[0], order, x.shape, return_inverse,
                        return_counts)


def _unique_dim(source: Tensor, x: Tensor, dim, return_inverse, return_counts):
    """unique over slices: the whole tensor decides the output's size, so under compile it is a guard."""
    d = normalize_dim("unique", dim, x.ndim)
    if _tracing.TRACER is not None and not _tracing.TRACER.is_constant(source):
        _tracing.TRACER.concretize(x, "unique")
    arr = np.moveaxis(x._data, d, 0)
    values, inverse, counts = np.unique(arr.reshape(arr.shape[0], -1), axis=0, return_inverse=True,
                                        return_counts=True)
    values = np.moveaxis(values.reshape((-1,) + arr.shape[1:]), 0, d)
    out = [Tensor._make(np.ascontiguousarray(values))]
    if return_inverse:
        out.append(Tensor._make(inverse.reshape(-1).astype(np.int64)))
    if return_counts:
        out.append(Tensor._make(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def unique_consecutive(x: Tensor, return_inverse: bool = False, return_counts: bool = False, dim=None):
    """The first value of each run of equal consecutive values (or slices along `dim`), with the run of each
    element (`return_inverse`) and the runs' lengths (`return_counts`).

    >>> import tracegrad as tg
    >>> tg.unique_consecutive(tg.tensor([1, 1, 2, 2, 1]), return_counts=True)
    (tensor([1, 2, 1]), tensor([2, 2, 1]))
    """
    source = _tensor(x)
    x = source.detach()
    if dim is None:
        flat = reshape(x, -1)
        is_start, starts = _runs(flat, lambda s: ne(getitem(s, slice(1, None)), getitem(s, slice(0, -1))), source)
        return _run_outputs(getitem(flat, starts), is_start, starts, flat.shape[0], None, x.shape, return_inverse,
                            return_counts)
    d = normalize_dim("unique_consecutive", dim, x.ndim)
    t = movedim(x, d, 0)
    rest = tuple(range(1, t.ndim))

    def changed(s):
        differs = ne(getitem(s, slice(1, None)), getitem(s, slice(0, -1)))
        return any_(differs, rest) if rest else differs
    is_start, starts = _runs(t, changed, source)
    values = movedim(getitem(t, starts), 0, d)
    return _run_outputs(values, is_start, starts, t.shape[0], None, (t.shape[0],), return_inverse, return_counts)


# ------------------------------------------------------------------------------------------ counting
def bincount(x: Tensor, weights=None, minlength: int = 0) -> Tensor:
    """How often each value 0, 1, ... occurs in the 1-D non-negative integer `x` (summing `weights` instead of
    ones); at least `minlength` bins. The size is `max(x) + 1`: a guard under compile.

    >>> import tracegrad as tg
    >>> tg.bincount(tg.tensor([0, 2, 2, 3]))
    tensor([1, 0, 2, 1])
    """
    x = _tensor(x)
    if x.ndim != 1 or x.dtype.is_floating_point or x.dtype is dtypes.bool_ or \
            (x.numel() and x._data.min() < 0):
        raise RuntimeError(f"bincount only supports 1-d non-negative integral inputs (got a {x.ndim}-d {x.dtype} "
                           f"tensor)")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    if weights is not None and (weights.ndim != 1 or weights.shape[0] != x.shape[0]):
        raise RuntimeError(f"weights should be 1-d and have the same length as input (got {fmt(weights.shape)} for "
                           f"input {fmt(x.shape)})")
    size = _size_from(clamp(amax(x), min=minlength - 1), "bincount", x) + 1 if x.numel() else minlength
    if weights is None:
        src = ones(x.shape[0], dtype=dtypes.int64)
    else:
        src = weights if weights.is_floating_point() else to(weights, dtypes.float64)
    return scatter_add_raw(src, to(x, dtypes.int64), 0, (size,))


def histc(x: Tensor, bins: int = 100, min=0, max=0) -> Tensor:  # noqa: A002
    """A histogram of `x` in `bins` equal bins over [min, max] (by default the data's range); values outside
    (and nan) are not counted, the last bin includes `max`. Bins are picked as PyTorch's CPU kernel does.

    >>> import tracegrad as tg
    >>> tg.histc(tg.tensor([1.0, 2.0, 1.0, 4.0]), bins=4, min=0, max=4)
    tensor([0., 2., 1., 1.])
    """
    x = _tensor(x)
    if not x.is_floating_point():
        raise RuntimeError(f"histc: expected a floating point input, got {x.dtype}")
    if bins <= 0:
        raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for dimension 0")
    flat = reshape(x.detach(), -1)
    lo, hi = float(min), float(max)
    if lo == hi and flat.shape[0]:  # the data's range: a guard on each end under compile
        lo, hi = _value_from(amin(flat), "histc", x), _value_from(amax(flat), "histc", x)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise RuntimeError(f"torch.histc: range of [{lo}, {hi}] is not finite")
    if lo >= hi:
        raise RuntimeError("torch.histc: max must be larger than min")
    kind = x.dtype.np.type
    left, right = kind(lo), kind(hi)
    # NOTE: PyTorch's bin: trunc((x - left) * bins / (right - left)), in the input's dtype, with the top edge in the
    # last bin; values outside [left, right] and nan go to an extra bin that is dropped
    inside = logical_and(ge(flat, float(left)), le(flat, float(right)))
    pos = to(div(mul(sub(flat, float(left)), bins), float(right - left)), dtypes.int64)
    pos = where(inside, minimum(pos, bins - 1), bins)
    counts = scatter_add_raw(ones(flat.shape[0], dtype=x.dtype), pos, 0, (bins + 1,))
    return getitem(counts, slice(0, bins))


# ------------------------------------------------------------------------------------------ searching
def searchsorted(sorted_sequence: Tensor, input, *, out_int32: bool = False, right: bool = False,  # noqa: A002
                 side=None, sorter=None) -> Tensor:
    """For each value, the position in the sorted last dim of `sorted_sequence` that keeps it sorted: before equal
    values, or after them with ``right=True`` (``side='right'``).

    >>> import tracegrad as tg
    >>> tg.searchsorted(tg.tensor([1, 3, 5, 7]), tg.tensor([3, 6]))
    tensor([1, 3])
    >>> tg.searchsorted(tg.tensor([1, 3, 5, 7]), 3, right=True)
    tensor(2)
    """
    seq = _tensor(sorted_sequence)
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but got {side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, got side of left "
                               "while right was True")
        right = side == "right"
    if seq.ndim == 0:
        raise RuntimeError("torch.searchsorted(): boundaries tensor should have at least 1 dimension, but got 0")
    values = input if isinstance(input, Tensor) else Tensor._make(np.array(input, seq.dtype.np))
    if sorter is not None:
        seq = gather_raw(seq, _tensor(sorter), seq.ndim - 1)
    dt = result_type(seq, values)
    out = apply(OP.searchsorted, to(seq, dt), to(values, dt), right=bool(right))
    return to(out, dtypes.int32) if out_int32 else out


def bucketize(input: Tensor, boundaries: Tensor, *, out_int32: bool = False, right: bool = False) -> Tensor:  # noqa: A002
    """The bucket of each value among the sorted 1-D `boundaries`: i with boundaries[i-1] < v <= boundaries[i]
    (``right=True``: boundaries[i-1] <= v < boundaries[i]).

    >>> import tracegrad as tg
    >>> tg.bucketize(tg.tensor([1, 5, 9]), tg.tensor([1, 5, 9]), right=True)
    tensor([1, 2, 3])
    """
    boundaries = _tensor(boundaries)
    if boundaries.ndim != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({boundaries.ndim})")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


# ------------------------------------------------------------------------------------------ scans
def _cum_extremum(x: Tensor, dim: int, largest: bool):
    name = "cummax" if largest else "cummin"
    x = _tensor(x)
    t, d, scalar = _as_1d(x, dim, name)
    idx = apply(OP.cum_extremum_indices, t, axis=d, largest=largest)
    values = gather_raw(t, idx, d)
    if scalar:
        values, idx = reshape(values, ()), reshape(idx, ())
    result = cummax_result if largest else cummin_result
    return result(_named(values, f"{name.capitalize()}Backward0"), idx)


def cummax(x: Tensor, dim: int):
    """The running maximum along `dim` and where it was (the last position of equal values; nan propagates).

    >>> import tracegrad as tg
    >>> tg.cummax(tg.tensor([1, 3, 2, 3]), 0).indices
    tensor([0, 1, 1, 3])
    """
    return _cum_extremum(x, dim, True)


def cummin(x: Tensor, dim: int):
    """The running minimum along `dim` and where it was (the last position of equal values; nan propagates).

    >>> import tracegrad as tg
    >>> tg.cummin(tg.tensor([3.0, 1.0, 2.0]), 0).values
    tensor([3., 1., 1.])
    """
    return _cum_extremum(x, dim, False)


def logcumsumexp_raw(x: Tensor, axis: int, reverse: bool) -> Tensor:
    """The logcumsumexp primitive on a normalized axis (from the end with `reverse`; its own VJP uses that)."""
    return apply(OP.logcumsumexp, x, axis=axis, reverse=reverse)


def logcumsumexp(x: Tensor, dim: int) -> Tensor:
    """log(cumsum(exp(x))) along `dim`, computed without overflow (pairwise log-add-exp).

    >>> import tracegrad as tg
    >>> tg.logcumsumexp(tg.tensor([0.0, 0.0, -1000.0]), 0)
    tensor([0.0000, 0.6931, 0.6931])
    """
    x = _tensor(x)
    t, d, scalar = _as_1d(x, dim, "logcumsumexp")
    out = logcumsumexp_raw(t, d, False)
    return _named(reshape(out, ()), "LogcumsumexpBackward0") if scalar else out


# ------------------------------------------------------------------------------------------ order statistics
def _median_all(x: Tensor, ignore_nan: bool, name: str) -> Tensor:
    flat = reshape(x, -1)
    n = flat.shape[0]
    if n == 0:
        if not x.is_floating_point():
            raise RuntimeError(f"{name}() operation does not have an identity for empty input tensor")
        return _named(mul(sum_(flat), math.nan), f"{name.capitalize()}Backward0")
    data = flat.detach()
    order = argsort(data, stable=True)  # nan sorts last
    if ignore_nan:
        k = clamp(floor_divide(sub(sum_(logical_not(isnan(data))), 1), 2), min=0)
        at = getitem(order, reshape(k, 1))
    else:
        at = getitem_raw(order, (slice((n - 1) // 2, (n - 1) // 2 + 1),))
    if not x.is_floating_point():
        return reshape(getitem(flat, at), ())
    value = getitem(data, at)
    if not ignore_nan:  # any nan makes the median nan
        value = where(any_(isnan(data)), math.nan, value)
    # NOTE: the largest of the elements equal to the median is the median; amax spreads the gradient evenly over
    # them (PyTorch's rule for the global median), and where() keeps it from the others
    equal = logical_or(eq(data, value), logical_and(isnan(data), isnan(value)))
    return _named(amax(where(equal, flat, -math.inf)), f"{name.capitalize()}Backward0")


def _median_dim(x: Tensor, dim, keepdim: bool, ignore_nan: bool, name: str):
    t, d, scalar = _as_1d(x, dim, name)
    _nonempty(name, t, d)
    data = t.detach()
    order = argsort(data, d, stable=True)
    if ignore_nan:
        k = clamp(floor_divide(sub(sum_(logical_not(isnan(data)), d, keepdim=True), 1), 2), min=0)
        idx = gather_raw(order, k, d)
    else:
        k = (t.shape[d] - 1) // 2
        idx = getitem_raw(order, _along(d, slice(k, k + 1)))
        if t.is_floating_point():  # the first nan, if any
            nan = isnan(data)
            idx = where(any_(nan, d, keepdim=True), argmax(nan, d, keepdim=True), idx)
    values = _drop_dim(gather_raw(t, idx, d), d, keepdim, scalar)
    result = nanmedian_result if ignore_nan else median_result
    return result(_named(values, f"{name.capitalize()}Backward1"), _drop_dim(idx, d, keepdim, scalar))


def median(x: Tensor, dim=None, keepdim: bool = False):
    """The lower median of all elements (nan if any is nan), or (values, indices) along `dim`.

    >>> import tracegrad as tg
    >>> tg.median(tg.tensor([3.0, 1.0, 2.0, 4.0]))
    tensor(2.)
    """
    x = _tensor(x)
    return _median_all(x, False, "median") if dim is None else _median_dim(x, dim, keepdim, False, "median")


def nanmedian(x: Tensor, dim=None, keepdim: bool = False):
    """`median` ignoring nan values (nan only where every value is nan).

    >>> import tracegrad as tg
    >>> tg.nanmedian(tg.tensor([3.0, float("nan"), 1.0]))
    tensor(1.)
    """
    x = _tensor(x)
    return _median_all(x, True, "nanmedian") if dim is None else _median_dim(x, dim, keepdim, True, "nanmedian")


def mode(x: Tensor, dim: int = -1, keepdim: bool = False):
    """The most frequent value along `dim` (the smallest of equally frequent ones) and its last position.

    >>> import tracegrad as tg
    >>> tg.tensor([[1, 2, 2, 3, 3]]).mode(1)
    tracegrad.return_types.mode(
    values=tensor([2]),
    indices=tensor([2]))
    """
    x = _tensor(x)
    t, d, scalar = _as_1d(x, dim, "mode")
    _nonempty("mode", t, d)
    rows = movedim(t.detach(), d, -1)
    last = rows.ndim - 1
    order = argsort(rows, stable=True)
    s = gather_raw(rows, order, last)
    # run of equal values around each sorted element: [left, right); its length counts the value
    right = apply(OP.searchsorted, s, s, right=True)
    count = sub(right, apply(OP.searchsorted, s, s, right=False))
    best = argmax(eq(count, amax(count, -1, keepdim=True)), -1, keepdim=True)  # the first: the smallest value
    idx = movedim(gather_raw(order, sub(gather_raw(right, best, last), 1), last), -1, d)
    values = _drop_dim(gather_raw(t, idx, d), d, keepdim, scalar)
    return mode_result(_named(values, "ModeBackward0"), _drop_dim(idx, d, keepdim, scalar))


def kthvalue(x: Tensor, k: int, dim: int = -1, keepdim: bool = False):
    """The k-th smallest value along `dim` (k from 1) and its position (PyTorch's among equal values).

    >>> import tracegrad as tg
    >>> tg.tensor([4.0, 1.0, 3.0]).kthvalue(2)
    tracegrad.return_types.kthvalue(
    values=tensor(3.),
    indices=tensor(2))
    """
    x = _tensor(x)
    t, d, scalar = _as_1d(x, dim, "kthvalue")
    if not 1 <= k <= t.shape[d]:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d} (k = {k}, size "
                           f"{t.shape[d]})")
    idx = apply(OP.kthvalue_indices, t, k=int(k), axis=d)
    values = _drop_dim(gather_raw(t, idx, d), d, keepdim, scalar)
    return kthvalue_result(_named(values, "KthvalueBackward0"), _drop_dim(idx, d, keepdim, scalar))


_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(x: Tensor, q, dim, keepdim: bool, interpolation: str, ignore_nan: bool) -> Tensor:
    name = "nanquantile" if ignore_nan else "quantile"
    x = _tensor(x)
    if x.dtype not in (dtypes.float32, dtypes.float64):
        raise RuntimeError(f"{name}() input tensor must be either float or double dtype (got {x.dtype})")
    if interpolation not in _INTERPOLATIONS:
        raise RuntimeError(f"{name}() interpolation must be one of linear, lower, higher, midpoint or nearest, but "
                           f"got {interpolation}")
    if x.numel() == 0:
        raise RuntimeError(f"{name}() input tensor must be non-empty")
    if isinstance(q, Tensor):
        if q.ndim > 1:
            raise RuntimeError(f"{name}() q must be a scalar or 1D tensor")
        if q.dtype is not x.dtype:
            raise RuntimeError(f"{name}() q tensor must be same dtype as the input tensor (got {q.dtype} and "
                               f"{x.dtype})")
        if not ((q._data >= 0) & (q._data <= 1)).all():
            raise RuntimeError(f"{name}() q values must be in the range [0, 1]")
        qs, scalar_q = reshape(q, -1), q.ndim == 0
    else:
        if not 0 <= q <= 1:
            raise RuntimeError(f"{name}() q must be in the range [0, 1] but got {q}")
        qs, scalar_q = Tensor._make(np.array([q], x.dtype.np)), True
    if dim is None:
        kept = (1,) * x.ndim if keepdim else ()
        rows = reshape(x, (1, -1))
    else:
        d = normalize_dim(name, dim, x.ndim)
        kept = tuple(1 if i == d else n for i, n in enumerate(x.shape)) if keepdim else x.shape[:d] + x.shape[d + 1:]
        rows = reshape(x, (1, 1)) if x.ndim == 0 else reshape(movedim(x, d, -1), (-1, x.shape[d]))
    s = sort(rows, -1).values  # (R, n), nan last
    n = s.shape[-1]
    if ignore_nan:  # ranks among the non-nan values (all nan: rank 0, a nan)
        ranks = mul(qs, sub(sum_(logical_not(isnan(s)), -1, keepdim=True), 1))
        ranks = where(ranks < 0, 0.0, ranks)
    else:  # a nan in the row: the last rank, a nan
        ranks = where(any_(isnan(s), -1, keepdim=True), float(n - 1), mul(qs, n - 1))
    ranks = _round_ranks(ranks, interpolation)
    below = to(ranks, dtypes.int64)
    out = gather_raw(s, below, 1)
    if interpolation in ("linear", "midpoint"):
        weights = sub(ranks, below) if interpolation == "linear" else 0.5
        above = add(below, to(ranks > below, dtypes.int64))  # ceil(ranks)
        out = lerp(out, gather_raw(s, above, 1), weights)
    # out is (R, Q): the quantiles first, then the kept dims
    out = permute(out, (1, 0))
    return _named(reshape(out, kept if scalar_q else (qs.shape[0],) + kept), "SqueezeBackward4")


def _round_ranks(ranks: Tensor, interpolation: str) -> Tensor:
    """Ranks (>= 0) rounded as PyTorch's interpolation modes do: floor, ceil or half to even (`nearest`)."""
    if interpolation in ("linear", "midpoint"):
        return ranks
    low = to(to(ranks, dtypes.int64), ranks.dtype)
    if interpolation == "lower":
        return low
    frac = sub(ranks, low)
    if interpolation == "higher":
        return add(low, to(frac > 0, ranks.dtype))
    odd = eq(sub(low, mul(floor_divide(low, 2), 2)), 1)
    up = logical_or(frac > 0.5, logical_and(eq(frac, 0.5), odd))
    return add(low, to(up, ranks.dtype))


def quantile(x: Tensor, q, dim=None, keepdim: bool = False, *, interpolation: str = "linear") -> Tensor:
    """The q-th quantiles of `x` (of all elements, or along `dim`), interpolating between the sorted values as
    `interpolation` says; a 1-D `q` gives one result per q, first.

    >>> import tracegrad as tg
    >>> tg.quantile(tg.tensor([1.0, 2.0, 3.0, 4.0]), tg.tensor([0.25, 0.5]))
    tensor([1.7500, 2.5000])
    """
    return _quantile(x, q, dim, keepdim, interpolation, False)


def nanquantile(x: Tensor, q, dim=None, keepdim: bool = False, *, interpolation: str = "linear") -> Tensor:
    """`quantile` ignoring nan values (nan only where every value is nan).

    >>> import tracegrad as tg
    >>> tg.tensor([1.0, float("nan"), 3.0]).nanquantile(0.5)
    tensor(2.)
    """
    return _quantile(x, q, dim, keepdim, interpolation, True)
