"""Reverse-mode automatic differentiation of eager tensors, with PyTorch's semantics.

>>> import tracegrad as tg
>>> x = tg.tensor(3.0, requires_grad=True)
>>> (dx,) = tg.autograd.grad(x ** 3, x, create_graph=True)
>>> tg.autograd.grad(dx, x)
(tensor(18.),)
"""
from . import function, functional
from .engine import backward, grad
from .function import Function, once_differentiable
from .grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from .gradcheck import gradcheck, gradgradcheck

__all__ = ["backward", "Function", "function", "functional", "grad", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled", "gradcheck", "gradgradcheck", "inference_mode", "is_inference_mode_enabled",
           "once_differentiable"]
