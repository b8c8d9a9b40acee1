"""The IR: a small SSA graph of registry ops over values with a shape and a dtype.

A `Graph` has inputs (the function's arguments, then captured state such as parameters, optimizer
buffers and `.grad`s, then literal constants), nodes in topological order (each applies one registry
op to earlier values and defines one new value), guards (data-dependent Python decisions the trace
took), outputs, and the state written back after a call.

>>> import tracegrad as tg
>>> g = tg.jit.trace(lambda x: (x * 2.0).sum(), tg.ones(3))
>>> print(g)
graph <lambda>(x:f32[3]) {
  c0:f32[] = const 2.0
  %0:f32[3] = mul x, c0
  %1:f32[] = sum %0 axes=(0,) keepdim=False
  return %1
}
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..ops.registry import AbstractValue, Op


class Value:
    """One SSA value: defined once (by an input, a constant or a node), with a static shape and dtype."""

    __slots__ = ("shape", "dtype", "name", "producer", "requires_grad", "__weakref__")

    def __init__(self, shape, dtype, name="", producer=None, requires_grad=False):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.name = name
        self.producer = producer  # the Node defining it; None for inputs and constants
        self.requires_grad = requires_grad

    @property
    def aval(self) -> AbstractValue:
        return AbstractValue(self.shape, self.dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def type_str(self) -> str:
        return f"{_SHORT[self.dtype.name]}[{','.join(map(str, self.shape))}]"

    def __repr__(self):
        return f"{self.name}:{self.type_str()}"


_SHORT = {"float32": "f32", "float64": "f64", "int64": "i64", "bool": "bool", "float16": "f16", "int32": "i32",
          "uint8": "u8", "int8": "i8", "int16": "i16"}


class Node:
    """`out = op(*inputs, **params)`, created at `loc` (the user's ``file:line``) during `phase`."""

    __slots__ = ("op", "inputs", "params", "out", "loc", "phase", "group")

    def __init__(self, op: Op, inputs, params, out: Value, loc: str = "", phase: str = "forward"):
        self.op = op
        self.inputs = list(inputs)
        self.params = params
        self.out = out
        self.loc = loc
        self.phase = phase  # "forward", "backward" (derived by the autodiff pass) or "update" (after backward)
        self.group = None   # a fusion group id, set by the fusion pass

    def __repr__(self):
        return f"<node {self.out.name} = {self.op.name}>"


class Guard:
    """A decision the trace made on a concrete value: `value` must again equal `expected`.

    `what` says what Python asked of the traced value (``bool()``, ``item()``, ...), `loc` where.
    """

    __slots__ = ("value", "expected", "what", "loc")

    def __init__(self, value: Value, expected, what: str, loc: str):
        self.value, self.expected, self.what, self.loc = value, expected, what, loc

    def holds(self, array) -> bool:
        array = np.asarray(array)
        if isinstance(self.expected, np.ndarray):
            return array.shape == self.expected.shape and bool(np.array_equal(array, self.expected, equal_nan=True))
        got = array.reshape(()).item()
        return got == self.expected or (got != got and self.expected != self.expected)

    def __repr__(self):
        exp = "<array>" if isinstance(self.expected, np.ndarray) else repr(self.expected)
        return f"guard {self.what} of {self.value.name} == {exp}"


class Graph:
    """A traced function: inputs, nodes in topological order, guards, outputs and state writes.

    `args` are the flattened tensor arguments, `state` the captured tensors read by identity at
    every call (with `state_names` saying what each is), `consts` literal values. `outputs` are the
    flattened returned tensors; `writes` pairs a state or argument input with its new value, written
    back in place after a call; `grad_writes` pairs a captured tensor with the value (or None) that
    becomes its `.grad`.
    """

    def __init__(self, name: str = "f"):
        self.name = name
        self.args: list[Value] = []
        self.state: list[Value] = []
        self.state_names: list[str] = []
        self.consts: dict[Value, np.ndarray] = {}
        self.nodes: list[Node] = []
        self.guards: list[Guard] = []
        self.outputs: list[Value] = []
        self.writes: list[tuple[Value, Value]] = []
        self.grad_targets: list[str] = []  # names of the tensors whose .grad the graph sets
        self.grad_writes: list[tuple[int, Value | None]] = []  # (index into grad_targets, new value or None)
        self._count = 0
        self._const_count = 0

    # ------------------------------------------------------------------ building
    def _new_name(self) -> str:
        name = f"%{self._count}"
        self._count += 1
        return name

    def add_node(self, op: Op, inputs, params, aval, loc="", phase="forward", requires_grad=False) -> Value:
        out = Value(aval.shape, aval.dtype, self._new_name(), requires_grad=requires_grad)
        out.producer = Node(op, inputs, params, out, loc, phase)
        self.nodes.append(out.producer)
        return out

    def add_const(self, array: np.ndarray, dtype) -> Value:
        v = Value(array.shape, dtype, f"c{self._const_count}")
        self._const_count += 1
        self.consts[v] = array
        return v

    @property
    def inputs(self) -> list[Value]:
        return self.args + self.state + list(self.consts)

    # ------------------------------------------------------------------ queries and rewrites
    def uses(self) -> dict:
        """For each value, the nodes that read it (in order)."""
        users = {}
        for node in self.nodes:
            for v in node.inputs:
                users.setdefault(v, []).append(node)
        return users

    def roots(self) -> list[Value]:
        """Values that must be computed: outputs, written-back values and guarded values."""
        out = list(self.outputs) + [new for _, new in self.writes] + [g.value for g in self.guards]
        out += [v for _, v in self.grad_writes if v is not None]
        return out

    def replace_all_uses(self, mapping: dict) -> None:
        """Rewire every read of a value in `mapping` to its replacement (outputs, writes and guards too)."""
        if not mapping:
            return

        def sub(v):
            while v in mapping:
                v = mapping[v]
            return v
        for node in self.nodes:
            node.inputs = [sub(v) for v in node.inputs]
        self.outputs = [sub(v) for v in self.outputs]
        self.writes = [(t, sub(v)) for t, v in self.writes]
        self.grad_writes = [(i, None if v is None else sub(v)) for i, v in self.grad_writes]
        for g in self.guards:
            g.value = sub(g.value)

    def copy(self) -> Graph:
        """A graph with copies of the nodes, so passes can rewire inputs without touching this graph.

        Values are shared (immutable once defined); a value's `producer` stays the node that first defined it,
        which is all anyone asks of it (is it an input, and which op made it)."""
        g = Graph(self.name)
        g.args, g.state, g.state_names = list(self.args), list(self.state), list(self.state_names)
        g.consts = dict(self.consts)
        g.nodes = [Node(n.op, n.inputs, n.params, n.out, n.loc, n.phase) for n in self.nodes]
        for new, old in zip(g.nodes, self.nodes):
            new.group = old.group
        g.guards = [Guard(x.value, x.expected, x.what, x.loc) for x in self.guards]
        g.outputs, g.writes, g.grad_writes = list(self.outputs), list(self.writes), list(self.grad_writes)
        g.grad_targets = list(self.grad_targets)
        g._count, g._const_count = self._count, self._const_count
        return g

    def counts_by_kind(self) -> dict:
        """Number of nodes of each op kind (``{'elementwise': 12, 'opaque': 2, ...}``)."""
        return dict(Counter(n.op.kind.value for n in self.nodes))

    def phase_nodes(self, phase: str) -> list[Node]:
        return [n for n in self.nodes if n.phase == phase]

    # ------------------------------------------------------------------ views
    def __str__(self):
        from .printer import format_graph
        return format_graph(self)

    def format(self, locations: bool = False) -> str:
        """The printout; with `locations`, each node ends with the user's ``file:line`` that created it."""
        from .printer import format_graph
        return format_graph(self, locations=locations)

    def verify(self) -> Graph:
        from .verify import verify
        verify(self)
        return self

    def to_networkx(self):
        from .export import to_networkx
        return to_networkx(self)

    def to_dot(self) -> str:
        from .export import to_dot
        return to_dot(self)

    def __repr__(self):
        return f"<Graph {self.name}: {len(self.args)} args, {len(self.state)} state, {len(self.nodes)} nodes>"
