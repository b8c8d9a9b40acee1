"""The backward engine: walks the recorded graph from the outputs in reverse topological order.

>>> import tracegrad as tg
>>> a, b = tg.tensor(2.0, requires_grad=True), tg.tensor(4.0, requires_grad=True)
>>> tg.autograd.grad(a ** 2 + 2 * b ** 3, (a, b))
(tensor(4.), tensor(96.))
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable

import numpy as np

from .. import _tracing
from ..ops.shapes import fmt
from . import node as _nodes
from .grad_mode import set_grad_enabled
from .node import AccumulateGrad, OutputGrads, edge_to, gradient_for
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


_CALLBACKS: list = []  # queued by `queue_callback` during the outermost running backward pass
_DEPTH = [0]          # how many backward passes are running (a hook may run another one)


def queue_callback(callback) -> None:
    """Run `callback()` once the backward pass that is running now has finished (after every hook and every
    `.grad` accumulation: PyTorch's ``Variable._execution_engine.queue_callback``). DistributedDataParallel waits
    for its gradient averaging there. Callbacks queued during a backward inside another one run when the
    outermost one finishes; a failed backward drops them.

    >>> import tracegrad as tg
    >>> w = tg.ones(2, requires_grad=True)
    >>> h = w.register_post_accumulate_grad_hook(lambda p: queue_callback(lambda: print("done:", p.grad)))
    >>> (w * 2).sum().backward()
    done: tensor([2., 2.])
    """
    if not _DEPTH[0]:
        raise RuntimeError("Final callbacks can only be installed during backward pass.")
    _CALLBACKS.append(callback)


def run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=None, allow_unused=False,
                 accumulate=True):
    """Propagate gradients from `outputs`; accumulate into leaves, or capture those of `inputs`.

    Nodes run, and gradients are summed, in the order `ReverseSweep` defines (autograd/order.py), which
    the compiler's autodiff pass shares: eager and compiled gradients are equal bit for bit. Callbacks queued
    meanwhile (`queue_callback`) run at the end of the outermost pass.
    """
    with _backward_pass():
        return _run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs, allow_unused, accumulate)


@contextlib.contextmanager
def _backward_pass():
    """A backward pass runs inside: at the end of the outermost one, the queued callbacks run."""
    _DEPTH[0] += 1
    try:
        yield
    except BaseException:
        if _DEPTH[0] == 1:
            _CALLBACKS.clear()
        raise
    finally:
        _DEPTH[0] -= 1
    if not _DEPTH[0]:
        while _CALLBACKS:  # a callback may queue another one (PyTorch runs those too)
            _CALLBACKS.pop(0)()


def _run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs, allow_unused, accumulate):
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
            node, nr = edge_to(t)
            capture.setdefault(node, []).append((k, nr))
    roots = [edge_to(out) for out in outputs]
    sweep = ReverseSweep([node for node, _ in roots], _edges, _rank)
    add = sweep.add
    for (node, nr), g in zip(roots, grads0):
        add(node, gradient_for(node, nr, g))
    captured = [None] * (len(inputs) if inputs is not None else 0)
    needed = None if accumulate else sweep.leading_to(capture)
    with set_grad_enabled(create_graph):
        for node, grad in sweep:
            if node._pre_hooks:
                grad = node.run_pre_hooks(grad)
            if node in capture:
                for k, nr in capture[node]:
                    captured[k] = grad.grads[nr] if type(grad) is OutputGrads else grad
            if type(node) is AccumulateGrad:
                if accumulate:
                    node.accumulate(grad, create_graph)
                continue
            if node._retained is not None:
                node.take_retained(grad)
            if needed is not None and node not in needed:
                continue
            for (nxt, nr), g in zip(node.next_functions, node.apply(grad)):
                if g is not None:
                    add(nxt, g if nxt._ports is None else OutputGrads.one(nxt._ports, nr, g))
            if not retain_graph:
                node.release()
    if inputs is not None:
        for k, g in enumerate(captured):
            if g is None and not allow_unused:
                raise RuntimeError(f"The differentiated Tensor at index {k} appears to not have been used in the "
                                   f"graph. Set allow_unused=True if this is the desired behavior.")
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
        with _backward_pass():  # the accumulations (and their hooks) belong to the pass
            grads = run_backward(tensors, grad_tensors, retain_graph, create_graph, inputs=inputs,
                                 allow_unused=True, accumulate=False)
            for t, g in zip(inputs, grads):
                if g is not None:
                    t._accumulator().accumulate(g, create_graph)
        return
    run_backward(tensors, grad_tensors, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """Gradients of `outputs` with respect to `inputs`, without touching any `.grad`.

    `inputs` may be any iterable of tensors (a generator such as `model.parameters()` included), or a dict of them
    (the gradients come back as a dict with the same keys). With `materialize_grads` an input the outputs do not
    depend on gets zeros instead of None; with `is_grads_batched` the first dimension of each of `grad_outputs`
    is a batch of vectors, one vector-Jacobian product each (stacked). `only_inputs` is ignored, as in PyTorch.

    >>> import tracegrad as tg
    >>> x, w = tg.tensor([1.0, 2.0], requires_grad=True), tg.ones(2, requires_grad=True)
    >>> tg.autograd.grad((x * x).sum(), [x, w], materialize_grads=True)
    (tensor([2., 4.]), tensor([0., 0.]))
    """
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when materialize_grads=True, but got: "
                         "allow_unused=False.")
    if allow_unused is None:
        allow_unused = materialize_grads
    if not only_inputs:
        warnings.warn("only_inputs argument is deprecated and is ignored now (defaults to True). To accumulate "
                      "gradient for other parts of the graph, please use torch.autograd.backward.", FutureWarning,
                      stacklevel=2)
    keys = None
    if type(inputs) is dict:
        keys, inputs = list(inputs), list(inputs.values())
    single = not isinstance(inputs, Iterable) or hasattr(inputs, "_data")
    inputs = [inputs] if single else list(inputs)
    if not inputs:
        raise RuntimeError("`inputs` argument to `grad()` cannot be empty.")
    if is_grads_batched:
        result = _batched_grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused)
    else:
        result = run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=inputs,
                              allow_unused=allow_unused, accumulate=False)
    if materialize_grads:
        from ..creation import zeros_like
        result = tuple(zeros_like(t, requires_grad=create_graph) if g is None else g for g, t in zip(result, inputs))
    return result if keys is None else dict(zip(keys, result))


def _batched_grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused):
    """`grad` for each vector of the batch (the first dimension of every grad output), stacked."""
    from ..ops.functions import stack
    outputs = _as_list(outputs)
    grad_outputs = _as_list(grad_outputs) if grad_outputs is not None else [None] * len(outputs)
    if any(g is None for g in grad_outputs):
        raise RuntimeError("is_grads_batched=True needs a batch of grad_outputs for every output")
    sizes = {g.shape[0] if g.ndim else None for g in grad_outputs}
    if len(sizes) != 1 or None in sizes:
        raise RuntimeError(f"If `is_grads_batched=True`, we interpret the first dimension of each grad_output as the "
                           f"batch dimension: the grad_outputs' shapes {[list(g.shape) for g in grad_outputs]} do "
                           f"not share one")
    (n,) = sizes
    rows = []
    for i in range(n):
        keep = True if i < n - 1 else retain_graph
        rows.append(run_backward(outputs, [g[i] for g in grad_outputs], keep, create_graph, inputs=inputs,
                                 allow_unused=allow_unused, accumulate=False))
    return tuple(None if rows and rows[0][k] is None else stack([r[k] for r in rows]) for k in range(len(inputs)))
