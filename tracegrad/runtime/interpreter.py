"""The interpreter: runs a graph node by node with the registry's numpy implementations.

`Program(graph)` plans the run once: a slot per value, the op's forward and params per node, the
slots to free after each node (a buffer is dropped right after its last use) and the guards to check
as soon as their value exists. `Program.outputs(inputs)` then executes it.

>>> import numpy as np, tracegrad as tg
>>> g = tg.jit.trace(lambda x: (x * 2.0).sum(), tg.ones(3))
>>> Program(g).outputs([np.arange(3, dtype=np.float32)])[0]
array(6., dtype=float32)
"""
from __future__ import annotations

import functools

import numpy as np

from ..ir.printer import format_node


class GuardError(Exception):
    """A guard of the graph does not hold for this call's values (the caller retraces)."""

    def __init__(self, guard, got):
        super().__init__(f"guard {guard.what}() at {guard.loc}: traced with {guard.expected!r}, got {got!r}")
        self.guard, self.got = guard, got


class Plan:
    """What every runtime plans for a graph: a slot per value (inputs, then constants, then node outputs), the
    guards by the value they check, and the slots of the outputs, written-back state and `.grad`s."""

    def _plan(self, graph) -> dict:
        self.graph = graph
        self.slot = slot = {}
        for v in graph.args + graph.state:
            slot[v] = len(slot)
        self.n_inputs = len(slot)
        self.consts = []
        for v, array in graph.consts.items():
            slot[v] = len(slot)
            self.consts.append(array)
        for node in graph.nodes:
            slot[node.out] = len(slot)
        self.n_slots = len(slot)
        self.guards_at: dict = {}
        for gd in graph.guards:
            self.guards_at.setdefault(gd.value, []).append(gd)
        self.input_guards = [(slot[gd.value], gd) for gd in graph.guards if gd.value.producer is None]
        self.output_slots = [slot[v] for v in graph.outputs]
        self.write_slots = [slot[v] for _, v in graph.writes]
        self.grad_slots = [None if v is None else slot[v] for _, v in graph.grad_writes]
        return slot

    def _start(self, inputs: list) -> list:
        """The environment of a run: inputs and constants in place, the guards on inputs checked."""
        env = [None] * self.n_slots
        env[:self.n_inputs] = inputs
        env[self.n_inputs:self.n_inputs + len(self.consts)] = self.consts
        for s, gd in self.input_guards:
            if not gd.holds(env[s]):
                raise GuardError(gd, np.asarray(env[s]).tolist())
        return env

    def outputs(self, inputs: list) -> list:
        env = self.run(inputs)
        return [env[s] for s in self.output_slots]


def forward_of(node):
    """The node's numpy forward with its params bound."""
    return functools.partial(node.op.forward, **node.params) if node.params else node.op.forward


class Program(Plan):
    """A graph planned for the interpreter; `run` maps input arrays (args then state) to root arrays.

    With `keep_all`, no value is freed (`compile(check=True)` compares every one)."""

    def __init__(self, graph, keep_all: bool = False):
        slot = self._plan(graph)
        roots = set(graph.roots())
        last_use = {}
        for i, node in enumerate(graph.nodes):
            for v in node.inputs:
                last_use[v] = i
        frees = [[] for _ in graph.nodes]
        for v, i in last_use.items():
            if v not in roots and v.producer is not None and not keep_all:
                frees[i].append(slot[v])
        self.steps = [(forward_of(node), [slot[v] for v in node.inputs], slot[node.out], frees[i],
                       [(slot[node.out], gd) for gd in self.guards_at.get(node.out, ())], node)
                      for i, node in enumerate(graph.nodes)]

    def run(self, inputs: list) -> list:
        """Execute; returns the environment (a list indexed by slot) holding the roots' arrays."""
        env = self._start(inputs)
        for fwd, ins, out, frees, guards, node in self.steps:
            try:
                res = fwd(*[env[i] for i in ins])
            except Exception as e:  # noqa: BLE001 - re-raised with the node and the user's line
                raise _with_node(e, node) from e
            env[out] = res if type(res) is np.ndarray else np.asarray(res)
            if frees:
                for s in frees:
                    env[s] = None
            if guards:
                for s, gd in guards:
                    if not gd.holds(env[s]):
                        raise GuardError(gd, np.asarray(env[s]).tolist())
        return env


def _with_node(error: Exception, node) -> Exception:
    msg = f"while executing {format_node(node)} (traced at {node.loc or '?'}): {error}"
    try:
        return type(error)(msg)
    except Exception:  # noqa: BLE001 - an exception type with another constructor
        return RuntimeError(msg)
