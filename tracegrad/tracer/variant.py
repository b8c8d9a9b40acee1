"""One compiled variant of a function: its graph, the captured objects it reads, its guards, and `run`.

`run` reads the arguments' and the captured tensors' arrays, executes the program (checking the
value guards as it goes), and only when everything has run writes the new state back in place (so a
failed guard or an error leaves nothing half-applied), sets the `.grad`s and builds the outputs.
"""
from __future__ import annotations

import warnings

import numpy as np

from .._tensor import Tensor
from .._warnings import warn_user
from ..autograd.grad_mode import STATE as _GRAD
from ..autograd.node import laid_out_like
from ..compiler.passes import run_pipeline
from ..ir.printer import format_node
from ..ops.registry import Kind
from ..random import default_generator
from ..runtime.interpreter import GuardError, Program
from ..runtime.region import attach_region
from .pytree import unflatten
from .scalars import HyperNumber, ItemNumber, TracedNumber


def _hyper(opt) -> tuple:
    """An optimizer's hyperparameters and parameter identities (guarded: a changed lr retraces)."""
    out = []
    for group in opt.param_groups:
        out.append(tuple((k, v if not isinstance(v, Tensor) else id(v)) for k, v in group.items() if k != "params"))
        out.append(tuple(map(id, group["params"])))
    return tuple(out)


class Variant:
    def __init__(self):
        self.graph = None
        self.region = None

    @classmethod
    def build(cls, tracer, out_tree, out_leaves, region, passes, print_passes, backend="interpret",
              check=False, fastmath=False, tiered=False) -> Variant:
        self = cls()
        graph = tracer.graph
        if region is not None:
            graph = region.split(graph)
        self.traced = tracer.graph
        self.graph = run_pipeline(graph, passes, print_each=print_passes)
        # NOTE: built at the first replay, not here: a trace that is not cached (it created new state), and
        # explain(), never generate or compile code (nor import numba)
        self.backend, self.fastmath = backend, fastmath
        self.tiered = tiered and backend == "numba" and not check
        self._program = None
        self.job = None          # the background compile of a tiered variant, until it ends
        self.tier = None         # "interpreter" or "native": what runs the calls now
        self.native_after = None  # calls run before native code took over (tiered)
        self.native_from = None   # where the native code came from (tiered): see `_program_for`
        self.calls = 0
        self.reference = Program(self.graph, keep_all=True) if check and backend == "numba" else None
        if region is not None:
            region.backward = run_pipeline(region.backward, passes, print_each=print_passes)
            # the backward of a region differentiated from outside: native only when not tiered (rarely hot)
            region.make_program = self._native if backend == "numba" and not self.tiered else Program
        self.region = region
        g = self.graph
        self.state_tensors = [tracer.owner[v] for v in g.state]
        self.state_meta = [(t._data.shape, t._data.dtype, t._rg) for t in self.state_tensors]
        index = {v: ("arg", i) for i, v in enumerate(g.args)}
        index.update({v: ("state", i) for i, v in enumerate(g.state)})
        self.write_targets = [index[target] for target, _ in g.writes]
        # a new value that is an input, or a view (the result of a movement op), is copied before the writes
        fixed = set(index) | set(g.consts)
        self.write_copies = [_may_alias(v, fixed) for _, v in g.writes]
        self.grad_copies = [v is not None and _may_alias(v, fixed) for _, v in g.grad_writes]
        self.output_copies = [v in g.consts for v in g.outputs]
        # .grad slots of arguments refer to this call's argument (by position), those of captured tensors to the
        # tensor itself
        arg_pos = {id(t): i for i, t in enumerate(tracer.arg_tensors)}
        self.grad_tensors = [("arg", arg_pos[id(t)]) if id(t) in arg_pos else ("state", t)
                             for t in tracer.grad_write_tensors]
        self.grad_guards = [(("arg", arg_pos[id(t)]) if id(t) in arg_pos else ("state", t), was_none)
                            for t, was_none in tracer.grad_guards]
        self.modules = [(m, m.training, tuple(map(id, m._parameters.values())), tuple(map(id, m._buffers.values())))
                        for m in tracer.modules.values()]
        self.optimizers = [(opt, _hyper(opt)) for opt, _ in tracer.optimizers.values()]
        # what check_state compares at each call: each group's dict, the entries the graph doesn't read at every
        # call (numbers it read are inputs: only their type is checked) and its parameter list
        served = tracer.served
        self._groups = {id(opt): [(g, [(k, v) for k, v in g.items() if k != "params" and (id(g), k) not in served],
                                   tuple(map(id, g["params"]))) for g in opt.param_groups]
                        for opt, _ in self.optimizers}
        self.served = [(group, key, kind, n) for (_, key), (group, kind, n) in served.items()]
        self.hyper_guards = list(tracer.hyper_guards)
        self.value_guards = list(tracer.value_guards)
        # 0-dim inputs holding hyperparameters: refilled from the param groups before every call
        self.feeds = [(t._data, read) for t, read in tracer.hyper_feeds]
        fed = {id(t) for t, _ in tracer.hyper_feeds}  # the variant's own 0-dim inputs: nothing else changes them
        self._checked_state = [(t, m) for t, m in zip(self.state_tensors, self.state_meta) if id(t) not in fed]
        self._fed = [t for t in self.state_tensors if id(t) in fed]
        self.names = tracer.names
        self.out_tree = out_tree
        self.out_spec = []
        k = 0
        for leaf in out_leaves:
            if _graph_output(leaf, tracer):
                self.out_spec.append(("tensor" if isinstance(leaf, Tensor) else "item", k))
                k += 1
            elif isinstance(leaf, HyperNumber) and leaf.tracer is tracer:
                self.out_spec.append(("hyper", leaf.read))
            else:
                self.out_spec.append(("static", leaf.value if isinstance(leaf, TracedNumber) else leaf))
        # an output that is an input (unchanged: the same object comes back) or a written input (the object it
        # was written into comes back), as in eager mode
        # NOTE: by object, not by value: a returned `a.grad` whose value simplified to input `b` is a new tensor
        # (eager gives a fresh one), so it gets a copy of b's array, never b itself
        written = {new: index[target] + ("written",) for target, new in g.writes}
        returned = [x for x in out_leaves if _graph_output(x, tracer)]
        self.out_inputs = []
        for j, v in enumerate(g.outputs[:k]):
            src = written.get(v) or (index[v] + ("same",) if v in index else None)
            if src is not None and returned[j] is not self._input_object(tracer, src):
                self.output_copies[j] = self.output_copies[j] or v in index
                src = None
            self.out_inputs.append(src)
        # a new tensor whose array is (a view of) an input's: copied before the write-back changes that input
        # (`return p.clone()` then `opt.step()`: the clone simplified away, the output reads p's buffer)
        self.draws_before_guards = bool(g.guards) and any(n.op.effects for n in g.nodes)
        self.copy_before_write_back = [j for j, v in enumerate(g.outputs[:k]) if g.writes and
                                       self.out_inputs[j] is None and _may_alias(v, set(index))]
        for j in self.copy_before_write_back:
            self.output_copies[j] = False
        self.n_tensor_outputs = k
        self.item_outputs = {x for kind, x in self.out_spec if kind == "item"}
        self.leaf_targets = [index.get(v) for v in region.leaves] if region is not None else []
        return self

    def _input_object(self, tracer, src):
        kind, i = src[0], src[1]
        return tracer.arg_tensors[i] if kind == "arg" else self.state_tensors[i]

    def _native(self, graph):
        from ..runtime.native import NativeProgram
        return NativeProgram(graph, fastmath=self.fastmath)

    @property
    def program(self):
        """What runs this variant's calls now (built at the first replay)."""
        if self._program is None:
            if self.backend == "numba" and not self.tiered:
                self._program, self.tier = self._native(self.graph), "native"
            else:
                self._program, self.tier = Program(self.graph), "interpreter"
        return self._program

    def _program_for(self, inputs):
        """The program for this call: at the first replay of a tiered variant, the interpreter (and a background
        `tiered.NativeJob` getting the native program); at a later call after that job ended, the native program."""
        if self._program is None and self.tiered:
            from ..runtime import tiered
            native, self.job = tiered.native_or_job(self.graph, self.fastmath, inputs)
            if native is not None:  # the same module is loaded already (another batch size, another function)
                self._program, self.tier, self.native_after = native, "native", self.calls
                self.native_from = "loaded in this process already"
        elif self.job is not None:
            from ..runtime import tiered
            if tiered.ready_to_switch(self.job, self.graph):
                self._switch()
        return self.program

    def _switch(self) -> None:
        """The background job ended: run its native program from now on, or keep the interpreter, saying why
        once."""
        job, self.job = self.job, None
        job.finish()  # loads the machine code on this thread (once)
        self.native_from = job.native_from
        if job.error is None and job.program is not None:
            self._program, self.tier, self.native_after = job.program, "native", self.calls
            return
        warn_user(f"compile: the native code of a variant could not be built ({job.error}); it keeps running in the "
                  f"interpreter")

    def wait_native(self) -> None:
        """Block until this variant's background job (if any) has ended, and switch to native code."""
        if self.job is not None:
            self.job.wait()
            self._switch()

    # ------------------------------------------------------------------ guards on captured state
    def check_state(self, args):
        """None if the captured state still matches the trace, else the reason it doesn't."""
        for t, meta in self._checked_state:
            if (t._data.shape, t._data.dtype, t._rg) != meta:
                return (f"captured tensor {self._name(t)}: shape/dtype/requires_grad {meta[0]} {meta[1]} {meta[2]} "
                        f"-> {t._data.shape} {t._data.dtype} {t._rg}")
        for target, was_none in self.grad_guards:
            t = args[target[1]] if target[0] == "arg" else target[1]
            if (t._grad is None) != was_none:
                return f"{self._name(t)}.grad: {'None' if was_none else 'a tensor'} -> " \
                       f"{'a tensor' if was_none else 'None'}"
        for m, training, params, buffers in self.modules:
            if m.training != training:
                return f"module {type(m).__name__}.training: {training} -> {m.training}"
            if params != tuple(map(id, m._parameters.values())) or buffers != tuple(map(id, m._buffers.values())):
                return f"module {type(m).__name__}: a parameter or buffer was replaced by another tensor"
        for group, key, kind, n in self.served:
            value = dict.get(group, key)
            if type(value) is not kind or (n is not None and len(value) != n):
                return f"optimizer param group entry {key!r}: {kind.__name__} -> {type(value).__name__}"
        for read, expected, what, loc in self.hyper_guards:
            got = read()
            if got != expected:
                return (f"optimizer hyperparameters: {what} was {expected!r} when traced, now {got!r} (the update's "
                        f"structure changes; at {loc or '?'})")
        for read, expected, what in self.value_guards:
            got = read()
            if got != expected:
                return f"{what}: {expected!r} -> {got!r}"
        for opt, hyper in self.optimizers:
            if len(opt.param_groups) != len(self._groups[id(opt)]) or any(
                    group is not g or any(_entry(group, k) is not v and _entry(group, k) != v for k, v in items)
                    or tuple(map(id, _entry(group, "params"))) != ids
                    for group, (g, items, ids) in zip(opt.param_groups, self._groups[id(opt)])):
                return f"optimizer {type(opt).__name__}: hyperparameters {_changed(hyper, _hyper(opt))}"
        return None

    def describe_state_guards(self) -> list:
        out = [f"{self._name(t)}: shape {list(m[0])}, {m[1]}, requires_grad={m[2]}" for t, m in self._checked_state]
        out += [f"{self._name(t) if kind == 'state' else f'argument {t}'}.grad is {'None' if n else 'a tensor'}"
                for (kind, t), n in self.grad_guards]
        out += [f"module {type(m).__name__}.training == {tr}" for m, tr, _, _ in self.modules]
        out += [f"optimizer structure: {what} is {expected!r} (at {loc or '?'})"
                for _, expected, what, loc in self.hyper_guards]
        out += [f"{what} == {expected!r}" for _, expected, what in self.value_guards]
        out += [f"optimizer {type(o).__name__}: param groups and the entries read as Python values unchanged"
                for o, _ in self.optimizers]
        return out

    def describe_feeds(self) -> list:
        """The numbers (optimizer hyperparameters) the variant reads from Python at every call, without a guard."""
        return [self.names[id(t)] for t in self._fed]

    def _name(self, t) -> str:
        return self.names.get(id(t), f"captured {list(t.shape)}")

    # ------------------------------------------------------------------ running
    def run(self, args: list):
        for array, read in self.feeds:
            array[()] = read()
        inputs = [t._data for t in args]
        inputs += [t._data for t in self.state_tensors]
        p = self._program if self.job is None and self._program is not None else self._program_for(inputs)
        if self.reference is not None:  # first: the native code may update the state's buffers in place
            ref = self.reference.run(inputs)
        if self.draws_before_guards:  # a failed guard retraces: from the generator as it was, as eager runs it
            rng = default_generator.get_state()
            try:
                env = p.run(inputs)
            except GuardError:
                default_generator.set_state(rng)
                raise
        else:
            env = p.run(inputs)
        self.calls += 1
        if self.reference is not None:
            _check(self.graph, self.reference, ref, p, env)
        outs = [env[s] for s in p.output_slots]
        for k in self.copy_before_write_back:
            outs[k] = outs[k].copy()
        self._write_back(args, env, p)
        return self._outputs(args, outs)

    def _write_back(self, args, env, p):
        """Write the new state into the captured tensors' own buffers, and set the `.grad`s."""
        state = self.state_tensors
        # NOTE: every new value is read before any buffer is written: a new value may be a view of an input
        news = [None if s is None else env[s] for s in p.write_slots]  # None: updated in place by native code
        news = [n.copy() if copy and n is not None else n for n, copy in zip(news, self.write_copies)]
        grads = [None if s is None else env[s].copy() if copy else env[s]
                 for s, copy in zip(p.grad_slots, self.grad_copies)]
        for (kind, i), new in zip(self.write_targets, news):
            t = args[i] if kind == "arg" else state[i]
            if new is not None and new is not t._data:
                np.copyto(t._data, new)
            box = t._vbox
            if box is None:
                box = t._version_box()
            box[0] += 1
        for (kind, t), g in zip(self.grad_tensors, grads):
            if kind == "arg":
                t = args[t]
            t._grad = None if g is None else Tensor._make(laid_out_like(g, t._data, copy=False))

    def _outputs(self, args, arrays, saved=None):
        n = self.n_tensor_outputs
        tensors = []
        returned_inputs = set()
        for k in range(n):
            if k in self.item_outputs:
                tensors.append(arrays[k].item())
                continue
            src = self.out_inputs[k]
            obj = None if src is None else (args if src[0] == "arg" else self.state_tensors)[src[1]]
            if obj is not None and (src[2] == "written" or arrays[k] is obj._data):
                tensors.append(obj)
                returned_inputs.add(k)
            else:
                a = arrays[k]
                tensors.append(Tensor._make(a if a.flags.writeable and not self.output_copies[k] else a.copy()))
        if self.region is not None and _GRAD.enabled:
            saved = arrays[n:] if saved is None else saved
            leaves = [(args if kind == "arg" else self.state_tensors)[i] for kind, i in self.leaf_targets]
            attach_region(self.region, tensors, list(saved), leaves, skip=returned_inputs)
        leaves = [tensors[x] if kind in ("tensor", "item") else x() if kind == "hyper" else x
                  for kind, x in self.out_spec]
        return unflatten(self.out_tree, leaves)

    def outputs_from_trace(self, tracer, out_leaves):
        """The outputs of the call that was traced (its effects already happened while tracing)."""
        args = list(tracer.arg_tensors)
        arrays = [t._data if isinstance(t, Tensor) else np.asarray(t.value) for t in out_leaves
                  if _graph_output(t, tracer)]
        saved = None
        if self.region is not None:
            saved = [tracer.arrays[v] for v in self.region.saved]
        return self._outputs(args, arrays, saved)


_entry = dict.__getitem__  # a param group's entry as stored (no tracer hook: this runs at every call)


def _graph_output(leaf, tracer) -> bool:
    """Whether a returned leaf is an output of the graph: a tensor, or an `.item()` number of this trace."""
    return isinstance(leaf, Tensor) or (isinstance(leaf, ItemNumber) and leaf.tracer is tracer)


def _check(graph, reference, ref_env, program, env, rtol=1e-4, atol=1e-5) -> None:
    """Warn about the first node (in graph order) whose compiled value differs from the interpreter's (numpy's,
    as eager mode computes it) beyond tolerance; the values inside a native segment are not visible."""
    for node in graph.nodes:
        v = node.out
        a, b = ref_env[reference.slot[v]], (env[program.slot[v]] if v in program.slot else None)
        if a is None or b is None:
            continue
        a, b = np.asarray(a), np.asarray(b)
        same = np.array_equal(a, b) if a.dtype.kind in "biu" else \
            np.allclose(b, a, rtol=rtol, atol=atol, equal_nan=True)
        if not same:
            err = np.max(np.abs(b.astype(np.float64) - a.astype(np.float64)))
            warnings.warn(f"compile(check=True): {format_node(node)} (traced at {node.loc or '?'}) differs from "
                          f"eager: max abs difference {err:.3g} (rtol {rtol}, atol {atol})", RuntimeWarning,
                          stacklevel=4)
            return


def _may_alias(v, inputs) -> bool:
    """Whether a value's array may share memory with an input's or a constant's (it is one, or a movement op
    made it): then the tensor that receives it gets a copy."""
    return v in inputs or (v.producer is not None and v.producer.op.kind is Kind.MOVEMENT)


def _changed(old, new) -> str:
    parts = []
    for a, b in zip(old, new):
        if a != b and a and isinstance(a[0], tuple):
            for (k, x), (_, y) in zip(a, b):
                if x != y:
                    parts.append(f"{k} {x!r} -> {y!r}")
    return ", ".join(parts) or "parameters changed"
