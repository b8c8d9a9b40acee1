"""Autograd graph nodes: `Node` (one per recorded op, named like ``MulBackward0``) and `AccumulateGrad`.

A node keeps only what its op's VJP reads (the registry's `saves`), with the version of each saved
tensor, so that an in-place change after saving is caught at backward time.
"""
from __future__ import annotations

import itertools
import weakref

import numpy as np

from .. import _tracing
from ..ops.registry import AbstractValue, Kind
from ..ops.shapes import fmt


class RemovableHandle:
    """Returned by `register_hook`; `remove()` unregisters the hook."""

    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class _GraphNode:
    __slots__ = ("_pre_hooks", "__weakref__")
    _seq = None  # creation number (`Node` sets one): the backward sweep runs later nodes first (autograd/order.py)
    # NOTE: None for a node with one output; a node with several (a custom `autograd.Function`'s) sets their count:
    # the gradients reaching it are then an `OutputGrads`, one slot per output, and edges into it name the slot
    _ports = None

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self):
        return f"<{self.name()} object at {hex(id(self))}>"

    def add_pre_hook(self, hook, tensor=None) -> RemovableHandle:
        """Run `hook(grad)` on the gradient reaching this node (`tensor`: the output it is registered on)."""
        if self._pre_hooks is None:
            self._pre_hooks = []
        self._pre_hooks.append(hook)
        return RemovableHandle(self._pre_hooks, hook)

    def retain(self, t) -> None:
        """Give output `t` its gradient as `.grad` during backward (`Tensor.retain_grad`)."""
        self._retained = weakref.ref(t)

    def retains(self, t) -> bool:
        return self._retained is not None and self._retained() is t

    def take_retained(self, grad) -> None:
        """The engine reached this node with `grad`: hand it to the output that retains its gradient."""
        t = self._retained()
        if t is not None and t.grad_fn is self:
            t._grad = grad if t._grad is None else t._grad + grad

    def run_pre_hooks(self, grad):
        for hook in list(self._pre_hooks):
            new = hook(grad)
            if new is not None:
                grad = new
        return grad


def laid_out_like(array: np.ndarray, like: np.ndarray, copy: bool) -> np.ndarray:
    """`array` with the memory order of `like` (copied if `copy`, else only if its order differs).

    PyTorch's gradient layout contract: a new ``.grad`` is laid out like its parameter. A weight gradient
    computed as the transpose of ``x.T @ g`` is a column-major view; stored as is, optimizer state cloned from
    it (momentum buffers) would be column-major too, and every kernel reading a weight and its buffer
    together would walk one of them across its rows (measured: an SGD update of a 256x784 weight took
    0.55 ms instead of 0.05 ms).
    """
    order = "C" if like.flags.c_contiguous else ("F" if like.flags.f_contiguous else "K")
    if copy:
        return np.array(array, copy=True, order=order)
    laid_out = array.flags.c_contiguous if order == "C" else array.flags.f_contiguous if order == "F" else True
    return array if laid_out else np.asarray(array, order=order)  # NOTE: per grad per compiled call: no call


class OutputGrads:
    """The gradients reaching a node with several outputs: one slot per output (None where none arrived).

    The backward sweep sums what reaches a node with ``+``; here that sums slot by slot, each in arrival order.
    """

    __slots__ = ("grads",)

    def __init__(self, grads: list):
        self.grads = grads

    @staticmethod
    def one(n: int, nr: int, g) -> OutputGrads:
        grads = [None] * n
        grads[nr] = g
        return OutputGrads(grads)

    def __add__(self, other: OutputGrads) -> OutputGrads:
        out = list(self.grads)
        for i, g in enumerate(other.grads):
            if g is not None:
                out[i] = g if out[i] is None else out[i] + g
        return OutputGrads(out)


def edge_to(t) -> tuple:
    """The edge into the graph that tensor `t` (requiring grad) stands for: ``(its node, its output number)``."""
    fn = t.grad_fn
    if fn is None:
        return t._accumulator(), 0
    return fn, (0 if fn._ports is None else fn.output_nr(t))


def gradient_for(node, nr: int, g):
    """`g` as the gradient of output `nr` of `node` (wrapped in its slot when the node has several outputs)."""
    return g if node._ports is None else OutputGrads.one(node._ports, nr, g)


class AccumulateGrad(_GraphNode):
    """The sink of a leaf that requires grad: adds incoming gradients into `variable.grad`, then runs the hooks
    registered with `Tensor.register_post_accumulate_grad_hook` (each called with the leaf)."""

    __slots__ = ("variable", "_post_hooks")
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable
        self._pre_hooks = None
        self._post_hooks = None

    def add_post_hook(self, hook) -> RemovableHandle:
        if self._post_hooks is None:
            self._post_hooks = []
        self._post_hooks.append(hook)
        return RemovableHandle(self._post_hooks, hook)

    def run_post_hooks(self) -> None:
        for hook in list(self._post_hooks):
            hook(self.variable)

    def accumulate(self, grad, create_graph: bool):
        if _tracing.TRACER is not None:
            _tracing.TRACER.accumulate_grad(self.variable, grad, create_graph)
        else:
            self._accumulate(grad, create_graph)
        if self._post_hooks:
            self.run_post_hooks()

    def _accumulate(self, grad, create_graph: bool):
        leaf = self.variable
        if leaf._grad is None:
            leaf._grad = _copy_grad(grad) if create_graph else \
                Tensor._make(laid_out_like(grad._data, leaf._data, copy=True))
        elif create_graph:
            leaf._grad = leaf._grad + grad
        else:
            # NOTE: PyTorch's rule: without create_graph the gradient is added into the existing `.grad` in place,
            # even one that requires grad (made by an earlier backward with create_graph=True): `x.grad` stays the
            # same object, and its version counter moves
            np.add(leaf._grad._data, grad._data, out=leaf._grad._data)
            if leaf._grad._vbox is not None:
                leaf._grad._vbox[0] += 1


def _copy_grad(grad):
    """The first `.grad` of a leaf under create_graph: a differentiable copy, as PyTorch's (``CopyBackwards``), so
    that no other tensor (another leaf's `.grad`, a gradient the caller holds) shares its storage."""
    from ..ops.base import _named, clone
    return _named(clone(grad), "CopyBackwards")


# NOTE: _tensor.py imports this module, so it hands over these two names once Tensor exists.
Tensor = None
_NP_TO_DTYPE: dict = {}
_RELEASED = object()
_NO_EDGE = (None, 0)
_ELEMENTWISE = Kind.ELEMENTWISE
_SEQ = itertools.count()


class Node(_GraphNode):
    """The backward of one op application; `next_functions` point at its inputs' nodes."""

    __slots__ = ("op", "params", "next_functions", "_saved", "_in_meta", "_out", "_retained", "_name", "_seq")

    def __init__(self, op, params, inputs, out):
        self._seq = next(_SEQ)
        self.op = op
        self.params = params
        self._pre_hooks = None
        self._retained = None
        self._name = op.backward_name
        # NOTE: elementwise VJP rules read only their saved inputs, so their node keeps the shape and
        # dtype of just the inputs that receive a gradient; other rules may also read unsaved shapes.
        all_meta = op.kind is not _ELEMENTWISE
        edges = op.edges
        nexts, meta = [], []
        for i, t in enumerate(inputs):
            if edges is not None and i not in edges:  # not differentiated: no edge (PyTorch lists none)
                meta.append((t._data.shape, t._data.dtype) if all_meta else None)
                continue
            if t._rg:
                fn = t.grad_fn
                nexts.append((t._accumulator(), 0) if fn is None else (fn, 0) if fn._ports is None else
                             (fn, fn.output_nr(t)))
                meta.append((t._data.shape, t._data.dtype))
            else:
                nexts.append(_NO_EDGE)
                meta.append((t._data.shape, t._data.dtype) if all_meta else None)
        self.next_functions = tuple(nexts)
        self._in_meta = meta
        # (input index, tensor, its version now, its grad_fn now: named in the error if it changes)
        saves = op.saved_inputs
        if op.saved_by is not None:  # only what the rules of the inputs that receive a gradient read
            saves = sorted({j for i, t in enumerate(inputs) if t._rg for j in op.saved_by[i]})
        self._saved = [(i, inputs[i], inputs[i]._version_box()[0], inputs[i].grad_fn) for i in saves
                       if i < len(inputs)] if saves else ()
        for saved in self._saved:
            if saved[1]._inf:
                raise RuntimeError(
                    f"Inference tensors cannot be saved for backward. Please do not use Tensors created in inference "
                    f"mode in computation tracked by autograd. To work around this, you can make a clone to get a "
                    f"normal tensor and use it in autograd, or use `tracegrad.no_grad()` instead of "
                    f"`tracegrad.inference_mode()`. (op: {op.name}, input {saved[0]}: "
                    f"{fmt(saved[1]._data.shape)} {_NP_TO_DTYPE[saved[1]._data.dtype]})")
        if op.save_out:
            box = out._version_box()
            self._out = (out._data, box, box[0])
        else:
            self._out = None

    def name(self) -> str:
        return self._name

    def apply(self, grad):
        """Gradients for each input (None where not needed), each summed back to its input's shape."""
        op = self.op
        if self._saved is _RELEASED:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved tensors after they "
                "have already been freed). Saved intermediate values of the graph are freed when you call "
                ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the graph "
                f"a second time or if you need to access saved tensors after calling backward. (node: {self._name})")
        if op.kind is _ELEMENTWISE:
            args = [None] * len(self._in_meta)
        else:
            args = [AbstractValue(shape, _NP_TO_DTYPE[dt]) for shape, dt in self._in_meta]
        for i, t, version, fn in self._saved:
            if t._vbox[0] != version:
                raise RuntimeError(self._modified_message(t, fn, t._vbox[0], version))
            args[i] = t
        out = None
        if self._out is not None:
            data, box, version = self._out
            if box[0] != version:
                raise RuntimeError(self._modified_message(None, self, box[0], version, output=True))
            out = Tensor._make(data, True, self)
        rules, variadic, params, edges = op.vjp, op.arity is None, self.params, op.edges
        grads = []
        for i, (nxt, _) in enumerate(self.next_functions):
            if edges is not None:
                i = edges[i]
            if nxt is None:
                grads.append(None)
                continue
            if variadic:
                g = rules[0](grad, out, *args, i=i, **params)
            elif rules[i] is None:  # an input that only selects positions (max pooling's index source)
                grads.append(None)
                continue
            else:
                g = rules[i](grad, out, *args, **params)
            shape, dt = self._in_meta[i]
            if g._data.shape != shape:
                g = sum_to(g, shape)
            if g._data.dtype != dt:
                g = g.to(_NP_TO_DTYPE[dt])
            grads.append(g)
        return grads

    def release(self):
        if self.op.saves:
            self._saved = _RELEASED
            self._out = None

    def _modified_message(self, t, fn, now, expected, output=False):
        what = "a leaf" if fn is None else f"output 0 of {fn.name()}"
        if output:
            shape, dt = self._out[0].shape, self._out[0].dtype
        else:
            shape, dt = t._data.shape, t._data.dtype
        return (f"one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"[tracegrad.{_NP_TO_DTYPE[dt].tensor_type} {fmt(shape)}], which is {what}, is at version {now}; "
                f"expected version {expected} instead (it was saved by {self._name}). Hint: the operation that "
                f"modified it ran after the op that saved it; use .clone() before modifying it in place, or modify "
                f"a copy.")


def sum_to(g, shape):
    """Sum a broadcast gradient back to `shape` (the one place broadcasting is undone)."""
    lead = g.ndim - len(shape)
    if lead < 0:  # a value with extra leading 1s was broadcast to fewer dims (`x[i] = v`, as numpy allows)
        return sum_to(g, shape[-lead:]).reshape(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    if axes:
        g = g.sum(axes, keepdim=True)
    return g.reshape(shape) if g.shape != tuple(shape) else g
