"""Products and contractions: dot, mv, bmm, addmv, baddbmm, outer, einsum, and the matrix trace.

Each is composed from the matmul, permute, reshape, getitem and sum primitives, with PyTorch's checks.

>>> import tracegrad as tg
>>> tg.einsum("ij,jk->ik", tg.ones(2, 3), tg.ones(3, 4)).shape
tracegrad.Size([2, 4])
>>> tg.tensor([[1.0, 2.0], [3.0, 4.0]]).trace()
tensor(5.)
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from .._tensor import Tensor, apply
from . import primitives as P
from .arithmetic import add, matmul, mul, where
from .base import _const, _is_one, _named, _tensor
from .indexing import getitem
from .reductions import sum as sum_
from .shapes import broadcastable_to, fmt
from .shaping import reshape


def _dtype_name(t: Tensor) -> str:
    return {"float32": "Float", "float64": "Double", "int64": "Long", "bool": "Bool"}[t.dtype.name]


def dot(a: Tensor, b: Tensor) -> Tensor:
    """The inner product of two 1-D tensors of the same size and dtype.

    >>> import tracegrad as tg
    >>> tg.dot(tg.tensor([1.0, 2.0]), tg.tensor([3.0, 4.0]))
    tensor(11.)
    """
    a, b = _tensor(a), _tensor(b)
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"dot: 1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(f"dot: inconsistent tensor size, expected tensor [{a.shape[0]}] and src [{b.shape[0]}] "
                           f"to have the same number of elements, but got {a.shape[0]} and {b.shape[0]} elements "
                           f"respectively")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"dot: expected both vectors to have same dtype, but found {_dtype_name(a)} and "
                           f"{_dtype_name(b)}")
    return matmul(a, b)


def mv(m: Tensor, v: Tensor) -> Tensor:
    """Matrix (n, m) times vector (m,).

    >>> import tracegrad as tg
    >>> tg.mv(tg.eye(2), tg.tensor([3.0, 4.0]))
    tensor([3., 4.])
    """
    m, v = _tensor(m), _tensor(v)
    if m.ndim != 2 or v.ndim != 1:
        raise RuntimeError(f"mv: vector + matrix @ vector expected, got 1, {m.ndim}, {v.ndim}")
    if m.shape[1] != v.shape[0]:
        raise RuntimeError(f"mv: size mismatch, got input ({m.shape[0]}), mat ({m.shape[0]}x{m.shape[1]}), "
                           f"vec ({v.shape[0]})")
    if m.dtype is not v.dtype:
        raise RuntimeError(f"mv: expected both operands to have the same dtype, but got {_dtype_name(m)} and "
                           f"{_dtype_name(v)}")
    return matmul(m, v)


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """Batched matrix product of (b, n, m) and (b, m, p) tensors (no broadcasting).

    >>> import tracegrad as tg
    >>> tg.bmm(tg.ones(2, 3, 4), tg.ones(2, 4, 5)).shape
    tracegrad.Size([2, 3, 5])
    """
    a, b = _tensor(a), _tensor(b)
    for name, t in (("batch1", a), ("batch2", b)):
        if t.ndim != 3:
            raise RuntimeError(f"bmm: {name} must be a 3D tensor (got shape {fmt(t.shape)})")
    if b.shape[:2] != (a.shape[0], a.shape[2]):
        raise RuntimeError(f"bmm: Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{a.shape[0]}, {a.shape[2]}] but got: [{b.shape[0]}, {b.shape[1]}].")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"bmm: expected scalar type {_dtype_name(a)} but found {_dtype_name(b)}")
    return _named(apply(P.matmul, a, b), "BmmBackward0")


def _add_scaled(op: str, name: str, x: Tensor, product: Tensor, beta, alpha) -> Tensor:
    """beta * x + alpha * product, with x broadcast to the product's shape; beta = 0 ignores x (even its nan)."""
    x = _tensor(x)
    if not broadcastable_to(x.shape, product.shape):
        raise RuntimeError(f"{op}: The expanded size of the tensor must match the existing size at non-singleton "
                           f"dimensions: input {fmt(x.shape)} can't be broadcast to the product's shape "
                           f"{fmt(product.shape)}")
    scaled = product if _is_one(alpha) else mul(product, alpha)
    if type(beta) in (int, float) and beta == 0:
        # NOTE: where(False, x, 0) is 0 even where x is nan, and gives x a zero gradient, as PyTorch does
        return _named(add(scaled, where(_const(False, np.bool_), x, 0.0)), name)
    return _named(add(x if _is_one(beta) else mul(x, beta), scaled), name)


def addmv(x: Tensor, mat: Tensor, vec: Tensor, *, beta=1, alpha=1) -> Tensor:
    """beta * x + alpha * (mat @ vec).

    >>> import tracegrad as tg
    >>> tg.addmv(tg.ones(2), tg.eye(2), tg.tensor([3.0, 4.0]), alpha=2)
    tensor([7., 9.])
    """
    product = mv(mat, vec)
    if not broadcastable_to(_tensor(x).shape, product.shape):
        raise RuntimeError(f"addmv: size mismatch, got input ({', '.join(map(str, x.shape))}), mat "
                           f"({mat.shape[0]}x{mat.shape[1]}), vec ({vec.shape[0]})")
    return _add_scaled("addmv", "AddmvBackward0", x, product, beta, alpha)


def baddbmm(x: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """beta * x + alpha * bmm(batch1, batch2), x broadcast to the product's (b, n, p) shape.

    >>> import tracegrad as tg
    >>> tg.baddbmm(tg.zeros(1, 2, 2), tg.ones(3, 2, 4), tg.ones(3, 4, 2), beta=0.5).shape
    tracegrad.Size([3, 2, 2])
    """
    return _add_scaled("baddbmm", "BaddbmmBackward0", x, bmm(batch1, batch2), beta, alpha)


def outer(a: Tensor, b: Tensor) -> Tensor:
    """out[i, j] = a[i] * b[j] for 1-D a and b (dtypes promoted as in `mul`).

    >>> import tracegrad as tg
    >>> tg.outer(tg.tensor([1, 2]), tg.tensor([1, 10, 100]))
    tensor([[  1,  10, 100],
            [  2,  20, 200]])
    """
    a, b = _tensor(a), _tensor(b)
    for name, t in (("self", a), ("vec2", b)):
        if t.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {t.ndim}-D")
    return mul(reshape(a, -1, 1), b)


def trace(x: Tensor) -> Tensor:
    """The sum of the main diagonal of a 2-D tensor, as ``torch.trace`` (the graph tracer is `tracegrad.jit.trace`);
    integer inputs give int64.

    >>> import tracegrad as tg
    >>> x = tg.arange(6.0).reshape(2, 3).requires_grad_()
    >>> t = tg.trace(x)
    >>> t, t.grad_fn
    (tensor(4., grad_fn=<TraceBackward0>), <TraceBackward0 object at ...>)
    >>> t.backward()
    >>> x.grad
    tensor([[1., 0., 0.],
            [0., 1., 0.]])
    >>> tg.trace(tg.arange(9).reshape(3, 3))
    tensor(12)
    """
    x = _tensor(x)
    if x.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {x.ndim} (shape {list(x.shape)})")
    n, m = x.shape
    # NOTE: the diagonal of the flattened matrix is every (m+1)-th element: a strided slice, no index arrays
    flat = apply(P.reshape, x, shape=(n * m,))
    diagonal = apply(P.getitem, flat, index=(slice(0, builtins.min(n, m) * (m + 1), m + 1),))
    return _named(sum_(diagonal), "TraceBackward0")


# ------------------------------------------------------------------------------------------ einsum
_ELLIPSIS = "..."


def _parse_term(term: str, k: int, fail) -> list:
    """A term's subscripts: letters, and "..." where the ellipsis stands."""
    labels, j = [], 0
    while j < len(term):
        c = term[j]
        if c == ".":
            if term[j:j + 3] != _ELLIPSIS:
                fail(f"found '.' for {k} that is not part of any ellipsis")
            if _ELLIPSIS in labels:
                fail(f"found more than one ellipsis for {k}")
            labels.append(_ELLIPSIS)
            j += 3
            continue
        if not ("a" <= c <= "z" or "A" <= c <= "Z"):
            fail(f"invalid subscript given at index {j} of {k}, subscripts must be in [a-zA-Z]")
        labels.append(c)
        j += 1
    return labels


def _diagonals(t: Tensor, labels: list):
    """Take the diagonal over each subscript repeated within one operand (`ii->i`)."""
    for lab in dict.fromkeys(labels):
        pos = [j for j, name in enumerate(labels) if name == lab]
        if len(pos) < 2:
            continue
        rest = [j for j in range(len(labels)) if j not in pos]
        t = apply(P.permute, t, perm=tuple(rest + pos))
        diag = np.arange(t.shape[-1])
        t = getitem(t, (Ellipsis,) + (diag,) * len(pos))
        labels = [labels[j] for j in rest] + [lab]
    return t, labels


def _sum_out(t: Tensor, labels: list, keep) -> tuple:
    axes = tuple(j for j, lab in enumerate(labels) if lab not in keep)
    if not axes:
        return t, labels
    return sum_(t, axes), [lab for lab in labels if lab in keep]


def _arrange(t: Tensor, labels: list, order: list) -> Tensor:
    perm = tuple(labels.index(lab) for lab in order)
    return t if perm == tuple(range(len(perm))) else apply(P.permute, t, perm=perm)


def _pair(a, la, b, lb, later, sizes):
    """Contract two operands over the subscripts they share that nothing later needs (one matmul)."""
    batch = [lab for lab in la if lab in lb and lab in later]
    contract = [lab for lab in la if lab in lb and lab not in later]
    a_only = [lab for lab in la if lab not in lb]
    b_only = [lab for lab in lb if lab not in la]
    size = lambda labs: math.prod(sizes[lab] for lab in labs)
    if not contract:  # an elementwise product with broadcasting
        a = reshape(_arrange(a, la, batch + a_only), [sizes[lab] for lab in batch + a_only] + [1] * len(b_only))
        b = reshape(_arrange(b, lb, batch + b_only), [sizes[lab] for lab in batch] + [1] * len(a_only) +
                    [sizes[lab] for lab in b_only])
        return mul(a, b), batch + a_only + b_only
    lead = [size(batch)] if batch else []
    a = reshape(_arrange(a, la, batch + a_only + contract), lead + [size(a_only), size(contract)])
    b = reshape(_arrange(b, lb, batch + contract + b_only), lead + [size(contract), size(b_only)])
    out = apply(P.matmul, a, b)
    return reshape(out, [sizes[lab] for lab in batch + a_only + b_only]), batch + a_only + b_only


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation, as `torch.einsum`: explicit (`ij,jk->ik`) or implicit (`ij,jk`) output, `...` for
    broadcast dims, repeated subscripts for diagonals and traces (`ii->i`, `ii`), size-1 dims broadcasting.

    Operands are contracted left to right, each pair by one matmul; subscripts only one operand has and the
    output lacks are summed first. The operands may also come as one list.

    >>> import tracegrad as tg
    >>> tg.einsum("ii", tg.eye(3))
    tensor(3.)
    >>> tg.einsum("bi,bi->b", tg.ones(2, 3), tg.ones(2, 3))
    tensor([3., 3.])
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = [_tensor(t) for t in operands]

    def fail(msg):
        shapes = ", ".join(fmt(t.shape) for t in operands)
        raise RuntimeError(f"einsum(): {msg} (equation '{equation}', operand shapes {shapes or 'none'})")

    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) > len(operands):
        fail("fewer operands were provided than specified in the equation")
    if len(terms) < len(operands):
        fail("more operands were provided than specified in the equation")
    for t in operands[1:]:
        if t.dtype is not operands[0].dtype:
            fail(f"expected scalar type {_dtype_name(operands[0])} but found {_dtype_name(t)}")
    parsed = [_parse_term(term, f"operand {k}", fail) for k, term in enumerate(terms)]
    # the ellipsis: its dims are labelled 0, 1, ... aligned from the right, so they broadcast across operands
    n_ell = 0
    for k, (labels, t) in enumerate(zip(parsed, operands)):
        named = len(labels) - (_ELLIPSIS in labels)
        if _ELLIPSIS in labels:
            if named > t.ndim:
                fail(f"the number of subscripts in the equation ({named}) is more than the number of dimensions "
                     f"({t.ndim}) for operand {k}")
            n_ell = builtins.max(n_ell, t.ndim - named)
        elif named != t.ndim:
            fail(f"the number of subscripts in the equation ({named}) does not match the number of dimensions "
                 f"({t.ndim}) for operand {k} and no ellipsis was given")
    for k, (labels, t) in enumerate(zip(parsed, operands)):
        if _ELLIPSIS in labels:
            j = labels.index(_ELLIPSIS)
            m = t.ndim - (len(labels) - 1)
            parsed[k] = labels[:j] + list(range(n_ell - m, n_ell)) + labels[j + 1:]
    # the sizes: equal within an operand (diagonals), equal or 1 across operands (broadcasting)
    sizes, counts = {}, {}
    for k, (labels, t) in enumerate(zip(parsed, operands)):
        seen = {}
        for lab, n in zip(labels, t.shape):
            counts[lab] = counts.get(lab, 0) + 1
            if lab in seen and seen[lab] != n:
                fail(f"subscript {lab} is repeated for operand {k} but the sizes don't match, {seen[lab]} != {n}")
            seen[lab] = n
            if sizes.get(lab, 1) != 1 and n not in (1, sizes[lab]):
                fail(f"subscript {lab} has size {n} for operand {k} which does not broadcast with previously seen "
                     f"size {sizes[lab]}")
            sizes[lab] = builtins.max(sizes.get(lab, 1), n)
    if arrow:
        out_labels = _parse_term(rhs, "the output", fail)
        if _ELLIPSIS in out_labels:
            j = out_labels.index(_ELLIPSIS)
            out_labels = out_labels[:j] + list(range(n_ell)) + out_labels[j + 1:]
        for lab in out_labels:
            if out_labels.count(lab) > 1:
                fail(f"output subscript {lab} appears more than once in the output")
            if lab not in sizes and not isinstance(lab, int):
                fail(f"output subscript {lab} does not appear in the equation for any input operand")
    else:  # implicit: the ellipsis dims, then the subscripts seen exactly once, in alphabetical order
        out_labels = list(range(n_ell)) + sorted(lab for lab, c in counts.items() if c == 1 and isinstance(lab, str))
    out_set = set(out_labels)
    summed = builtins.any(lab not in out_set for labels in parsed for lab in labels)

    # each operand: its diagonals, its size-1 dims that broadcast against another operand dropped (the
    # subscript then belongs to the others only), and its own subscripts the output lacks summed
    work = []
    for t, labels in zip(operands, parsed):
        t, labels = _diagonals(t, labels)
        drop = [j for j, lab in enumerate(labels) if t.shape[j] == 1 and sizes[lab] != 1]
        if drop:
            labels = [lab for j, lab in enumerate(labels) if j not in drop]
            t = reshape(t, [sizes[lab] for lab in labels])
        work.append([t, labels])
    for k, (t, labels) in enumerate(work):
        elsewhere = out_set.union(*[set(w[1]) for i, w in enumerate(work) if i != k])
        work[k] = list(_sum_out(t, labels, elsewhere))
    t, labels = work[0]
    for k in range(1, len(work)):
        later = out_set.union(*[set(w[1]) for w in work[k + 1:]])
        b, lb = work[k]
        t, labels = _sum_out(t, labels, later | set(lb))
        b, lb = _sum_out(b, lb, later | set(labels))
        t, labels = _pair(t, labels, b, lb, later, sizes)
    # NOTE: PyTorch's node names: its pairwise contraction ends in a view, a lone operand in a sum or a permute
    out = apply(P.permute, t, perm=tuple(labels.index(lab) for lab in out_labels))
    if len(operands) == 1:
        return _named(out, "SumBackward1" if summed else "PermuteBackward0")
    return _named(out, "ViewBackward0" if summed else "MulBackward0")
