"""tracegrad.linalg against torch.linalg: values, gradients (float64 central differences and torch's autograd),
PyTorch's errors, and the ops inside a compiled function.

Decompositions are compared where they are unique: eigenvectors and singular vectors up to sign (the losses use
their squares, which no sign flip changes), so the gradients compare with torch's too.
"""
import math

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.autograd import gradcheck, gradgradcheck

pytestmark = pytest.mark.filterwarnings("ignore:torch.cholesky is deprecated")

_rng = np.random.default_rng(7)
SQ = _rng.standard_normal((2, 3, 3))
TALL = _rng.standard_normal((2, 4, 3))
WIDE = _rng.standard_normal((3, 5))
RHS = _rng.standard_normal((2, 3, 2))
W = {k: _rng.standard_normal(s) for k, s in [("v3", (2, 3)), ("m33", (2, 3, 3)), ("m43", (2, 4, 3)),
                                             ("m35", (3, 5)), ("v2", (2,)), ("m55", (5, 5)), ("m44", (2, 4, 4))]}


def spd(m, a):
    return a @ a.mT + m.eye(a.shape[-1], dtype=a.dtype)


def sym(m, a):
    return a + a.mT


def w(m, key, like):
    return m.tensor(W[key], dtype=like.dtype)


# name -> (fn(m, *inputs) giving one tensor, inputs): every loss is invariant under eigenvector/singular-vector signs
CASES = {
    "inv": (lambda m, a: m.linalg.inv(a), [SQ]),
    "inverse-method": (lambda m, a: a.inverse() * 2, [SQ[0]]),
    "solve": (lambda m, a, b: m.linalg.solve(a, b), [SQ, RHS]),
    "solve-vector-broadcast": (lambda m, a, b: m.linalg.solve(a, b) + m.linalg.solve(a[0], b.unsqueeze(-1))[..., 0],
                               [SQ, RHS[..., 0]]),
    "solve-left-false": (lambda m, a, b: m.linalg.solve(a, b, left=False), [SQ, RHS.swapaxes(-1, -2)]),
    "det": (lambda m, a: m.linalg.det(a) + m.det(a[0]), [SQ]),
    "slogdet-logdet": (lambda m, a: m.linalg.slogdet(a).logabsdet * m.linalg.slogdet(a).sign + m.logdet(spd(m, a)),
                       [SQ]),
    "cholesky": (lambda m, a: m.linalg.cholesky(spd(m, a)) + m.cholesky(spd(m, a), upper=True), [SQ]),
    "qr-tall": (lambda m, a: m.cat([x.flatten() for x in m.linalg.qr(a)]), [TALL]),
    "qr-wide": (lambda m, a: m.cat([x.flatten() for x in m.linalg.qr(a)]), [WIDE]),
    "qr-complete": (lambda m, a: m.cat([x.flatten() for x in m.linalg.qr(a, mode="complete")]), [SQ]),
    "eigh": (lambda m, a: (m.linalg.eigh(sym(m, a)).eigenvalues * w(m, "v3", a)).sum() +
             (m.linalg.eigh(sym(m, a), UPLO="U").eigenvectors ** 2 * w(m, "m33", a)).sum(), [SQ]),
    "eigvalsh": (lambda m, a: m.linalg.eigvalsh(sym(m, a)), [SQ]),
    "svd-tall": (lambda m, a: (m.linalg.svd(a, full_matrices=False).U ** 2 * w(m, "m43", a)[..., :3]).sum() +
                 m.linalg.svd(a, full_matrices=False).S.sum() + (m.linalg.svd(a).Vh ** 2 * w(m, "m33", a)).sum(),
                 [TALL]),
    "svd-wide": (lambda m, a: (m.linalg.svd(a, full_matrices=False).Vh ** 2 * w(m, "m35", a)).sum() +
                 (m.linalg.svd(a, full_matrices=False).S * m.arange(3.0, dtype=a.dtype)).sum(), [WIDE]),
    "svdvals": (lambda m, a: m.linalg.svdvals(a), [TALL]),
    "pinv": (lambda m, a, b: m.linalg.pinv(a).sum() + m.pinverse(b).sum(), [TALL, WIDE]),
    "pinv-hermitian": (lambda m, a: m.linalg.pinv(sym(m, a), hermitian=True), [SQ]),
    "matrix_power": (lambda m, a: m.linalg.matrix_power(a, 6) + m.linalg.matrix_power(a, -2) + a.matrix_power(1),
                     [SQ * 0.5]),
    "lstsq": (lambda m, a, b: m.linalg.lstsq(a, b).solution, [TALL, _rng.standard_normal((2, 4, 2))]),
    "cross": (lambda m, a, b: m.linalg.cross(a, b) + m.cross(a, b, dim=1), [SQ[:, 0], SQ[:1, 1]]),
    "multi_dot": (lambda m, a, b, c, d: m.linalg.multi_dot([a, b, c, d]),
                  [WIDE[0], _rng.standard_normal((5, 2)), _rng.standard_normal((2, 6)), _rng.standard_normal((6, 3))]),
    "diagonal": (lambda m, a: m.linalg.diagonal(a, offset=1) + m.diagonal(a, -1, 2, 1) + a.diagonal(0, 0, 1)[:2],
                 [TALL[:, :3]]),
    "vector_norm": (lambda m, a: m.stack([m.linalg.vector_norm(a, o, dim=(0, 2)) for o in (2, 1, 3.5, math.inf)]),
                    [TALL]),
    "matrix_norm": (lambda m, a: m.stack([m.linalg.matrix_norm(a, o, dim=(2, 0)) for o in
                                          ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf)]), [TALL]),
    "norm": (lambda m, a: m.stack([m.linalg.norm(a), m.linalg.norm(a[0], 2), m.linalg.norm(a[0, 0], 3),
                                   m.norm(a[0], p="nuc"), a.norm(p=1, dim=(0, 1)).sum(), a.norm()]), [TALL]),
}


def _args(m, arrays, dtype, grad=False):
    # NOTE: contiguous copies: gradcheck perturbs an input through a flat view of its data
    return [m.tensor(np.ascontiguousarray(a, dtype), requires_grad=grad) for a in arrays]


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_float64(name):
    fn, arrays = CASES[name]
    assert gradcheck(lambda *xs: fn(tg, *xs), _args(tg, arrays, np.float64, True))


@pytest.mark.parametrize("name", list(CASES))
def test_values_and_gradients_match_torch(name):
    torch = pytest.importorskip("torch")
    fn, arrays = CASES[name]
    for dtype, tol in ((np.float64, 1e-9), (np.float32, 2e-4)):
        ours, theirs = _args(tg, arrays, dtype, True), _args(torch, arrays, dtype, True)
        out, ref = fn(tg, *ours), fn(torch, *theirs)
        assert out.dtype.name == str(ref.dtype).removeprefix("torch.") and tuple(out.shape) == tuple(ref.shape)
        np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=tol, atol=tol)
        weights = _rng.standard_normal(ref.shape).astype(dtype)
        grads = tg.autograd.grad((out * tg.tensor(weights)).sum(), ours)
        expected = torch.autograd.grad((ref * torch.tensor(weights)).sum(), theirs)
        for g, e in zip(grads, expected):
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("fn, arrays", [
    (lambda a: tg.linalg.inv(a), [SQ]),
    (lambda a: tg.linalg.det(a), [SQ[0]]),
    (lambda a: tg.linalg.cholesky(spd(tg, a)), [SQ[0]]),
    (lambda a: tg.linalg.eigh(sym(tg, a)).eigenvalues, [SQ[0]]),
    (lambda a: tg.linalg.svdvals(a), [WIDE]),
    (lambda a, b: tg.linalg.solve(a, b), [SQ[0], RHS[0]]),
], ids=["inv", "det", "cholesky", "eigvalsh", "svdvals", "solve"])
def test_second_order_gradients(fn, arrays):
    assert gradgradcheck(fn, _args(tg, arrays, np.float64, True))


def test_decompositions_reconstruct_and_are_orthonormal():
    a = tg.tensor(TALL)
    q, r = tg.linalg.qr(a)
    np.testing.assert_allclose((q @ r).numpy(), TALL, atol=1e-12)
    assert np.allclose(np.tril(r.numpy(), -1), 0) and tg.linalg.qr(a, mode="r").Q.shape == (0,)
    u, s, vh = tg.linalg.svd(a)
    assert (u.shape, s.shape, vh.shape) == ((2, 4, 4), (2, 3), (2, 3, 3))
    np.testing.assert_allclose((u[..., :3] * s.unsqueeze(-2) @ vh).numpy(), TALL, atol=1e-12)
    np.testing.assert_allclose((u.mT @ u).numpy(), np.broadcast_to(np.eye(4), (2, 4, 4)), atol=1e-12)
    U, S, V = tg.svd(a)
    np.testing.assert_allclose((U * S.unsqueeze(-2) @ V.mT).numpy(), TALL, atol=1e-12)
    wv = tg.linalg.eigh(tg.tensor(SQ + SQ.swapaxes(-1, -2)))
    np.testing.assert_allclose((wv.eigenvectors * wv.eigenvalues.unsqueeze(-2) @ wv.eigenvectors.mT).numpy(),
                               SQ + SQ.swapaxes(-1, -2), atol=1e-12)
    lst = tg.linalg.lstsq(tg.tensor(TALL), tg.tensor(RHS[:, :1].repeat(4, 1)), driver="gelsd")
    assert lst.rank.tolist() == [3, 3] and lst.singular_values.shape == (2, 3) and lst.residuals.shape == (2, 2)
    assert tg.linalg.matrix_rank(tg.tensor([[1.0, 2.0], [2.0, 4.0]])).item() == 1


def test_lstsq_and_rank_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)  # NOTE: its own inputs: the result must not depend on which tests ran before
    tall = rng.standard_normal((4, 3))
    a = np.concatenate([tall[:, :2], tall[:, :1] * 2], 1)  # rank 2
    b = rng.standard_normal((4, 2))
    for driver in ("gelsy", "gelsd", "gelss", "gels"):
        if driver == "gels":
            a = tall
        ours = tg.linalg.lstsq(tg.tensor(a), tg.tensor(b), driver=driver)
        theirs = torch.linalg.lstsq(torch.tensor(a), torch.tensor(b), driver=driver)
        for x, y in zip(ours, theirs):
            assert tuple(x.shape) == tuple(y.shape), driver
            np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-9, atol=1e-9, err_msg=driver)
    for hermitian, m in ((False, TALL), (True, SQ + SQ.swapaxes(-1, -2))):
        assert tg.linalg.matrix_rank(tg.tensor(m), hermitian=hermitian).tolist() == \
            torch.linalg.matrix_rank(torch.tensor(m), hermitian=hermitian).tolist()


ERRORS = [
    lambda m: m.linalg.inv(m.ones(2, 3)),
    lambda m: m.linalg.inv(m.ones(3)),
    lambda m: m.linalg.inv(m.zeros(3, 3)),
    lambda m: m.linalg.inv(m.stack([m.eye(3), m.zeros(3, 3)])),
    lambda m: m.linalg.inv(m.eye(3, dtype=m.long)),
    lambda m: m.linalg.inv(m.eye(3, dtype=m.half)),
    lambda m: m.linalg.det(m.ones(2, 3)),
    lambda m: m.linalg.cholesky(m.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, -1]])),
    lambda m: m.linalg.cholesky(m.stack([m.eye(2), -m.eye(2)])),
    lambda m: m.linalg.solve(m.eye(3), m.ones(4)),
    lambda m: m.linalg.solve(m.zeros(3, 3), m.ones(3)),
    lambda m: m.linalg.solve(m.eye(3), m.ones(3, dtype=m.float64)),
    lambda m: m.linalg.solve(m.eye(3), m.ones(2, 3)),
    lambda m: m.linalg.eigh(m.eye(3), UPLO="X"),
    lambda m: m.linalg.svd(m.eye(3, dtype=m.long)),
    lambda m: m.linalg.vector_norm(m.tensor([1, 2])),
    lambda m: m.norm(m.tensor([1, 2])),
    lambda m: m.linalg.vector_norm(m.eye(2), ord="fro"),
    lambda m: m.linalg.matrix_norm(m.ones(3)),
    lambda m: m.linalg.matrix_norm(m.eye(3), ord=3),
    lambda m: m.linalg.norm(m.ones(2, 2, 2), ord=2),
    lambda m: m.linalg.cross(m.ones(2), m.ones(2)),
    lambda m: m.linalg.multi_dot([m.ones(3)]),
    lambda m: m.linalg.multi_dot([m.ones(3), m.ones(4)]),
    lambda m: m.linalg.multi_dot([m.ones(2, 3, 3), m.ones(3, 3)]),
    lambda m: m.linalg.matrix_power(m.ones(2, 3), 2),
    lambda m: m.linalg.matrix_power(m.eye(2, dtype=m.long), -1),
    lambda m: m.linalg.qr(m.ones(2, 3), mode="x"),
    lambda m: m.linalg.pinv(m.eye(2, dtype=m.long)),
    lambda m: m.linalg.lstsq(m.ones(4, 3), m.ones(5, 2)),
    lambda m: m.logdet(m.eye(2, dtype=m.long)),
    lambda m: m.linalg.slogdet(m.ones(3)),
]


@pytest.mark.parametrize("k", range(len(ERRORS)))
def test_errors_are_pytorchs(k):
    torch = pytest.importorskip("torch")
    with pytest.raises(Exception) as theirs:
        ERRORS[k](torch)
    with pytest.raises(type(theirs.value).__mro__[1] if "LinAlgError" in type(theirs.value).__name__
                       else type(theirs.value)) as ours:
        ERRORS[k](tg)
    assert str(ours.value) == str(theirs.value).splitlines()[0]
    assert isinstance(ours.value, tg.linalg.LinAlgError) == ("LinAlgError" in type(theirs.value).__name__)


def test_derivatives_pytorch_does_not_define_raise():
    a = tg.tensor(TALL, requires_grad=True)
    with pytest.raises(RuntimeError, match="mode='r'"):
        tg.linalg.qr(a, mode="r").R.sum().backward()
    with pytest.raises(RuntimeError, match="mode='complete' and nrows > ncols"):
        tg.linalg.qr(a, mode="complete").R.sum().backward()


def test_norm_method_is_vector_norm_and_int_dtype_rules():
    x = tg.tensor([[3.0, -4.0], [0.0, 0.0]], requires_grad=True)
    assert x.norm(0).item() == 2 and x.norm(float("inf")).item() == 4
    x.norm(0).backward()
    assert x.grad.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert tg.linalg.matrix_power(tg.tensor([[1, 1], [0, 1]]), 0).tolist() == [[1, 0], [0, 1]]
    assert tg.linalg.vector_norm(tg.tensor([3, 4]), dtype=tg.float64).dtype is tg.float64


@pytest.mark.parametrize("backend", ["interpret", "numba"])
def test_under_compile_equals_eager(backend):
    a0, b0 = tg.tensor(SQ[0], requires_grad=True), tg.tensor(RHS[0])

    def step(a, b):
        s = a @ a.mT + tg.eye(3, dtype=a.dtype)
        loss = (tg.linalg.solve(a, b).sum() + tg.linalg.det(a) + tg.linalg.cholesky(s).sum() +
                tg.linalg.eigvalsh(s).sum() + tg.linalg.matrix_norm(a, "nuc") + tg.linalg.qr(a).R.sum())
        return loss, tg.autograd.grad(loss, [a])[0]

    compiled = tg.compile(step, backend=backend, **({"tiered": False} if backend == "numba" else {}))
    for got, expected in zip(compiled(a0, b0), step(a0, b0)):
        np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    with pytest.raises(tg.linalg.LinAlgError, match="not positive-definite"):
        tg.compile(lambda a: tg.linalg.cholesky(a), backend=backend)(-tg.eye(2))
