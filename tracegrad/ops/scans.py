"""Scans and products: cumsum, cumprod, prod, diff.

>>> import tracegrad as tg
>>> tg.tensor([1.0, 2.0, 3.0]).cumsum(0)
tensor([1., 3., 6.])
>>> tg.tensor([[1, 2], [3, 4]]).prod(1)
tensor([ 2, 12])
"""
from __future__ import annotations

import numpy as np

from .._tensor import Tensor, apply
from ..autograd.grad_mode import STATE as _GRAD
from ..creation import ones
from . import primitives as P
from .arithmetic import add, div, eq, logical_and, logical_xor, mul, sub, where
from .base import _named, to
from .indexing import getitem
from .reductions import _dim_alias, _numpy_names
from .shapes import normalize_dim
from .shaping import cat, reshape, transpose, unsqueeze


def _scan(op, name, x: Tensor, dim, dtype, **params) -> Tensor:
    if dim is None:
        raise TypeError(f"{name}() missing 1 required positional arguments: \"dim\"")
    if dtype is not None:
        x = to(x, dtype)
    d = normalize_dim(name, dim, x.ndim)
    if x.ndim == 0:  # a scan over a 0-dim tensor is the value itself (as a one-element scan)
        return _named(reshape(apply(op, reshape(x, 1), axis=0, **params), ()), op.backward_name)
    return apply(op, x, axis=d, **params)


def cumsum(x: Tensor, dim=None, *, dtype=None, axis=None) -> Tensor:
    """Running sums along `dim`; integer and bool inputs give int64, as in PyTorch.

    >>> import tracegrad as tg
    >>> tg.cumsum(tg.tensor([[1, 2, 3]]), dim=1)
    tensor([[1, 3, 6]])
    """
    return _scan(P.cumsum, "cumsum", x, _dim_alias("cumsum", dim, axis), dtype, reverse=False)


def cumprod(x: Tensor, dim=None, *, dtype=None, axis=None) -> Tensor:
    """Running products along `dim`; the gradient is exact where the input has zeros (see `cumprod_vjp`).

    >>> import tracegrad as tg
    >>> tg.tensor([2.0, 0.0, 3.0]).cumprod(0)
    tensor([2., 0., 0.])
    """
    return _scan(P.cumprod, "cumprod", x, _dim_alias("cumprod", dim, axis), dtype)


def cumsum_raw(x: Tensor, axis: int, reverse: bool) -> Tensor:
    """The cumsum primitive on a normalized axis; `reverse=True` sums from the end (cumsum's VJP)."""
    return apply(P.cumsum, x, axis=axis, reverse=reverse)


def cumprod_vjp(g: Tensor, out: Tensor, x: Tensor, axis: int) -> Tensor:
    """The gradient of out = cumprod(x) along `axis`: dL/dx_k = sum_{i >= k} g_i prod_{j <= i, j != k} x_j.

    Where x has no zero this is rcumsum(g * out) / x. With zeros, as PyTorch's cumprod_backward: exact values
    in O(n) when no graph of the gradient is recorded; while one is (create_graph=True, so the gradient must have
    the right derivatives too), the product formula itself, which takes O(n^2) memory along `axis`.
    """
    zero = eq(x, 0)
    if _GRAD.enabled and bool(zero.any()):  # NOTE: a guard under tracing, only when recording the gradient's graph
        return _cumprod_vjp_products(g, x, axis)
    plain = div(cumsum_raw(mul(g, out), axis, True), where(zero, 1.0, x))
    if _GRAD.enabled:
        return plain
    # NOTE: one formula whether x has zeros or not (nothing for a traced graph to specialize on); where x has
    # none it gives `plain` exactly. Before the first zero of a slice: `plain`; at it: rcumsum(g * cumprod(x
    # with that zero as 1)); after it: 0 (every product there holds the first zero)
    zeros_so_far = cumsum_raw(zero.long(), axis, False)
    first = logical_and(zero, eq(zeros_so_far, 1))
    at_first = cumsum_raw(mul(g, apply(P.cumprod, where(first, 1.0, x), axis=axis)), axis, True)
    return where(eq(zeros_so_far, 0), plain, where(first, at_first, 0.0))


def _cumprod_vjp_products(g: Tensor, x: Tensor, axis: int) -> Tensor:
    """sum_{i >= k} g_i (prod_{j < k} x_j) (prod_{k < j <= i} x_j), built of products only (no division), so
    its own derivatives are right at zeros; the (n, n) matrix of partial products makes it O(n^2)."""
    n = x.shape[axis]
    xt = transpose(x, axis, -1)  # the scanned axis last
    gt = transpose(g, axis, -1)
    lead = xt.shape[:-1]
    before = apply(P.cumprod, cat([ones(lead + (1,), dtype=x.dtype), xt[..., :-1]], -1), axis=xt.ndim - 1)
    after_k = _const_mask(np.triu(np.ones((n, n), bool), 1))  # [k, i]: i > k
    from_k = _const_mask(np.triu(np.ones((n, n), bool)))      # [k, i]: i >= k
    partial = apply(P.cumprod, where(after_k, unsqueeze(xt, -2), 1.0), axis=xt.ndim)  # prod_{k < j <= i} x_j
    grad = mul(before, where(from_k, mul(unsqueeze(gt, -2), partial), 0.0).sum(-1))
    return transpose(grad, axis, -1)


def _const_mask(mask: np.ndarray) -> Tensor:
    return Tensor._make(mask)


def prod(x: Tensor, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None) -> Tensor:
    """The product of all elements, or along one `dim`; integer and bool inputs give int64.

    Composed as the last element of a cumprod, so its gradient is exact where the input has zeros.

    >>> import tracegrad as tg
    >>> tg.prod(tg.tensor([[1.0, 2.0], [3.0, 0.0]]), 0)
    tensor([3., 0.])
    """
    dim, keepdim = _numpy_names("prod", dim, keepdim, axis, keepdims)
    if dtype is not None:
        x = to(x, dtype)
    if dim is None:
        flat = reshape(x, -1)
        if flat.shape[0] == 0:  # the empty product is 1 (with a zero gradient)
            return _named(add(mul(flat.sum(), 0), 1), "ProdBackward0")
        return _named(reshape(getitem(cumprod(flat, 0), -1), ()), "ProdBackward0")
    d = normalize_dim("prod", dim, x.ndim)
    if x.ndim == 0:
        return _named(cumprod(x, 0), "ProdBackward1")
    if x.shape[d] == 0:
        return _named(add(mul(x.sum(d, keepdim=keepdim), 0), 1), "ProdBackward1")
    last = getitem(cumprod(x, d), (slice(None),) * d + (slice(-1, None),))
    if not keepdim:
        last = reshape(last, tuple(n for i, n in enumerate(x.shape) if i != d))
    return _named(last, "ProdBackward1")


def diff(x: Tensor, n: int = 1, dim: int = -1, prepend=None, append=None) -> Tensor:
    """The n-th forward difference along `dim` (`x[1:] - x[:-1]`, n times), after `prepend`/`append`.

    >>> import tracegrad as tg
    >>> tg.diff(tg.tensor([1.0, 4.0, 9.0, 16.0]))
    tensor([3., 5., 7.])
    """
    if x.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    d = normalize_dim("diff", dim, x.ndim)
    parts = [t for t in (prepend, x, append) if t is not None]
    if len(parts) > 1:
        x = cat(parts, d)
    head = (slice(None),) * d
    for _ in range(n):
        if x.shape[d] == 0:
            break
        hi, lo = getitem(x, head + (slice(1, None),)), getitem(x, head + (slice(0, -1),))
        x = logical_xor(hi, lo) if x.dtype.name == "bool" else sub(hi, lo)
    return x
