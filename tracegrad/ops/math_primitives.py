"""Registry primitives of elementwise math: rounding, logs and exponentials, trigonometric and hyperbolic functions,
and the binary atan2, hypot, fmod, logaddexp and xlogy, each with PyTorch's gradient formula.

Every one is elementwise with a scalar expression (numba compiles `math.*` and `np.floor`-style scalar calls), so
it fuses into generated kernels. The user-facing functions (dtype promotion, names) are in `mathops.py`.

>>> from tracegrad.ops.registry import REGISTRY, eval_scalar
>>> eval_scalar(REGISTRY["round"], 2.5), eval_scalar(REGISTRY["round"], 3.5)  # half to even, as PyTorch
(np.float64(2.0), np.float64(4.0))
"""
from __future__ import annotations

import math

import numpy as np

from .primitives import _F, _binop, _integer_division, _unary, _zeros_like

LN2, LN10 = math.log(2.0), math.log(10.0)


def _zero(g, out, x):
    # NOTE: PyTorch's floor/ceil/round/trunc have a zero gradient (their results still require grad)
    return _zeros_like(g)


# ---------------------------------------------------------------- rounding (zero gradients)
floor = _unary("floor", np.floor, "np.floor({0})", (_zero,))
ceil = _unary("ceil", np.ceil, "np.ceil({0})", (_zero,))
round_ = _unary("round", np.rint, "np.rint({0})", (_zero,))  # np.rint rounds half to even, as PyTorch's round
trunc = _unary("trunc", np.trunc, "np.trunc({0})", (_zero,))

# ---------------------------------------------------------------- logs and exponentials
# NOTE: log1p and expm1 are primitives for accuracy near 0, where log(1 + x) and exp(x) - 1 lose every digit
log1p = _unary("log1p", np.log1p, "math.log1p({0})", (lambda g, out, x: g / (x + 1),), (0,),
               backward_name="Log1PBackward0")
expm1 = _unary("expm1", np.expm1, "math.expm1({0})", (lambda g, out, x: g * (out + 1),), ("out",))
log2 = _unary("log2", np.log2, "math.log2({0})", (lambda g, out, x: g / (x * LN2),), (0,))
log10 = _unary("log10", np.log10, "math.log10({0})", (lambda g, out, x: g / (x * LN10),), (0,))
exp2 = _unary("exp2", np.exp2, "np.exp2({0})", (lambda g, out, x: g * out * LN2,), ("out",))

# ---------------------------------------------------------------- trigonometric and hyperbolic
tan = _unary("tan", np.tan, "math.tan({0})", (lambda g, out, x: g * (out * out + 1),), ("out",))
atan = _unary("atan", np.arctan, "math.atan({0})", (lambda g, out, x: g / (x * x + 1),), (0,))
asin = _unary("asin", np.arcsin, "math.asin({0})", (lambda g, out, x: g * (-x * x + 1).rsqrt(),), (0,))
acos = _unary("acos", np.arccos, "math.acos({0})", (lambda g, out, x: g * -(-x * x + 1).rsqrt(),), (0,))
sinh = _unary("sinh", np.sinh, "math.sinh({0})", (lambda g, out, x: g * x.cosh(),), (0,))
cosh = _unary("cosh", np.cosh, "math.cosh({0})", (lambda g, out, x: g * x.sinh(),), (0,))
asinh = _unary("asinh", np.arcsinh, "math.asinh({0})", (lambda g, out, x: g * (x * x + 1).rsqrt(),), (0,))
acosh = _unary("acosh", np.arccosh, "math.acosh({0})", (lambda g, out, x: g * (x * x - 1).rsqrt(),), (0,))
atanh = _unary("atanh", np.arctanh, "math.atanh({0})", (lambda g, out, x: g * (1 / (-x * x + 1)),), (0,))


# ---------------------------------------------------------------- binary
def _atan2_recip(a, b):
    # NOTE: PyTorch's atan2 gradient is 0 where a*a + b*b is 0 (or so small its reciprocal overflows), not nan
    r = 1 / (a * a + b * b)
    return _F().where(r == math.inf, 0.0, r)


atan2 = _binop("atan2", np.arctan2, "math.atan2({0}, {1})",
               (lambda g, out, a, b: g * b * _atan2_recip(a, b), lambda g, out, a, b: g * -a * _atan2_recip(a, b)),
               (0, 1))
# hypot's gradient is nan at (0, 0), as in PyTorch (a / out = 0 / 0)
hypot = _binop("hypot", np.hypot, "math.hypot({0}, {1})",
               (lambda g, out, a, b: g * a / out, lambda g, out, a, b: g * b / out), (0, 1, "out"))
# NOTE: fmod truncates (the result has the dividend's sign), remainder floors; d/db is -trunc(a / b), as in PyTorch
fmod = _binop("fmod", _integer_division(np.fmod), "np.fmod({0}, {1})",
              (lambda g, out, a, b: g, lambda g, out, a, b: -g * _F().div(a, b, rounding_mode="trunc")), (0, 1))


def _logaddexp(a, b):
    return np.logaddexp(a, b)


# PyTorch's gradients: g / (1 + exp(b - a)) and g / (1 + exp(a - b)) (nan where both are -inf, as there)
logaddexp = _binop("logaddexp", _logaddexp,
                   "({0} if {0} == {1} and abs({0}) == math.inf else "
                   "max({0}, {1}) + math.log1p(math.exp(-abs({0} - {1}))))",
                   (lambda g, out, a, b: g / ((b - a).exp() + 1), lambda g, out, a, b: g / ((a - b).exp() + 1)),
                   (0, 1))


def _xlogy(x, y):
    out = np.where(x == 0, np.zeros((), x.dtype), x * np.log(y))
    return np.where(y != y, y, out)


def _xlogy_dx(g, out, x, y):
    # NOTE: PyTorch's d/dx is xlogy(g, y), zeroed where x == 0 and y <= 0 (log(y) where x == 0 and y > 0)
    return _F().where((x == 0) & (y <= 0), 0.0, _F().apply(xlogy, g, y))


# x * log(y), 0 where x == 0 (unless y is nan), as PyTorch's xlogy
xlogy = _binop("xlogy", _xlogy, "({1} if {1} != {1} else (0.0 if {0} == 0 else {0} * math.log({1})))",
               (_xlogy_dx, lambda g, out, x, y: g * x / y), (0, 1))
