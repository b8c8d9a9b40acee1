"""The user-facing ops: primitives with PyTorch's type promotion, and composites built from them.

Every function here is also a Tensor method (`tracegrad.exp(x)` and `x.exp()`).
A composite's result gets the composite's backward name (`SubBackward0`), although its graph is made
of primitives: `grad_fn.next_functions` shows the decomposition.

>>> import tracegrad as tg
>>> x = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
>>> tg.relu(x - 1).grad_fn
<ReluBackward0 object at ...>
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from .. import _tracing, devices, dtypes
from .._tensor import Tensor, apply
from ..autograd.grad_mode import STATE as _GRAD
from ..autograd.grad_mode import no_grad
from ..autograd.node import Node
from ..dtypes import result_type
from . import nn_primitives as NNP
from . import primitives as P
from .registry import REGISTRY
from .shapes import broadcastable_to, fmt, normalize_dim, normalize_dims, reduced_shape

max_result = namedtuple("max", ["values", "indices"])
min_result = namedtuple("min", ["values", "indices"])


def _named(t: Tensor, name: str) -> Tensor:
    """Give a composite's output node the composite's backward name."""
    if type(t.grad_fn) is Node:
        t.grad_fn._name = name
    return t


_CONSTANTS: dict = {}


def _const(value, np_dtype) -> Tensor:
    """A Python number as a 0-dim tensor operand; cached, since `x * 0.5` in a loop repeats the same one.

    These tensors are internal (graph inputs that never require grad) and are never written to.
    """
    # NOTE: 0.0 == -0.0 with equal hashes: key zeros by their text, or x * -0.0 would lose its sign
    key = (type(value), value if value else repr(value), np_dtype)
    t = _CONSTANTS.get(key)
    if t is None:
        if len(_CONSTANTS) > 4096:
            _CONSTANTS.clear()
        t = _CONSTANTS[key] = Tensor._make(np.array(value).astype(np_dtype))  # ints wrap (int8 + 300), as in PyTorch
    return t


def _operand(x, dtype) -> Tensor:
    if isinstance(x, Tensor):
        return x if x._data.dtype == dtype.np else cast(x, dtype)
    if isinstance(x, _tracing.SymbolicScalar):  # a number that changes from call to call: a graph value
        return x.as_operand(dtype)
    return _const(x, dtype.np)


def _is_one(alpha) -> bool:
    """Whether a scale factor is the literal 1 (a traced number never is: it may change at the next call)."""
    return type(alpha) in (int, float) and alpha == 1


def _binary(op, a, b) -> Tensor:
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            if a._data.dtype is b._data.dtype:
                return apply(op, a, b)
        elif (type(b) is float and a._data.dtype.kind == "f") or (type(b) is int and a._data.dtype.kind in "fi"):
            return apply(op, a, _const(b, a._data.dtype))  # fast path of PyTorch's rule: the tensor's dtype wins
    dt = result_type(a, b)
    return apply(op, _operand(a, dt), _operand(b, dt))


def _floating(x: Tensor) -> Tensor:
    """Integer and bool inputs of float-valued ops are promoted to the default float dtype."""
    return x if x._data.dtype.kind == "f" else cast(x, dtypes.get_default_dtype())


def _tensor(x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a Tensor, got {type(x).__name__}")
    return x


# ------------------------------------------------------------------------------------------ dtype
def cast(x: Tensor, dtype) -> Tensor:
    return apply(P.cast, x, dtype=dtypes.as_dtype(dtype))


def to(x: Tensor, *args, dtype=None, device=None, copy=False, non_blocking=False, memory_format=None):
    """`x.to(dtype)`, `x.to(device)`, `x.to(device, dtype)`, `x.to(other)`: a cast; the device must be the CPU."""
    dtype = devices.to_arguments(args, dtype, device, "Tensor.to")
    if dtype is None or dtypes.as_dtype(dtype) is x.dtype:
        return clone(x) if copy else x
    return cast(x, dtype)


def type_as(x, other):
    return to(x, other.dtype)


def float_(x):
    return to(x, dtypes.float32)


def double(x):
    return to(x, dtypes.float64)


def long(x):
    return to(x, dtypes.int64)


def bool__(x):
    return to(x, dtypes.bool_)


def clone(x: Tensor) -> Tensor:
    return _named(apply(P.cast, x, dtype=x.dtype), "CloneBackward0")


def contiguous(x: Tensor) -> Tensor:
    return x if x._data.flags.c_contiguous else clone(x)


# ------------------------------------------------------------------------------------------ arithmetic
def add(a, b, alpha=1):
    if not _is_one(alpha):
        b = mul(b, alpha)
    return _binary(P.add, a, b)


def sub(a, b, alpha=1):
    if not _is_one(alpha):
        b = mul(b, alpha)
    if isinstance(b, Tensor) and b.dtype is dtypes.bool_ and (not isinstance(a, Tensor) or a.dtype is dtypes.bool_):
        raise RuntimeError("sub: Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    return _binary(P.sub, a, b)


def rsub(a, b):
    return _named(sub(b, a), "RsubBackward1")


def mul(a, b):
    return _binary(P.mul, a, b)


def div(a, b, rounding_mode=None):
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode == "trunc":
        # floor rounds toward -inf, trunc toward zero: they differ by one where the quotient is negative
        q = floor_divide(a, b)
        return where(logical_and(lt(q, 0), ne(remainder(a, b), 0)), add(q, 1), q)
    if rounding_mode is not None:
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"'{rounding_mode}'")
    dt = result_type(a, b)
    if not dt.is_floating_point:  # true division of integers gives the default float dtype
        dt = dtypes.get_default_dtype()
    return apply(P.div, _operand(a, dt), _operand(b, dt))


def floor_divide(a, b):
    return _binary(P.floor_divide, a, b)


def remainder(a, b):
    return _named(_binary(P.remainder, a, b), "RemainderBackward1" if isinstance(b, Tensor) else "RemainderBackward0")


def pow(a, b):  # noqa: A001 - PyTorch's name
    """`a ** b`; PyTorch names the node by which side is a Python number."""
    name = "PowBackward1" if isinstance(b, Tensor) and isinstance(a, Tensor) else \
        "PowBackward2" if isinstance(b, Tensor) else "PowBackward0"
    return _named(_binary(P.pow_, a, b), name)


def neg(x: Tensor) -> Tensor:
    if x._data.dtype == np.bool_:
        raise RuntimeError("neg: Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
                           "to invert a mask, use the `~` or `logical_not()` operator instead.")
    return apply(P.neg, x)


def _unary(op):
    def fn(x: Tensor) -> Tensor:
        return apply(op, _floating(x))
    fn.__name__ = op.name
    fn.__doc__ = f"Elementwise {op.name}; integer inputs are promoted to the default float dtype."
    return fn


exp, log, sqrt, tanh, sigmoid, log_sigmoid, sin, cos, erf = (
    _unary(op) for op in (P.exp, P.log, P.sqrt, P.tanh, P.sigmoid, P.log_sigmoid, P.sin, P.cos, P.erf))


def log1p(x: Tensor) -> Tensor:
    """log(1 + x) as a composite: it loses relative precision for tiny |x| (there is no log1p primitive yet)."""
    return _named(log(add(_floating(x), 1)), "Log1PBackward0")


def binary_cross_entropy_elementwise(x: Tensor, target: Tensor) -> Tensor:
    return _binary(P.binary_cross_entropy, x, target)


def abs(x: Tensor) -> Tensor:  # noqa: A001
    return apply(P.abs_, x)


def sign(x: Tensor) -> Tensor:
    return apply(P.sign, x)


def rsqrt(x: Tensor) -> Tensor:
    return _named(div(1.0, sqrt(x)), "RsqrtBackward0")


def square(x: Tensor) -> Tensor:
    return _named(mul(x, x), "PowBackward0")


def relu(x: Tensor) -> Tensor:
    return apply(P.relu, x)


def maximum(a, b):
    return _binary(P.maximum, a, b)


def minimum(a, b):
    # NOTE: -max(-a, -b) is exact and inherits maximum's tie rule (half the gradient to each side).
    return _named(neg(maximum(neg(a) if isinstance(a, Tensor) else -a, neg(b) if isinstance(b, Tensor) else -b)),
                  "MinimumBackward0")


def where(condition, input, other):  # noqa: A002 - PyTorch's names
    """`input` where `condition` holds, else `other`; scalars and broadcasting allowed."""
    condition = condition if isinstance(condition, Tensor) else Tensor._make(np.asarray(condition))
    if condition._data.dtype != np.bool_:
        raise RuntimeError(f"where: expected condition to be a bool tensor, but got a tensor with dtype "
                           f"{condition.dtype}")
    dt = result_type(input, other)
    return apply(P.where, condition, _operand(input, dt), _operand(other, dt))


def clamp(x: Tensor, min=None, max=None):  # noqa: A002
    """Limit to [min, max]; the gradient passes where min <= x <= max, as in PyTorch."""
    if min is None and max is None:
        raise RuntimeError("clamp: At least one of 'min' or 'max' must not be None")
    out = x
    if min is not None:
        out = where(lt(out, min), min, out)
    if max is not None:
        out = where(gt(out, max), max, out)
    return _named(out, "ClampBackward0" if isinstance(min, Tensor) or isinstance(max, Tensor) else "ClampBackward1")


clip = clamp


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with PyTorch's rules for 1-D operands and broadcast batch dimensions."""
    a, b = _tensor(a), _tensor(b)
    ad, bd = a._data.ndim, b._data.ndim
    if ad == 2 and bd == 2 and a._data.dtype == b._data.dtype and a._data.shape[1] == b._data.shape[0]:
        return apply(P.matmul, a, b)  # the common case, checked cheaply
    if ad == 0 or bd == 0:
        raise RuntimeError(f"matmul: both arguments to matmul need to be at least 1D, but they are {ad}D and "
                           f"{bd}D")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"matmul: expected both operands to have the same dtype, but got: {a.dtype} != {b.dtype}")
    k_b = b.shape[0] if bd == 1 else b.shape[-2]
    if a.shape[-1] != k_b and not (ad == 2 and bd == 2):
        raise RuntimeError(f"matmul: shapes {fmt(a.shape)} and {fmt(b.shape)} cannot be multiplied: the last dim "
                           f"of the first ({a.shape[-1]}) must equal the "
                           f"{'only' if bd == 1 else 'second-to-last'} dim of the second ({k_b})")
    if ad == 1 and bd == 1:
        return _named(apply(P.matmul, unsqueeze(a, 0), unsqueeze(b, 1)).reshape(()), "DotBackward0")
    if bd == 1:
        return _named(squeeze(apply(P.matmul, a, unsqueeze(b, 1)), -1), "MvBackward0")
    if ad == 1:
        return _named(squeeze(apply(P.matmul, unsqueeze(a, 0), b), -2), "SqueezeBackward1")
    out = apply(P.matmul, a, b)
    return out if ad == bd == 2 else _named(out, "UnsafeViewBackward0")


mm = matmul


# ------------------------------------------------------------------------------------------ comparisons, logic
def _compare(op):
    def fn(a, b):
        return _binary(op, a, b)
    fn.__name__ = op.name
    fn.__doc__ = f"Elementwise `{op.scalar.format('a', 'b')}` as a bool tensor (no gradient)."
    return fn


eq, ne, lt, le, gt, ge = (_compare(REGISTRY[n]) for n in ("eq", "ne", "lt", "le", "gt", "ge"))
greater, greater_equal, less, less_equal, equal_, not_equal = gt, ge, lt, le, eq, ne


def _bitwise(kind):
    def fn(a, b):
        dt = result_type(a, b)
        if dt.is_floating_point:
            raise TypeError(f"bitwise_{kind}: not implemented for floating tensors ({dt}); use bool or int64")
        return _binary(REGISTRY[("logical_" if dt is dtypes.bool_ else "bitwise_") + kind], a, b)
    fn.__name__ = f"bitwise_{kind}"
    return fn


bitwise_and, bitwise_or, bitwise_xor = _bitwise("and"), _bitwise("or"), _bitwise("xor")


def _logical(kind):
    def fn(a, b):
        return _binary(REGISTRY[f"logical_{kind}"], _tensor(a).bool(), b.bool() if isinstance(b, Tensor) else bool(b))
    fn.__name__ = f"logical_{kind}"
    fn.__doc__ = f"Elementwise logical {kind} of the operands' truth values, as a bool tensor."
    return fn


logical_and, logical_or, logical_xor = _logical("and"), _logical("or"), _logical("xor")


def logical_not(x):
    return apply(P.logical_not, x)


def bitwise_not(x):
    if x._data.dtype == np.bool_:
        return logical_not(x)
    if x.is_floating_point():
        raise TypeError(f"bitwise_not: not implemented for floating tensors ({x.dtype}); use bool or int64")
    return sub(neg(x), 1)


def isnan(x):
    return apply(P.isnan, x)


def equal(a: Tensor, b: Tensor) -> bool:
    """True if both tensors have the same shape and elements."""
    return a.shape == b.shape and bool(np.array_equal(a._data, b._data))


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    return bool(np.allclose(a._data, b._data, rtol=rtol, atol=atol, equal_nan=equal_nan))


# ------------------------------------------------------------------------------------------ reductions
def sum(x: Tensor, dim=None, keepdim=False, dtype=None):  # noqa: A001
    if dtype is not None:
        x = to(x, dtype)
    out = apply(P.sum_, x, axes=normalize_dims("sum", dim, x.ndim), keepdim=keepdim)
    return out if dim is None else _named(out, "SumBackward1")


def mean(x: Tensor, dim=None, keepdim=False, dtype=None):
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


def max(x: Tensor, dim=None, keepdim=False, other=None):  # noqa: A001
    """`max(x)`: the largest value; `max(x, dim)`: (values, indices); `max(x, y)`: elementwise maximum."""
    return _max_min(x, dim, keepdim, other, True)


def min(x: Tensor, dim=None, keepdim=False, other=None):  # noqa: A001
    return _max_min(x, dim, keepdim, other, False)


def amax(x: Tensor, dim=None, keepdim=False):
    return apply(P.amax, x, axes=normalize_dims("amax", dim, x.ndim), keepdim=keepdim)


def amin(x: Tensor, dim=None, keepdim=False):
    return apply(P.amin, x, axes=normalize_dims("amin", dim, x.ndim), keepdim=keepdim)


def all(x: Tensor, dim=None, keepdim=False) -> Tensor:  # noqa: A001
    """Whether every element (along `dim`) is nonzero, as a bool tensor (True over no elements)."""
    return amin(x if x._data.dtype == np.bool_ else ne(x, 0), dim, keepdim)


def any(x: Tensor, dim=None, keepdim=False) -> Tensor:  # noqa: A001
    """Whether some element (along `dim`) is nonzero, as a bool tensor (False over no elements)."""
    return amax(x if x._data.dtype == np.bool_ else ne(x, 0), dim, keepdim)


def argmax(x: Tensor, dim=None, keepdim=False):
    axis = None if dim is None else normalize_dim("argmax", dim, x.ndim)
    return apply(P.argmax, x, axis=axis, keepdim=keepdim)


def argmin(x: Tensor, dim=None, keepdim=False):
    axis = None if dim is None else normalize_dim("argmin", dim, x.ndim)
    return apply(P.argmin, x, axis=axis, keepdim=keepdim)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def var(x: Tensor, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over `dim` with Bessel's correction by default (`correction=1`), as in PyTorch."""
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    axes = normalize_dims("var", dim, x.ndim)
    x = _floating(x)
    n = math.prod(x.shape[a] for a in axes)
    d = sub(x, mean(x, axes, keepdim=True))
    return _named(div(sum(mul(d, d), axes, keepdim), builtins.max(n - _correction(unbiased, correction), 0)),
                  "VarBackward0")


def std(x: Tensor, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    return _named(sqrt(var(x, dim, unbiased, keepdim, correction=correction)), "StdBackward0")


def norm(x: Tensor, p="fro", dim=None, keepdim=False):
    """The p-norm over `dim` (all elements by default): p in 2/'fro', 1, inf, -inf, 0 or any float."""
    x = _floating(x)
    axes = normalize_dims("norm", dim, x.ndim)
    if p in (2, "fro", None):
        return apply(P.norm2, x, axes=axes, keepdim=keepdim)
    if p == math.inf:
        return _named(amax(abs(x), axes, keepdim), "LinalgVectorNormBackward0")
    if p == -math.inf:
        return _named(amin(abs(x), axes, keepdim), "LinalgVectorNormBackward0")
    if p == 0:
        return sum(ne(x, 0).to(x.dtype), axes, keepdim)
    if p == 1:
        return _named(sum(abs(x), axes, keepdim), "LinalgVectorNormBackward0")
    if isinstance(p, str):
        raise RuntimeError(f"norm: unsupported norm type {p!r}")
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
    # NOTE: x - logsumexp(x), not log(softmax(x)): the latter underflows to log(0) = -inf.
    x = _floating(to(x, dtype) if dtype is not None else x)
    return _named(sub(x, logsumexp(x, normalize_dim("log_softmax", dim, x.ndim), keepdim=True)),
                  "LogSoftmaxBackward0")


# ------------------------------------------------------------------------------------------ shapes
def _sizes(args) -> tuple:
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    return tuple(int(a) for a in args)


def reshape(x: Tensor, *shape) -> Tensor:
    """Same elements in a new shape; one dim may be -1 (inferred)."""
    shape = _sizes(shape)
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if shape.count(-1) > 1 or known == 0 or x.numel() % known:
            raise RuntimeError(f"reshape: shape '{fmt(shape)}' is invalid for input of size {x.numel()}")
        shape = tuple(x.numel() // known if s == -1 else s for s in shape)
    return apply(P.reshape, x, shape=shape)


def view(x: Tensor, *shape) -> Tensor:
    if len(shape) == 1 and isinstance(shape[0], dtypes.DType):
        raise RuntimeError("view(dtype) is not supported; use .to(dtype)")
    return reshape(x, *shape)


def view_as(x, other):
    return reshape(x, other.shape)


def reshape_as(x, other):
    return reshape(x, other.shape)


def permute(x: Tensor, *dims) -> Tensor:
    dims = _sizes(dims)
    if len(dims) != x.ndim:
        raise RuntimeError(f"permute: number of dimensions in the tensor input does not match the length of the "
                           f"desired ordering of dimensions i.e. input.dim() = {x.ndim} is not equal to "
                           f"len(dims) = {len(dims)}")
    perm = tuple(normalize_dim("permute", d, x.ndim) for d in dims)
    if len(set(perm)) != len(perm):
        raise RuntimeError(f"permute: repeated dim in {list(dims)}")
    return apply(P.permute, x, perm=perm)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    perm = list(range(x.ndim))
    if x.ndim == 0:
        return x
    d0, d1 = normalize_dim("transpose", dim0, x.ndim), normalize_dim("transpose", dim1, x.ndim)
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return _named(apply(P.permute, x, perm=tuple(perm)), "TransposeBackward0")


swapaxes = transpose


def t(x: Tensor) -> Tensor:
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    return _named(apply(P.permute, x, perm=tuple(reversed(range(x.ndim)))), "TBackward0")


def squeeze(x: Tensor, dim=None) -> Tensor:
    dims = normalize_dims("squeeze", dim, x.ndim) if x.ndim else ()
    shape = tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1))
    return _named(apply(P.reshape, x, shape=shape), "SqueezeBackward0" if dim is None else "SqueezeBackward1")


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    d = normalize_dim("unsqueeze", dim, x.ndim + 1)
    shape = x.shape[:d] + (1,) + x.shape[d:]
    return _named(apply(P.reshape, x, shape=shape), "UnsqueezeBackward0")


def flatten(x: Tensor, start_dim=0, end_dim=-1) -> Tensor:
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = normalize_dim("flatten", start_dim, x.ndim), normalize_dim("flatten", end_dim, x.ndim)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    return reshape(x, x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:])


def unflatten(x: Tensor, dim: int, sizes) -> Tensor:
    d = normalize_dim("unflatten", dim, x.ndim)
    return reshape(x, x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


def expand(x: Tensor, *sizes) -> Tensor:
    sizes = _sizes(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to the "
                           f"number of dimensions in the tensor ({x.ndim})")
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    return apply(P.expand, x, shape=shape)


def expand_as(x, other):
    return expand(x, other.shape)


def broadcast_to(x, shape):
    return expand(x, shape)


def cat(tensors, dim=0) -> Tensor:
    """Concatenate along an existing dim; dtypes are promoted as in PyTorch."""
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        raise RuntimeError("cat: expected a non-empty list of Tensors")
    tensors = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)] or tensors[:1]  # legacy empty
    d = normalize_dim("cat", dim, tensors[0].ndim)
    dt = result_type(*[t for t in tensors])
    return apply(P.cat, *[_operand(t, dt) for t in tensors], axis=d)


concat = concatenate = cat


def stack(tensors, dim=0) -> Tensor:
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors[1:], 1):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {fmt(tensors[0].shape)} at "
                               f"entry 0 and {fmt(t.shape)} at entry {i}")
    d = normalize_dim("stack", dim, tensors[0].ndim + 1)
    return _named(cat([unsqueeze(t, d) for t in tensors], d), "StackBackward0")


def split(x: Tensor, split_size_or_sections, dim=0):
    d = normalize_dim("split", dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        sizes = [builtins.min(step, n - i) for i in range(0, n, step)] if step > 0 else []
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at "
                               f"dimension {d}), but got split_sizes={sizes}")
    out, start = [], 0
    for s in sizes:
        index = (slice(None),) * d + (slice(start, start + s),)
        out.append(_named(apply(P.getitem, x, index=index), "SplitBackward0"))
        start += s
    return tuple(out)


def chunk(x: Tensor, chunks: int, dim=0):
    d = normalize_dim("chunk", dim, x.ndim)
    return split(x, builtins.max(1, -(-x.shape[d] // chunks)), d)


def unbind(x: Tensor, dim=0):
    d = normalize_dim("unbind", dim, x.ndim)
    return tuple(select(x, d, i) for i in range(x.shape[d]))


def select(x: Tensor, dim: int, index: int) -> Tensor:
    d = normalize_dim("select", dim, x.ndim)
    return getitem(x, (slice(None),) * d + (index,))


# ------------------------------------------------------------------------------------------ indexing
def _index_part(i):
    if isinstance(i, Tensor):
        if _tracing.TRACER is not None:
            _tracing.TRACER.index_tensor(i)  # so the graph reads this tensor's value at each call
        return i._data if i._data.dtype in (np.int64, np.int32, np.bool_) else _bad_index(i)
    if isinstance(i, (list, np.ndarray)):
        arr = np.asarray(i)
        return arr if arr.dtype.kind in "bi" or arr.size == 0 else _bad_index(arr)
    if isinstance(i, slice) and i.step is not None and i.step <= 0:
        raise ValueError("index: step must be greater than zero")
    if i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)):
        return i
    raise IndexError(f"index: only integers, slices (`:`), ellipsis (`...`), None and long or bool tensors are "
                     f"valid indices (got {type(i).__name__})")


def _bad_index(i):
    raise IndexError(f"index: tensors used as indices must be long, int or bool tensors (got {i.dtype})")


def normalize_index(index) -> tuple:
    """A user's index as the tuple of ints, slices, None, Ellipsis and numpy arrays the primitive takes."""
    if not isinstance(index, tuple):
        index = (index,)
    return tuple(_index_part(i) for i in index)


def pytorch_index_steps(index: tuple, ndim: int):
    """Split an index mixing ints and index arrays into (basic part, advanced part), or None.

    NOTE: numpy counts ints as advanced indices, so in x[1, :2, idx] it moves idx's dims first;
    PyTorch selects with the int first and then indexes. Two steps give PyTorch's layout.
    """
    has_int = builtins.any(isinstance(i, (int, np.integer)) for i in index)
    if not (has_int and builtins.any(isinstance(i, np.ndarray) for i in index)):
        return None
    used = builtins.sum(i.ndim if isinstance(i, np.ndarray) and i.dtype == np.bool_ else 1
                        for i in index if i is not None and i is not Ellipsis)
    full = []
    for i in index:
        full.extend([slice(None)] * (ndim - used) if i is Ellipsis else [i])
    basic, advanced = [], []
    for i in full:
        if isinstance(i, np.ndarray):
            basic.extend([slice(None)] * (i.ndim if i.dtype == np.bool_ else 1))
            advanced.append(i)
        elif isinstance(i, (int, np.integer)):
            basic.append(i)
        else:
            basic.append(i)
            advanced.append(slice(None))
    return tuple(basic), tuple(advanced)


def getitem(x: Tensor, index) -> Tensor:
    index = normalize_index(index)
    steps = pytorch_index_steps(index, x.ndim)
    if steps is not None:
        return apply(P.getitem, apply(P.getitem, x, index=steps[0]), index=steps[1])
    out = apply(P.getitem, x, index=index)
    if builtins.any(isinstance(i, np.ndarray) for i in index):
        return out
    return _named(out, "SliceBackward0" if builtins.any(isinstance(i, slice) for i in index) else "SelectBackward0")


def index_add(g: Tensor, shape, index, *idx) -> Tensor:
    """Zeros of `shape` with `g` added at `index` (repeats accumulate); getitem's VJP.

    `idx` are index tensors filling the `Slot`s of `index` (see `primitives.getitem`)."""
    return apply(P.index_add, g, *idx, shape=tuple(shape), index=index)


def getitem_raw(x: Tensor, index, idx=()) -> Tensor:
    """The getitem primitive on a normalized index (with `idx` filling its Slots)."""
    return apply(P.getitem, x, *idx, index=index)


def index_put(x: Tensor, value, index, idx=()) -> Tensor:
    """A copy of `x` with `x[index] = value` (functional setitem)."""
    return apply(P.index_put, x, _operand(value, x.dtype), *idx, index=index)


def masked_fill(x: Tensor, mask: Tensor, value) -> Tensor:
    return _named(where(mask, value, x), "MaskedFillBackward0")


# ------------------------------------------------------------------------------------------ in-place ops
def _check_writable(x: Tensor, name: str) -> None:
    if not x._data.flags.writeable:
        raise RuntimeError(f"{name}: unsupported operation: more than one element of the written-to tensor refers to "
                           f"a single memory location (an expanded tensor). Please clone() the tensor before "
                           f"performing the operation.")


def _inplace(x: Tensor, name: str, fn, *args) -> Tensor:
    """Run `fn(x, *args)` and write the result into x's storage, recording it as an in-place op.

    The new values are computed before anything is written, so a failing op leaves x untouched.
    """
    tracking = _GRAD.enabled and (x._rg or builtins.any(isinstance(a, Tensor) and a._rg for a in args))
    if tracking:
        if x._rg and x.grad_fn is None:
            raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place operation.")
        if x._base is not None or (x._vbox is not None and x._vbox[1]):
            raise RuntimeError(f"{name}: in-place modification of a view (or of a tensor with views) is not supported "
                               f"while recording gradients: tracegrad does not rebase the history of views as "
                               f"PyTorch does. Use .clone() first, or modify under no_grad().")
        before = Tensor._make(x._data.copy(), x._rg, x.grad_fn)  # the value the op's node saves, if any
        if _tracing.TRACER is not None:
            _tracing.TRACER.alias(before, x, copy=True)
        res = fn(before, *args)
    else:
        with no_grad():
            res = fn(x, *args)
    if res._data.shape != x._data.shape:
        raise RuntimeError(f"{name}: output with shape {fmt(x.shape)} doesn't match the broadcast shape "
                           f"{fmt(res.shape)}")
    if res.dtype.category > x.dtype.category:
        raise RuntimeError(f"{name}: result type {res.dtype} can't be cast to the desired output type {x.dtype}")
    _check_writable(x, name)
    if _tracing.TRACER is not None:
        _tracing.TRACER.write(x, res)  # records the new value, then writes it like the line below
    else:
        x._data[...] = res._data
    x._version_box()[0] += 1
    if tracking:
        x.grad_fn, x._rg = res.grad_fn, res._rg
    return x


# fill_ and copy_ are where(True, new, old): the result stays in the graph (zero gradient to `old`).
def _fill(t, value):
    return where(_const(True, np.bool_), value if not isinstance(value, Tensor) else value.to(t.dtype),
                 t).to(t.dtype)


def _copy(t, src):
    return where(_const(True, np.bool_), expand(to(src, t.dtype), t.shape), t)


def _inplace_arith(x: Tensor, name: str, op, other) -> Tensor:
    """`x op= other`. Outside the graph numpy writes straight into x's storage (no temporary):
    this is the path optimizer updates take under no_grad."""
    other_is_tensor = isinstance(other, Tensor)
    if not (_GRAD.enabled and (x._rg or (other_is_tensor and other._rg))) and _tracing.TRACER is None:
        o = other._data if other_is_tensor else _const(other, result_type(x, other).np)._data  # wraps, as _const
        dt = result_type(x, other)
        if dt.category <= x.dtype.category and x._data.flags.writeable and \
                (not other_is_tensor or broadcastable_to(o.shape, x._data.shape)):
            op.forward(x._data, o, out=x._data)
            x._version_box()[0] += 1
            return x
    fn = div if op is P.div else (lambda t, o: _binary(op, t, o))
    return _inplace(x, name, fn, other)


def add_(x, other, alpha=1):
    return _inplace_arith(x, "add_", P.add, other if _is_one(alpha) else mul(other, alpha))


def sub_(x, other, alpha=1):
    return _inplace_arith(x, "sub_", P.sub, other if _is_one(alpha) else mul(other, alpha))


def mul_(x, other):
    return _inplace_arith(x, "mul_", P.mul, other)


def div_(x, other):
    return _inplace_arith(x, "div_", P.div, other)


def addcmul(x, tensor1, tensor2, value=1):
    """x + value * tensor1 * tensor2 (evaluated in PyTorch's order)."""
    return _named(add(x, mul(mul(tensor1, value), tensor2)), "AddcmulBackward0")


def addcdiv(x, tensor1, tensor2, value=1):
    """x + value * tensor1 / tensor2 (evaluated in PyTorch's order)."""
    return _named(add(x, div(mul(tensor1, value), tensor2)), "AddcdivBackward0")


def addcmul_(x, tensor1, tensor2, value=1):
    return add_(x, mul(mul(tensor1, value), tensor2))


def addcdiv_(x, tensor1, tensor2, value=1):
    return add_(x, div(mul(tensor1, value), tensor2))


def lerp(x, end, weight):
    """x + weight * (end - x), with PyTorch's two-sided formula for accuracy near weight = 1."""
    diff = sub(end, x)
    if isinstance(weight, Tensor):
        return _named(where(lt(abs(weight), 0.5), add(x, mul(weight, diff)), sub(end, mul(diff, sub(1, weight)))),
                      "LerpBackward1")
    return _named(add(x, mul(diff, weight)) if weight < 0.5 else sub(end, mul(diff, 1 - weight)), "LerpBackward0")


def lerp_(x, end, weight):
    if not isinstance(weight, Tensor) and weight < 0.5:
        return add_(x, mul(sub(end, x), weight))
    return copy_(x, lerp(x, end, weight))


def sqrt_(x):
    return _inplace(x, "sqrt_", sqrt)


def pow_(x, other):
    return _inplace(x, "pow_", pow, other)


def neg_(x):
    return _inplace(x, "neg_", neg)


def exp_(x):
    return _inplace(x, "exp_", exp)


def relu_(x):
    return _inplace(x, "relu_", relu)


def sigmoid_(x):
    return _inplace(x, "sigmoid_", sigmoid)


def tanh_(x):
    return _inplace(x, "tanh_", tanh)


def clamp_(x, min=None, max=None):  # noqa: A002
    return _inplace(x, "clamp_", lambda t: clamp(t, min, max))


def zero_(x):
    return _inplace(x, "zero_", _fill, 0)


def fill_(x, value):
    return _inplace(x, "fill_", _fill, value)


def copy_(x, src):
    return _inplace(x, "copy_", _copy, src)


def masked_fill_(x, mask, value):
    return _inplace(x, "masked_fill_", lambda t: masked_fill(t, mask, value))


def setitem(x: Tensor, index, value) -> None:
    """`x[index] = value`: a direct write, or on a tensor in the graph an in-place `index_put`."""
    index = normalize_index(index)
    steps = pytorch_index_steps(index, x.ndim)
    if not (_GRAD.enabled and (x._rg or (isinstance(value, Tensor) and value._rg))) and _tracing.TRACER is None:
        v = value._data if isinstance(value, Tensor) else value
        _check_writable(x, "setitem")
        try:
            if steps is not None:
                x._data[steps[0]][steps[1]] = v  # the basic step is a view: the write lands in x
            else:
                x._data[index] = v
        except IndexError:
            P.getitem.infer(x.aval, index=index)  # raises getitem's message (index, dimension, shape)
            raise
        except ValueError as e:
            P.index_put.infer(x.aval, Tensor._make(np.asarray(v)).aval, index=index)
            raise RuntimeError(f"setitem: {e}") from None
        x._version_box()[0] += 1
        return
    if steps is not None:
        raise RuntimeError("setitem: an index mixing integers and index tensors is not supported while recording "
                           "gradients or tracing; index in two steps instead, e.g. y = x[1] then y[:2, idx] = value")
    _inplace(x, "setitem", lambda t, v: index_put(t, v, index), value)


# ------------------------------------------------------------------------------------------ convolution, pooling
# Thin binders of the registry ops, with normalized params; `tracegrad.nn.functional` is the user API.
def conv2d_raw(x, w, stride, padding, dilation, groups):
    return apply(NNP.conv2d, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv2d_input_grad(g, w, x_shape, stride, padding, dilation, groups):
    return apply(NNP.conv2d_input_grad, g, w, x_shape=tuple(x_shape), stride=stride, padding=padding,
                 dilation=dilation, groups=groups)


def conv2d_weight_grad(x, g, w_shape, stride, padding, dilation, groups):
    return apply(NNP.conv2d_weight_grad, x, g, w_shape=tuple(w_shape), stride=stride, padding=padding,
                 dilation=dilation, groups=groups)


def max_pool2d_select(v, x, kernel, stride, padding, dilation):
    return apply(NNP.max_pool2d_select, v, x, kernel=kernel, stride=stride, padding=padding, dilation=dilation)


def max_pool2d_scatter(g, x, kernel, stride, padding, dilation):
    return apply(NNP.max_pool2d_scatter, g, x, kernel=kernel, stride=stride, padding=padding, dilation=dilation)


def avg_pool2d_raw(x, kernel, stride, padding, count_include_pad):
    return apply(NNP.avg_pool2d, x, kernel=kernel, stride=stride, padding=padding,
                 count_include_pad=count_include_pad)


def avg_pool2d_backward(g, x_shape, kernel, stride, padding, count_include_pad):
    return apply(NNP.avg_pool2d_backward, g, x_shape=tuple(x_shape), kernel=kernel, stride=stride, padding=padding,
                 count_include_pad=count_include_pad)


# ------------------------------------------------------------------------------------------ Tensor methods
_METHODS = """add sub mul div floor_divide remainder pow neg abs sign exp log sqrt rsqrt tanh sigmoid sin cos
square relu log1p maximum minimum clamp clip matmul mm eq ne lt le gt ge greater greater_equal less less_equal not_equal
bitwise_and bitwise_or bitwise_xor bitwise_not logical_and logical_or logical_xor logical_not isnan
sum mean max min amax amin all any argmax argmin var std norm logsumexp softmax log_softmax
reshape view view_as reshape_as permute transpose swapaxes t squeeze unsqueeze flatten unflatten expand expand_as
broadcast_to split chunk unbind select masked_fill to type_as double long clone contiguous
add_ sub_ mul_ div_ pow_ neg_ addcmul addcdiv addcmul_ addcdiv_ lerp lerp_ sqrt_ erf
exp_ relu_ sigmoid_ tanh_ clamp_ zero_ fill_ copy_ masked_fill_""".split()


def _mT(x: Tensor) -> Tensor:
    """Swap the last two dims (`x.mT`); a fast path of `transpose(x, -2, -1)`, used by linear and matmul's VJP."""
    n = x._data.ndim
    if n < 2:
        raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. Got {n}-D tensor.")
    perm = tuple(range(n - 2)) + (n - 1, n - 2)
    return _named(apply(P.permute, x, perm=perm), "TransposeBackward0")


def _bind_methods():
    g = globals()
    for name in _METHODS:
        setattr(Tensor, name, g[name])
    Tensor.float, Tensor.bool, Tensor.where = float_, bool__, lambda x, condition, y: where(condition, x, y)
    Tensor.T = property(lambda x: permute(x, *reversed(range(x.ndim))))
    Tensor.mT = property(_mT)
    Tensor.__getitem__ = getitem
    Tensor.__setitem__ = setitem
    ops = {"add": add, "sub": sub, "mul": mul, "truediv": div, "floordiv": floor_divide, "mod": remainder,
           "pow": pow, "matmul": matmul, "and": bitwise_and, "or": bitwise_or, "xor": bitwise_xor}
    for name, fn in ops.items():
        setattr(Tensor, f"__{name}__", fn)
        setattr(Tensor, f"__r{name}__", (lambda f: lambda x, other: f(other, x))(fn))
    Tensor.__rsub__ = rsub
    Tensor.__rmatmul__ = lambda x, other: matmul(_tensor(other), x)
    for name, fn in {"iadd": add_, "isub": sub_, "imul": mul_, "itruediv": div_}.items():
        setattr(Tensor, f"__{name}__", fn)
    numbers = (Tensor, int, float, bool, np.number)
    for name, fn in {"eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge}.items():
        setattr(Tensor, f"__{name}__",
                (lambda f: lambda x, other: f(x, other) if isinstance(other, numbers) else NotImplemented)(fn))
    Tensor.__neg__, Tensor.__pos__, Tensor.__abs__, Tensor.__invert__ = neg, lambda x: x, abs, bitwise_not


_bind_methods()
