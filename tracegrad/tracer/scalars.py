"""Python numbers that a traced function computes but that change from call to call.

Two kinds, with one Python face (`TracedNumber`: arithmetic, comparisons, formatting like `float`/`int`):

* `ItemNumber`: what `tensor.item()` and `tensor.tolist()` give while tracing. It stands for a 0-dim
  graph value (float64, int64 or bool, so its arithmetic is Python's), and arithmetic on it records graph
  nodes. Returned from the function (at any depth of the returned pytree), it is an output computed at
  every call; used with a tensor, it is a graph input of that op. Only a *decision* Python makes on it
  becomes a guard: `bool()`, a comparison (guarded on its outcome, not on the value), `float()`, `int()`,
  `index`, `round`/`math.floor`, hashing, formatting (`str`, `repr`, `format`, f-strings).
* `HyperNumber`: a numeric entry of an optimizer's param group (`lr`, `momentum`, `betas`, `eps`, ...) read
  while tracing. It stands for a Python expression over the param groups, evaluated at every call: used with
  a tensor it becomes a 0-dim input the compiled variant refills before each call, so schedulers and
  `group["lr"] = ...` never retrace. A decision on it (`momentum != 0`) is a guard on the optimizer's
  structure, checked in Python before the call; a changed outcome retraces with a reason naming the entry.

After the trace, a traced number left in a Python object (a list of logged losses) is a plain number.

>>> import tracegrad as tg
>>> w = tg.zeros(3, requires_grad=True)
>>> opt = tg.optim.SGD([w], lr=0.1)
>>> @tg.compile
... def step(x):
...     opt.zero_grad()
...     loss = ((w - x) ** 2).sum()
...     loss.backward()
...     opt.step()
...     return loss.item()
>>> [round(step(tg.ones(3)), 4) for _ in range(4)]     # a new float at every call
[3.0, 1.92, 1.2288, 0.7864]
>>> opt.param_groups[0]["lr"] = 0.01          # a scheduler's write: read at the next call, no retrace
>>> round(step(tg.ones(3)), 4), len(step.retraces)
(0.5033, 2)
"""
from __future__ import annotations

import math
import operator

import numpy as np

from .. import _tracing
from .._tensor import Tensor
from ..autograd.grad_mode import no_grad
from ..dtypes import bool_, float64, int64
from ..ops import functions as F

_DTYPE = {bool: bool_, int: int64, float: float64}
_OPERANDS = (_tracing.SymbolicScalar, int, float, np.number)  # a Tensor is none of these: its operators take over
_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "floordiv": "//", "mod": "%", "pow": "**",
           "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


def _python_type(value) -> type:
    return bool if isinstance(value, (bool, np.bool_)) else int if isinstance(value, (int, np.integer)) else float


class TracedNumber(_tracing.SymbolicScalar):
    """A Python number of the traced call (`value`) that is recomputed at every call of the compiled function.

    Subclasses define how arithmetic is recorded (`_combine`, `_negate`) and what a decision records (`_decide`).
    """

    __slots__ = ("tracer", "value", "python_type", "text")

    def __init__(self, tracer, value, text: str):
        self.tracer, self.value, self.text = tracer, value, text
        self.python_type = _python_type(value)

    @property
    def live(self) -> bool:
        """Whether its trace is running (afterwards it is a plain number)."""
        return _tracing.TRACER is self.tracer and not self.tracer.closed

    # ------------------------------------------------------------------ arithmetic (operators: see _OPERATORS)
    def _arith(self, name, other, reverse=False):
        if not isinstance(other, _OPERANDS):
            return NotImplemented  # a tensor's reflected operator takes it (self becomes an operand)
        a, b = (other, self) if reverse else (self, other)
        value = getattr(operator, name)(_concrete(a), _concrete(b))
        if not self.live:
            return value
        return self._combine(name, a, b, value)

    def __neg__(self):
        return self._negate() if self.live else -self.value

    def __pos__(self):
        return self

    def __abs__(self):
        return self._absolute() if self.live else abs(self.value)

    # ------------------------------------------------------------------ decisions: guards
    def _compare(self, name, other):
        if not isinstance(other, _OPERANDS):
            return NotImplemented
        result = getattr(operator, name)(self.value, _concrete(other))
        if self.live:
            self._decide(f"{self.text} {_SYMBOL[name]} {_text(other)}", result,
                         lambda: self._combine(name, self, other, result))
        return result

    def _asked(self, what: str):
        """Python needs the number itself: specialize on it (a guard on its value)."""
        if self.live:
            self._decide(f"{what}({self.text})", self.value, lambda: self)
        return self.value

    def __bool__(self):
        result = bool(self.value)
        if self.live:
            self._decide(f"bool({self.text})", result, lambda: self._combine("ne", self, 0, result))
        return result

    def __float__(self):
        return float(self._asked("float"))

    def __int__(self):
        return int(self._asked("int"))

    def __index__(self):
        return operator.index(self._asked("index"))

    def __round__(self, ndigits=None):
        return round(self._asked("round"), ndigits)

    def __floor__(self):
        return math.floor(self._asked("math.floor"))

    def __ceil__(self):
        return math.ceil(self._asked("math.ceil"))

    def __trunc__(self):
        return math.trunc(self._asked("math.trunc"))

    def __hash__(self):
        return hash(self._asked("hash"))

    def __format__(self, spec):
        return format(self._asked("format"), spec)

    def __str__(self):
        return str(self._asked("str"))

    def __repr__(self):
        return repr(self._asked("repr"))

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._asked("numpy"), dtype)


_ARITHMETIC = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow")
_COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")
for _name in _ARITHMETIC:  # x + y, y + x, ...: one recorded operation each
    setattr(TracedNumber, f"__{_name}__", lambda self, o, _n=_name: self._arith(_n, o))
    setattr(TracedNumber, f"__r{_name}__", lambda self, o, _n=_name: self._arith(_n, o, True))
for _name in _COMPARISONS:  # a decision: guarded on its outcome
    setattr(TracedNumber, f"__{_name}__", lambda self, o, _n=_name: self._compare(_n, o))


def _concrete(x):
    return x.value if isinstance(x, TracedNumber) else x


def _text(x) -> str:
    return x.text if isinstance(x, TracedNumber) else repr(x)


# ---------------------------------------------------------------------------------------------- .item()
class ItemNumber(TracedNumber):
    """`tensor.item()` while tracing: a 0-dim graph value of Python's precision (float64, int64 or bool)."""

    __slots__ = ("tensor",)

    def __init__(self, tracer, tensor: Tensor, value, text: str):
        super().__init__(tracer, value, text)
        self.tensor = tensor
        tracer.items.append(self)  # at the end of the call it lets go of the tensor

    @classmethod
    def of(cls, tracer, t: Tensor, text: str) -> ItemNumber:
        value = t._data.reshape(()).item()
        with no_grad():
            return cls(tracer, t.reshape(()).to(_DTYPE[_python_type(value)]), value, text)

    def as_operand(self, dtype):
        return self.tensor if self.tensor.dtype is dtype else self.tensor.to(dtype)

    def _graph_operand(self, x, dtype):
        if isinstance(x, TracedNumber):
            return x.as_operand(dtype)
        return Tensor._make(np.array(x, dtype.np))

    def _combine(self, name, a, b, value):
        kind = _python_type(value)
        # NOTE: operands take the result's Python type first (int / int is a float division, bool + bool an int)
        dtype = _DTYPE[kind] if kind is not bool else _DTYPE[_promoted(a, b)]
        with no_grad():
            t = getattr(F, _TENSOR_OP.get(name, name))(self._graph_operand(a, dtype), self._graph_operand(b, dtype))
        return ItemNumber(self.tracer, t, value, f"({_text(a)} {_SYMBOL[name]} {_text(b)})")

    def _negate(self):
        with no_grad():
            return ItemNumber(self.tracer, -self.tensor if self.python_type is not bool else -self.tensor.long(),
                              -self.value, f"-{self.text}")

    def _absolute(self):
        with no_grad():
            return ItemNumber(self.tracer, self.tensor.abs(), abs(self.value), f"abs({self.text})")

    def _decide(self, what, expected, make):
        self.tracer.decide_on_item(self, what, expected, make)


_TENSOR_OP = {"truediv": "div", "floordiv": "floor_divide", "mod": "remainder"}  # else the same name


def _promoted(a, b) -> type:
    kinds = {_python_type(_concrete(a)), _python_type(_concrete(b))}
    return float if float in kinds else int if int in kinds else bool


# ---------------------------------------------------------------------------------------------- hyperparameters
class HyperNumber(TracedNumber):
    """A numeric optimizer hyperparameter, or arithmetic on some: `read()` evaluates it at call time."""

    __slots__ = ("read", "key")

    def __init__(self, tracer, value, text: str, read, key):
        super().__init__(tracer, value, text)
        self.read, self.key = read, key

    def as_operand(self, dtype):
        return self.tracer.hyper_input(self, dtype)

    def _combine(self, name, a, b, value):
        if isinstance(a, ItemNumber) or isinstance(b, ItemNumber):  # a data-dependent number: a graph value
            item = a if isinstance(a, ItemNumber) else b
            return item._combine(name, a, b, value)
        fn = getattr(operator, name)
        ra, rb = _reader(a), _reader(b)
        return HyperNumber(self.tracer, value, f"({_text(a)} {_SYMBOL[name]} {_text(b)})",
                           lambda: fn(ra(), rb()), (name, _key(a), _key(b)))

    def _negate(self):
        read = self.read
        return HyperNumber(self.tracer, -self.value, f"-{self.text}", lambda: -read(), ("neg", self.key))

    def _absolute(self):
        read = self.read
        return HyperNumber(self.tracer, abs(self.value), f"abs({self.text})", lambda: abs(read()),
                           ("abs", self.key))

    def _decide(self, what, expected, make):
        self.tracer.decide_on_hyper(what, expected, make().read if make is not None else self.read)


def _reader(x):
    if isinstance(x, HyperNumber):
        return x.read
    return lambda: x


def _key(x):
    return x.key if isinstance(x, HyperNumber) else ("const", type(x).__name__, x)


def hyper_entry(tracer, group, key: str, value, text: str):
    """A param group's entry as the tracer hands it out: numbers (and tuples of them) become `HyperNumber`s."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return HyperNumber(tracer, value, text, lambda: dict.__getitem__(group, key), ("group", id(group), key))
    if isinstance(value, tuple) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  for v in value):
        return tuple(HyperNumber(tracer, v, f"{text}[{i}]", lambda i=i: dict.__getitem__(group, key)[i],
                                 ("group", id(group), key, i)) for i, v in enumerate(value))
    return value


__all__ = ["HyperNumber", "ItemNumber", "TracedNumber", "hyper_entry"]
