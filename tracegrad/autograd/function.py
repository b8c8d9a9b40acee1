"""Custom autograd functions, as PyTorch's `torch.autograd.Function`: a forward and the backward that replaces its
derivative.

Subclass `Function` with static methods ``forward(ctx, *args)`` and ``backward(ctx, *grads)`` (or the newer
style: ``forward(*args)`` plus ``setup_context(ctx, inputs, output)``) and call ``MyFn.apply(*args)``. `forward`
runs without recording gradients; its outputs get one autograd node, named ``MyFnBackward``, which is also the
`ctx` both methods receive. In backward the node calls the user's `backward`: with ``create_graph=True`` that runs
with gradients recorded, so a backward written in tracegrad's ops is differentiable again (unless marked
`once_differentiable`). Under `tracegrad.compile` the forward's ops are recorded as usual, and the autodiff pass
traces the user's `backward` where the gradient of the outputs is needed (`compiler.autodiff`).

>>> import tracegrad as tg
>>> class MyExp(tg.autograd.Function):
...     @staticmethod
...     def forward(ctx, x):
...         y = x.exp()
...         ctx.save_for_backward(y)
...         return y
...     @staticmethod
...     def backward(ctx, grad):
...         (y,) = ctx.saved_tensors
...         return grad * y
>>> x = tg.tensor([0.0, 1.0], requires_grad=True)
>>> y = MyExp.apply(x)
>>> y
tensor([1.0000, 2.7183], grad_fn=<MyExpBackward>)
>>> y.sum().backward()
>>> x.grad
tensor([1.0000, 2.7183])
"""
from __future__ import annotations

import functools
import inspect
import warnings
import weakref

import numpy as np

from .. import _tracing
from ..ops.shapes import broadcastable_to, fmt
from . import node as _nodes
from .grad_mode import STATE as _GRAD
from .grad_mode import is_grad_enabled, no_grad
from .node import OutputGrads, _GraphNode, edge_to, sum_to

_BACKWARD_TWICE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they have already "
    "been freed). Saved intermediate values of the graph are freed when you call .backward() or autograd.grad(). "
    "Specify retain_graph=True if you need to backward through the graph a second time or if you need to access "
    "saved tensors after calling backward.")


class FunctionCtx:
    """What `forward` (or `setup_context`) tells backward: tensors to save, outputs that are not differentiable,
    inputs modified in place. Any other attribute may be set on it too (``ctx.scale = 2``)."""

    __slots__ = ()

    def save_for_backward(self, *tensors) -> None:
        """Keep `tensors` (inputs, outputs or None) for backward, where `ctx.saved_tensors` gives them back; an
        in-place change to one of them in between is an error at backward time."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, _nodes.Tensor):
                raise TypeError(f"save_for_backward can only save variables, but argument {i} is of type "
                                f"{type(t).__name__}")
        self._to_save = tensors

    def mark_non_differentiable(self, *tensors) -> None:
        """These outputs do not require grad (backward still receives a gradient for each: zeros)."""
        self._non_differentiable = tensors

    def mark_dirty(self, *tensors) -> None:
        """These inputs were modified in place by forward (and are returned as outputs)."""
        self._dirty = tensors

    def set_materialize_grads(self, value: bool) -> None:
        """With False, backward receives None (not zeros) for the outputs that got no gradient."""
        self._materialize = bool(value)


class BackwardCFunction(_GraphNode, FunctionCtx):
    """The autograd node of one `Function.apply` call, and the `ctx` its forward and backward receive.

    Each `Function` subclass gets its own subclass of this, named ``<Function>Backward``.
    """

    _forward_cls = None

    def __init__(self):
        self._pre_hooks = None
        self._retained = None
        self.next_functions = ()
        self.needs_input_grad = ()
        self._to_save = ()
        self._non_differentiable = ()
        self._dirty = ()
        self._materialize = True
        self._saved = None   # after forward: one entry per saved tensor (see `_wrap`)
        self._freed = False
        self._outputs = []   # (weakref to a differentiable output, its output number)

    # ------------------------------------------------------------------ forward: outputs and saved tensors
    def _wrap(self, out, inputs, tensors, differentiable):
        """The outputs of forward as `apply` returns them: differentiable ones get this node as their grad_fn."""
        Tensor = _nodes.Tensor  # noqa: N806 - handed to autograd.node by _tensor.py
        outs = out if isinstance(out, tuple) else (out,)
        self._ports = len(outs) if len(outs) > 1 else None
        self._seq = next(_nodes._SEQ)
        self._out_meta = [(o._data.shape, o._data.dtype) if isinstance(o, Tensor) else None for o in outs]
        input_ids = {id(t) for t in tensors}
        dirty = {id(t) for t in self._dirty}
        non_diff = {id(t) for t in self._non_differentiable}
        results, made = [], {}
        for k, o in enumerate(outs):
            if not isinstance(o, Tensor):
                results.append(o)
                continue
            orig = o
            if id(o) in input_ids and id(o) not in dirty:
                o = o.detach()  # NOTE: an input returned as it is comes back as a view of it (PyTorch's `view_as`)
            elif id(o) in dirty:
                if o.grad_fn is None and o._rg and differentiable:
                    raise RuntimeError("a leaf Variable that requires grad has been used in an in-place operation.")
                o._version_box()[0] += 1
            if differentiable and id(orig) not in non_diff and o._data.dtype.kind == "f":
                o._rg = True
                o.grad_fn = self
                made[id(o)] = (k, o)  # an input returned as it is stays an input to `save_for_backward`
                self._outputs.append((weakref.ref(o), k))
            elif id(orig) in dirty:  # a non-differentiable output modified in place leaves the graph
                o._rg, o.grad_fn = False, None
            results.append(o)
        self._saved = [self._saved_entry(t, made) for t in self._to_save]
        self._to_save = ()
        if differentiable and _tracing.TRACER is not None:
            _tracing.TRACER.custom_function(self, inputs, [(k, o) for k, o in made.values()])
        return tuple(results) if isinstance(out, tuple) else results[0]

    def _saved_entry(self, t, made):
        if t is None:
            return None
        if id(t) in made:  # an output: kept without its grad_fn (no cycle), given it back when unpacked
            k, o = made[id(t)]
            box = o._version_box()
            return ("out", k, o._data, box, box[0])
        return ("in", t, t._version)

    @property
    def saved_tensors(self) -> tuple:
        """The tensors given to `save_for_backward`, checked against in-place changes since."""
        if self._freed:
            raise RuntimeError(_BACKWARD_TWICE)
        if self._saved is None:  # still in forward
            return tuple(self._to_save)
        out = []
        for entry in self._saved:
            if entry is None:
                out.append(None)
            elif entry[0] == "in":
                _, t, version = entry
                if t._version != version:
                    raise RuntimeError(self._modified(t._data, t.grad_fn, t._version, version))
                out.append(t)
            else:
                _, k, data, box, version = entry
                if box[0] != version:
                    raise RuntimeError(self._modified(data, self, box[0], version))
                t = _nodes.Tensor._make(data, True, self)
                t._vbox = box
                self._outputs.append((weakref.ref(t), k))
                if _tracing.TRACER is not None:
                    _tracing.TRACER.custom_output(self, k, t)
                out.append(t)
        return tuple(out)

    def _modified(self, data, fn, now, expected) -> str:
        what = "a leaf" if fn is None else f"output 0 of {fn.name()}"
        return (f"one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"[tracegrad.{_nodes._NP_TO_DTYPE[data.dtype].tensor_type} {fmt(data.shape)}], which is {what}, is "
                f"at version {now}; expected version {expected} instead (it was saved by {self.name()}). Hint: the "
                f"operation that modified it ran after the op that saved it; use .clone() before modifying it in "
                f"place, or modify a copy.")

    # ------------------------------------------------------------------ several outputs
    def output_nr(self, t) -> int:
        """Which output of this node tensor `t` is."""
        for ref, k in self._outputs:
            if ref() is t:
                return k
        raise RuntimeError(f"internal error: a tensor with grad_fn {self.name()} is none of its outputs")

    def add_pre_hook(self, hook, tensor=None):
        if self._ports is not None and tensor is not None:
            hook = _OutputHook(hook, self.output_nr(tensor))
        return super().add_pre_hook(hook)

    def retain(self, t) -> None:
        if self._ports is None:
            return super().retain(t)
        if self._retained is None:
            self._retained = {}
        self._retained[self.output_nr(t)] = weakref.ref(t)

    def retains(self, t) -> bool:
        if self._ports is None or self._retained is None:
            return super().retains(t)
        ref = self._retained.get(self.output_nr(t))
        return ref is not None and ref() is t

    def take_retained(self, grad) -> None:
        if self._ports is None:
            return super().take_retained(grad)
        for k, ref in self._retained.items():
            t, g = ref(), grad.grads[k]
            if t is not None and t.grad_fn is self and g is not None:
                t._grad = g if t._grad is None else t._grad + g

    # ------------------------------------------------------------------ backward
    def apply(self, grad) -> list:
        """Run the user's backward on the outputs' gradients; one gradient (or None) per tensor input."""
        Tensor = _nodes.Tensor  # noqa: N806
        grads = list(grad.grads) if type(grad) is OutputGrads else [grad]
        if self._materialize:
            for k, meta in enumerate(self._out_meta):
                if grads[k] is None and meta is not None:
                    grads[k] = Tensor._make(np.zeros(*meta))
        cls = self._forward_cls
        backward, vjp = cls.backward, cls.vjp
        if backward is not Function.backward and vjp is not Function.vjp and backward is not vjp:
            raise RuntimeError("Implementing both 'backward' and 'vjp' for a custom Function is not allowed. You "
                               "should only implement one of them.")
        result = (vjp if vjp is not Function.vjp else backward)(self, *grads)
        return self._input_grads(result if isinstance(result, tuple) else (result,))

    def _input_grads(self, result: tuple) -> list:
        """Check what backward returned (PyTorch's errors) and fit each gradient to its input's shape and dtype."""
        Tensor = _nodes.Tensor  # noqa: N806
        name, n = self.name(), len(self._is_tensor)
        if len(result) > n and all(g is None for g in result[n:]):
            result = result[:n]
        if len(result) != n:
            raise RuntimeError(f"function {name} returned an incorrect number of gradients (expected {n}, got "
                               f"{len(result)})")
        out = []
        for i, (g, is_tensor) in enumerate(zip(result, self._is_tensor)):
            if not is_tensor:
                if g is not None:
                    raise RuntimeError(f"function {name} returned a gradient different than None at position {i + 1}, "
                                       f"but the corresponding forward input was not a Variable")
                continue
            j = len(out)
            if g is not None and not isinstance(g, Tensor):
                raise RuntimeError(f"expected Variable or None (got {type(g).__name__})")
            if g is None or self.next_functions[j][0] is None:
                out.append(None)
                continue
            shape, dtype = self._in_meta[j]
            if g._data.shape != shape:
                if not broadcastable_to(shape, g._data.shape):
                    raise RuntimeError(f"Function {name} returned an invalid gradient at index {j} - got "
                                       f"{list(g._data.shape)} but expected shape compatible with {list(shape)}")
                g = sum_to(g, shape)
            if g._data.dtype != dtype:
                g = g.to(_nodes._NP_TO_DTYPE[dtype])
            out.append(g)
        return out

    def release(self) -> None:
        self._saved = None
        self._freed = True


class _OutputHook:
    """A tensor hook on one output of a node with several: applied to that output's slot."""

    __slots__ = ("hook", "nr")

    def __init__(self, hook, nr: int):
        self.hook, self.nr = hook, nr

    def __call__(self, grad):
        g = grad.grads[self.nr]
        if g is None:
            return None
        new = self.hook(g)
        if new is None:
            return None
        grads = list(grad.grads)
        grads[self.nr] = new
        return OutputGrads(grads)


class Function:
    """Base of custom autograd functions: subclass it with static `forward` and `backward`, call `apply`.

    `backward(ctx, *grads)` receives one gradient per output of forward and returns one per input of `apply`
    (None for inputs that are not tensors or need none); a gradient whose shape the input broadcasts to is summed
    back to the input's shape. `ctx.needs_input_grad` tells which inputs need one.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("_node_name", f"{cls.__name__}Backward")
        cls._backward_cls = type(name, (BackwardCFunction,), {"_forward_cls": cls, "__module__": __name__,
                                                              "__qualname__": name})

    def __init__(self, *args, **kwargs):
        warnings.warn(f"{type(self)} should not be instantiated. Methods on autograd functions are all static, so you "
                      f"should invoke them on the class itself.", DeprecationWarning, stacklevel=2)

    def __call__(self, *args, **kwargs):
        raise RuntimeError("Legacy autograd function with non-static forward method is deprecated. Please use "
                           "new-style autograd function with static forward method: MyFunction.apply(...)")

    @staticmethod
    def forward(ctx, *args, **kwargs):
        """The computation (runs without recording gradients); returns a tensor or a tuple of outputs."""
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs: tuple, output) -> None:
        """Newer style: with `forward(*args)` taking no ctx, fill `ctx` here from the inputs and the output."""
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        """The vector-Jacobian product: the gradients of the inputs from those of the outputs."""
        raise NotImplementedError("You must implement either the backward or vjp method for your custom "
                                  "autograd.Function to use it with backward mode AD.")

    vjp = backward

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward on `args` and connect its outputs to the graph through `backward`."""
        Tensor = _nodes.Tensor  # noqa: N806
        new_style = cls.setup_context is not Function.setup_context
        if new_style:
            bound = inspect.signature(cls.forward).bind(*args, **kwargs)
            bound.apply_defaults()
            args, kwargs = bound.args, bound.kwargs
        inputs = args + tuple(kwargs.values())  # NOTE: keyword arguments are inputs too, after the positional ones
        ctx = cls._backward_cls()
        grad_on = _GRAD.enabled
        ctx._is_tensor = tuple(isinstance(a, Tensor) for a in inputs)
        # NOTE: as in PyTorch, needs_input_grad says which inputs require grad even under no_grad
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a._rg for a in inputs)
        tensors = [a for a in inputs if isinstance(a, Tensor)]
        differentiable = grad_on and any(ctx.needs_input_grad)
        ctx.next_functions = tuple(edge_to(t) if differentiable and t._rg else (None, 0) for t in tensors)
        ctx._in_meta = [(t._data.shape, t._data.dtype) for t in tensors]
        traced = _tracing.TRACER.custom_inputs(tensors) if differentiable and _tracing.TRACER is not None else None
        with no_grad():
            if new_style:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        return ctx._wrap(out, traced, tensors, differentiable)


class DelayedError(Function):
    """What a `once_differentiable` backward returns under create_graph: its gradients, whose own backward raises."""

    _node_name = "Error"

    @staticmethod
    def forward(ctx, *grads):
        return grads

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("trying to differentiate twice a function that was marked with @once_differentiable")


def once_differentiable(fn):
    """Decorate a `backward` that is not itself differentiable: it runs without recording gradients, and a
    second backward through its results raises instead of silently giving wrong (zero) second derivatives."""
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with no_grad():
            outputs = fn(ctx, *args)
        if not is_grad_enabled() or not any(isinstance(a, _nodes.Tensor) and a._rg for a in args):
            return outputs
        outs = outputs if isinstance(outputs, tuple) else (outputs,)
        # NOTE: as PyTorch, the results become fresh leaves behind an error node: differentiating through them
        # raises when backward reaches the node
        fakes = [o.detach().requires_grad_(True) if isinstance(o, _nodes.Tensor) and o.is_floating_point() else o
                 for o in outs]
        return DelayedError.apply(*fakes)
    return wrapper


__all__ = ["Function", "FunctionCtx", "BackwardCFunction", "once_differentiable"]
