"""`tracegrad.linalg`, as `torch.linalg`: norms, inverses and solves, determinants, decompositions, products.

The decompositions and inverses are registry primitives running numpy.linalg (batched over leading dims), with
VJPs written in tracegrad ops (`ops/linalg_primitives.py`); the rest is composed from other ops. Inputs must be
float32 or float64, as PyTorch's CPU linalg requires; a singular or non positive-definite input raises
`LinAlgError` with PyTorch's message. Under `tracegrad.compile` the primitives are opaque ops running numpy.

>>> import tracegrad as tg
>>> A = tg.tensor([[4.0, 1.0], [1.0, 3.0]])
>>> tg.linalg.solve(A, tg.tensor([1.0, 2.0]))
tensor([0.0909, 0.6364])
>>> tg.linalg.det(A), tg.linalg.matrix_norm(A, ord=1)
(tensor(11.), tensor(5.))
>>> tg.linalg.cholesky(A)
tensor([[2.0000, 0.0000],
        [0.5000, 1.6583]])
"""
from __future__ import annotations

import builtins
import math
import warnings
from collections import namedtuple

import numpy as np

from . import dtypes
from ._tensor import Tensor, apply
from .creation import zeros_like
from .ops import functions as F
from .ops import linalg_primitives as LP
from .ops.base import _named, _tensor
from .ops.linalg import outer
from .ops.linalg_primitives import LinAlgError
from .ops.shapes import broadcast_shapes, fmt, normalize_dim

__all__ = ["LinAlgError", "cholesky", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv", "lstsq", "matmul",
           "matrix_norm", "matrix_power", "matrix_rank", "multi_dot", "norm", "outer", "pinv", "qr", "slogdet",
           "solve", "svd", "svdvals", "vecdot", "vector_norm"]

matmul = F.matmul


def _return_type(name, fields):
    cls = namedtuple(name, fields)
    cls.__repr__ = lambda self: (f"tracegrad.return_types.{name}(\n" +
                                 ",\n".join(f"{k}={v!r}" for k, v in zip(fields, self)) + ")")
    return cls


slogdet_result = _return_type("linalg_slogdet", ["sign", "logabsdet"])
eigh_result = _return_type("linalg_eigh", ["eigenvalues", "eigenvectors"])
qr_result = _return_type("linalg_qr", ["Q", "R"])
svd_result = _return_type("linalg_svd", ["U", "S", "Vh"])
lstsq_result = _return_type("linalg_lstsq", ["solution", "residuals", "rank", "singular_values"])


# ------------------------------------------------------------------------------------------ checks
def _type_name(dt) -> str:
    return dt.tensor_type.removesuffix("Tensor")  # PyTorch's scalar-type names: Float, Double, Long, Half


def _check_float(name: str, a: Tensor) -> None:
    if not a.dtype.is_floating_point:
        raise RuntimeError(f"{name}: Expected a floating point or complex tensor as input. Got {_type_name(a.dtype)}")
    if a.dtype not in (dtypes.float32, dtypes.float64):
        raise RuntimeError(f"{name}: Low precision dtypes not supported. Got {_type_name(a.dtype)}")


def _check_matrix(name: str, a: Tensor, square: bool = True) -> None:
    if a.ndim < 2:
        raise RuntimeError(f"{name}: The input tensor A must have at least 2 dimensions.")
    if square and a.shape[-1] != a.shape[-2]:
        raise RuntimeError(f"{name}: A must be batches of square matrices, but they are {a.shape[-2]} by "
                           f"{a.shape[-1]} matrices")


def _square_float(name: str, a) -> Tensor:
    a = _tensor(a)
    _check_matrix(name, a)
    _check_float(name, a)
    return a


# ------------------------------------------------------------------------------------------ inverses, solves
def inv(A: Tensor) -> Tensor:
    """The inverse of each square matrix of A (..., n, n); a singular one raises `LinAlgError`.

    >>> import tracegrad as tg
    >>> tg.linalg.inv(tg.tensor([[2.0, 0.0], [0.0, 4.0]]))
    tensor([[0.5000, 0.0000],
            [0.0000, 0.2500]])
    """
    return apply(LP.inv, _square_float("linalg.inv", A))


def solve(A: Tensor, B: Tensor, *, left: bool = True) -> Tensor:
    """X with A X = B (or X A = B with ``left=False``); B is a batch of vectors (..., n) or matrices (..., n, k),
    batch dims broadcast.

    >>> import tracegrad as tg
    >>> tg.linalg.solve(tg.eye(2) * 2, tg.ones(3, 2, 1)).shape
    tracegrad.Size([3, 2, 1])
    """
    A, B = _square_float("linalg.solve", A), _tensor(B)
    if A.dtype is not B.dtype:
        raise RuntimeError(f"linalg.solve: Expected A and B to have the same dtype, but found A of type "
                           f"{_type_name(A.dtype)} and B of type {_type_name(B.dtype)} instead")
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    if not left:
        if vector:
            raise RuntimeError("linalg.solve: Vector broadcasting of the left hand side is not supported for "
                               "left=False. In this case linalg.solve is equivalent to B / A.squeeze(-1)")
        return solve(A.mT, B.mT).mT
    b = B.unsqueeze(-1) if vector else B
    if b.ndim < 2 or b.shape[-2] != A.shape[-1]:
        rows, cols = (b.shape[-2], b.shape[-1]) if b.ndim >= 2 else (b.shape[-1], 1)
        raise RuntimeError(f"linalg.solve: Incompatible shapes of A and B for the equation AX = B "
                           f"({A.shape[-2]}x{A.shape[-1]} and {rows}x{cols})")
    broadcast_shapes("linalg.solve", tuple(A.shape[:-2]), tuple(b.shape[:-2]))
    x = apply(LP.solve, A, b)
    return x.squeeze(-1) if vector else x


def _pinv_tolerances(a: Tensor, atol, rtol) -> tuple[float, float]:
    """PyTorch's defaults: rtol = eps * max(m, n) unless an atol > 0 alone is given (then rtol = 0)."""
    if rtol is None:
        rtol = 0.0 if atol is not None and atol > 0 else float(np.finfo(a.dtype.np).eps) * builtins.max(a.shape[-2:])
    return float(0.0 if atol is None else atol), float(rtol)


def pinv(A: Tensor, rcond=None, hermitian: bool = False, *, atol=None, rtol=None) -> Tensor:
    """The Moore-Penrose pseudo-inverse (n, m) of each (m, n) matrix: singular values up to
    ``max(atol, rtol * largest)`` count as zero (`rcond` is the old name of rtol).

    >>> import tracegrad as tg
    >>> tg.linalg.pinv(tg.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]))
    tensor([[1.0000, 0.0000, 0.0000],
            [0.0000, 0.0000, 0.5000]])
    """
    A = _tensor(A)
    if A.ndim < 2 or A.dtype not in (dtypes.float32, dtypes.float64):
        raise RuntimeError(f"linalg.pinv({_type_name(A.dtype)}{{{fmt(A.shape)}}}): expected a tensor with 2 or more "
                           f"dimensions of float, double, cfloat or cdouble types")
    if rcond is not None:
        rtol = rcond
    atol, rtol = _pinv_tolerances(A, atol, rtol)
    return apply(LP.pinv, A, atol=atol, rtol=rtol, hermitian=bool(hermitian))


def matrix_power(A: Tensor, n: int) -> Tensor:
    """A multiplied by itself n times (n = 0: the identity; n < 0: the inverse's power), by repeated squaring in
    PyTorch's order (so results round alike).

    >>> import tracegrad as tg
    >>> tg.linalg.matrix_power(tg.tensor([[1, 1], [0, 1]]), 5)
    tensor([[1, 5],
            [0, 1]])
    """
    A = _tensor(A)
    _check_matrix("linalg.matrix_power", A)
    if n == 0:
        return F.expand(F.to(_tensor_of(np.eye(A.shape[-1])), A.dtype), *A.shape)
    a = A
    if n < 0:
        a, n = inv(A), -n
    if n == 1:
        return F.clone(a)
    if n in (2, 3):
        return a @ a if n == 2 else (a @ a) @ a
    z = result = None
    while n > 0:  # NOTE: PyTorch's binary decomposition of n, in its order of products
        bit, n = n % 2, n // 2
        z = a if z is None else z @ z
        if bit:
            result = z if result is None else result @ z
    return result


def _tensor_of(array) -> Tensor:
    return Tensor._make(np.asarray(array))


# ------------------------------------------------------------------------------------------ determinants
def det(A: Tensor) -> Tensor:
    """The determinant of each square matrix; its gradient is g * det * A^-T (A must be invertible there).

    >>> import tracegrad as tg
    >>> tg.linalg.det(tg.tensor([[1.0, 2.0], [3.0, 4.0]]))
    tensor(-2.)
    """
    return apply(LP.det, _square_float("linalg.det", A))


def slogdet(A: Tensor):
    """(sign, log|det|) of each square matrix: the determinant without overflow.

    >>> import tracegrad as tg
    >>> tg.linalg.slogdet(tg.tensor([[1.0, 2.0], [3.0, 4.0]]))
    tracegrad.return_types.linalg_slogdet(
    sign=tensor(-1.),
    logabsdet=tensor(0.6931))
    """
    A = _square_float("linalg.slogdet", A)
    sign, logabsdet = LP.unpack(apply(LP.slogdet, A), [(), ()])
    return slogdet_result(sign.detach(), _named(logabsdet, "LinalgSlogdetBackward0"))


def logdet(A: Tensor) -> Tensor:
    """log(det(A)): nan where the determinant is negative, -inf where it is zero (`torch.logdet`).

    >>> import tracegrad as tg
    >>> tg.logdet(tg.tensor([[2.0, 0.0], [0.0, 3.0]]))
    tensor(1.7918)
    """
    sign, logabsdet = slogdet(_square_float("logdet", A))
    return _named(F.where(sign < 0, math.nan, logabsdet), "LogdetBackward0")


# ------------------------------------------------------------------------------------------ decompositions
def cholesky(A: Tensor, *, upper: bool = False) -> Tensor:
    """The lower-triangular L with A = L L^T (``upper=True``: L^T) of each symmetric positive-definite matrix;
    only A's lower triangle is read.

    >>> import tracegrad as tg
    >>> tg.linalg.cholesky(tg.tensor([[4.0, 2.0], [2.0, 5.0]]), upper=True)
    tensor([[2., 1.],
            [0., 2.]])
    """
    L = apply(LP.cholesky, _square_float("linalg.cholesky", A))
    return _named(L.mT, "LinalgCholeskyExBackward0") if upper else L


def qr(A: Tensor, mode: str = "reduced"):
    """(Q, R) with A = Q R: Q with orthonormal columns, R upper triangular; `mode` 'reduced' (Q is m x k,
    k = min(m, n)), 'complete' (Q is m x m) or 'r' (R only; Q is empty).

    >>> import tracegrad as tg
    >>> Q, R = tg.linalg.qr(tg.tensor([[3.0, 1.0], [4.0, 2.0]]))
    >>> R
    tensor([[-5.0000, -2.2000],
            [ 0.0000,  0.4000]])
    """
    A = _tensor(A)
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), 'r', or "
                           f"'complete'")
    _check_matrix("linalg.qr", A, square=False)
    _check_float("linalg.qr", A)
    q, r = LP.unpack(apply(LP.qr, A, mode=mode), LP.qr_shapes(*A.shape[-2:], mode))
    if mode == "r":
        q = q.reshape(0).detach()
    return qr_result(_named(q, "LinalgQrBackward0"), _named(r, "LinalgQrBackward0"))


def _check_uplo(uplo: str) -> None:
    if uplo not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {uplo}")


def eigh(A: Tensor, UPLO: str = "L"):  # noqa: N803 - PyTorch's name
    """(eigenvalues ascending, eigenvectors as columns) of each symmetric matrix, reading its `UPLO` triangle.
    The eigenvectors' gradient needs distinct eigenvalues.

    >>> import tracegrad as tg
    >>> tg.linalg.eigh(tg.tensor([[2.0, 1.0], [1.0, 2.0]])).eigenvalues
    tensor([1., 3.])
    """
    A = _square_float("linalg.eigh", A)
    _check_uplo(UPLO)
    w, v = LP.eigh_raw(A, UPLO)
    return eigh_result(_named(w, "LinalgEighBackward0"), _named(v, "LinalgEighBackward0"))


def eigvalsh(A: Tensor, UPLO: str = "L") -> Tensor:  # noqa: N803 - PyTorch's name
    """The eigenvalues (ascending) of each symmetric matrix; their gradient is V diag(g) V^T.

    >>> import tracegrad as tg
    >>> tg.linalg.eigvalsh(tg.tensor([[2.0, 1.0], [1.0, 2.0]]))
    tensor([1., 3.])
    """
    A = _square_float("linalg.eigvalsh", A)
    _check_uplo(UPLO)
    return apply(LP.eigvalsh, A, uplo=UPLO)


def svd(A: Tensor, full_matrices: bool = True, *, driver=None):
    """(U, S, Vh) with A = U diag(S) Vh, S descending; `full_matrices=False` gives the reduced U (m, k) and
    Vh (k, n). The singular vectors' gradient needs distinct singular values.

    >>> import tracegrad as tg
    >>> tg.linalg.svd(tg.tensor([[3.0, 0.0], [0.0, -4.0]])).S
    tensor([4., 3.])
    """
    A = _tensor(A)
    _check_matrix("linalg.svd", A, square=False)
    _check_float("linalg.svd", A)
    u, s, vh = LP.svd_raw(A, bool(full_matrices))
    return svd_result(*(_named(t, "LinalgSvdBackward0") for t in (u, s, vh)))


def svdvals(A: Tensor, *, driver=None) -> Tensor:
    """The singular values of each matrix, descending.

    >>> import tracegrad as tg
    >>> tg.linalg.svdvals(tg.tensor([[3.0, 0.0], [0.0, -4.0]]))
    tensor([4., 3.])
    """
    A = _tensor(A)
    _check_matrix("linalg.svdvals", A, square=False)
    _check_float("linalg.svdvals", A)
    return apply(LP.svdvals, A)


def matrix_rank(A: Tensor, *, atol=None, rtol=None, hermitian: bool = False) -> Tensor:
    """The number of singular values above ``max(atol, rtol * largest)`` (int64), per matrix.

    >>> import tracegrad as tg
    >>> tg.linalg.matrix_rank(tg.tensor([[1.0, 2.0], [2.0, 4.0]]))
    tensor(1)
    """
    A = _tensor(A)
    if A.dtype not in (dtypes.float32, dtypes.float64):
        raise RuntimeError("This function doesn't handle types other than float and double")
    _check_matrix("torch.linalg.matrix_rank", A, square=False)
    atol, rtol = _pinv_tolerances(A, atol, rtol)
    s = F.abs(eigvalsh(A)) if hermitian else svdvals(A)
    if A.numel() == 0:
        return F.sum(s.detach() > 0, -1)
    tol = F.maximum(F.amax(s, -1, keepdim=True) * rtol, atol)
    return F.sum((s > tol).detach(), -1)


_LSTSQ_DRIVERS = ("gels", "gelsy", "gelsd", "gelss")


def lstsq(A: Tensor, B: Tensor, rcond=None, *, driver=None):
    """The least-squares solution X of A X = B (minimum norm where A is rank-deficient), as
    (solution, residuals, rank, singular_values) with PyTorch's CPU drivers' conventions: `rank` is given except by
    'gels', `singular_values` only by 'gelsd'/'gelss', `residuals` (squared, per column) only for m > n, full rank
    and a driver other than the default 'gelsy'. Computed through `pinv`, so it is differentiable.

    >>> import tracegrad as tg
    >>> A = tg.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    >>> tg.linalg.lstsq(A, tg.tensor([[1.0], [2.0], [4.0]])).solution
    tensor([[0.8333],
            [1.5000]])
    """
    A, B = _tensor(A), _tensor(B)
    driver = "gelsy" if driver is None else driver
    if driver not in _LSTSQ_DRIVERS:
        raise RuntimeError("torch.linalg.lstsq: parameter `driver` should be one of (gels, gelsy, gelsd, gelss)")
    _check_float("torch.linalg.lstsq", A)
    if A.dtype is not B.dtype:
        raise RuntimeError(f"torch.linalg.lstsq: Expected input and other to have the same dtype, but got input's "
                           f"dtype {A.dtype} and other's dtype {B.dtype}")
    if A.ndim < 2:
        raise RuntimeError("torch.linalg.lstsq: input must have at least 2 dimensions.")
    vector = B.ndim == A.ndim - 1
    b = B.unsqueeze(-1) if vector else B
    if b.shape[-2] != A.shape[-2]:
        raise RuntimeError("torch.linalg.lstsq: input.size(-2) should match other.size(-2)")
    m, n = A.shape[-2:]
    rtol = float(np.finfo(A.dtype.np).eps) * builtins.max(m, n) if rcond is None or rcond < 0 else float(rcond)
    x = pinv(A, rtol=rtol) @ b
    empty = F.to(_tensor_of(np.zeros(0)), A.dtype)
    rank = matrix_rank(A, rtol=rtol) if driver != "gels" else F.to(_tensor_of(np.zeros(0)), dtypes.int64)
    values = svdvals(A) if driver in ("gelsd", "gelss") else empty
    residuals = empty
    if m > n and driver != "gelsy" and bool((matrix_rank(A, rtol=rtol) == n).all()):
        residuals = F.sum(F.square(A @ x - b), -2)
    return lstsq_result(x.squeeze(-1) if vector else x, residuals, rank, values)


# ------------------------------------------------------------------------------------------ norms
def vector_norm(x: Tensor, ord=2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """The `ord`-norm of x over `dim` (all elements by default): ord 2, 1, inf, -inf, 0 or any number.

    >>> import tracegrad as tg
    >>> tg.linalg.vector_norm(tg.tensor([[3.0, -4.0], [0.0, 0.0]]), dim=1)
    tensor([5., 0.])
    """
    x = _tensor(x)
    if isinstance(ord, str) or not isinstance(ord, (int, float, np.number)):
        raise TypeError(f"linalg_vector_norm(): argument 'ord' must be Number, not {type(ord).__name__}")
    if dtype is not None:
        x = F.to(x, dtype)
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got "
                           f"{_type_name(x.dtype)}")
    return F.norm(x, ord, dim, keepdim)


_MATRIX_ORDS = ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf)


def matrix_norm(A: Tensor, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None) -> Tensor:
    """The matrix norm over the two dims `dim`: 'fro', 'nuc' (sum of singular values), 1 / -1 (max / min column
    sum of |A|), inf / -inf (row sums), 2 / -2 (largest / smallest singular value).

    >>> import tracegrad as tg
    >>> A = tg.tensor([[1.0, -2.0], [3.0, 4.0]])
    >>> tg.linalg.matrix_norm(A, ord=float("inf")), tg.linalg.matrix_norm(A, ord="nuc")
    (tensor(7.), tensor(7.0711))
    """
    A = _tensor(A)
    if dtype is not None:
        A = F.to(A, dtype)
    if A.ndim < 2:
        raise RuntimeError("linalg.matrix_norm: The input tensor A must have at least 2 dimensions.")
    if isinstance(ord, str) and ord not in ("fro", "nuc"):
        raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
    if not isinstance(ord, str) and ord not in _MATRIX_ORDS:
        raise RuntimeError(f"linalg.matrix_norm: Order {ord:g} not supported.")
    _check_float("linalg.matrix_norm", A)
    dims = tuple(normalize_dim("linalg.matrix_norm", d, A.ndim) for d in dim)
    if len(dims) != 2 or dims[0] == dims[1]:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different. Got ({dim[0]}, {dim[1]})")
    if ord == "fro":
        return F.norm(A, 2, dims, keepdim)
    if ord in ("nuc", 2, -2):
        rest = [d for d in range(A.ndim) if d not in dims]
        s = svdvals(F.permute(A, *rest, *dims))
        out = F.sum(s, -1) if ord == "nuc" else (F.amax if ord == 2 else F.amin)(s, -1)
        for d in sorted(dims) if keepdim else ():
            out = out.unsqueeze(d)
        return out
    row, col = dims
    summed, extreme = (row, col) if ord in (1, -1) else (col, row)
    s = F.sum(F.abs(A), summed, keepdim=True)
    out = (F.amax if ord > 0 else F.amin)(s, extreme, keepdim=True)
    return out if keepdim else out.squeeze(builtins.max(dims)).squeeze(builtins.min(dims))


def norm(A: Tensor, ord=None, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """A vector norm (dim an int or 1-tuple, or A 1-D) or a matrix norm (dim a 2-tuple, or A 2-D with `ord`);
    with neither `ord` nor `dim`, the 2-norm of all elements.

    >>> import tracegrad as tg
    >>> tg.linalg.norm(tg.tensor([[3.0, 4.0], [0.0, 0.0]])), tg.linalg.norm(tg.eye(2), ord=2)
    (tensor(5.), tensor(1.))
    """
    A = _tensor(A)
    if dim is not None:
        dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
        if len(dims) == 1:
            return vector_norm(A, 2 if ord is None else ord, dims, keepdim, dtype=dtype)
        return matrix_norm(A, "fro" if ord is None else ord, dims, keepdim, dtype=dtype)
    if ord is None:
        return vector_norm(A, 2, None, keepdim, dtype=dtype)
    if A.ndim not in (1, 2):
        raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. Got "
                           f"{A.ndim}D.")
    if A.ndim == 1:
        return vector_norm(A, ord, None, keepdim, dtype=dtype)
    return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)


# ------------------------------------------------------------------------------------------ products
def cross(input: Tensor, other: Tensor, *, dim: int = -1) -> Tensor:  # noqa: A002 - PyTorch's name
    """The cross product of 3-vectors along `dim` (input and other broadcast).

    >>> import tracegrad as tg
    >>> tg.linalg.cross(tg.tensor([1.0, 0.0, 0.0]), tg.tensor([0.0, 1.0, 0.0]))
    tensor([0., 0., 1.])
    """
    a, b = _tensor(input), _tensor(other)
    if a.dtype is not b.dtype:
        raise RuntimeError(f"linalg.cross: expected scalar type {_type_name(a.dtype)} but found "
                           f"{_type_name(b.dtype)}")
    if a.ndim != b.ndim:
        raise RuntimeError(f"linalg.cross: inputs must have the same number of dimensions. Got {a.ndim} and {b.ndim}")
    shape = broadcast_shapes("linalg.cross", tuple(a.shape), tuple(b.shape))
    d = normalize_dim("linalg.cross", dim, len(shape))
    if a.shape[d] != 3 or b.shape[d] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {a.shape[d]} and "
                           f"{b.shape[d]}")
    return F.cross(a, b, dim=d)


def vecdot(x: Tensor, y: Tensor, *, dim: int = -1) -> Tensor:
    """The dot product of x and y (broadcast) along `dim`.

    >>> import tracegrad as tg
    >>> tg.linalg.vecdot(tg.tensor([[1.0, 2.0], [3.0, 4.0]]), tg.tensor([1.0, 1.0]))
    tensor([3., 7.])
    """
    return _named(F.sum(F.mul(x, y), dim), "LinalgVecdotBackward0")


def _chain_order(shapes) -> list:
    """The split table of the cheapest order of a chain of products (Cormen 15.2, as PyTorch's multi_dot)."""
    n = len(shapes)
    p = [shapes[0][0]] + [s[1] for s in shapes]
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = math.inf
            for k in range(i, j):
                q = cost[i][k] + cost[k + 1][j] + p[i] * p[k + 1] * p[j + 1]
                if q < cost[i][j]:
                    cost[i][j], split[i][j] = q, k
    return split


def multi_dot(tensors) -> Tensor:
    """The product of a chain of matrices, multiplied in the cheapest order; the first may be a 1-D row vector and
    the last a 1-D column vector.

    >>> import tracegrad as tg
    >>> tg.linalg.multi_dot([tg.ones(3), tg.ones(3, 4), tg.ones(4)])
    tensor(12.)
    """
    tensors = [_tensor(t) for t in tensors]
    n = len(tensors)
    if n < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {n}")
    for i, t in enumerate(tensors):
        allowed = (1, 2) if i in (0, n - 1) else (2,)
        if t.ndim not in allowed:
            which = "first" if i == 0 else "last" if i == n - 1 else None
            if which:
                raise RuntimeError(f"multi_dot(): the {which} tensor must be 1D or 2D but got {t.ndim}D")
            raise RuntimeError(f"multi_dot(): tensor {i} must be 2D but got {t.ndim}D")
        if t.dtype is not tensors[0].dtype:
            raise RuntimeError(f"multi_dot(): all tensors must have be the same dtype but tensor 0 is "
                               f"{tensors[0].dtype} and tensor {i} is {t.dtype}")
    first_vec, last_vec = tensors[0].ndim == 1, tensors[-1].ndim == 1
    mats = list(tensors)
    if first_vec:
        mats[0] = mats[0].unsqueeze(0)
    if last_vec:
        mats[-1] = mats[-1].unsqueeze(-1)
    for i in range(n - 1):
        if mats[i].shape[1] != mats[i + 1].shape[0]:
            raise RuntimeError(f"multi_dot(): tensors {i} and {i + 1} with shapes {fmt(tensors[i].shape)} and "
                               f"{fmt(tensors[i + 1].shape)} cannot be multiplied")
    if n == 2:
        out = mats[0] @ mats[1]
    elif n == 3:  # PyTorch compares the two orders' costs directly
        a, b = mats[0].shape
        c, d = mats[2].shape
        out = mats[0] @ (mats[1] @ mats[2]) if a * c * (b + d) > b * d * (a + c) else (mats[0] @ mats[1]) @ mats[2]
    else:
        split = _chain_order([tuple(m.shape) for m in mats])

        def product(i, j):
            return mats[i] if i == j else product(i, split[i][j]) @ product(split[i][j] + 1, j)

        out = product(0, n - 1)
    if first_vec and last_vec:
        return out.reshape(())
    if first_vec:
        return out.squeeze(0)
    return out.squeeze(-1) if last_vec else out


def diagonal(A: Tensor, *, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """The diagonals of A over (dim1, dim2), `offset` above (> 0) or below (< 0) the main one, as the last dim.

    >>> import tracegrad as tg
    >>> tg.linalg.diagonal(tg.arange(9.0).reshape(3, 3), offset=1)
    tensor([1., 5.])
    """
    return F.diagonal(A, offset, dim1, dim2)


def inverse(input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
    """`torch.inverse`: `linalg.inv`.

    >>> import tracegrad as tg
    >>> tg.tensor([[2.0, 0.0], [0.0, 4.0]]).inverse()[1, 1]
    tensor(0.2500)
    """
    return inv(input)


def torch_cholesky(input: Tensor, upper: bool = False) -> Tensor:  # noqa: A002 - PyTorch's name
    """`torch.cholesky` (PyTorch deprecates it for `linalg.cholesky`).

    >>> import tracegrad as tg
    >>> tg.cholesky(tg.tensor([[4.0, 2.0], [2.0, 5.0]]))
    tensor([[2., 0.],
            [1., 2.]])
    """
    global _CHOLESKY_WARNED
    if not _CHOLESKY_WARNED:  # NOTE: PyTorch warns once per process
        _CHOLESKY_WARNED = True
        warnings.warn("torch.cholesky is deprecated in favor of torch.linalg.cholesky and will be removed in a future "
                      "PyTorch release.\nL = torch.cholesky(A)\nshould be replaced with\nL = torch.linalg.cholesky(A)"
                      "\nand\nU = torch.cholesky(A, upper=True)\nshould be replaced with\n"
                      "U = torch.linalg.cholesky(A).mH\nThis transform will produce equivalent results for all valid "
                      "(symmetric positive definite) inputs.", UserWarning, stacklevel=2)
    return cholesky(input, upper=upper)


_CHOLESKY_WARNED = False


def pinverse(input: Tensor, rcond: float = 1e-15) -> Tensor:  # noqa: A002 - PyTorch's name
    """`torch.pinverse`: `linalg.pinv` with singular values up to ``rcond * largest`` dropped.

    >>> import tracegrad as tg
    >>> tg.pinverse(tg.tensor([[2.0, 0.0]]))
    tensor([[0.5000],
            [0.0000]])
    """
    return pinv(input, rtol=rcond)


torch_svd_result = _return_type("svd", ["U", "S", "V"])
torch_qr_result = _return_type("qr", ["Q", "R"])


def torch_svd(input: Tensor, some: bool = True, compute_uv: bool = True):  # noqa: A002 - PyTorch's name
    """`torch.svd`: (U, S, V) with A = U diag(S) V^T (V, not Vh); `some=False` gives full U and V.

    >>> import tracegrad as tg
    >>> U, S, V = tg.svd(tg.tensor([[0.0, 2.0], [1.0, 0.0]]))
    >>> S, (U * S) @ V.T
    (tensor([2., 1.]), tensor([[0., 2.],
            [1., 0.]]))
    """
    u, s, vh = svd(input, full_matrices=not some)
    if not compute_uv:
        return torch_svd_result(zeros_like(u.detach()), s, zeros_like(vh.mT.detach()))
    return torch_svd_result(u, s, vh.mT)


def torch_qr(input: Tensor, some: bool = True):  # noqa: A002 - PyTorch's name
    """`torch.qr`: `linalg.qr` with mode 'reduced' (`some=True`) or 'complete'.

    >>> import tracegrad as tg
    >>> tg.qr(tg.eye(2)).R
    tensor([[1., 0.],
            [0., 1.]])
    """
    return torch_qr_result(*qr(input, "reduced" if some else "complete"))


# ------------------------------------------------------------------------------------------ Tensor methods
for _name, _fn in {"inverse": inverse, "det": det, "logdet": logdet, "slogdet": slogdet, "cholesky": torch_cholesky,
                   "pinverse": pinverse, "matrix_power": matrix_power,
                   "svd": torch_svd, "qr": torch_qr}.items():
    setattr(Tensor, _name, _fn)
