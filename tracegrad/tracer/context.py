"""The tracer: runs a Python function on real values and records every op it applies into a `Graph`.

Tracing executes the function concretely (the tensors hold the values of the call being traced), so a
data-dependent Python decision can be evaluated and recorded as a guard. Each tensor the function
touches is bound to an IR value:

* the function's tensor arguments are the graph's `args`;
* tensors that existed before the call (parameters, buffers, optimizer state, `.grad`s, globals) are
  captured `state`, read by identity at every call, never frozen;
* tensors created during the call without data dependence (``zeros``, ``tensor(...)``) are constants;
* every op result is a node's output.

In-place ops are functionalized: the written tensor is re-bound to a new value (for a view, its base
gets a new value made by the inverse of the view), and what changed in captured state is written back
after a call. `backward()` and `autograd.grad` are not run by the eager engine: they call the
compiler's autodiff pass, which appends the backward nodes to the graph.
"""
from __future__ import annotations

import os
import re
import sys
import weakref
from contextlib import contextmanager

import numpy as np

from .. import _tracing
from .._tensor import Tensor
from ..autograd.function import _BACKWARD_TWICE
from ..autograd.grad_mode import STATE as _GRAD
from ..autograd.grad_mode import no_grad
from ..autograd.node import _GraphNode, laid_out_like
from ..compiler.autodiff import CustomCall
from ..ir import Graph, Guard, Value
from ..ops import primitives as P
from ..ops.registry import AbstractValue, Kind
from .scalars import ItemNumber, hyper_entry

_INDEXING = ("getitem", "index_add", "index_put")
_RESERVED = re.compile(r"^[cs]\d+$|^ct\d+$")
_TOLIST_ELEMENTS = 64  # tolist() of a larger tensor specializes on its values (a guard) instead
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TraceError(RuntimeError):
    """Something a traced function did that a static graph cannot express (named with the user's line)."""


def user_location(skip: int = 2) -> str:
    """``file:line`` of the innermost frame outside tracegrad (the user's code that called into it)."""
    frame = sys._getframe(skip)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return ""
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def short_location(loc: str) -> str:
    return os.path.basename(loc) if loc else "?"


class TracedFn(_GraphNode):
    """The `grad_fn` of a tensor computed while tracing: named like eager's node, holding no tensors."""

    __slots__ = ("_name", "_retained")
    next_functions = ()

    def __init__(self, name: str):
        self._name, self._pre_hooks, self._retained = name, None, None

    def name(self) -> str:
        return self._name


class Tracer:
    """Records one call of a function into `self.graph` (use through `tracegrad.jit.trace` / `compile`)."""

    def __init__(self, name: str = "f", strict: bool = False):
        self.graph = Graph(name)
        self.strict = strict
        self.phase = "forward"
        self.val: dict = {}        # id(tensor) -> (tensor, its current Value)
        self.arrays: dict = {}     # Value -> its concrete ndarray in this call
        self.tensor_of: dict = {}  # Value -> the tensor an op produced it as
        self.views: dict = {}      # id(view) -> [parent tensor, movement op or None (alias), params, parent value]
        self.family: dict = {}     # id(root tensor) -> tensors sharing its storage (views and aliases)
        self.born_ids: set = set()
        self.born_refs: list = []  # weakrefs to tensors created during the call (to find the ones that escape)
        self.captured: dict = {}   # id(tensor) -> (tensor, input Value): pre-existing tensors the call reads
        self.arg_tensors: list = []
        self.owner: dict = {}      # input Value -> the tensor it stands for (leaf of the autodiff pass)
        self.backups: dict = {}    # id(tensor) -> (tensor, _data before the call, a copy of its values)
        self.grad_slots: dict = {}  # id(tensor) -> [tensor, its .grad before the call]
        self.grad_guards: list = []  # (tensor, .grad was None at the call's start)
        self.modules: dict = {}     # id -> module called
        self.optimizers: dict = {}  # id -> optimizer stepped
        self.names: dict = {}       # id(tensor) -> readable name (module path, optimizer state key)
        self.did_backward = False
        self.index_tensors: dict = {}  # id(array) -> the tensor whose array an op's index holds
        self._const_ids = None
        self.grad_route: dict = {}   # value written under no_grad into a tensor needing grad -> value it replaced
        self.released: set = set()   # nodes a backward without retain_graph went through (eager frees their saves)
        self.closed = False          # the call has finished: traced numbers left behind are plain numbers
        self.items: list = []        # the ItemNumbers handed out (their tensors are dropped at the end)
        self.hyper_inputs: dict = {}  # (HyperNumber key, dtype) -> the 0-dim state tensor refilled every call
        self.hyper_feeds: list = []   # (that tensor, a function reading the number from the param groups)
        self.hyper_guards: list = []  # (read, expected, what, loc): decisions on hyperparameters
        self.value_guards: list = []  # (read, expected, what): decisions on other Python state (`guard_on_value`)
        self.served: dict = {}        # (id(group), key) -> (group, type of the entry): read at every call
        self.custom: dict = {}        # output value of a custom autograd Function -> (its CustomCall, output number)
        self.custom_calls: dict = {}  # the Function's autograd node -> its CustomCall

    # ------------------------------------------------------------------ activation
    @contextmanager
    def active(self):
        prev = _tracing.TRACER
        _tracing.TRACER = self
        try:
            yield self
        finally:
            _tracing.TRACER = prev

    @contextmanager
    def in_phase(self, phase: str):
        prev, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = prev if prev != "forward" or phase != "backward" else "update"

    # ------------------------------------------------------------------ binding tensors to values
    def born(self, t: Tensor) -> None:
        self.born_ids.add(id(t))
        self.born_refs.append(weakref.ref(t))

    def add_arg(self, t: Tensor, name: str) -> Value:
        if _RESERVED.match(name):  # keep argument names apart from state (s0) and constant (c0) names
            name += "_"
        v = Value(t._data.shape, t.dtype, name, requires_grad=t._rg)
        self.names.setdefault(id(t), name)
        self.graph.args.append(v)
        self.val[id(t)] = (t, v)
        self.arrays[v] = t._data
        self.captured[id(t)] = (t, v)
        self.owner[v] = t
        self.arg_tensors.append(t)
        return v

    def value_of(self, t: Tensor) -> Value:
        entry = self.val.get(id(t))
        if entry is None:
            return self._first_sight(t)
        view = self.views.get(id(t))
        if view is not None:
            return self._refresh(t, view)
        return entry[1]

    def _first_sight(self, t: Tensor) -> Value:
        if id(t) in self.born_ids or id(t) in self._constant_ids():
            v = self.graph.add_const(np.array(t._data, copy=True), t.dtype)
            v.requires_grad = t._rg
            self.owner[v] = t
        else:
            v = Value(t._data.shape, t.dtype, f"s{len(self.graph.state)}", requires_grad=t._rg)
            self.graph.state.append(v)
            self.graph.state_names.append(self.names.get(id(t), f"captured {list(t._data.shape)}"))
            self.captured[id(t)] = (t, v)
            self.owner[v] = t
        self.val[id(t)] = (t, v)
        self.arrays[v] = t._data
        return v

    def _constant_ids(self) -> set:
        if self._const_ids is None:
            from ..ops.base import _CONSTANTS
            self._const_ids = {id(c) for c in _CONSTANTS.values()}
        return self._const_ids

    def _root(self, t: Tensor) -> Tensor:
        while id(t) in self.views:
            t = self.views[id(t)][0]
        return t

    def _add_view(self, view: Tensor, parent: Tensor, op, params) -> None:
        pv = self.value_of(parent)
        self.views[id(view)] = [parent, op, params, pv]
        root = self._root(parent)
        self.family.setdefault(id(root), [root]).append(view)

    def _refresh(self, t: Tensor, view) -> Value:
        """A view's value, recomputed from its parent's if the parent was written since."""
        parent, op, params, stamp = view
        pv = self.value_of(parent)
        if pv is stamp and id(t) in self.val:
            return self.val[id(t)][1]
        v = pv if op is None else self._emit(op, [pv], params, t._data)
        if op is not None:
            v.requires_grad = t._rg and pv.requires_grad
        view[3] = pv
        self.val[id(t)] = (t, v)
        return v

    def alias(self, t: Tensor, source: Tensor, copy: bool = False) -> None:
        """`t` holds `source`'s value: `.data`, `detach()` (same storage), or a copy of it (`copy=True`)."""
        if copy:
            self.val[id(t)] = (t, self.value_of(source))
            return
        # NOTE: `.data` and `detach()` share storage but are outside the graph: their value is an identity of the
        # source's (which the passes remove) that requires no grad, so the autodiff pass sends nothing through it
        sv = self.value_of(source)
        self._add_view(t, source, P.cast, {"dtype": sv.dtype})
        self.val[id(t)] = (t, self._emit(P.cast, [sv], {"dtype": sv.dtype}, self.arrays.get(sv)))

    def _emit(self, op, inputs, params, array=None) -> Value:
        """Append a node without running it (its concrete value, if needed, is `array`)."""
        aval = op.infer(*[v.aval for v in inputs], **params)
        v = self.graph.add_node(op, inputs, params, aval, user_location(3), self.phase)
        if array is not None:
            self.arrays[v] = array
        return v

    # ------------------------------------------------------------------ eager hooks
    def grad_fn(self, op) -> TracedFn:
        return TracedFn(op.backward_name)

    def index_tensor(self, t: Tensor) -> None:
        """`t` is used as an index: remember it, so the op reading its array reads it as a graph value."""
        self.index_tensors[id(t._data)] = t

    def _dynamic_index(self, op, params, ins):
        """Index arrays that come from traced tensors become the op's extra inputs (Slots in `index`)."""
        first = len(ins) - sum(type(i) is P.Slot for i in params["index"])
        index, extra = [], []
        for part in params["index"]:
            t = self.index_tensors.get(id(part)) if type(part) is np.ndarray else None
            if t is not None:
                v = self.value_of(t)
                if v not in self.graph.consts:
                    if part.dtype == np.bool_:  # the result's shape depends on the mask: specialize on it
                        self.concretize(t, "boolean mask index")
                    else:
                        index.append(P.Slot(len(ins) - first + len(extra)))
                        extra.append(v)
                        continue
            index.append(part)
        return dict(params, index=tuple(index)), ins + extra

    def record(self, op, inputs, params, res: Tensor) -> None:
        ins = [self.value_of(t) for t in inputs]
        if op.name in _INDEXING and self.index_tensors and \
                any(type(i) is np.ndarray for i in params["index"]):
            params, ins = self._dynamic_index(op, params, ins)
        v = self.graph.add_node(op, ins, params, AbstractValue(res._data.shape, res.dtype), user_location(3),
                                self.phase, requires_grad=res._rg)
        self.val[id(res)] = (res, v)
        self.arrays[v] = res._data
        self.tensor_of[v] = res
        if op.kind is Kind.MOVEMENT and res._base is not None:
            self._add_view(res, inputs[0], op, params)

    def write(self, x: Tensor, res: Tensor) -> None:
        """`x[...] = res` of an in-place op: record x's new value, then write it."""
        new = self.value_of(res)
        old = self.value_of(x)  # binds x first (a captured tensor becomes a state input)
        untracked = not res._rg  # eager autograd did not record it (no_grad, or nothing involved needs grad)
        if untracked and x._rg:
            new = self._route_gradient(old, new)
        self._before_write(x)
        x._data[...] = res._data
        self._rebind(x, new, untracked)

    def _route_gradient(self, old: Value, new: Value) -> Value:
        """A write eager autograd does not record (under no_grad, through a detached alias, `.data =`) into a
        tensor that requires grad leaves its graph as it was: gradients reaching the new value go on to what the
        old value's gradient reaches. A fresh value carries the route (a copy if `new` is used elsewhere)."""
        if not (self.graph.nodes and self.graph.nodes[-1].out is new) or new in self.grad_route:
            new = self._emit(P.cast, [new], {"dtype": new.dtype}, self.arrays.get(new))
        new.requires_grad = True
        self.grad_route[new] = old
        return new

    def set_data(self, x: Tensor, value: Tensor) -> None:
        """`x.data = value`: x's storage becomes value's."""
        if value._data.shape != x._data.shape or value._data.dtype != x._data.dtype:
            raise TraceError(f"{user_location()}: assigning .data of shape {list(value.shape)} {value.dtype} to a "
                             f"tensor of shape {list(x.shape)} {x.dtype} inside a traced function changes captured "
                             f"state's type; do it outside the compiled function")
        new = self.value_of(value)
        old = self.value_of(x)
        if x._rg:  # `.data =` is never seen by autograd, whatever the grad mode
            with no_grad():
                new = self._route_gradient(old, new)
        self._before_write(x)
        with no_grad():
            self._rebind(x, new, untracked=True)
        x._data = value._data

    def _before_write(self, x: Tensor) -> None:
        root = self._root(x)
        if id(root) in self.captured and id(root) not in self.backups:
            self.backups[id(root)] = (root, root._data, root._data.copy())
        # Values recorded earlier keep their concrete contents: copy the arrays this write will overwrite
        for t in self.family.get(id(root), [root]):
            entry = self.val.get(id(t))
            if entry is not None:
                arr = self.arrays.get(entry[1])
                if arr is not None and np.may_share_memory(arr, x._data):
                    self.arrays[entry[1]] = arr.copy()

    def _rebind(self, x: Tensor, new: Value, untracked: bool = False) -> None:
        view = self.views.get(id(x))
        if view is not None:
            parent, op, params, _ = view
            pv = self.value_of(parent)
            if op is None or op is P.cast:  # an alias (`.data`, `detach()`) writes the same values into its source
                parent_new = new
            elif op is P.getitem:
                parent_new = self._emit(P.index_put, [pv, new], params, parent._data)
            elif op is P.reshape:
                parent_new = self._emit(P.reshape, [new], {"shape": tuple(parent._data.shape)}, parent._data)
            elif op is P.permute:
                inverse = tuple(int(i) for i in np.argsort(params["perm"]))
                parent_new = self._emit(P.permute, [new], {"perm": inverse}, parent._data)
            else:
                raise TraceError(f"{user_location()}: writing in place into the result of {op.name} is not "
                                 f"supported in a traced function; clone() it first")
            if untracked and parent._rg:
                parent_new = self._route_gradient(pv, parent_new)
            self._rebind(parent, parent_new, untracked)
            view[3] = self.value_of(parent)
        self.val[id(x)] = (x, new)

    def reshape_in_place(self, x: Tensor, res: Tensor, what: str) -> None:
        """`x.unsqueeze_(0)` and the like: x takes the shape and value of `res` (a movement op's result on x).
        Only a tensor made in this call that no other view shares can: an argument's or captured tensor's shape is
        part of what the graph was traced for, and a view's index would no longer fit."""
        others = [v for v in self.family.get(id(x), ()) if v is not x and v is not res]
        if id(x) not in self.born_ids or id(x) in self.views or others:
            raise TraceError(f"{user_location()}: {what}() changes the shape of a tensor in place inside a traced "
                             f"function, which works only on a tensor made in the call that no view shares; write "
                             f"x = x.{what[:-1]}(...) instead")
        self.val[id(x)] = (x, self.value_of(res))
        self.views.pop(id(res), None)  # res was x's view only until x took its place
        if id(x) in self.family:
            self.family[id(x)] = [v for v in self.family[id(x)] if v is not res]

    def concretize(self, t: Tensor, what: str) -> None:
        """Python asked for the value of `t` (bool(), item(), ...): specialize on it behind a guard."""
        if id(t) not in self.val and id(t) in self.born_ids:
            return  # a constant made in this call: its value is the same at every call
        v = self.value_of(t)
        if v in self.graph.consts:
            return
        loc = user_location()
        if self.strict:
            raise TraceError(
                f"{loc}: {what}() of a traced value ({t.dtype.name}{list(t.shape)}, computed by "
                f"{v.producer.op.name if v.producer else 'an input'}) is data-dependent Python control flow, which "
                f"strict=True forbids. Fix: express the choice with tensor ops (tracegrad.where(cond, a, b)), pass "
                f"the value as a static Python argument, or compile without strict=True to specialize on it behind "
                f"a guard.")
        data = t._data
        # a 0-dim value (a size read by nonzero, unique, ...) is guarded as a number: readable in retrace reasons
        expected = (bool(data.reshape(())) if what == "bool" else data.reshape(()).item()) \
            if what in ("bool", "item") or data.ndim == 0 else np.array(data, copy=True)
        self.graph.guards.append(Guard(v, expected, what, loc))

    # ------------------------------------------------------------------ custom autograd Functions
    def custom_inputs(self, tensors: list) -> list:
        """The values of a custom Function's tensor inputs, before its forward runs (None: needs no gradient)."""
        return [self.value_of(t) if t._rg else None for t in tensors]

    def custom_function(self, node, inputs: list, outputs: list) -> None:
        """`Function.apply` ran: its forward's ops are recorded (without gradients). Each differentiable output
        becomes a fresh value whose gradient the autodiff pass gets from the user's backward (`CustomCall`)."""
        call = self.custom_calls[node] = CustomCall(node, inputs)
        for k, t in outputs:
            v = self.value_of(t)
            self.views.pop(id(t), None)  # an input returned as it is: the output is a value of its own
            out = self._emit(P.cast, [v], {"dtype": v.dtype}, self.arrays.get(v))
            out.requires_grad = True
            self.val[id(t)] = (t, out)
            self.tensor_of[out] = t
            self.custom[out] = (call, k)
            call.outs[k] = out
            call.out_tensors.append(t)

    def custom_output(self, node, k: int, t: Tensor) -> None:
        """`t` stands for output `k` of a custom Function (a saved output unpacked in its backward)."""
        self.val[id(t)] = (t, self.custom_calls[node].outs[k])

    def _drop_custom_calls(self) -> None:
        """The call is over: the traced outputs let go of their Function's node (and what it saved)."""
        for call in self.custom_calls.values():
            for t in call.out_tensors:
                if t.grad_fn is call.node:
                    t.grad_fn = None
            call.out_tensors.clear()
            self.released.discard(call)
        self.custom_calls.clear()
        self.custom.clear()

    # ------------------------------------------------------------------ numbers that change from call to call
    def item(self, t: Tensor):
        """`t.item()`: a number of the graph (`ItemNumber`) unless `t` is the same at every call."""
        if self._is_constant(t):
            return t._data.reshape(()).item()
        return ItemNumber.of(self, t, f"{self._label(t)}.item()")

    def tolist(self, t: Tensor):
        """`t.tolist()`: nested lists of `ItemNumber`s for small tensors; larger ones specialize on the values."""
        if self._is_constant(t):
            return t._data.tolist()
        if t._data.size > _TOLIST_ELEMENTS:
            self.concretize(t, "tolist")
            return t._data.tolist()
        if t._data.ndim == 0:
            return self.item(t)
        with no_grad():
            return [self.tolist(t[i]) for i in range(t._data.shape[0])]

    def is_constant(self, t: Tensor) -> bool:
        """Whether `t` holds the same value at every call (made in the call without data, or a constant)."""
        return self._is_constant(t)

    def _is_constant(self, t: Tensor) -> bool:
        return (id(t) not in self.val and id(t) in self.born_ids) or self.value_of(t) in self.graph.consts

    def _label(self, t: Tensor) -> str:
        name = self.names.get(id(t))
        if name is not None:
            return name
        v = self.value_of(t)
        return f"{v.producer.op.name}(...)" if v.producer is not None else v.name

    def decide_on_item(self, number, what: str, expected, make) -> None:
        """Python decided something with a traced `.item()` number: guard on the outcome."""
        loc = user_location()
        if self.strict:
            raise TraceError(
                f"{loc}: {what} decides on a traced value ({number.text}) in Python: data-dependent control flow, "
                f"which strict=True forbids. Fix: express the choice with tensor ops (tracegrad.where(cond, a, b)), "
                f"pass the value as a static Python argument, or compile without strict=True to specialize on it "
                f"behind a guard.")
        self.graph.guards.append(Guard(self.value_of(make().tensor), expected, what, loc))

    def decide_on_hyper(self, what: str, expected, read) -> None:
        """Python decided something with an optimizer hyperparameter: checked before every call."""
        if not any(w == what and e == expected for _, e, w, _ in self.hyper_guards):
            self.hyper_guards.append((read, expected, what, user_location()))

    def guard_on_value(self, what: str, expected, read) -> None:
        """Python decided something with a value of its own state that tensors don't show (DistributedDataParallel's
        gradient-sync flag, which `no_sync()` turns off): `read()` is compared with `expected` before every call, and
        a call where it differs traces again (the reason names `what`)."""
        if not any(w == what and e == expected for _, e, w in self.value_guards):
            self.value_guards.append((read, expected, what))

    def param_group_entry(self, group, key: str, value):
        """An optimizer param group's entry read while tracing: numbers are read again at every call."""
        entry = hyper_entry(self, group, key, value, f"{getattr(group, 'label', 'param_group')}[{key!r}]")
        if entry is not value:
            self.served[(id(group), key)] = (group, type(value), len(value) if type(value) is tuple else None)
        return entry

    def hyper_input(self, number, dtype) -> Tensor:
        """The 0-dim state input that holds `number` as `dtype`, refilled before every call."""
        key = (number.key, dtype)
        t = self.hyper_inputs.get(key)
        if t is None:
            t = self.hyper_inputs[key] = Tensor._make(np.array(number.value, dtype.np))
            self.born_ids.discard(id(t))
            v = Value((), dtype, f"s{len(self.graph.state)}")
            self.graph.state.append(v)
            self.graph.state_names.append(f"{number.text} ({dtype.name}, read at every call)")
            self.names[id(t)] = number.text
            self.captured[id(t)] = (t, v)
            self.owner[v] = t
            self.val[id(t)] = (t, v)
            self.arrays[v] = t._data
            self.hyper_feeds.append((t, number.read))
        return t

    def touch_grad(self, t: Tensor) -> None:
        """First sight of a pre-existing tensor's `.grad`: remember it, and guard on whether it was None."""
        if id(t) in self.grad_slots or id(t) in self.born_ids:
            return
        self.grad_slots[id(t)] = [t, t._grad]
        self.grad_guards.append((t, t._grad is None))

    def accumulate_grad(self, leaf: Tensor, grad: Tensor, create_graph: bool) -> None:
        """AccumulateGrad while tracing: the same three cases as eager, recorded as graph values."""
        self.touch_grad(leaf)
        if leaf._grad is None:
            if create_graph:
                from ..autograd.node import _copy_grad
                leaf._grad = _copy_grad(grad)
            else:
                g = Tensor._make(laid_out_like(grad._data, leaf._data, copy=True))
                self.val[id(g)] = (g, self.value_of(grad))
                leaf._grad = g
        elif create_graph:
            leaf._grad = leaf._grad + grad
        else:
            with no_grad():
                leaf._grad.add_(grad)

    def note_module(self, module) -> None:
        if id(module) in self.modules:
            return
        self.modules[id(module)] = module
        prefix = type(module).__name__
        for name, p in module.named_parameters():
            self.names.setdefault(id(p), f"{prefix}.{name}")
        for name, b in module.named_buffers():
            self.names.setdefault(id(b), f"{prefix}.{name}")

    def note_optimizer(self, opt) -> None:
        if id(opt) in self.optimizers:
            return
        self.optimizers[id(opt)] = (opt, {p: dict(s) for p, s in opt.state.items()})
        kind = type(opt).__name__
        for i, p in enumerate(q for g in opt.param_groups for q in g["params"]):
            for key, value in opt.state.get(p, {}).items():
                if isinstance(value, Tensor):
                    self.names.setdefault(id(value), f"{kind}.state[{i}].{key}")

    # ------------------------------------------------------------------ backward inside a traced function
    def run_backward(self, outputs, grad_outputs, create_graph, inputs, allow_unused, accumulate,
                     retain_graph=None):
        from ..autograd.engine import _as_list, _root_grads
        from ..compiler.autodiff import backward_pass
        outputs = _as_list(outputs)
        seeds = _root_grads(outputs, grad_outputs)
        self._release([self.value_of(o) for o in outputs], create_graph if retain_graph is None else retain_graph)
        wrt = None
        if inputs is not None:
            for t in inputs:
                if not t._rg:
                    raise RuntimeError("One of the differentiated Tensors does not require grad")
            wrt = [self.value_of(t) for t in inputs]
        roots = [(self.value_of(o), g) for o, g in zip(outputs, seeds)]
        with self.in_phase("backward"):
            grads, leaves = backward_pass(self, roots, wrt, create_graph)
            if accumulate:
                for v, g in leaves.items():
                    leaf = self.owner.get(v)
                    if leaf is None or not leaf._rg:
                        continue
                    if leaf._acc is not None and leaf._acc._pre_hooks:
                        g = leaf._acc.run_pre_hooks(g)
                    self.accumulate_grad(leaf, g, create_graph)
                    if leaf._acc is not None and leaf._acc._post_hooks:
                        leaf._acc.run_post_hooks()  # their ops are recorded after the leaf's gradient
        self.did_backward = True
        if inputs is not None:
            for k, g in enumerate(grads):
                if g is None and not allow_unused:
                    raise RuntimeError(f"The differentiated Tensor at index {k} appears to not have been used in the "
                                       f"graph. Set allow_unused=True if this is the desired behavior.")
            return tuple(grads)
        return None

    def _release(self, roots, retain_graph: bool) -> None:
        """Eager autograd frees what a node saved once backward ran through it (unless `retain_graph`): a second
        backward through such a node raises there, so it raises here too (naming the same node)."""
        seen, stack = set(), [v for v in roots if v.requires_grad]
        reached = []
        while stack:
            v = stack.pop()
            if v in self.grad_route:
                stack.append(self.grad_route[v])
                continue
            if v in self.custom:
                call = self.custom[v][0]
                if call not in seen:
                    seen.add(call)
                    if call.node._saved:
                        if call in self.released:
                            raise RuntimeError(_BACKWARD_TWICE + f" (node: {call.node.name()})")
                        reached.append(call)
                    stack.extend(u for u in call.inputs if u is not None and u.requires_grad)
                continue
            node = v.producer
            if node is None or node in seen or not node.op.differentiable:
                continue
            seen.add(node)
            if node.op.saves:
                if node in self.released:
                    raise RuntimeError(_BACKWARD_TWICE + f" (node: {node.op.backward_name})")
                reached.append(node)
            stack.extend(v for v in node.inputs if v.requires_grad)
        if not retain_graph:
            self.released.update(reached)

    def tensor_for(self, v: Value) -> Tensor:
        """A tensor holding value `v` (the one that produced it if it still does), for VJP rules."""
        t = self.tensor_of.get(v)
        if t is not None and self.val.get(id(t), (None, None))[1] is v:
            return t
        t = Tensor._make(self.arrays[v])
        t._rg = v.requires_grad and _GRAD.enabled
        self.val[id(t)] = (t, v)
        self.tensor_of[v] = t
        return t

    def mutated_state(self) -> bool:
        """Whether the call so far wrote to a pre-existing tensor or `.grad`."""
        if any(t._grad is not before for t, before in self.grad_slots.values()):
            return True
        return any(self.value_of(t) is not v for t, v in self.captured.values() if id(t) not in self.views)

    # ------------------------------------------------------------------ finishing
    def finish(self, outputs: list) -> None:
        """Set the graph's outputs and the state it writes back; traced numbers become plain numbers."""
        g = self.graph
        g.outputs = [self.value_of(t) for t in outputs]
        self.close()
        for t, v in self.captured.values():
            if id(t) in self.views:
                continue
            cur = self.value_of(t)
            if cur is not v:
                g.writes.append((v, cur))
        self.grad_write_tensors = []
        for t, before in self.grad_slots.values():
            after = t._grad
            if after is before:
                continue
            g.grad_targets.append(self.names.get(id(t), f"captured {list(t.shape)}"))
            self.grad_write_tensors.append(t)
            g.grad_writes.append((len(g.grad_targets) - 1, None if after is None else self.value_of(after)))

    def escaped(self, keep: list) -> list:
        """Tensors created by the call that are still referenced after it (other than `keep`): new state."""
        self._const_ids = None
        self._drop_custom_calls()
        kept = list(keep) + [t._grad for t, _ in self.grad_slots.values() if t._grad is not None]
        kept += [t for t, _ in self.hyper_feeds]
        kept += [t._base for t in kept if t._base is not None]  # a returned view keeps its base alive
        keep_ids = {id(t) for t in kept} | self._constant_ids()
        self.val.clear()
        self.tensor_of.clear()
        self.views.clear()
        self.family.clear()
        self.index_tensors.clear()
        self.owner = {v: t for v, t in self.owner.items() if v not in self.graph.consts}
        out = []
        for r in self.born_refs:
            t = r()
            if t is not None and id(t) not in keep_ids:
                out.append(t)
        return out

    def close(self) -> None:
        """The call is over: the `.item()` numbers it handed out let go of their tensors."""
        self.closed = True
        for number in self.items:
            number.tensor = None
        self.items.clear()

    def undo(self) -> None:
        """Put captured state back as it was before the call (used by `trace`, which must not run a step)."""
        self.close()
        for t, data, values in self.backups.values():
            t._data = data
            data[...] = values
        for t, before in self.grad_slots.values():
            t._grad = before
        for opt, state in self.optimizers.values():
            opt.state.clear()
            opt.state.update({p: dict(s) for p, s in state.items()})
