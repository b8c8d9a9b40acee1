"""`nn.Parameter`: a leaf tensor that requires grad and that modules register automatically.

>>> import tracegrad as tg
>>> p = tg.nn.Parameter(tg.zeros(2))
>>> p.requires_grad, p.is_leaf
(True, True)
"""
from __future__ import annotations

from .._tensor import Tensor


class Parameter(Tensor):
    """A tensor that is a module parameter; shares storage with `data`."""

    __slots__ = ()

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True):
        from ..creation import empty
        data = empty(0) if data is None else data
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter expects a Tensor, got {type(data).__name__}")
        t = Tensor.__new__(cls)
        t._data, t._rg, t.grad_fn, t._grad, t._vbox, t._base, t._acc = data._data, False, None, None, None, None, None
        t._inf = data._inf
        t.requires_grad_(requires_grad)
        return t

    def __init__(self, data=None, requires_grad=True):
        pass  # all done in __new__

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __reduce__(self):
        return (_rebuild_parameter, (self._data, self._rg))

    def __deepcopy__(self, memo):
        p = Parameter(Tensor._make(self._data.copy()), self._rg)
        memo[id(self)] = p
        return p


def _rebuild_parameter(data, requires_grad):
    return Parameter(Tensor._make(data), requires_grad)
