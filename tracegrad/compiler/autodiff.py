"""The autodiff pass: reverse mode over the IR, with the VJP rules of the op registry.

It walks the graph's nodes from the last to the first. For a node whose output has a cotangent it
calls the op's VJP rules (the same rules eager autograd runs) on tensors bound to the node's values;
the ops the rules apply are recorded by the active tracer, so the backward nodes land in the same
graph, marked ``phase="backward"``. Gradients of values used several times are summed; broadcast
gradients are summed back to their input's shape here, once, as in eager mode. With
`create_graph` the backward nodes are themselves differentiable, so grad-of-grad works in the graph.

>>> import tracegrad as tg
>>> def f(x):
...     y = (x * x).sum()
...     (g,) = tg.autograd.grad(y, [x])
...     return g
>>> print(tg.jit.trace(f, tg.ones(2, requires_grad=True)))
graph f(x:f32[2]) {
  c0:f32[] = const 1.0
  %0:f32[2] = mul x, x
  %1:f32[] = sum %0 axes=(0,) keepdim=False
  # backward (derived by the autodiff pass)
  %2:f32[1] = reshape c0 shape=(1,)
  %3:f32[2] = expand %2 shape=(2,)
  %4:f32[2] = mul %3, x
  %5:f32[2] = mul %3, x
  %6:f32[2] = add %4, %5
  return %6
}
"""
from __future__ import annotations

from ..autograd.grad_mode import set_grad_enabled
from ..autograd.node import _NP_TO_DTYPE, OutputGrads, sum_to
from ..autograd.order import ReverseSweep
from ..ops.registry import AbstractValue, Kind


class CustomCall:
    """A custom `autograd.Function` applied while tracing: a custom-VJP region of the graph.

    Its forward's ops are ordinary (non-differentiable) nodes; each differentiable output is a fresh value (an
    identity the passes remove) that sends its gradient here instead of into those nodes. When the backward sweep
    reaches the call, the user's backward runs on tensors bound to the graph's values, so its ops are recorded
    as part of the backward graph (as JAX's `custom_vjp` traces its bwd rule), and its results flow on to the
    values of the call's tensor inputs (`inputs`: None for those that need no gradient).
    """

    __slots__ = ("node", "inputs", "outs", "out_tensors")

    def __init__(self, node, inputs: list):
        self.node, self.inputs = node, inputs  # node: the call's autograd node (its ctx, with the user's backward)
        self.outs: dict = {}      # output number -> its value
        self.out_tensors: list = []

    def gradient(self, k: int, g):
        """`g` as the gradient of output `k` (in its slot if the function has several outputs)."""
        return g if self.node._ports is None else OutputGrads.one(self.node._ports, k, g)

    def __repr__(self):
        return f"<custom function {self.node.name()}>"


def backward_pass(tracer, roots, wrt, create_graph: bool):
    """Cotangents of `roots` [(value, seed tensor)] propagated back through `tracer.graph`.

    Returns ``(grads, leaves)``: `grads` lists the gradient tensor (or None) of each value in `wrt`;
    `leaves` maps each input value reached (a leaf: argument, captured state or constant) to its gradient.
    Nodes run, and gradients are summed, in the order `ReverseSweep` defines (autograd/order.py), which
    eager autograd shares: compiled and eager gradients are equal bit for bit.
    """
    graph = tracer.graph
    # the nodes recorded so far (the forward and earlier backward parts), ranked by their position
    rank = {node: i for i, node in enumerate(graph.nodes)}

    # NOTE: a value written in place under no_grad into a tensor that requires grad passes its gradient straight
    # to the value it replaced: eager autograd never saw that write (the tracer records the route)
    route = tracer.grad_route
    custom = tracer.custom

    def edges(v):
        if type(v) is CustomCall:
            return [u for u in v.inputs if u is not None and u.requires_grad]
        if v in custom:
            return [custom[v][0]]
        if v in route:
            return [route[v]]
        node = v.producer
        if node is None or not v.requires_grad or not node.op.differentiable:
            return ()
        return [u for u in node.inputs if u.requires_grad]

    def rank_of(v):
        if type(v) is CustomCall:  # NOTE: after every node before its outputs' identities: eager's creation order
            return min(rank[u.producer] for u in v.outs.values()) - 0.5
        return None if v.producer is None else rank[v.producer]

    sweep = ReverseSweep([v for v, _ in roots], edges, rank_of)
    for v, g in roots:
        sweep.add(v, g)
    wanted = set(wrt) if wrt is not None else set()
    captured: dict = {}
    leaves: dict = {}
    with set_grad_enabled(create_graph):
        for v, g in sweep:
            if type(v) is CustomCall:
                fn = v.node
                if fn._pre_hooks:
                    g = fn.run_pre_hooks(g)
                for u, gi in zip(v.inputs, fn.apply(g)):
                    if gi is not None and u is not None:
                        sweep.add(u, gi)
                continue
            if v in custom:
                if v in wanted:
                    captured[v] = g
                call, k = custom[v]
                sweep.add(call, call.gradient(k, g))
                continue
            node = v.producer
            if node is None:
                leaves[v] = g
                continue
            produced = tracer.tensor_of.get(v)
            fn = getattr(produced, "grad_fn", None)
            if fn is not None and getattr(fn, "_pre_hooks", None):
                g = fn.run_pre_hooks(g)
            if v in wanted:  # after the hooks, as eager's engine captures
                captured[v] = g
            if v in route:
                sweep.add(route[v], g)
                continue
            if not v.requires_grad or not node.op.differentiable:
                continue
            if fn is not None and getattr(fn, "_retained", None) is not None:
                from ..tracer.context import TraceError, user_location
                raise TraceError(f"{user_location()}: retain_grad() on a tensor inside a traced function is not "
                                 f"supported; return the tensor and use tracegrad.autograd.grad on it instead")
            for u, gi in zip(node.inputs, _vjp(tracer, node, g)):
                if gi is not None:
                    sweep.add(u, gi)
    grads = None
    if wrt is not None:
        grads = [captured.get(v, leaves.get(v)) for v in wrt]
    return grads, leaves


def _vjp(tracer, node, g):
    """The node's input gradients (None where an input doesn't require grad), at the inputs' shapes."""
    op, params, inputs = node.op, node.params, node.inputs
    if op.kind is Kind.ELEMENTWISE:
        args = [None] * len(inputs)
    else:
        args = [AbstractValue(v.shape, v.dtype) for v in inputs]
    for i in op.saved_inputs:
        if i < len(inputs):
            args[i] = tracer.tensor_for(inputs[i])
    out = tracer.tensor_for(node.out) if op.save_out else None
    rules, variadic = op.vjp, op.arity is None
    grads = []
    for i, v in enumerate(inputs):
        if not v.requires_grad or (op.edges is not None and i not in op.edges):
            grads.append(None)
            continue
        if variadic:
            gi = rules[0](g, out, *args, i=i, **params)
        elif rules[i] is None:
            grads.append(None)
            continue
        else:
            gi = rules[i](g, out, *args, **params)
        if gi._data.shape != v.shape:
            gi = sum_to(gi, v.shape)
        if gi._data.dtype != v.dtype.np:
            gi = gi.to(_NP_TO_DTYPE[v.dtype.np])
        grads.append(gi)
    return grads
