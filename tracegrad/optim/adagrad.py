"""Adagrad, with learning-rate decay, weight decay, an initial accumulator value and maximize."""
from __future__ import annotations

from .._tensor import Tensor
from ..autograd.grad_mode import no_grad
from ..creation import full_like, tensor
from .optimizer import Optimizer, _scalar_dtype, _tensor_steps

__all__ = ["Adagrad", "adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad, with PyTorch's update rule (`lr_decay`, `weight_decay`, `initial_accumulator_value`, `maximize`).

    With g the gradient (negated if `maximize`) and t the step count, per step::

        g = g + weight_decay * p              (if weight_decay != 0)
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (sqrt(s) + eps)

    State per parameter, made when the optimizer is built (as PyTorch does): 'step' (a 0-dim float32
    tensor) and 'sum' (s, filled with `initial_accumulator_value`). Parameters whose ``.grad`` is None are
    skipped.

    >>> import tracegrad as tg
    >>> w = tg.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = tg.optim.Adagrad([w], lr=0.5)
    >>> for _ in range(2):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()
    ...     opt.step()
    >>> w
    tensor([ 0.2764, -1.2000], requires_grad=True)
    >>> opt.state[w]["sum"]
    tensor([ 5., 25.])
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "maximize": maximize}
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p)

    def _init_state(self, p: Tensor) -> None:
        state = self.state[p]
        state["step"] = tensor(0.0, dtype=_scalar_dtype())
        # NOTE: PyTorch fills every group's accumulator with the *default* initial_accumulator_value
        state["sum"] = full_like(p, self.defaults["initial_accumulator_value"])

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("maximize", False)
        _tensor_steps(self)

    def _init_group(self, group, params_with_grad, grads, state_sums, state_steps):
        for p in group["params"]:
            if p.grad is None:
                continue
            params_with_grad.append(p)
            grads.append(p.grad)
            if len(self.state[p]) == 0:  # a param group added after construction
                self._init_state(p)
            state_sums.append(self.state[p]["sum"])
            state_steps.append(self.state[p]["step"])

    def step(self, closure=None):
        """Perform one optimization step; returns `closure()`'s loss if a closure is given."""
        loss = self._eval_closure(closure)
        with no_grad():
            for group in self.param_groups:
                params, grads, state_sums, state_steps = [], [], [], []
                self._init_group(group, params, grads, state_sums, state_steps)
                adagrad(params, grads, state_sums, state_steps, lr=group["lr"], weight_decay=group["weight_decay"],
                        lr_decay=group["lr_decay"], eps=group["eps"], maximize=group["maximize"])
        return loss


def adagrad(params: list[Tensor], grads: list[Tensor], state_sums: list[Tensor], state_steps: list[Tensor], *,
            lr: float, weight_decay: float, lr_decay: float, eps: float, maximize: bool) -> None:
    """The functional Adagrad update (PyTorch's `_single_tensor_adagrad`), written in tracegrad in-place ops.

    Call it under `no_grad`. The decayed learning rate is computed from the step tensor in float64 (PyTorch
    computes it from `step.item()` in Python floats: the same values), so a tracer records its dependence on
    the step count instead of baking in a constant.
    """
    for param, grad, state_sum, step_t in zip(params, grads, state_sums, state_steps):
        step_t.add_(1)
        grad = grad if not maximize else -grad

        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)

        clr = lr / ((step_t.double() - 1) * lr_decay + 1)

        state_sum.addcmul_(grad, grad, value=1)
        std = state_sum.sqrt().add_(eps)
        param.addcdiv_(grad, std, value=-clr)
