"""Reductions: sum, mean, max/min, var/std, norm, logsumexp, softmax."""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from .. import _tracing
from .._tensor import Tensor, apply
from . import nn_primitives as NNP
from . import primitives as P
from .arithmetic import add, div, eq, exp, log, maximum, minimum, mul, ne, sqrt, sub, where
from .base import _floating, _named, to
from .shapes import normalize_dim, normalize_dims, reduced_shape

max_result = namedtuple("max", ["values", "indices"])
min_result = namedtuple("min", ["values", "indices"])

# ------------------------------------------------------------------------------------------ reductions
def _dim_alias(name, dim, axis):
    """PyTorch's numpy-style `axis=` for `dim=` (a TypeError when both are given)."""
    if axis is None:
        return dim
    if dim is not None:
        raise TypeError(f"{name}() got multiple values for argument 'dim' (dim and its alias axis)")
    return axis


def _numpy_names(name, dim, keepdim, axis, keepdims):
    """(dim, keepdim) from PyTorch's numpy-style aliases `axis=` and `keepdims=`."""
    return _dim_alias(name, dim, axis), keepdim if keepdims is None else keepdims


def sum(x: Tensor, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):  # noqa: A001
    """Sum of all elements, or over `dim` (an int or a tuple); numpy's `axis=`/`keepdims=` are accepted too."""
    if axis is not None or keepdims is not None:
        dim, keepdim = _numpy_names("sum", dim, keepdim, axis, keepdims)
    if dtype is not None:
        x = to(x, dtype)
    out = apply(P.sum_, x, axes=normalize_dims("sum", dim, x.ndim), keepdim=keepdim)
    return out if dim is None else _named(out, "SumBackward1")


def mean(x: Tensor, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
    if axis is not None or keepdims is not None:
        dim, keepdim = _numpy_names("mean", dim, keepdim, axis, keepdims)
    if dtype is not None:
        x = to(x, dtype)
    if not x.is_floating_point():
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a floating point or "
                           f"complex dtype. Got: {x.dtype}")
    axes = normalize_dims("mean", dim, x.ndim)
    n = math.prod(x.shape[a] for a in axes)
    return _named(div(apply(P.sum_, x, axes=axes, keepdim=keepdim), n),
                  "MeanBackward0" if dim is None else "MeanBackward1")


def _max_min(x: Tensor, dim, keepdim, other, largest: bool):
    name = "max" if largest else "min"
    if isinstance(dim, Tensor):
        other, dim = dim, None
    if other is not None:
        return maximum(x, other) if largest else minimum(x, other)
    if dim is None:
        if x.numel() == 0:
            raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. Specify "
                               f"the reduction dim with the 'dim' argument.")
        return _named(amax(x) if largest else amin(x), f"{name.capitalize()}Backward1")
    d = normalize_dim(name, dim, x.ndim)
    if x.shape[d] == 0:
        raise RuntimeError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
    idx = (argmax if largest else argmin)(x, d, keepdim=True)
    if _tracing.TRACER is not None:
        _tracing.TRACER.index_tensor(idx)
    index = tuple(idx._data if i == d else np.arange(n).reshape([-1 if j == i else 1 for j in range(x.ndim)])
                  for i, n in enumerate(idx.shape))
    values = apply(P.getitem, x, index=index)
    if not keepdim:
        shape = reduced_shape(values.shape, (d,), False)
        values, idx = values.reshape(shape), idx.reshape(shape)
    values = _named(values, f"{name.capitalize()}Backward0")
    return (max_result if largest else min_result)(values, idx)


def max(x: Tensor, dim=None, keepdim=False, other=None, *, axis=None, keepdims=None):  # noqa: A001
    """`max(x)`: the largest value; `max(x, dim)`: (values, indices); `max(x, y)`: elementwise maximum."""
    if axis is not None or keepdims is not None:
        dim, keepdim = _numpy_names("max", dim, keepdim, axis, keepdims)
    return _max_min(x, dim, keepdim, other, True)


def min(x: Tensor, dim=None, keepdim=False, other=None, *, axis=None, keepdims=None):  # noqa: A001
    if axis is not None or keepdims is not None:
        dim, keepdim = _numpy_names("min", dim, keepdim, axis, keepdims)
    return _max_min(x, dim, keepdim, other, False)


def amax(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):
    if axis is not None or keepdims is not None:
        dim, keepdim = _numpy_names("amax", dim, keepdim, axis, keepdims)
    return apply(P.amax, x, axes=normalize_dims("amax", dim, x.ndim), keepdim=keepdim)


def amin(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):
    if axis is not None or keepdims is not None:
        dim, keepdim = _numpy_names("amin", dim, keepdim, axis, keepdims)
    return apply(P.amin, x, axes=normalize_dims("amin", dim, x.ndim), keepdim=keepdim)


def all(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:  # noqa: A001
    """Whether every element (along `dim`) is nonzero, as a bool tensor (True over no elements)."""
    if axis is not None or keepdims is not None:
        dim, keepdim = _numpy_names("all", dim, keepdim, axis, keepdims)
    return amin(x if x._data.dtype == np.bool_ else ne(x, 0), dim, keepdim)


def any(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:  # noqa: A001
    """Whether some element (along `dim`) is nonzero, as a bool tensor (False over no elements)."""
    if axis is not None or keepdims is not None:
        dim, keepdim = _numpy_names("any", dim, keepdim, axis, keepdims)
    return amax(x if x._data.dtype == np.bool_ else ne(x, 0), dim, keepdim)


def argmax(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):
    if axis is not None or keepdims is not None:
        dim, keepdim = _numpy_names("argmax", dim, keepdim, axis, keepdims)
    axis = None if dim is None else normalize_dim("argmax", dim, x.ndim)
    return apply(P.argmax, x, axis=axis, keepdim=keepdim)


def argmin(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):
    if axis is not None or keepdims is not None:
        dim, keepdim = _numpy_names("argmin", dim, keepdim, axis, keepdims)
    axis = None if dim is None else normalize_dim("argmin", dim, x.ndim)
    return apply(P.argmin, x, axis=axis, keepdim=keepdim)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def var(x: Tensor, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    """Variance over `dim` with Bessel's correction by default (`correction=1`), as in PyTorch."""
    if axis is not None or keepdims is not None:
        dim, keepdim = _numpy_names("var", dim, keepdim, axis, keepdims)
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    axes = normalize_dims("var", dim, x.ndim)
    x = _floating(x)
    n = math.prod(x.shape[a] for a in axes)
    d = sub(x, mean(x, axes, keepdim=True))
    return _named(div(sum(mul(d, d), axes, keepdim), builtins.max(n - _correction(unbiased, correction), 0)),
                  "VarBackward0")


def std(x: Tensor, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    if axis is not None or keepdims is not None:
        dim, keepdim = _numpy_names("std", dim, keepdim, axis, keepdims)
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    return _named(sqrt(var(x, dim, unbiased, keepdim, correction=correction)), "StdBackward0")


def norm(x: Tensor, p="fro", dim=None, keepdim=False, dtype=None):
    """`torch.norm`: the p-norm over `dim` (all elements by default) for p in 2/'fro', 1, inf, -inf, 0 or any
    number (a vector norm, also over two dims), 'nuc' (the matrix nuclear norm); float inputs only, as PyTorch.

    >>> import tracegrad as tg
    >>> tg.tensor([[3.0, 4.0], [0.0, 0.0]]).norm(dim=1), tg.eye(2).norm(p="nuc")
    (tensor([5., 0.]), tensor(2.))
    """
    if dtype is not None:
        x = to(x, dtype)
    if not x.is_floating_point():
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got "
                           f"{x.dtype.tensor_type.removesuffix('Tensor')}")
    if isinstance(p, str):
        if p != "fro" or not (dim is None or isinstance(dim, int) or len(dim) <= 2):
            from .. import linalg  # NOTE: the matrix norms need the linalg primitives, which build on this module
            return linalg.matrix_norm(x, p, tuple(range(x.ndim)) if dim is None else dim, keepdim)
        p = 2
    axes = normalize_dims("norm", dim, x.ndim)
    if p in (2, None):
        return apply(P.norm2, x, axes=axes, keepdim=keepdim)
    if p == math.inf:
        return _named(amax(abs(x), axes, keepdim), "LinalgVectorNormBackward0")
    if p == -math.inf:
        return _named(amin(abs(x), axes, keepdim), "LinalgVectorNormBackward0")
    if p == 0:  # NOTE: sign(x) * 0 gives the count PyTorch's (zero) gradient
        count = add(ne(x, 0).to(x.dtype), mul(apply(P.sign, x), 0.0))
        return _named(sum(count, axes, keepdim), "LinalgVectorNormBackward0")
    if p == 1:
        return _named(sum(abs(x), axes, keepdim), "LinalgVectorNormBackward0")
    return _named(pow(sum(pow(abs(x), p), axes, keepdim), 1.0 / p), "LinalgVectorNormBackward0")


def logsumexp(x: Tensor, dim=None, keepdim=False):
    """log(sum(exp(x))) over `dim`, stable for large inputs."""
    # NOTE: shifting by the (detached) max keeps exp() in range; the shift cancels in the gradient,
    # and detaching it avoids spreading gradient over tied maxima. An infinite max is replaced by 0
    # so that inf - inf never produces nan.
    x = _floating(x)
    axes = normalize_dims("logsumexp", dim, x.ndim)
    if x.numel() == 0:  # nothing to shift (and no max to shift by): log(0) = -inf over no elements
        out = log(sum(exp(x), axes, keepdim=True))
        return _named(out if keepdim else out.reshape(reduced_shape(x.shape, axes, False)), "LogsumexpBackward0")
    m = amax(x.detach(), axes, keepdim=True)
    m = where(eq(abs(m), math.inf), 0.0, m)
    out = add(log(sum(exp(sub(x, m)), axes, keepdim=True)), m)
    return _named(out if keepdim else out.reshape(reduced_shape(x.shape, axes, False)), "LogsumexpBackward0")


def softmax(x: Tensor, dim: int, dtype=None):
    # NOTE: exp(x - max) / sum(...): the shift by the detached max keeps exp() from overflowing.
    x = _floating(to(x, dtype) if dtype is not None else x)
    d = normalize_dim("softmax", dim, x.ndim)
    e = exp(sub(x, amax(x.detach(), d, keepdim=True))) if x.numel() else exp(x)  # empty: nothing to shift
    return _named(div(e, sum(e, d, keepdim=True)), "SoftmaxBackward0")


def log_softmax(x: Tensor, dim: int, dtype=None):
    """log(softmax(x)) along `dim`, computed as x - logsumexp(x) (log(softmax) would underflow to -inf)."""
    # NOTE: one registry op (LogSoftmaxBackward0, PyTorch's gradient formula); `nn_primitives.log_softmax`
    x = _floating(to(x, dtype) if dtype is not None else x)
    d = normalize_dim("log_softmax", dim, x.ndim)
    return apply(NNP.log_softmax, x, axes=(d,) if x.ndim else ())
