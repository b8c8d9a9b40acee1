"""Adamax: Adam with the infinity norm in place of the second moment."""
from __future__ import annotations

from .._tensor import Tensor
from ..autograd.grad_mode import no_grad
from ..ops.functions import maximum
from .optimizer import Optimizer, _check_adam_arguments, _collect_group, _tensor_steps

__all__ = ["Adamax", "adamax"]


class Adamax(Optimizer):
    r"""Adamax, with PyTorch's update rule (`weight_decay`, `maximize`).

    With g the gradient (negated if `maximize`) and t the step count, per step::

        g = g + weight_decay * p                      (if weight_decay != 0)
        m = lerp(m, g, 1 - beta1)
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1**t) * m / u

    State per parameter: 'step' (a 0-dim float32 tensor), 'exp_avg' (m) and 'exp_inf' (u).

    >>> import tracegrad as tg
    >>> w = tg.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = tg.optim.Adamax([w], lr=0.1)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()
    ...     opt.step()
    >>> w
    tensor([ 0.7155, -1.7076], requires_grad=True)
    """

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, *, maximize: bool = False) -> None:
        _check_adam_arguments(lr, betas, eps, weight_decay)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("maximize", False)
        _tensor_steps(self)

    def _init_group(self, group, params, grads, exp_avgs, exp_infs, state_steps):
        _collect_group(self, group, params, grads, state_steps, {"exp_avg": exp_avgs, "exp_inf": exp_infs})

    def step(self, closure=None):
        """Perform one optimization step; returns `closure()`'s loss if a closure is given."""
        loss = self._eval_closure(closure)
        with no_grad():
            for group in self.param_groups:
                params, grads, exp_avgs, exp_infs, state_steps = [], [], [], [], []
                self._init_group(group, params, grads, exp_avgs, exp_infs, state_steps)
                beta1, beta2 = group["betas"]
                adamax(params, grads, exp_avgs, exp_infs, state_steps, eps=group["eps"], beta1=beta1, beta2=beta2,
                       lr=group["lr"], weight_decay=group["weight_decay"], maximize=group["maximize"])
        return loss


def adamax(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_infs: list[Tensor],
           state_steps: list[Tensor], *, eps: float, beta1: float, beta2: float, lr: float, weight_decay: float,
           maximize: bool = False) -> None:
    """The functional Adamax update (PyTorch's `_single_tensor_adamax`), written in tracegrad in-place ops.

    Call it under `no_grad`.
    """
    for param, grad, exp_avg, exp_inf, step_t in zip(params, grads, exp_avgs, exp_infs, state_steps):
        grad = grad if not maximize else -grad
        step_t.add_(1)
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_inf.copy_(maximum(exp_inf.mul_(beta2), grad.abs().add_(eps)))
        clr = lr / (1 - beta1 ** step_t.double())
        param.addcdiv_(exp_avg, exp_inf, value=-clr)
