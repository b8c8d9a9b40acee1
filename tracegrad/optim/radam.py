"""RAdam: Adam with the variance of its adaptive learning rate rectified, with L2 or decoupled weight decay."""
from __future__ import annotations

from .._tensor import Tensor
from ..autograd.grad_mode import no_grad
from ..ops.functions import maximum, where
from .optimizer import Optimizer, _check_adam_arguments, _collect_group, _tensor_steps

__all__ = ["RAdam", "radam"]


class RAdam(Optimizer):
    r"""RAdam, with PyTorch's update rule (L2 or `decoupled_weight_decay`, `maximize`).

    With g the gradient (negated if `maximize`) and t the step count, per step::

        m = lerp(m, g, 1 - beta1),  v = beta2 * v + (1 - beta2) * g * g
        rho_inf = 2 / (1 - beta2) - 1,  rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)
        p = p - lr * m / (1 - beta1**t) * sqrt(1 - beta2**t) / (sqrt(v) + eps) * r_t     (rho_t > 5)
        p = p - lr * m / (1 - beta1**t)                                                   (otherwise)

    with the rectification r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)).
    State per parameter: 'step' (a 0-dim float32 tensor), 'exp_avg', 'exp_avg_sq'.

    >>> import tracegrad as tg
    >>> w = tg.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = tg.optim.RAdam([w], lr=0.1)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()
    ...     opt.step()
    >>> w
    tensor([ 0.4623, -0.9246], requires_grad=True)
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *, maximize: bool = False) -> None:
        _check_adam_arguments(lr, betas, eps, weight_decay)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "maximize": maximize,
                    "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("maximize", False)
            group.setdefault("decoupled_weight_decay", False)
        _tensor_steps(self)

    def _init_group(self, group, params, grads, exp_avgs, exp_avg_sqs, state_steps):
        _collect_group(self, group, params, grads, state_steps, {"exp_avg": exp_avgs, "exp_avg_sq": exp_avg_sqs})

    def step(self, closure=None):
        """Perform one optimization step; returns `closure()`'s loss if a closure is given."""
        loss = self._eval_closure(closure)
        with no_grad():
            for group in self.param_groups:
                params, grads, exp_avgs, exp_avg_sqs, state_steps = [], [], [], [], []
                self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, state_steps)
                beta1, beta2 = group["betas"]
                radam(params, grads, exp_avgs, exp_avg_sqs, state_steps, beta1=beta1, beta2=beta2, lr=group["lr"],
                      weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                      decoupled_weight_decay=group["decoupled_weight_decay"])
        return loss


def radam(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
          state_steps: list[Tensor], *, beta1: float, beta2: float, lr: float, weight_decay: float, eps: float,
          decoupled_weight_decay: bool = False, maximize: bool = False) -> None:
    """The functional RAdam update (PyTorch's `_single_tensor_radam`), written in tracegrad in-place ops.

    Call it under `no_grad`. PyTorch branches on ``rho_t > 5`` in Python; here the branch is a `where` on the
    step tensor's value, so a traced step takes the right branch at every call.
    """
    for param, grad, exp_avg, exp_avg_sq, step_t in zip(params, grads, exp_avgs, exp_avg_sqs, state_steps):
        grad = grad if not maximize else -grad
        step_t.add_(1)
        step = step_t.double()

        if weight_decay != 0:
            if decoupled_weight_decay:
                param.mul_(1 - lr * weight_decay)
            else:
                grad = grad.add(param, alpha=weight_decay)

        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        bias_corrected_exp_avg = exp_avg / bias_correction1
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        # NOTE: clamped at 0 where rho_t <= 4 (that branch is not taken), so no nan is computed
        rect = maximum((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t), 0.0) ** 0.5
        # NOTE: PyTorch's `number / tensor` is reciprocal(tensor) * number
        adaptive_lr = (1 / exp_avg_sq.sqrt().add_(eps)) * bias_correction2 ** 0.5
        update = bias_corrected_exp_avg * lr
        param.sub_(where(rho_t > 5.0, update * adaptive_lr * rect, update))
