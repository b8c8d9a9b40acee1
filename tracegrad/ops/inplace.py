"""In-place ops (`add_`, `fill_`, `setitem`, ...): checked writes recorded as graph ops."""
from __future__ import annotations

import builtins

import numpy as np

from .. import _tracing
from .._tensor import Tensor
from ..autograd.grad_mode import STATE as _GRAD
from ..autograd.grad_mode import no_grad
from ..dtypes import result_type
from . import primitives as P
from .arithmetic import add, clamp, div, exp, lt, mul, neg, relu, sigmoid, sqrt, sub, tanh, where
from .base import _binary, _const, _is_one, _named, to
from .indexing import index_put, masked_fill, normalize_index, pytorch_index_steps
from .shapes import broadcastable_to, fmt
from .shaping import expand


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
        dt = result_type(x, other)
        o = other._data if other_is_tensor else _const(other, dt.np)._data  # wraps, as _const
        if o.dtype != dt.np:  # NOTE: PyTorch computes in the promoted dtype (numpy would in a 0-dim float64's)
            o = o.astype(dt.np)
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
