"""The op registry: every primitive is one `Op` entry, read by every stage.

An entry holds the numpy forward, the shape/dtype rule, the VJP written in tracegrad's own ops,
the op's kind, and for elementwise ops the scalar expression the numba codegen compiles.

>>> from tracegrad.ops import registry
>>> registry.REGISTRY["mul"].kind
<Kind.ELEMENTWISE: 'elementwise'>
>>> registry.REGISTRY["mul"].scalar
'({0} * {1})'
"""
from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import dtypes


class Kind(enum.Enum):
    ELEMENTWISE = "elementwise"  # out[i] = f(in0[i], in1[i], ...) after broadcasting
    REDUCTION = "reduction"      # reduces over `axes`
    MOVEMENT = "movement"        # rearranges elements: reshape, permute, expand, index, cat
    OPAQUE = "opaque"            # everything else: matmul, scatter


class AbstractValue:
    """What the shape/dtype rule sees of a tensor: its shape and dtype, no data."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = tuple(shape)
        self.dtype = dtype

    @property
    def ndim(self):
        return len(self.shape)

    def __eq__(self, other):
        return isinstance(other, AbstractValue) and (self.shape, self.dtype) == (other.shape, other.dtype)

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def __repr__(self):
        return f"AbstractValue({list(self.shape)}, {self.dtype})"


@dataclass(eq=False)
class Op:
    """One primitive.

    forward(*arrays, **params) -> array        numpy implementation
    infer(*avals, **params) -> AbstractValue   shape/dtype rule; raises the user-facing error
    vjp(g, out, *inputs, **params) -> tuple    one gradient (or None) per input, in tracegrad ops;
                                                g and the result have the output's (broadcast) shape,
                                                the autograd engine sums them back to each input's shape
    saves                                       which of `inputs` the VJP reads ("out" for the output);
                                                the rest reach the VJP as AbstractValues (shape/dtype only)
    scalar                                      for elementwise ops: a Python expression over {0}, {1}, ...
                                                (and {params}) for one element, used by codegen
    effects                                     the op does more than compute its result: it draws random
                                                numbers, or communicates (tracegrad.distributed's collectives):
                                                a graph runs it at every call, in order; passes never fold,
                                                merge or drop it, and a warm-up run skips it (runtime/tiered.py)
    saved_by                                    optional: for each input, which of `saves` its VJP rule reads;
                                                eager autograd then saves only what the inputs that receive a
                                                gradient need (as PyTorch: `a * 2.0` keeps nothing of `a`)
    edges                                       optional: the inputs autograd differentiates, the only ones a
                                                node's `next_functions` lists (PyTorch's NllLossBackward0 lists
                                                its input, not the target or the weights); None: every input
    decompose                                   optional: `decompose(emit, *inputs, **params)` computes the op
                                                from other primitives, each applied as `emit(op, *inputs,
                                                **params)` (`emit.const(value, like)`: a 0-dim constant of
                                                `like`'s dtype; `emit.dtype(v)`). The compiler's lowering pass
                                                runs it on graph values before fusion (`compiler.passes.
                                                lower_composites`); `numpy_forward(decompose)` runs it on arrays
    """

    name: str
    kind: Kind
    forward: Callable
    infer: Callable
    vjp: Callable | None = None
    saves: tuple = ()
    scalar: str | None = None
    differentiable: bool = True
    backward_name: str = ""
    arity: int | None = None  # None: variadic
    effects: bool = False  # random draws, collectives: every call must run, in order (never merged, folded, removed)
    saved_by: tuple | None = None
    edges: tuple | None = None
    decompose: Callable | None = None
    save_out: bool = field(init=False, default=False)
    saved_inputs: tuple = field(init=False, default=())

    def __post_init__(self):
        self.save_out = "out" in self.saves
        self.saved_inputs = tuple(i for i in self.saves if i != "out")
        if not self.backward_name:
            self.backward_name = "".join(p.capitalize() for p in self.name.split("_")) + "Backward0"
        if self.kind is Kind.ELEMENTWISE and self.scalar is None:
            raise ValueError(f"elementwise op {self.name!r} needs a scalar expression for codegen")
        if self.vjp is None:
            self.differentiable = False

    def __repr__(self):
        return f"<op {self.name}>"

    def __reduce__(self):  # a pickled graph names its ops (their functions are not picklable)
        return (op_named, (self.name,))


REGISTRY: dict[str, Op] = {}


def op_named(name: str) -> Op:
    """The registered op called `name` (how a pickled graph refers to its ops)."""
    return REGISTRY[name]


def register(op: Op) -> Op:
    if op.name in REGISTRY:
        raise ValueError(f"op {op.name!r} is registered twice")
    REGISTRY[op.name] = op
    return op


class _NumpyEmit:
    """The `emit` of a decomposition run on numpy arrays: each op's numpy forward (see `numpy_forward`)."""

    def __call__(self, op, *arrays, **params):
        out = op.forward(*arrays, **params)
        return out if type(out) is np.ndarray else np.asarray(out)

    @staticmethod
    def const(value, like):
        return np.array(value, like.dtype)

    @staticmethod
    def dtype(array):
        return dtypes.from_numpy_dtype(array.dtype)


NUMPY_EMIT = _NumpyEmit()


def numpy_forward(decompose: Callable) -> Callable:
    """A numpy forward that runs `decompose` on arrays: eager mode, the interpreter and the lowered graph of the
    native backend then apply the same primitives in the same order (one definition, no drift between them)."""
    return lambda *arrays, **params: decompose(NUMPY_EMIT, *arrays, **params)


# Names the scalar expressions may use; the numba codegen provides the same names.
SCALAR_NAMESPACE = {"math": math, "np": np}


def eval_scalar(op: Op, *values, **params):
    """Evaluate an elementwise op's scalar expression on Python/numpy scalars (codegen's reference)."""
    src = op.scalar.format(*[f"_v{i}" for i in range(len(values))], **params)
    env = dict(SCALAR_NAMESPACE)
    env.update({f"_v{i}": v for i, v in enumerate(values)})
    return eval(src, env)  # noqa: S307 - expressions come from the registry, not from users
