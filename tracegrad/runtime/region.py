"""Compiled regions differentiated from eager code: the forward/backward partition and its autograd node.

When a compiled function returns tensors that require grad (``tracegrad.compile(model)(x)``), the
autodiff pass derives the region's backward at trace time, with one cotangent input per differentiable
output. The partition then splits the graph: the forward graph also returns the values the backward
reads (the saved tensors, listed with their bytes by `explain`), and the backward graph maps saved
values and cotangents to the gradients of the region's leaves. At each call the outputs get one
autograd node for the whole region, so an eager ``loss.backward()`` runs the backward graph.
"""
from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import STATE as _GRAD
from ..autograd.node import _GraphNode
from ..ir import Graph

_NO_EDGE = (None, 0)


class Region:
    """Where the backward nodes start, and which values are cotangents, leaves and their gradients."""

    def __init__(self, start, diff_outputs, cots, leaves, grads):
        self.start, self.diff_outputs, self.cots, self.leaves, self.grads = start, diff_outputs, cots, leaves, grads
        self.backward = None
        self.saved = []
        self.make_program = None  # graph -> program (the interpreter's or the numba backend's)
        self._programs: dict = {}
        self.error = None  # what deriving the backward raised (a VJP that raises): raised again at backward time
        self.raising: dict = {}  # output index -> what its VJPs raise (raised when that output gets a gradient)

    def program_for(self, present: tuple):
        """The backward program for the outputs that received a gradient (`present`, one flag per differentiable
        output), and where each leaf's gradient is among its outputs (None: no gradient), built at first use."""
        entry = self._programs.get(present)
        if entry is None:
            outputs = iter(self.backward.outputs)
            grads = [None if g is None else next(outputs) for g in self.grads]
            graph = self.backward
            if not all(present):
                graph, grads = _without(graph, self.cots, present, grads)
            index, k = [], 0
            for g in grads:
                index.append(None if g is None else k)
                k += g is not None
            entry = self._programs[present] = (self.make_program(graph), index)
        return entry

    def split(self, graph: Graph) -> Graph:
        """The forward graph (returning the saved values after the outputs); sets `self.backward`."""
        fwd_nodes, bwd_nodes = graph.nodes[:self.start], graph.nodes[self.start:]
        made = {n.out for n in bwd_nodes} | set(self.cots)
        saved, consts = [], {}
        reads = [v for n in bwd_nodes for v in n.inputs] + [g for g in self.grads if g is not None]
        for v in reads:
            if v in made or v in saved or v in consts:
                continue
            if v in graph.consts:
                consts[v] = graph.consts[v]
            else:
                saved.append(v)
        fwd = graph.copy()
        fwd.nodes = fwd.nodes[:self.start]
        fwd.outputs = list(graph.outputs) + saved
        fwd.consts = {v: a for v, a in graph.consts.items() if v not in consts or _used(v, fwd_nodes)}
        bwd = Graph(graph.name + "_backward")
        bwd.args = saved + list(self.cots)
        bwd.consts = consts
        bwd.nodes = graph.copy().nodes[self.start:]
        bwd.outputs = [g for g in self.grads if g is not None]
        self.backward, self.saved = bwd, saved
        self.n_outputs = len(graph.outputs)
        return fwd

    def saved_report(self) -> list:
        return [(f"{v.name}:{v.type_str()}" + (f" ({v.producer.op.name})" if v.producer else " (input)"), v.nbytes)
                for v in self.saved]


def _used(v, nodes) -> bool:
    return any(v in n.inputs for n in nodes)


def _without(graph, cots, present, grads):
    """The backward graph for a call where only some outputs received a gradient, as eager autograd runs it:
    the others contribute nothing (not zeros: no 0 * inf, no -0.0 + 0.0, and a leaf they alone reach gets
    None). VJPs are linear in the cotangent, so a node reading a missing one is missing too, except the sum of
    two contributions, which becomes the present one."""
    missing = {c for c, p in zip(cots, present) if not p}
    same = {}
    g = graph.copy()
    nodes = []
    for node in g.nodes:
        node.inputs = [same.get(v, v) for v in node.inputs]
        gone = [v in missing for v in node.inputs]
        if not any(gone):
            nodes.append(node)
        elif node.op.name == "add" and not all(gone):
            kept = node.inputs[gone.index(False)]
            if (kept.shape, kept.dtype) == (node.out.shape, node.out.dtype):
                same[node.out] = kept
            else:
                nodes.append(node)  # a broadcast sum: computed with a zero cotangent as before (never seen yet)
                missing.discard(node.out)
        else:
            missing.add(node.out)
    g.nodes = nodes
    grads = [None if v is None or same.get(v, v) in missing else same.get(v, v) for v in grads]
    g.outputs = [v for v in grads if v is not None]
    return g, grads


class _Pack(dict):
    """Cotangents of a region's outputs, keyed by output index; the engine sums packs with `+`."""

    def __add__(self, other):
        out = _Pack(self)
        for k, g in other.items():
            out[k] = out[k] + g if k in out else g
        return out


class CompiledRegionBackward(_GraphNode):
    """One autograd node for a whole compiled region: runs its backward graph."""

    __slots__ = ("region", "saved", "next_functions", "_retained", "cot_avals", "grad_index")

    def __init__(self, region: Region, saved: list, leaf_tensors: list, cot_avals: list):
        self.region, self.saved, self._pre_hooks, self._retained = region, saved, None, None
        self.cot_avals = cot_avals
        self.next_functions = tuple(((t.grad_fn if t.grad_fn is not None else t._accumulator()), 0) if t._rg
                                    else _NO_EDGE for t in leaf_tensors)

    def name(self) -> str:
        return "CompiledFunctionBackward"

    def apply(self, pack):
        from .._tensor import Tensor
        if self.region.error is not None:
            raise self.region.error
        for i, error in self.region.raising.items():
            if pack.get(i) is not None:
                raise error
        if self.saved is None:
            raise RuntimeError("Trying to backward through the graph of a compiled function a second time; specify "
                               "retain_graph=True on the first backward.")
        if _GRAD.enabled:
            raise RuntimeError("create_graph=True through a compiled region is not supported: its backward graph is "
                               "not differentiable. Compute higher-order gradients inside the compiled function "
                               "(tracegrad.grad or autograd.grad with create_graph=True), or call it uncompiled.")
        given = [pack.get(i) for i in self.region.diff_outputs]
        program, index = self.region.program_for(tuple(g is not None for g in given))
        cots = [np.zeros(shape, dt) if g is None else g._data for g, (shape, dt) in zip(given, self.cot_avals)]
        outs = program.outputs(self.saved + cots)
        return [None if i is None else Tensor._make(np.array(outs[i], copy=False)) for i in index]

    def release(self):
        self.saved = None


class CompiledRegionOutput(_GraphNode):
    """The grad_fn of output `index` of a compiled region: hands its gradient to the region's node."""

    __slots__ = ("index", "next_functions", "_retained")

    def __init__(self, node: CompiledRegionBackward, index: int):
        self.index, self.next_functions, self._pre_hooks, self._retained = index, ((node, 0),), None, None

    def name(self) -> str:
        return "CompiledFunctionBackward"

    def apply(self, grad):
        return [_Pack({self.index: grad})]

    def release(self):
        pass


def attach_region(region: Region, outputs: list, saved: list, leaf_tensors: list, skip=()) -> None:
    """Give the region's differentiable outputs one shared autograd node (not those in `skip`: inputs returned
    as they are keep their own history)."""
    cot_avals = [(outputs[i]._data.shape, outputs[i]._data.dtype) for i in region.diff_outputs]
    node = CompiledRegionBackward(region, saved, leaf_tensors, cot_avals)
    for i in region.diff_outputs:
        if i in skip:
            continue
        t = outputs[i]
        t._rg = True
        t.grad_fn = CompiledRegionOutput(node, i)
