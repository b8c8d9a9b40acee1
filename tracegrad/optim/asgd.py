"""ASGD: averaged stochastic gradient descent."""
from __future__ import annotations

from .._tensor import Tensor
from ..autograd.grad_mode import no_grad
from ..creation import tensor, zeros_like
from ..ops.functions import maximum, where
from .optimizer import Optimizer, _scalar_dtype

__all__ = ["ASGD", "asgd"]


class ASGD(Optimizer):
    r"""Averaged SGD, with PyTorch's update rule (`lambd`, `alpha`, `t0`, `weight_decay`, `maximize`).

    With g the gradient (negated if `maximize`) and t the step count, per step::

        g = g + weight_decay * p                      (if weight_decay != 0)
        p = p * (1 - lambd * eta) - eta * g
        ax = ax + (p - ax) * mu                       (ax = p while mu is 1)
        eta = lr / (1 + lambd * lr * t) ** alpha,  mu = 1 / max(1, t - t0)

    State per parameter: 'step', 'eta', 'mu' (0-dim float32 tensors) and 'ax', the averaged parameter.

    >>> import tracegrad as tg
    >>> w = tg.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = tg.optim.ASGD([w], lr=0.1)
    >>> for _ in range(2):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()
    ...     opt.step()
    >>> w, sorted(opt.state[w])
    (tensor([ 0.6400, -1.2800], requires_grad=True), ['ax', 'eta', 'mu', 'step'])
    """

    def __init__(self, params, lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6,
                 weight_decay: float = 0, *, maximize: bool = False) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {"lr": lr, "lambd": lambd, "alpha": alpha, "t0": t0, "weight_decay": weight_decay,
                    "maximize": maximize}
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("maximize", False)
        for p_state in self.state.values():
            for key in ("step", "eta", "mu"):
                if isinstance(p_state, dict) and key in p_state and not isinstance(p_state[key], Tensor):
                    p_state[key] = tensor(float(p_state[key]), dtype=_scalar_dtype())

    def _init_group(self, group, params, grads, mus, axs, etas, state_steps):
        for p in group["params"]:
            if p.grad is None:
                continue
            params.append(p)
            grads.append(p.grad)
            state = self.state[p]
            if len(state) == 0:  # lazy state initialization; the lr as it is (not a traced number)
                state["step"] = tensor(0.0, dtype=_scalar_dtype())
                state["eta"] = tensor(float(dict.__getitem__(group, "lr")), dtype=_scalar_dtype())
                state["mu"] = tensor(1.0, dtype=_scalar_dtype())
                state["ax"] = zeros_like(p)
            mus.append(state["mu"])
            axs.append(state["ax"])
            etas.append(state["eta"])
            state_steps.append(state["step"])

    def step(self, closure=None):
        """Perform one optimization step; returns `closure()`'s loss if a closure is given."""
        loss = self._eval_closure(closure)
        with no_grad():
            for group in self.param_groups:
                params, grads, mus, axs, etas, state_steps = [], [], [], [], [], []
                self._init_group(group, params, grads, mus, axs, etas, state_steps)
                asgd(params, grads, axs, mus, etas, state_steps, lambd=group["lambd"], lr=group["lr"],
                     t0=group["t0"], alpha=group["alpha"], weight_decay=group["weight_decay"],
                     maximize=group["maximize"])
        return loss


def asgd(params: list[Tensor], grads: list[Tensor], axs: list[Tensor], mus: list[Tensor], etas: list[Tensor],
         state_steps: list[Tensor], *, lambd: float, lr: float, t0: float, alpha: float, weight_decay: float,
         maximize: bool = False) -> None:
    """The functional ASGD update (PyTorch's `_single_tensor_asgd`), written in tracegrad in-place ops.

    Call it under `no_grad`. PyTorch copies p into ax while mu is 1 (a Python branch); here it is a `where`.
    """
    for param, grad, ax, mu, eta, step_t in zip(params, grads, axs, mus, etas, state_steps):
        grad = grad if not maximize else -grad
        step_t.add_(1)
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        eta_value = eta.double()
        param.mul_(1 - lambd * eta_value)
        param.add_(grad, alpha=-eta_value)
        ax.copy_(where(mu == 1, param, ax + param.sub(ax).mul_(mu)))
        step = step_t.double()
        eta.copy_(lr / ((1 + lambd * lr * step) ** alpha))
        mu.copy_(1 / maximum(step - t0, 1.0))
