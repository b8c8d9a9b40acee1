"""Everyday elementwise math with PyTorch's names, dtype rules, gradients and node names.

Float-valued ops promote integer inputs to the default float dtype; floor, ceil, round and trunc return integer
inputs unchanged (a copy), as PyTorch does. Each has an in-place form (`x.floor_()`) where PyTorch has one.

>>> import tracegrad as tg
>>> x = tg.tensor([-2.5, -0.5, 0.5, 1.5, 2.5])
>>> x.round(), x.floor(), x.trunc()
(tensor([-2., -0.,  0.,  2.,  2.]), tensor([-3., -1.,  0.,  1.,  2.]), tensor([-2., -0.,  0.,  1.,  2.]))
>>> tg.round(tg.tensor([1.2345, 2.675]), decimals=2)
tensor([1.2300, 2.6800])
>>> tg.fmod(tg.tensor([-3.0, 3.0]), 2), tg.remainder(tg.tensor([-3.0, 3.0]), 2)
(tensor([-1.,  1.]), tensor([1., 1.]))
>>> tg.nan_to_num(tg.tensor([float("nan"), float("inf"), -1.0]), posinf=9.0)
tensor([ 0.,  9., -1.])
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from .._tensor import Tensor, apply
from ..dtypes import result_type
from . import math_primitives as MP
from .arithmetic import abs as abs_
from .arithmetic import (
    clamp,
    cos,
    div,
    eq,
    erf,
    floor_divide,
    log,
    log1p,
    mul,
    ne,
    neg,
    remainder,
    rsqrt,
    sign,
    sin,
    square,
    sub,
    where,
)
from .base import _binary, _floating, _named, _operand, clone
from .inplace import _inplace
from .reductions import mean, std, var
from .reductions import sum as sum_

_FLOAT_MESSAGE = "Elementwise {name}; integer inputs are promoted to the default float dtype (as PyTorch's {name})."


def _float_unary(op, name=None):
    name = name or op.name

    def fn(x: Tensor) -> Tensor:
        return apply(op, _floating(x))
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = _FLOAT_MESSAGE.format(name=name)
    return fn


log2, log10, exp2, expm1, tan, atan, asin, acos, sinh, cosh, asinh, acosh, atanh = (
    _float_unary(op) for op in (MP.log2, MP.log10, MP.exp2, MP.expm1, MP.tan, MP.atan, MP.asin, MP.acos, MP.sinh,
                                MP.cosh, MP.asinh, MP.acosh, MP.atanh))
arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh


# ------------------------------------------------------------------------------------------ rounding
def _legacy(dtype) -> str:
    return dtype.tensor_type.removesuffix("Tensor")  # PyTorch's kernel messages name Float, Long, Bool, ...


def _rounding(op, kernel):
    def fn(x: Tensor) -> Tensor:
        if x._data.dtype == np.bool_:
            raise NotImplementedError(f'"{kernel}" not implemented for \'Bool\'')
        if x._data.dtype.kind != "f":
            return clone(x)  # integers are already rounded: PyTorch returns a copy
        return apply(op, x)
    fn.__name__ = fn.__qualname__ = op.name
    fn.__doc__ = f"Elementwise {op.name}, with a zero gradient (as PyTorch's); integer inputs are returned as a copy."
    return fn


floor, ceil, trunc = _rounding(MP.floor, "floor_vml_cpu"), _rounding(MP.ceil, "ceil_vml_cpu"), \
    _rounding(MP.trunc, "trunc_vml_cpu")
fix = trunc


def round(x: Tensor, decimals: int = 0) -> Tensor:  # noqa: A001 - PyTorch's name
    """Round half to even, to `decimals` decimal places (negative: to tens, hundreds...), with a zero gradient.

    >>> import tracegrad as tg
    >>> tg.tensor([0.5, 1.5, 1234.5]).round(decimals=-2)
    tensor([   0.,    0., 1200.])
    """
    if decimals == 0:
        return _rounding(MP.round_, "round_cpu")(x)
    if not x.is_floating_point():
        raise NotImplementedError(f'"round_cpu" not implemented for \'{_legacy(x.dtype)}\'')
    # NOTE: PyTorch's kernel: nearbyint(x * 10**d) / 10**d (or nearbyint(x / 10**-d) * 10**-d), 10**d in x's dtype
    scale = 10.0 ** abs(decimals)
    out = div(apply(MP.round_, mul(x, scale)), scale) if decimals > 0 else mul(apply(MP.round_, div(x, scale)), scale)
    return _named(out, "RoundBackward1")


def frac(x: Tensor) -> Tensor:
    """The fractional part x - trunc(x), with the sign of x; its gradient is 1."""
    if not x.is_floating_point():
        raise NotImplementedError(f'"frac_cpu" not implemented for \'{_legacy(x.dtype)}\'')
    return _named(sub(x, apply(MP.trunc, x)), "FracBackward0")


def reciprocal(x: Tensor) -> Tensor:
    """1 / x; integer inputs give the default float dtype."""
    return _named(div(1.0, x), "ReciprocalBackward0")


# ------------------------------------------------------------------------------------------ binary
def fmod(a, b):
    """The C remainder of a / b: truncated division, so the result has the sign of `a` (remainder's has b's)."""
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype is dtypes.bool_ and b.dtype is dtypes.bool_:
        raise NotImplementedError("\"fmod_cpu\" not implemented for 'Bool'")
    return _named(_binary(MP.fmod, a, b), "FmodBackward1" if isinstance(b, Tensor) else "FmodBackward0")


def _float_operands(name, a, b, integers=True) -> tuple:
    """a, b in their promoted dtype, integers promoted to the default float (or refused, as PyTorch's kernels do)."""
    dt = result_type(a, b)
    if not dt.is_floating_point:
        if not integers:
            raise NotImplementedError(f'"{name}_cpu" not implemented for \'{_legacy(dt)}\'')
        dt = dtypes.get_default_dtype()
    return _operand(a, dt), _operand(b, dt)


def _tensor_other(name, other):
    if not isinstance(other, Tensor):
        raise TypeError(f"{name}(): argument 'other' (position 2) must be Tensor, not {type(other).__name__}")


def atan2(a: Tensor, b: Tensor) -> Tensor:
    """The angle of the point (b, a) in (-pi, pi]: atan(a / b) in the right quadrant."""
    _tensor_other("atan2", b)
    return apply(MP.atan2, *_float_operands("atan2", a, b))


arctan2 = atan2


def hypot(a: Tensor, b: Tensor) -> Tensor:
    """sqrt(a**2 + b**2) without overflow or underflow in the squares."""
    _tensor_other("hypot", b)
    return apply(MP.hypot, *_float_operands("hypot", a, b, integers=False))


def logaddexp(a: Tensor, b: Tensor) -> Tensor:
    """log(exp(a) + exp(b)) without overflow."""
    _tensor_other("logaddexp", b)
    return apply(MP.logaddexp, *_float_operands("logaddexp", a, b, integers=False))


def xlogy(a, b):
    """a * log(b), and 0 where a == 0 (unless b is nan): the entropy-style product, finite at a = b = 0.

    >>> import tracegrad as tg
    >>> tg.xlogy(tg.tensor([0.0, 2.0]), tg.tensor([0.0, 1.0]))
    tensor([0., 0.])
    """
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"xlogy(): expected a Tensor, got {type(a).__name__} and {type(b).__name__}")
    out = apply(MP.xlogy, *_float_operands("xlogy", a, b))
    return _named(out, "XlogyBackward0" if isinstance(a, Tensor) and isinstance(b, Tensor) else
                  "XlogyBackward2" if isinstance(a, Tensor) else "XlogyBackward1")


def clamp_min(x: Tensor, min) -> Tensor:  # noqa: A002 - PyTorch's name
    return _named(clamp(x, min=min), "ClampMinBackward1" if isinstance(min, Tensor) else "ClampMinBackward0")


def clamp_max(x: Tensor, max) -> Tensor:  # noqa: A002 - PyTorch's name
    return _named(clamp(x, max=max), "ClampMaxBackward1" if isinstance(max, Tensor) else "ClampMaxBackward0")


# ------------------------------------------------------------------------------------------ infinities and nans
def isinf(x: Tensor) -> Tensor:
    """Where x is +inf or -inf, as a bool tensor (False everywhere for integers)."""
    return eq(abs_(x.detach()), math.inf) if x.is_floating_point() else ne(x, x)


def isposinf(x: Tensor) -> Tensor:
    return eq(x.detach(), math.inf) if x.is_floating_point() else ne(x, x)


def isneginf(x: Tensor) -> Tensor:
    return eq(x.detach(), -math.inf) if x.is_floating_point() else ne(x, x)


def isfinite(x: Tensor) -> Tensor:
    """Where x is neither inf nor nan, as a bool tensor."""
    if not x.is_floating_point():
        return eq(x, x)
    x = x.detach()
    return eq(sub(x, x), 0)  # inf - inf and nan - nan are nan, any finite x - x is 0


def nan_to_num(x: Tensor, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> Tensor:
    """nan, +inf and -inf replaced (by 0 and the dtype's largest and lowest values by default); the gradient flows
    where x is finite."""
    if not x.is_floating_point():
        return clone(x)
    info = dtypes.finfo(x.dtype)
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    out = where(eq(x, -math.inf), neginf, x)
    out = where(eq(x, math.inf), posinf, out)
    return _named(where(ne(x, x), nan, out), "NanToNumBackward0")


# ------------------------------------------------------------------------------------------ reductions
def std_mean(x: Tensor, dim=None, unbiased=None, keepdim=False, *, correction=None) -> tuple:
    """(std, mean) over `dim`, as two tensors (PyTorch's node StdMeanBackward0 computes both).

    >>> import tracegrad as tg
    >>> tg.std_mean(tg.tensor([1.0, 2.0, 6.0]))
    (tensor(2.6458), tensor(3.))
    """
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    s = std(x, dim, unbiased, keepdim, correction=correction)
    return _named(s, "StdMeanBackward0"), _named(mean(x, dim, keepdim), "StdMeanBackward0")


def var_mean(x: Tensor, dim=None, unbiased=None, keepdim=False, *, correction=None) -> tuple:
    """(var, mean) over `dim`, as two tensors."""
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    v = var(x, dim, unbiased, keepdim, correction=correction)
    return _named(v, "VarMeanBackward0"), _named(mean(x, dim, keepdim), "VarMeanBackward0")


def count_nonzero(x: Tensor, dim=None) -> Tensor:
    """How many elements (along `dim`, an int or a tuple) are nonzero, as int64.

    >>> import tracegrad as tg
    >>> tg.count_nonzero(tg.tensor([[0, 1, 2], [0, 0, 3]]), dim=1)
    tensor([2, 1])
    """
    return sum_(ne(x.detach(), 0), dim)


# ------------------------------------------------------------------------------------------ in-place forms
def _inplace_form(name, fn):
    def method(x, *args, **kwargs):
        return _inplace(x, name, lambda t, *a: fn(t, *a, **kwargs), *args)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"In-place `{name[:-1]}`: writes the result into x and returns x."
    return method


def _negative(x):
    return neg(x)


_INPLACE = {"floor": floor, "ceil": ceil, "round": round, "trunc": trunc, "fix": trunc, "frac": frac,
            "log2": log2, "log10": log10, "exp2": exp2, "expm1": expm1, "log1p": log1p, "tan": tan, "atan": atan,
            "asin": asin, "acos": acos, "sinh": sinh, "cosh": cosh, "asinh": asinh, "acosh": acosh, "atanh": atanh,
            "arcsin": asin, "arccos": acos, "arctan": atan, "arcsinh": asinh, "arccosh": acosh, "arctanh": atanh,
            "reciprocal": reciprocal, "nan_to_num": nan_to_num, "abs": abs_, "absolute": abs_, "log": log,
            "square": square, "sign": sign, "sin": sin, "cos": cos, "erf": erf, "negative": _negative,
            "rsqrt": rsqrt, "fmod": fmod, "atan2": atan2,
            "arctan2": atan2, "hypot": hypot, "xlogy": xlogy, "clamp_min": clamp_min, "clamp_max": clamp_max,
            "floor_divide": floor_divide, "remainder": remainder}
INPLACE = {f"{name}_": _inplace_form(f"{name}_", fn) for name, fn in _INPLACE.items()}
