"""PyTorch's `out=` keyword for the top-level functions (`tracegrad.add(a, b, out=c)`).

The result is written into `out` (cast to its dtype when PyTorch's rules allow; resized, with PyTorch's warning,
when its shape differs) and `out` is returned. As in PyTorch, out= can't be used where autograd would record
the op: an input (or `out`) that requires grad, with grad mode on, is an error.

>>> import tracegrad as tg
>>> c = tg.zeros(2)
>>> tg.add(tg.tensor([1.0, 2.0]), 1, out=c) is c
True
>>> c
tensor([2., 3.])
"""
from __future__ import annotations

import functools
import warnings

from .._tensor import Tensor
from ..autograd.grad_mode import STATE as _GRAD
from ..autograd.grad_mode import no_grad
from .base import clone, to
from .inplace import copy_
from .shapes import fmt


def _legacy(dtype) -> str:
    return dtype.tensor_type.removesuffix("Tensor")  # PyTorch's messages name Float, Long, Half, ...


def write_out(name: str, result: Tensor, out: Tensor) -> Tensor:
    """Write `result` into `out` as PyTorch's out= variants do, and return `out`."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}(): argument 'out' must be Tensor, not {type(out).__name__}")
    if _GRAD.enabled and (result._rg or out._rg):
        raise RuntimeError(f"{name}(): functions with out=... arguments don't support automatic differentiation, "
                           f"but one of the arguments requires grad.")
    if result.dtype.category > out.dtype.category:
        raise RuntimeError(f"{name}(): result type {_legacy(result.dtype)} can't be cast to the desired output "
                           f"type {_legacy(out.dtype)}")
    with no_grad():
        if out.shape == result.shape:
            copy_(out, result)
            return out
        if out.numel():
            warnings.warn(f"An output with one or more elements was resized since it had shape {fmt(out.shape)}, "
                          f"which does not match the required output shape {fmt(result.shape)}. This behavior is "
                          f"deprecated, and in a future PyTorch release outputs will not be resized unless they have "
                          f"zero elements. You can explicitly reuse an out tensor t by resizing it, inplace, to zero "
                          f"elements with t.resize_(0).", UserWarning, stacklevel=3)
        out.data = clone(to(result, out.dtype))  # a new storage of the result's shape
        out._version_box()[0] += 1
    return out


def with_out(fn, name: str | None = None):
    """`fn` with a keyword-only `out=` (the functions keep their own signature otherwise)."""
    name = name or fn.__name__

    @functools.wraps(fn)
    def wrapper(*args, out=None, **kwargs):
        if out is None:
            return fn(*args, **kwargs)
        return write_out(name, fn(*args, **kwargs), out)

    return wrapper


# The top-level functions that take out= (PyTorch's common ones among those tracegrad has).
OUT_FUNCTIONS = """abs add addmv amax amin baddbmm bmm cat clamp cos cumprod cumsum div dot eq exp floor_divide ge gt
le log logsumexp lt matmul maximum mean minimum mm mul mv ne neg outer pow prod remainder rsqrt sigmoid sin sqrt stack
std sub sum tanh var where""".split()
