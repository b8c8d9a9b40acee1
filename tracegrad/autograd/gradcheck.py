"""Check analytical gradients against central differences (use float64 inputs).

>>> import tracegrad as tg
>>> x = tg.randn(3, dtype=tg.float64, requires_grad=True)
>>> tg.autograd.gradcheck(lambda x: (x.sin() * x).sum(), (x,))
True
"""
from __future__ import annotations

import numpy as np


def _outputs(fn, inputs):
    from .._tensor import Tensor
    out = fn(*inputs)
    return [out] if isinstance(out, Tensor) else [o for o in out if o is not None]


def _numerical_jacobian(fn, inputs, k, eps):
    """d(all outputs, flattened)/d(inputs[k]), one column per input element, by central differences."""
    from .grad_mode import no_grad
    data = inputs[k]._data
    cols = []
    with no_grad():
        # NOTE: perturb the input's own array element by element (C order, as the analytical rows are raveled);
        # reshape(-1) of a non-contiguous input would be a copy, and the perturbations would never reach fn
        for j in np.ndindex(data.shape):
            orig = data[j]
            data[j] = orig + eps
            plus = np.concatenate([o._data.astype(np.float64).ravel() for o in _outputs(fn, inputs)])
            data[j] = orig - eps
            minus = np.concatenate([o._data.astype(np.float64).ravel() for o in _outputs(fn, inputs)])
            data[j] = orig
            cols.append((plus - minus) / (2 * eps))
    return np.stack(cols, axis=1) if cols else np.zeros((0, 0))


def _analytical_jacobian(fn, inputs, k):
    from .._tensor import Tensor
    from .engine import grad
    outs = _outputs(fn, inputs)
    rows = []
    for o in outs:
        for i in range(o._data.size):
            seed = np.zeros(o._data.size, o._data.dtype)
            seed[i] = 1
            if not o.requires_grad:
                rows.append(np.zeros(inputs[k]._data.size))
                continue
            (g,) = grad(o, inputs[k], Tensor._make(seed.reshape(o._data.shape)), retain_graph=True,
                        allow_unused=True)
            rows.append(np.zeros(inputs[k]._data.size) if g is None else g._data.astype(np.float64).ravel())
    return np.stack(rows) if rows else np.zeros((0, inputs[k]._data.size))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True) -> bool:
    """Compare the Jacobian from autograd with central differences, for each input requiring grad."""
    inputs = tuple(inputs)
    for k, x in enumerate(inputs):
        if not getattr(x, "requires_grad", False):
            continue
        if x.dtype.name != "float64":
            raise ValueError(f"gradcheck: input {k} is {x.dtype}; use float64 inputs for finite differences")
        num = _numerical_jacobian(fn, inputs, k, eps)
        ana = _analytical_jacobian(fn, inputs, k)
        if num.shape != ana.shape or not np.allclose(ana, num, atol=atol, rtol=rtol):
            if raise_exception:
                raise AssertionError(f"gradcheck: Jacobian mismatch for input {k}:\nnumerical:\n{num}\n"
                                     f"analytical:\n{ana}")
            return False
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True) -> bool:
    """gradcheck of the vector-Jacobian product itself: second derivatives, through create_graph."""
    from .._tensor import Tensor
    from ..creation import randn
    from .engine import grad
    from .grad_mode import enable_grad
    inputs = tuple(inputs)
    outs = _outputs(fn, inputs)
    if grad_outputs is None:
        grad_outputs = [randn(*o.shape, dtype=o.dtype) for o in outs]

    def vjp(*xs):
        with enable_grad():  # finite differences call this under no_grad
            o = _outputs(fn, xs)
            targets = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
            return [g for g in grad(o, targets, grad_outputs, create_graph=True, allow_unused=True) if g is not None]
    return gradcheck(vjp, inputs, eps, atol, rtol, raise_exception)
