"""Registry entries for `tracegrad.linalg`: inv, solve, det, slogdet, cholesky, qr, eigh, eigvalsh, svd, svdvals, pinv.

Forwards are numpy.linalg (batched over leading dims); VJPs are written in tracegrad ops (matmul, solve, inv, ...),
so second derivatives work too. A decomposition with several results (slogdet, qr, eigh, svd) is one primitive
whose output packs them, each flattened, along the last axis (`pack`); `tracegrad.linalg` slices them apart, and the
VJP unpacks the gradient the same way (a result the caller did not use gets a zero gradient).

Where LAPACK reports a singular or non positive-definite input, the error is PyTorch's `LinAlgError` with its
message (the failing diagonal element or leading minor, found with the same LAPACK factorization).

>>> from tracegrad.ops import registry
>>> registry.REGISTRY["linalg_inv"].backward_name
'LinalgInvExBackward0'
"""
from __future__ import annotations

import math

import numpy as np

from .._tensor import Tensor, apply
from .registry import AbstractValue as AV
from .registry import Kind, Op, register

OPAQUE = Kind.OPAQUE


class LinAlgError(RuntimeError):
    """A linear-algebra function met a singular or non positive-definite input (`torch.linalg.LinAlgError`).

    >>> import tracegrad as tg
    >>> issubclass(tg.linalg.LinAlgError, RuntimeError)
    True
    """

    user_facing = True  # `apply` raises it as it is, not re-worded as a shape error


# ------------------------------------------------------------------------------------------ helpers
def _lapack_info(name: str, a: np.ndarray, routine: str) -> tuple[int, int]:
    """(batch index, LAPACK info) of the first matrix of `a` on which `routine` ('getrf', 'potrf') fails."""
    from scipy.linalg import lapack

    mats = a.reshape((-1,) + a.shape[-2:])
    fn = lapack.get_lapack_funcs(routine, (mats[:1],))
    for i, m in enumerate(mats):
        info = fn(m, lower=1)[-1] if routine == "potrf" else fn(m)[-1]
        if info > 0:
            return i, int(info)
    return -1, 0


def _failure(name: str, a: np.ndarray, routine: str, message: str) -> LinAlgError:
    i, info = _lapack_info(name, a, routine)
    prefix = f"(Batch element {i}): " if a.ndim > 2 else ""
    return LinAlgError(f"{name}: {prefix}{message.format(info)}")


_SINGULAR = ("The diagonal element {} is zero, the inversion could not be completed because the input matrix is "
             "singular.")
_NOT_PD = ("The factorization could not be completed because the input is not positive-definite (the leading minor "
           "of order {} is not positive-definite).")


def pack(*arrays, batch) -> np.ndarray:
    """The results of a decomposition flattened and joined along the last axis (one output array)."""
    return np.concatenate([np.reshape(a, batch + (-1,)) for a in arrays], axis=-1)


def unpack(t: Tensor, shapes) -> list:
    """The tensors `pack` joined: `shapes` are their shapes without the batch dims."""
    batch, out, start = tuple(t.shape[:-1]), [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(t[..., start:start + n].reshape(batch + tuple(shape)))
        start += n
    return out


def _F():
    from . import functions
    return functions


def _const(array: np.ndarray) -> Tensor:
    return Tensor._make(array)


def _structure():
    # NOTE: the VJPs use the user-facing tril/triu/diag_embed; bound lazily, as they import this package
    from . import structure
    return structure


def _eye_like(v: Tensor) -> Tensor:
    return _const(np.eye(v.shape[-1], dtype=v.dtype.np))


def _batch(a) -> tuple:
    return tuple(a.shape[:-2])


# ------------------------------------------------------------------------------------------ inv, solve
def _inv_forward(a):
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        raise _failure("linalg.inv", a, "getrf", _SINGULAR) from None


def inv_raw(a: Tensor) -> Tensor:
    return apply(inv, a)


inv = register(Op("linalg_inv", OPAQUE, _inv_forward, lambda a: AV(a.shape, a.dtype),
                  (lambda g, out, a: -(out.mT @ g @ out.mT),), ("out",), arity=1,
                  backward_name="LinalgInvExBackward0"))


def _solve_forward(a, b):
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        raise LinAlgError("torch.linalg.solve: The solver failed because the input matrix is singular.") from None


def _solve_infer(a, b):
    batch = tuple(np.broadcast_shapes(_batch(a), _batch(b)))
    return AV(batch + b.shape[-2:], a.dtype)


def solve_raw(a: Tensor, b: Tensor) -> Tensor:
    """X with A X = B, for matrices B (..., n, k); batch dims broadcast."""
    return apply(solve, a, b)


# NOTE: with X = A^-1 B: gB = A^-T g and gA = -gB X^T (the engine sums a broadcast batch back)
solve = register(Op("linalg_solve", OPAQUE, _solve_forward, _solve_infer,
                    (lambda g, out, a, b: -(solve_raw(a.mT, g) @ out.mT), lambda g, out, a, b: solve_raw(a.mT, g)),
                    (0, "out"), arity=2, backward_name="LinalgSolveExBackward0"))


# ------------------------------------------------------------------------------------------ det, slogdet
def _inv_t(a: Tensor) -> Tensor:
    return inv_raw(a).mT


det = register(Op("linalg_det", OPAQUE, np.linalg.det, lambda a: AV(_batch(a), a.dtype),
                  (lambda g, out, a: (g * out).unsqueeze(-1).unsqueeze(-1) * _inv_t(a),), (0, "out"), arity=1,
                  backward_name="LinalgDetBackward0"))


def _slogdet_forward(a):
    sign, logabsdet = np.linalg.slogdet(a)
    return pack(sign, logabsdet, batch=_batch(a))


# the output packs (sign, logabsdet) along the last axis; only logabsdet has a gradient: g * A^-T
slogdet = register(Op("linalg_slogdet", OPAQUE, _slogdet_forward, lambda a: AV(_batch(a) + (2,), a.dtype),
                      (lambda g, out, a: g[..., 1].unsqueeze(-1).unsqueeze(-1) * _inv_t(a),), (0,), arity=1,
                      backward_name="LinalgSlogdetBackward0"))


# ------------------------------------------------------------------------------------------ cholesky
def _cholesky_forward(a):
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        raise _failure("linalg.cholesky", a, "potrf", _NOT_PD) from None


def _cholesky_vjp(g, out, a):
    # NOTE: PyTorch's formula (it assumes a symmetric perturbation of A): P = tril(L^T gL) with its strict lower
    # half averaged into the upper, then L^-T P L^-1
    p = _structure().tril(out.mT @ g)
    p = 0.5 * (p + _structure().tril(p, -1).mT)
    x = solve_raw(out.mT, p)
    return solve_raw(out.mT, x.mT).mT


cholesky = register(Op("linalg_cholesky", OPAQUE, _cholesky_forward, lambda a: AV(a.shape, a.dtype),
                       (_cholesky_vjp,), ("out",), arity=1, backward_name="LinalgCholeskyExBackward0"))


# ------------------------------------------------------------------------------------------ qr
def qr_shapes(m: int, n: int, mode: str) -> tuple:
    """The shapes of Q and R (without batch dims) for an m x n input."""
    k = min(m, n)
    if mode == "complete":
        return (m, m), (m, n)
    if mode == "r":
        return (0,), (k, n)
    return (m, k), (k, n)


def _qr_forward(a, mode):
    batch = _batch(a)
    if mode == "r":
        return pack(np.zeros(batch + (0,), a.dtype), np.linalg.qr(a, mode="r"), batch=batch)
    q, r = np.linalg.qr(a, mode=mode)
    return pack(q, r, batch=batch)


def _qr_infer(a, mode):
    qs, rs = qr_shapes(*a.shape[-2:], mode)
    return AV(_batch(a) + (math.prod(qs) + math.prod(rs),), a.dtype)


def _qr_square_vjp(gq, gr, q, r):
    """The VJP of A = QR for m >= n (Q m x n): (gQ + Q copyltu(M)) R^-T, M = R gR^T - gQ^T Q."""
    m = _structure().triu(gr @ r.mT - q.mT @ gq)
    b = m + _structure().triu(m, 1).mT  # the symmetric matrix with m's upper triangle
    ga = q @ b + gq
    return solve_raw(r, ga.mT).mT


def _qr_vjp(g, out, a, mode):
    m, n = a.shape[-2:]
    if mode == "r":
        raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed when mode='r'. Please use "
                           "linalg.qr(A, mode='reduced') if you are going to differentiate through linalg.qr.")
    if mode == "complete" and m > n:
        raise RuntimeError("The QR decomposition is not differentiable when mode='complete' and nrows > ncols.")
    shapes = qr_shapes(m, n, mode)
    q, r = unpack(out, shapes)
    gq, gr = unpack(g, shapes)
    if m >= n:
        return _qr_square_vjp(gq, gr, q, r)
    # NOTE: m < n: A = [X | Y] with X = Q R1 square and R2 = Q^T Y, so gY = Q gR2 and X sees gQ + Y gR2^T
    y, gr1, gr2 = a[..., :, m:], gr[..., :, :m], gr[..., :, m:]
    gx = _qr_square_vjp(gq + y @ gr2.mT, gr1, q, r[..., :, :m])
    return _F().cat([gx, q @ gr2], -1)


qr = register(Op("linalg_qr", OPAQUE, _qr_forward, _qr_infer, (_qr_vjp,), (0, "out"), arity=1,
                 backward_name="LinalgQrBackward0"))


# ------------------------------------------------------------------------------------------ eigh, eigvalsh
def _eigh_forward(a, uplo):
    w, v = np.linalg.eigh(a, UPLO=uplo)
    return pack(w, v, batch=_batch(a))


def eigh_raw(a: Tensor, uplo: str = "L") -> tuple:
    n = a.shape[-1]
    return tuple(unpack(apply(eigh, a, uplo=uplo), [(n,), (n, n)]))


def _eigh_vjp(g, out, a, uplo):
    # NOTE: PyTorch's formula: V (skew(V^T gV) / E + diag(gL)) V^T with E_ij = L_j - L_i (eigenvalues distinct)
    n = a.shape[-1]
    w, v = unpack(out, [(n,), (n, n)])
    gw, gv = unpack(g, [(n,), (n, n)])
    vgv = v.mT @ gv
    vgv = 0.5 * (vgv - vgv.mT)
    e = w.unsqueeze(-2) - w.unsqueeze(-1) + _eye_like(w)
    return v @ (vgv / e + _structure().diag_embed(gw)) @ v.mT


eigh = register(Op("linalg_eigh", OPAQUE, _eigh_forward,
                   lambda a, uplo: AV(_batch(a) + (a.shape[-1] * (a.shape[-1] + 1),), a.dtype),
                   (_eigh_vjp,), ("out",), arity=1, backward_name="LinalgEighBackward0"))


def _eigvalsh_vjp(g, out, a, uplo):
    _, v = eigh_raw(a, uplo)
    return v @ _structure().diag_embed(g) @ v.mT


eigvalsh = register(Op("linalg_eigvalsh", OPAQUE, lambda a, uplo: np.linalg.eigvalsh(a, UPLO=uplo),
                       lambda a, uplo: AV(a.shape[:-1], a.dtype), (_eigvalsh_vjp,), (0,), arity=1,
                       backward_name="LinalgEighBackward0"))


# ------------------------------------------------------------------------------------------ svd, svdvals, pinv
def svd_shapes(m: int, n: int, full_matrices: bool) -> tuple:
    k = min(m, n)
    return ((m, m), (k,), (n, n)) if full_matrices else ((m, k), (k,), (k, n))


def _svd_forward(a, full_matrices):
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return pack(u, s, vh, batch=_batch(a))


def _svd_infer(a, full_matrices):
    return AV(_batch(a) + (sum(math.prod(s) for s in svd_shapes(*a.shape[-2:], full_matrices)),), a.dtype)


def svd_raw(a: Tensor, full_matrices: bool = False) -> tuple:
    return tuple(unpack(apply(svd, a, full_matrices=full_matrices), svd_shapes(*a.shape[-2:], full_matrices)))


def _svd_vjp(g, out, a, full_matrices):
    # NOTE: PyTorch's svd_backward (singular values distinct and nonzero); with full_matrices the columns of U and
    # the rows of Vh past min(m, n) are ignored, as PyTorch does
    m, n = a.shape[-2:]
    k = min(m, n)
    shapes = svd_shapes(m, n, full_matrices)
    u, s, vh = unpack(out, shapes)
    gu, gs, gvh = unpack(g, shapes)
    if full_matrices:
        u, gu, vh, gvh = u[..., :, :k], gu[..., :, :k], vh[..., :k, :], gvh[..., :k, :]
    v, gv = vh.mT, gvh.mT
    uhgu, vhgv = u.mT @ gu, v.mT @ gv
    uhgu, vhgv = uhgu - uhgu.mT, vhgv - vhgv.mT
    s2 = s * s
    e = s2.unsqueeze(-2) - s2.unsqueeze(-1) + _eye_like(s)
    ret = (uhgu * s.unsqueeze(-2) + s.unsqueeze(-1) * vhgv) / e + _structure().diag_embed(gs)
    if m > k:
        gus = gu / s.unsqueeze(-2)
        return (u @ ret + gus - u @ (u.mT @ gus)) @ vh
    if n > k:
        sgvh = gvh / s.unsqueeze(-1)
        return u @ (ret @ vh + sgvh - (sgvh @ v) @ vh)
    return u @ ret @ vh


svd = register(Op("linalg_svd", OPAQUE, _svd_forward, _svd_infer, (_svd_vjp,), (0, "out"), arity=1,
                  backward_name="LinalgSvdBackward0"))


def _svdvals_vjp(g, out, a):
    u, _, vh = svd_raw(a)
    return u @ _structure().diag_embed(g) @ vh


svdvals = register(Op("linalg_svdvals", OPAQUE, lambda a: np.linalg.svd(a, compute_uv=False),
                      lambda a: AV(_batch(a) + (min(a.shape[-2:]),), a.dtype), (_svdvals_vjp,), (0,), arity=1,
                      backward_name="LinalgSvdBackward0"))


def _pinv_forward(a, atol, rtol, hermitian):
    m, n = a.shape[-2:]
    if a.size == 0:
        return np.zeros(a.shape[:-2] + (n, m), a.dtype)
    if hermitian:  # A = V diag(w) V^T: its singular values are |w|
        w, v = np.linalg.eigh(a)
        s, left, right = np.abs(w), v * np.sign(w)[..., None, :], v
    else:
        left, s, vh = np.linalg.svd(a, full_matrices=False)
        right = np.swapaxes(vh, -1, -2)
    cutoff = np.maximum(atol, rtol * np.max(s, axis=-1, keepdims=True))
    with np.errstate(divide="ignore"):
        s_inv = np.where(s > cutoff, 1 / s, 0).astype(a.dtype)
    return (right * s_inv[..., None, :]) @ np.swapaxes(left, -1, -2)


def _pinv_vjp(g, p, a, atol, rtol, hermitian):
    # NOTE: PyTorch's pinv_backward (exact where the rank is locally constant)
    m, n = a.shape[-2:]
    ph, gh = p.mT, g.mT
    if m <= n:
        k = gh @ p
        kph = k @ ph
        return -(p @ k).mT + kph - (a @ p) @ kph + (ph @ p) @ (gh - k @ a)
    k = p @ gh
    phk = ph @ k
    return -(k @ p).mT + (gh - a @ k) @ p @ ph + phk - (phk @ p) @ a


pinv = register(Op("linalg_pinv", OPAQUE, _pinv_forward,
                   lambda a, atol, rtol, hermitian: AV(_batch(a) + (a.shape[-1], a.shape[-2]), a.dtype),
                   (_pinv_vjp,), (0, "out"), arity=1, backward_name="LinalgPinvBackward0"))
