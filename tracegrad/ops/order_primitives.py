"""Primitives on the order of values: searchsorted, kthvalue's selection, cummax/cummin's indices, logcumsumexp.

Registered like those of `primitives.py` (numpy forward, shape/dtype rule, VJP in tracegrad's ops). The three
index ops have no VJP (their int64 results select positions); the values of kthvalue, cummax and cummin are a
`gather` at their indices, whose VJP puts the gradient back where each value came from, as PyTorch's does.

>>> from tracegrad.ops import registry
>>> registry.REGISTRY["logcumsumexp"].backward_name
'LogcumsumexpBackward0'
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from .registry import AbstractValue as AV
from .registry import Kind, Op, register
from .shapes import fmt

OPAQUE = Kind.OPAQUE


def _F():
    from . import functions  # NOTE: the VJPs call the user-facing functions, which import this module
    return functions


# ---------------------------------------------------------------- searchsorted
def _searchsorted_forward(seq, values, right):
    side = "right" if right else "left"
    if seq.ndim == 1:
        return np.searchsorted(seq, values, side=side).astype(np.int64, copy=False)
    rows, n = seq.reshape(-1, seq.shape[-1]), seq.shape[-1]
    vals = values.reshape(rows.shape[0], -1)
    out = np.empty(vals.shape, np.int64)
    for i in range(rows.shape[0]):  # numpy's searchsorted takes one sorted row at a time
        out[i] = np.searchsorted(rows[i], vals[i], side=side) if n else 0
    return out.reshape(values.shape)


def _searchsorted_infer(seq, values, right):
    if seq.ndim != 1 and seq.shape[:-1] != values.shape[:-1]:
        raise RuntimeError(f"torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 dimensions "
                           f"of boundaries tensor and input value tensor must match, but we got boundaries tensor "
                           f"{fmt(seq.shape)} and input value tensor {fmt(values.shape)}")
    if seq.dtype is not values.dtype:
        raise TypeError(f"searchsorted: operands must share a dtype after promotion, got {seq.dtype} and "
                        f"{values.dtype}")
    return AV(values.shape, dtypes.int64)


# where each value would go in the sorted last dim of `seq` (numpy's order: nan sorts last)
searchsorted = register(Op("searchsorted", OPAQUE, _searchsorted_forward, _searchsorted_infer, arity=2))


# ---------------------------------------------------------------- kthvalue
def _greater_or_nan(a, b) -> bool:
    return (a != a and b == b) or a > b


def _quick_select(row: np.ndarray, k: int) -> int:
    """The index PyTorch's CPU kthvalue picks in `row`: its quickselect (Sedgewick's partition, median-of-three
    pivot, nan largest), which decides between equal values; `row` is a copy it reorders."""
    arr, ind = row.tolist(), list(range(len(row)))

    def swap(i, j):
        arr[i], arr[j] = arr[j], arr[i]
        ind[i], ind[j] = ind[j], ind[i]

    lo, hi = 0, len(arr) - 1
    while hi > lo:
        if hi == lo + 1:
            if _greater_or_nan(arr[lo], arr[hi]):
                swap(lo, hi)
            break
        swap((lo + hi) >> 1, lo + 1)
        if _greater_or_nan(arr[lo + 1], arr[hi]):
            swap(lo + 1, hi)
        if _greater_or_nan(arr[lo], arr[hi]):
            swap(lo, hi)
        if _greater_or_nan(arr[lo + 1], arr[lo]):
            swap(lo + 1, lo)
        i, j, pivot = lo + 1, hi, arr[lo]
        while True:
            i += 1
            while _greater_or_nan(pivot, arr[i]):
                i += 1
            j -= 1
            while _greater_or_nan(arr[j], pivot):
                j -= 1
            if j < i:
                break
            swap(i, j)
        swap(lo, j)
        if j <= k:
            lo = i
        if j >= k:
            hi = j - 1
    return ind[k]


def _kthvalue_forward(x, k, axis):
    """The index of the k-th smallest value (1-based k) along `axis`, kept as a size-1 dim."""
    moved = np.moveaxis(x, axis, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    order = np.argsort(rows, axis=-1, kind="stable")
    idx = order[:, k - 1].astype(np.int64)
    # NOTE: the k-th value is the same whichever way equal values are ordered, but its index is not: where the
    # k-th value occurs more than once in a row, run PyTorch's own selection on that row for PyTorch's index
    kth = np.take_along_axis(rows, idx[:, None], 1)
    same = (rows == kth) | ((rows != rows) & (kth != kth))
    for r in np.nonzero(same.sum(1) > 1)[0]:
        idx[r] = _quick_select(rows[r], k - 1)
    return np.moveaxis(idx.reshape(moved.shape[:-1] + (1,)), -1, axis)


def _kthvalue_infer(x, k, axis):
    shape = list(x.shape)
    shape[axis] = 1
    return AV(tuple(shape), dtypes.int64)


kthvalue_indices = register(Op("kthvalue_indices", OPAQUE, _kthvalue_forward, _kthvalue_infer, arity=1))


# ---------------------------------------------------------------- cummax, cummin
def _cum_extremum_forward(x, axis, largest):
    """The index of the running maximum (minimum): the last position holding it, or the last nan so far."""
    if x.size == 0:
        return np.zeros(x.shape, np.int64)
    running = (np.maximum if largest else np.minimum).accumulate(x, axis)  # nan propagates, as in PyTorch
    hit = (x == running) | (x != x)
    pos = np.arange(x.shape[axis], dtype=np.int64).reshape((-1,) + (1,) * (x.ndim - axis - 1))
    return np.maximum.accumulate(np.where(hit, pos, 0), axis)


cum_extremum_indices = register(Op("cum_extremum_indices", OPAQUE, _cum_extremum_forward,
                                   lambda x, axis, largest: AV(x.shape, dtypes.int64), arity=1))


# ---------------------------------------------------------------- logcumsumexp
def _logcumsumexp_forward(x, axis, reverse):
    if reverse:
        return np.flip(np.logaddexp.accumulate(np.flip(x, axis), axis), axis).astype(x.dtype, copy=False)
    return np.logaddexp.accumulate(x, axis).astype(x.dtype, copy=False)


def _logcumsumexp_vjp(g, out, x, axis, reverse):
    # NOTE: PyTorch's rule (after TensorFlow's): d out_j / d x_k = exp(x_k - out_j) for k <= j, summed over j by a
    # logcumsumexp from the other end, of log|g| - out, for the positive and the negative parts of g separately
    # (no exp overflows); the lowest finite number stands for log(0)
    fns = _F()
    lowest = float(np.finfo(x.dtype.np).min)
    log_abs = g.abs().log()
    pos = fns.where(g > 0, log_abs, lowest) - out
    neg = fns.where(g < 0, log_abs, lowest) - out
    back = not reverse
    return (fns.logcumsumexp_raw(pos, axis, back) + x).exp() - (fns.logcumsumexp_raw(neg, axis, back) + x).exp()


def _float_only(x, axis, reverse):
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"logcumsumexp: expected a floating point input, got {x.dtype}")
    return AV(x.shape, x.dtype)


logcumsumexp = register(Op("logcumsumexp", OPAQUE, _logcumsumexp_forward, _float_only, (_logcumsumexp_vjp,),
                           (0, "out"), arity=1))
