"""`Optimizer`: parameter groups, per-parameter state, `zero_grad`, and PyTorch's state-dict format.

Subclasses (`SGD`, `Adam`, `AdamW`) implement `step`; every update they make is a tracegrad in-place
tensor op run under `no_grad`, so a tracer sees the whole step as ordinary ops.

>>> import tracegrad as tg
>>> w = tg.tensor([1.0, 2.0], requires_grad=True)
>>> opt = tg.optim.SGD([w], lr=0.5)
>>> (w * w).sum().backward()
>>> opt.step()
>>> w
tensor([0., 0.], requires_grad=True)
>>> opt.zero_grad()
>>> w.grad is None
True
"""
from __future__ import annotations

import copy
from collections import defaultdict
from itertools import chain
from typing import Any

from .. import _tracing, dtypes
from .._tensor import Tensor
from ..autograd.grad_mode import enable_grad, no_grad
from ..creation import tensor, zeros_like

__all__ = ["Optimizer", "ParamGroup", "required"]


class _RequiredParameter:
    """Singleton marking a hyper-parameter that every param group must give (no default)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()

def _typename(obj) -> str:
    """PyTorch's `torch.typename`: 'tracegrad.FloatTensor' for tensors, 'module.Class' otherwise."""
    if isinstance(obj, Tensor):
        return f"tracegrad.{obj.dtype.tensor_type}"
    cls = type(obj)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", None) else f"{module}.{cls.__qualname__}"


def _clone_state_value(param: Tensor, value, key=None):
    """A copy of one loaded state value: tensors are cloned (floating ones cast to the param's dtype,
    except 'step', as PyTorch does); dicts and lists are copied recursively."""
    if isinstance(value, Tensor):
        with no_grad():
            value = value.detach()
            if key != "step" and param.is_floating_point() and value.is_floating_point():
                value = value.to(param.dtype)
            return value.clone()
    if isinstance(value, dict):
        return {k: _clone_state_value(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clone_state_value(param, v) for v in value)
    return value


def _scalar_dtype():
    """The dtype of state['step'], as PyTorch's `_get_scalar_dtype`: float64 if that is the default, else float32."""
    return dtypes.float64 if dtypes.get_default_dtype() is dtypes.float64 else dtypes.float32


def _check_adam_arguments(lr, betas, eps, weight_decay) -> None:
    """The argument checks of the Adam family (Adam, AdamW, NAdam, RAdam, Adamax), with PyTorch's messages."""
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


def _collect_group(opt: Optimizer, group, params: list, grads: list, steps: list, buffers: dict,
                   scalars: dict | None = None) -> None:
    """Append the group's parameters that have a gradient, their gradients, their step counts and their state
    buffers (``{name: list}``) to the lists, creating the state at a parameter's first step: the step count, the
    0-dim scalars (``{name: (initial value, list)}``) and the buffers as zeros of the parameter's shape."""
    scalars = scalars or {}
    for p in group["params"]:
        if p.grad is None:
            continue
        params.append(p)
        grads.append(p.grad)
        state = opt.state[p]
        if len(state) == 0:  # lazy state initialization
            state["step"] = tensor(0.0, dtype=_scalar_dtype())
            for name, (initial, _) in scalars.items():
                state[name] = tensor(initial, dtype=_scalar_dtype())
            for name in buffers:
                state[name] = zeros_like(p)
        for name, out in buffers.items():
            out.append(state[name])
        for name, (_, out) in scalars.items():
            out.append(state[name])
        steps.append(state["step"])


def _tensor_steps(opt: Optimizer) -> None:
    """Turn loaded Python-number 'step' entries of `opt.state` into 0-dim tensors (of `_scalar_dtype`), as
    PyTorch's `__setstate__` does for optimizers that keep a step count."""
    for state in opt.state.values():
        if isinstance(state, dict) and "step" in state and not isinstance(state["step"], Tensor):
            state["step"] = tensor(float(state["step"]), dtype=_scalar_dtype())


class ParamGroup(dict):
    """A param group: a dict whose numeric entries a tracer hands out as numbers read again at every call.

    So a scheduler (or any code) writing ``group["lr"] = ...`` changes a compiled step's learning rate without
    a retrace; `label` names the group in guards and retrace reasons.
    """

    __slots__ = ("label",)

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if _tracing.TRACER is None or key == "params":
            return value
        return _tracing.TRACER.param_group_entry(self, key, value)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __reduce__(self):  # pickles (and deep-copies) as a plain dict
        return (dict, (dict(self),))


class Optimizer:
    """Base class of the optimizers: holds `param_groups`, `defaults` and per-parameter `state`.

    `params` is an iterable of tensors, or of dicts (param groups) each with a 'params' entry and
    optional per-group options that override `defaults`.

    >>> import tracegrad as tg
    >>> a, b = tg.zeros(2, requires_grad=True), tg.zeros(3, requires_grad=True)
    >>> opt = tg.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.1}], lr=0.01, momentum=0.9)
    >>> [g["lr"] for g in opt.param_groups]
    [0.01, 0.1]
    >>> opt.param_groups[1]["momentum"]
    0.9
    >>> opt.state_dict()["param_groups"][1]["params"]
    [1]
    """

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got " + _typename(params))
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    # ------------------------------------------------------------------ pickling and printing
    def __getstate__(self) -> dict[str, Any]:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.param_groups = [self._as_param_group(g, i) for i, g in enumerate(self.param_groups)]

    def __repr__(self) -> str:
        out = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            out += f"\nParameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    out += f"    {key}: {group[key]}\n"
        return out + ")"

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (a dict with 'params' and optional per-group options).

        Options the group does not give are filled in from `defaults`.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {_typename(param_group)}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")
        else:
            param_group["params"] = list(params)

        for param in param_group["params"]:
            if not isinstance(param, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is " + _typename(param))
            if not (param.is_leaf or param.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)

        # NOTE: sets of tensors hash by identity (Tensor.__eq__ is elementwise, so never use `in` on lists)
        params = param_group["params"]
        if len(params) != len(set(params)):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        param_set: set[Tensor] = set()
        for group in self.param_groups:
            param_set.update(group["params"])
        if not param_set.isdisjoint(params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(self._as_param_group(param_group, len(self.param_groups)))

    def _as_param_group(self, group: dict, index: int) -> ParamGroup:
        group = group if type(group) is ParamGroup else ParamGroup(group)
        group.label = f"{type(self).__name__}.param_groups[{index}]"
        return group

    # ------------------------------------------------------------------ gradients and steps
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters: to None (default), or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                    continue
                if g.grad_fn is not None:
                    g.detach_()
                else:
                    g.requires_grad_(False)
                with no_grad():
                    g.zero_()

    def step(self, closure=None):
        """Perform one optimization step; `closure` (optional) re-evaluates the loss and returns it."""
        raise NotImplementedError

    def _eval_closure(self, closure):
        """Run `closure` with gradients enabled (the step itself runs under no_grad).

        Every `step` starts here, so this is also where a tracer learns that the optimizer is used."""
        if _tracing.TRACER is not None:
            _tracing.TRACER.note_optimizer(self)
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's format.

        `{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}`: parameters are replaced by
        their position across all groups. State tensors are referenced, not copied (as in PyTorch).
        """
        param_mappings: dict[int, int] = {}
        start_index = 0

        def pack_group(group):
            nonlocal start_index
            packed = {k: v for k, v in group.items() if k != "params"}
            param_mappings.update({id(p): i for i, p in enumerate(group["params"], start_index)
                                   if id(p) not in param_mappings})
            packed["params"] = [param_mappings[id(p)] for p in group["params"]]
            start_index += len(packed["params"])
            return packed

        param_groups = [pack_group(g) for g in self.param_groups]
        packed_state = {(param_mappings[id(k)] if isinstance(k, Tensor) else k): dict(v) if isinstance(v, dict) else v
                        for k, v in self.state.items()}
        return {"state": packed_state, "param_groups": param_groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state from `state_dict()`: indices map back to this optimizer's parameters, in order.

        The loaded state tensors are copies (PyTorch aliases them when dtypes match; copying keeps two
        optimizers loaded from one state dict independent).
        """
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = _clone_state_value(param, v)
            else:
                state[k] = v

        def update_group(group, new_group):
            new_group["params"] = group["params"]
            return new_group

        param_groups = [self._as_param_group(update_group(g, ng), i)
                        for i, (g, ng) in enumerate(zip(groups, saved_groups))]
        self.__setstate__({"state": state, "param_groups": param_groups})
