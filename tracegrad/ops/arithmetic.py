"""Arithmetic, elementwise math, comparisons and logic, with PyTorch's type promotion."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from .._tensor import Tensor, apply
from ..autograd.grad_mode import is_grad_enabled
from ..dtypes import result_type
from . import math_primitives as MP
from . import primitives as P
from .base import _binary, _floating, _is_one, _named, _operand, _tensor
from .registry import REGISTRY
from .shapes import fmt
from .shaping import squeeze, unsqueeze


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
        return _binary(P.div_floor, *_no_bools("div_floor", a, b))
    if rounding_mode == "trunc":
        # floor rounds toward -inf, trunc toward zero: they differ by one where the quotient is negative
        q = _binary(P.div_floor, *_no_bools("div_trunc", a, b))
        return _named(where(logical_and(lt(q, 0), ne(remainder(a, b), 0)), add(q, 1), q), "DivBackward2")
    if rounding_mode is not None:
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"'{rounding_mode}'")
    dt = result_type(a, b)
    if not dt.is_floating_point:  # true division of integers gives the default float dtype
        dt = dtypes.get_default_dtype()
    return apply(P.div, _operand(a, dt), _operand(b, dt))


def floor_divide(a, b):
    return _binary(P.floor_divide, *_no_bools("div_floor", a, b))


def remainder(a, b):
    return _named(_binary(P.remainder, *_no_bools("remainder", a, b)),
                  "RemainderBackward1" if isinstance(b, Tensor) else "RemainderBackward0")


def _no_bools(kernel, a, b) -> tuple:
    """PyTorch has no floor division or remainder of two bools (a bool and a number promote to the number's type)."""
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype is dtypes.bool_ and b.dtype is dtypes.bool_:
        raise NotImplementedError(f'"{kernel}_cpu" not implemented for \'Bool\'')
    return a, b


def pow(a, b):  # noqa: A001 - PyTorch's name
    """`a ** b`; PyTorch names the node by which side is a Python number."""
    if type(b) in (int, float) and b == 0 and isinstance(a, Tensor) and a._rg and is_grad_enabled():
        # NOTE: PyTorch's derivative of x ** 0 is zeros outside the graph (a second derivative is an error), not
        # 0 * x ** -1, whose own derivative is nan at 0. sign's derivative is such zeros, and sign(x) * 0 + 1 is
        # exactly 1 everywhere (nan and inf included), as x ** 0 is.
        return _named(add(mul(sign(a), 0.0), 1.0), "PowBackward0")
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
    """log(1 + x), accurate for tiny |x| (a registry primitive, `math_primitives.log1p`)."""
    return apply(MP.log1p, _floating(x))


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
    return _binary(P.minimum, a, b)


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
    if out._rg:
        # NOTE: where x is nan the result is nan and PyTorch's gradient is 0 (x is not within [min, max]), for x and
        # the bounds; the comparisons above let it through to x. Only a result that requires grad pays for this.
        out = where(ne(x, x), x.detach(), out)
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
