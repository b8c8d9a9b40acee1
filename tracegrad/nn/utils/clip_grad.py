"""Gradient clipping: `clip_grad_norm_`, `clip_grad_value_`, `get_total_norm`, `clip_grads_with_norm_` (as in
`torch.nn.utils`).

Each is composed of tracegrad tensor ops under `no_grad`, so it runs eagerly and inside a compiled training
step (typically between ``loss.backward()`` and ``optimizer.step()``) alike. The norm is computed as
PyTorch computes it: the norm of the vector of every tensor's norm.

>>> import tracegrad as tg
>>> w = tg.zeros(2, requires_grad=True)
>>> w.grad = tg.tensor([3.0, 4.0])
>>> tg.nn.utils.clip_grad_norm_([w], max_norm=1.0)
tensor(5.)
>>> w.grad
tensor([0.6000, 0.8000])
"""
from __future__ import annotations

import math
import types
import warnings

from ..._tensor import Tensor
from ...autograd.grad_mode import no_grad
from ...creation import tensor
from ...ops import functions as T

__all__ = ["clip_grad_norm", "clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """The `norm_type`-norm of `tensors` (a tensor or an iterable of them) seen as one vector.

    `norm_type` may be ``inf`` (or ``'inf'``) for the largest absolute value. With `error_if_nonfinite`, a
    nan or infinite norm raises a RuntimeError. `foreach` is accepted for PyTorch's signature: tracegrad
    has one implementation. No tensors: ``tensor(0.)``.

    >>> import tracegrad as tg
    >>> tg.nn.utils.get_total_norm([tg.tensor([3.0]), tg.tensor([[-4.0, 1.0]])], norm_type="inf")
    tensor(4.)
    """
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    norm_type = float(norm_type)
    if len(tensors) == 0:
        return tensor(0.0)
    with no_grad():
        total_norm = T.stack([t.norm(norm_type) for t in tensors]).norm(norm_type)
        if error_if_nonfinite and (total_norm.isnan() | (total_norm.abs() == math.inf)):
            raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                               f"so it cannot be clipped. To disable this error and scale the gradients by the "
                               f"non-finite norm anyway, set `error_if_nonfinite=False`")
    return total_norm


def clip_grads_with_norm_(parameters, max_norm: float, total_norm: Tensor, foreach=None) -> None:
    r"""Scale the gradients of `parameters` in place by ``min(max_norm / (total_norm + 1e-6), 1)``.

    `total_norm` is a precomputed norm (from `get_total_norm`); parameters without a gradient are skipped.
    The factor is applied even when it is 1 (no data-dependent branch: a compiled step computes it).

    >>> import tracegrad as tg
    >>> w = tg.zeros(2, requires_grad=True)
    >>> w.grad = tg.tensor([3.0, 4.0])
    >>> tg.nn.utils.clip_grads_with_norm_([w], 2.5, tg.tensor(5.0))
    >>> w.grad
    tensor([1.5000, 2.0000])
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    max_norm = float(max_norm)
    if len(grads) == 0:
        return
    with no_grad():
        # NOTE: PyTorch evaluates `max_norm / (total_norm + 1e-6)` as reciprocal() * max_norm; so does this,
        # for the same float32 roundings
        clip_coef_clamped = ((1.0 / (total_norm + 1e-6)) * max_norm).clamp(max=1.0)
        for g in grads:
            g.mul_(clip_coef_clamped)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Clip the gradients of `parameters` in place so that their total `norm_type`-norm is at most `max_norm`.

    The norm is taken over all gradients together, as one vector (see `get_total_norm`); returns it (before
    clipping). Same as `get_total_norm` followed by `clip_grads_with_norm_`.

    >>> import tracegrad as tg
    >>> net = tg.nn.Linear(3, 2)
    >>> net(tg.ones(4, 3)).sum().mul(100).backward()
    >>> norm = tg.nn.utils.clip_grad_norm_(net.parameters(), max_norm=1.0)
    >>> bool(norm > 1), round(tg.nn.utils.get_total_norm([p.grad for p in net.parameters()]).item(), 4)
    (True, 1.0)
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    else:
        is_generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)  # a generator is read once
        if is_generator and len(parameters) == 0:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=2)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_norm(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach=None) -> Tensor:
    """Deprecated: `clip_grad_norm_` (warns with a FutureWarning, as PyTorch does)."""
    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
                  FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp the gradients of `parameters` in place into ``[-clip_value, clip_value]``.

    >>> import tracegrad as tg
    >>> w = tg.zeros(3, requires_grad=True)
    >>> w.grad = tg.tensor([-2.0, 0.5, 3.0])
    >>> tg.nn.utils.clip_grad_value_([w], clip_value=1.0)
    >>> w.grad
    tensor([-1.0000,  0.5000,  1.0000])
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    clip_value = float(clip_value)
    with no_grad():
        for p in parameters:
            if p.grad is not None:
                p.grad.clamp_(min=-clip_value, max=clip_value)
