"""The backward engine: walks the recorded graph from the outputs in reverse topological order.

>>> import tracegrad as tg
>>> a, b = tg.tensor(2.0, requires_grad=True), tg.tensor(4.0, requires_grad=True)
>>> tg.autograd.grad(a ** 2 + 2 * b ** 3, (a, b))
(tensor(4.), tensor(96.))
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .. import _tracing
from ..ops.shapes import fmt
from . import node as _nodes
from .grad_mode import set_grad_enabled
from .node import AccumulateGrad
from .order import ReverseSweep


def _as_list(x):
    if x is None or isinstance(x, _nodes.Tensor):
        return [x]
    return list(x)


def _root_grads(outputs, grad_outputs):
    Tensor = _nodes.Tensor  # noqa: N806 - handed to autograd.node by _tensor.py (no import cycle)
    grads = _as_list(grad_outputs) if grad_outputs is not None else [None] * len(outputs)
    if len(grads) != len(outputs):
        raise RuntimeError(f"Mismatch in number of gradients: got {len(grads)} gradients for {len(outputs)} "
                           f"outputs")
    result = []
    for i, (out, g) in enumerate(zip(outputs, grads)):
        if not isinstance(out, Tensor):
            raise TypeError(f"outputs must be Tensors, got {type(out).__name__} at position {i}")
        if not out._rg:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if out._data.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs (output {i} has shape "
                                   f"{fmt(out.shape)}; pass a gradient of that shape: the vector in the "
                                   f"vector-Jacobian product)")
            g = Tensor._make(np.ones(out._data.shape, out._data.dtype))
        elif not isinstance(g, Tensor):
            g = Tensor._make(np.asarray(g, out._data.dtype))
        if g._data.shape != out._data.shape:
            raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {fmt(g.shape)} and output[{i}] "
                               f"has a shape of {fmt(out.shape)}.")
        if g._data.dtype != out._data.dtype:
            if g.is_floating_point() != out.is_floating_point():
                raise RuntimeError(f"For complex Tensors, both grad_output and output are required to have the "
                                   f"same dtype. Mismatch in dtype: grad_output[{i}] has a dtype of {g.dtype} "
                                   f"and output[{i}] has a dtype of {out.dtype}.")
            g = g.to(out.dtype)
        result.append(g)
    return result


def _edges(node):
    return [nxt for nxt, _ in node.next_functions if nxt is not None]


def _rank(node):
    return node._seq


def _node_of(t):
    return t.grad_fn if t.grad_fn is not None else t._accumulator()


def run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=None, allow_unused=False,
                 accumulate=True):
    """Propagate gradients from `outputs`; accumulate into leaves, or capture those of `inputs`.

    Nodes run, and gradients are summed, in the order `ReverseSweep` defines (autograd/order.py), which
    the compiler's autodiff pass shares: eager and compiled gradients are equal bit for bit.
    """
    if _tracing.TRACER is not None:  # inside a traced function the compiler's autodiff pass derives it
        return _tracing.TRACER.run_backward(outputs, grad_outputs, create_graph, inputs, allow_unused, accumulate,
                                            retain_graph)
    outputs = _as_list(outputs)
    grads0 = _root_grads(outputs, grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    capture = {}
    if inputs is not None:
        for k, t in enumerate(inputs):
            if not t._rg:
                raise RuntimeError("One of the differentiated Tensors does not require grad")
            capture.setdefault(_node_of(t), []).append(k)
    roots = [_node_of(out) for out in outputs]
    sweep = ReverseSweep(roots, _edges, _rank)
    add = sweep.add
    for node, g in zip(roots, grads0):
        add(node, g)
    captured = [None] * (len(inputs) if inputs is not None else 0)
    needed = None if accumulate else sweep.leading_to(capture)
    with set_grad_enabled(create_graph):
        for node, grad in sweep:
            if node._pre_hooks:
                grad = node.run_pre_hooks(grad)
            if node in capture:
                for k in capture[node]:
                    captured[k] = grad
            if type(node) is AccumulateGrad:
                if accumulate:
                    node.accumulate(grad, create_graph)
                continue
            if node._retained is not None:
                t = node._retained()
                if t is not None and t.grad_fn is node:
                    t._grad = grad if t._grad is None else t._grad + grad
            if needed is not None and node not in needed:
                continue
            for (nxt, _), g in zip(node.next_functions, node.apply(grad)):
                if g is not None:
                    add(nxt, g)
            if not retain_graph:
                node.release()
    if inputs is not None:
        for g in captured:
            if g is None and not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been used in the graph. "
                                   "Set allow_unused=True if this is the desired behavior.")
        return tuple(captured)
    return None


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate gradients of `tensors` into the `.grad` of leaves (or only of `inputs`).

    >>> import tracegrad as tg
    >>> x = tg.ones(2, 2, requires_grad=True)
    >>> tg.autograd.backward(((x + 2) * (x + 2) * 3).mean())
    >>> x.grad
    tensor([[4.5000, 4.5000],
            [4.5000, 4.5000]])
    """
    if inputs is not None:
        inputs = _as_list(inputs)
        grads = run_backward(tensors, grad_tensors, retain_graph, create_graph, inputs=inputs, allow_unused=True,
                             accumulate=False)
        for t, g in zip(inputs, grads):
            if g is not None:
                t._accumulator().accumulate(g, create_graph)
        return
    run_backward(tensors, grad_tensors, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of `outputs` with respect to `inputs`, without touching any `.grad`.

    `inputs` may be any iterable of tensors (a generator such as `model.parameters()` included).
    """
    single = not isinstance(inputs, Iterable) or hasattr(inputs, "_data")
    inputs = [inputs] if single else list(inputs)
    return run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=inputs,
                        allow_unused=allow_unused, accumulate=False)
