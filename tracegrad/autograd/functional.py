"""`torch.autograd.functional`: Jacobians, Hessians and vector products of a function, built on `autograd.grad`.

>>> import tracegrad as tg
>>> from tracegrad.autograd.functional import jacobian, hessian
>>> jacobian(lambda v: v ** 2, tg.tensor([1.0, 2.0]))
tensor([[2., 0.],
        [0., 4.]])
>>> hessian(lambda v: (v ** 3).sum(), tg.tensor([1.0, 2.0]))
tensor([[ 6.,  0.],
        [ 0., 12.]])
"""
from __future__ import annotations

from .engine import grad
from .grad_mode import enable_grad

__all__ = ["vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"]


def _tensors(x, what: str, fn: str):
    """`x` as a tuple of tensors, and whether it was one."""
    from .._tensor import Tensor
    is_tuple = isinstance(x, (tuple, list))
    items = tuple(x) if is_tuple else (x,)
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            where = f"{what}[{i}]" if is_tuple else what
            raise TypeError(f"The {where} given to {fn} must be a Tensor, got {type(t).__name__}")
    return items, is_tuple


def _fresh(inputs, create_graph: bool):
    # NOTE: as PyTorch, the function sees inputs that require grad, cut from their history unless create_graph
    return tuple(x if create_graph and x.requires_grad else x.detach().requires_grad_(True) for x in inputs)


def _grads(outputs, inputs, grad_outputs, create_graph: bool, strict: bool, fn: str):
    """grad() that gives zeros (or, with strict, an error) for inputs the outputs don't depend on."""
    from ..creation import zeros_like
    needs = [o for o in outputs if o.requires_grad]
    if not needs:
        got = (None,) * len(inputs)
    else:
        pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
        got = grad([o for o, _ in pairs], inputs, [g for _, g in pairs], retain_graph=True,
                   create_graph=create_graph, allow_unused=True)
    if strict and any(g is None for g in got):
        i = next(i for i, g in enumerate(got) if g is None)
        raise RuntimeError(f"The output of the user-provided function is independent of input {i}. This is not "
                           f"allowed in strict mode ({fn}).")
    return tuple(zeros_like(x) if g is None else g for g, x in zip(got, inputs))


def _finish(values, create_graph: bool):
    return tuple(v if create_graph else v.detach() for v in values)


def _single_output(out, fn: str):
    outs, is_tuple = _tensors(out, "outputs of the user-provided function", fn)
    if is_tuple and len(outs) != 1 or outs[0].numel() != 1:
        raise RuntimeError(f"The function given to {fn} should return a single Tensor with a single element")
    return outs[0]


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """`(func(inputs), v^T J)`: the vector-Jacobian product at `inputs`; `v` may be omitted for a scalar output."""
    ins, in_tuple = _tensors(inputs, "inputs", "vjp")
    with enable_grad():
        ins = _fresh(ins, create_graph)
        out = func(*ins)
        outs, out_tuple = _tensors(out, "outputs of the user-provided function", "vjp")
        if v is None:
            if len(outs) != 1 or outs[0].numel() != 1:
                raise RuntimeError("The vector v can only be None if the user-provided function returns a single "
                                   "Tensor with a single element.")
            from ..creation import ones_like
            vs = (ones_like(outs[0]),)
        else:
            vs, _ = _tensors(v, "v", "vjp")
        grads = _grads(outs, ins, vs, create_graph, strict, "vjp")
    outs = _finish(outs, create_graph)
    grads = _finish(grads, create_graph)
    return (outs if out_tuple else outs[0]), (grads if in_tuple else grads[0])


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """`(func(inputs), J v)`: the Jacobian-vector product, by differentiating a vector-Jacobian product again."""
    from ..creation import ones_like, zeros_like
    ins, in_tuple = _tensors(inputs, "inputs", "jvp")
    with enable_grad():
        ins = _fresh(ins, create_graph)
        out = func(*ins)
        outs, out_tuple = _tensors(out, "outputs of the user-provided function", "jvp")
        if v is None:
            if len(ins) != 1 or ins[0].numel() != 1:
                raise RuntimeError("The vector v can only be None if the input to the user-provided function is a "
                                   "single Tensor with a single element.")
            vs = (ones_like(ins[0]),)
        else:
            vs, _ = _tensors(v, "v", "jvp")
        # NOTE: the double-vjp trick: u -> J^T u is linear in u, so differentiating it in u along v gives J v
        dummies = tuple(zeros_like(o).requires_grad_(True) for o in outs)
        backs = _grads(outs, ins, dummies, True, strict, "jvp")
        products = _grads(backs, dummies, vs, create_graph, strict, "jvp")
    outs = _finish(outs, create_graph)
    products = _finish(products, create_graph)
    return (outs if out_tuple else outs[0]), (products if out_tuple else products[0])


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """The Jacobian of `func` at `inputs`: for each output and input, a tensor of shape output.shape + input.shape."""
    from ..ops.functions import stack
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode".')
    ins, in_tuple = _tensors(inputs, "inputs", "jacobian")
    with enable_grad():
        ins = _fresh(ins, create_graph)
        outs, out_tuple = _tensors(func(*ins), "outputs of the user-provided function", "jacobian")
        per_output = []
        for out in outs:
            flat = out.reshape(-1)
            rows = [_grads((flat[i],), ins, (None,), create_graph, strict, "jacobian") for i in range(flat.numel())]
            blocks = []
            for j, x in enumerate(ins):
                if rows:
                    block = stack([r[j] for r in rows]).reshape(*out.shape, *x.shape)
                else:
                    from ..creation import zeros
                    block = zeros(*out.shape, *x.shape, dtype=x.dtype)
                blocks.append(block if create_graph else block.detach())
            per_output.append(tuple(blocks) if in_tuple else blocks[0])
    return tuple(per_output) if out_tuple else per_output[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a scalar function at `inputs` (the Jacobian of its gradient)."""
    ins, in_tuple = _tensors(inputs, "inputs", "hessian")

    def gradient(*xs):
        out = _single_output(func(*xs), "hessian")
        g = _grads((out.reshape(()),), xs, (None,), True, strict, "hessian")
        return g if in_tuple else g[0]

    return jacobian(gradient, ins if in_tuple else ins[0], create_graph, strict, vectorize, outer_jacobian_strategy)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """`(func(inputs), v^T H)` for a scalar function."""
    ins, in_tuple = _tensors(inputs, "inputs", "vhp")
    with enable_grad():
        ins = _fresh(ins, create_graph)
        out = _single_output(func(*ins), "vhp")
        g = _grads((out.reshape(()),), ins, (None,), True, strict, "vhp")
        vs = _tensors(v, "v", "vhp")[0] if v is not None else None
        if vs is None:
            if len(ins) != 1 or ins[0].numel() != 1:
                raise RuntimeError("The vector v can only be None if the input to the user-provided function is a "
                                   "single Tensor with a single element.")
            from ..creation import ones_like
            vs = (ones_like(ins[0]),)
        products = _grads(g, ins, vs, create_graph, strict, "vhp")
    out = out if create_graph else out.detach()
    products = _finish(products, create_graph)
    return out, (products if in_tuple else products[0])


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """`(func(inputs), H v)` for a scalar function (H is symmetric, so it equals `vhp`)."""
    return vhp(func, inputs, v, create_graph, strict)
