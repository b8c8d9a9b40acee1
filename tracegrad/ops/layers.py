"""Linear layers and losses: `addmm` and thin binders of the registry ops; `tracegrad.nn.functional` is the user API.

Each is one autograd node, as in PyTorch (see the block at the end of `nn_primitives.py`).

>>> import tracegrad as tg
>>> b, x, w = tg.ones(2, requires_grad=True), tg.ones(3, 4), tg.ones(4, 2, requires_grad=True)
>>> y = tg.addmm(b, x, w)
>>> y.grad_fn, y.grad_fn.next_functions
(<AddmmBackward0 object at ...>, ((<AccumulateGrad object at ...>, 0), (None, 0), (<AccumulateGrad object at ...>, 0)))
"""
from __future__ import annotations

from .._tensor import Tensor, apply
from . import nn_primitives as NNP
from .base import _is_one, _named, _tensor
from .shapes import fmt


def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta=1, alpha=1) -> Tensor:  # noqa: A002 - PyTorch's name
    """``beta * input + alpha * (mat1 @ mat2)`` for matrices `mat1`, `mat2`; `input` broadcasts to the product."""
    bias, mat1, mat2 = _tensor(input), _tensor(mat1), _tensor(mat2)
    if mat1.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"addmm: mat1 and mat2 must be matrices, got shapes {fmt(mat1.shape)} and "
                           f"{fmt(mat2.shape)}")
    if not bias.dtype is mat1.dtype is mat2.dtype:
        raise RuntimeError(f"addmm: expected input, mat1 and mat2 to have the same dtype, but got {bias.dtype}, "
                           f"{mat1.dtype} and {mat2.dtype}")
    if _is_one(beta) and _is_one(alpha):
        return apply(NNP.addmm, bias, mat1, mat2)
    return _named(bias * beta + (mat1 @ mat2) * alpha, "AddmmBackward0")


def conv2d_bias_raw(x, w, b, stride, padding, dilation, groups):
    return apply(NNP.conv2d_bias, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)


def mse_loss_raw(x, target, reduction):
    return apply(NNP.mse_loss, x, target, reduction=reduction)


def nll_loss_raw(log_probs, target, weight, reduction, ignore_index):
    inputs = (log_probs, target) if weight is None else (log_probs, target, weight)
    return apply(NNP.nll_loss, *inputs, reduction=reduction, ignore_index=ignore_index)
