"""`autograd.functional`: Jacobians, Hessians and vector products, against closed forms and PyTorch."""
import numpy as np
import pytest

import tracegrad as tg


def _calls(m):
    F = m.autograd.functional
    x = m.tensor([1.0, 2.0, -0.5], dtype=m.float64)
    y = m.tensor([[0.3, -1.2]], dtype=m.float64)
    ones3, ones12 = m.ones(3, dtype=m.float64), m.ones(1, 2, dtype=m.float64)
    f1 = lambda a: a.sin() * a.sum()
    f2 = lambda a, b: (a[:2] * b.sum(), (a ** 2).sum() * b)
    s = lambda a, b: a.exp().sum() * b.sum() + (a[:2] ** 2 * b[0]).sum()
    return [F.jacobian(f1, x), F.jacobian(f2, (x, y)), F.hessian(lambda a: (a ** 3 * a.sum()).sum(), x),
            F.hessian(s, (x, y)), F.vjp(f1, x, ones3), F.jvp(f1, x, ones3), F.vhp(s, (x, y), (ones3, ones12)),
            F.hvp(lambda a: (a ** 3).sum(), x, ones3), F.jacobian(lambda a: m.zeros(2, dtype=m.float64) + 1, x)]


def _flat(o):
    if isinstance(o, (tuple, list)):
        return [z for q in o for z in _flat(q)]
    return [o.detach().numpy()]


def test_closed_forms():
    F = tg.autograd.functional
    x = tg.tensor([1.0, 2.0, -0.5], dtype=tg.float64)
    np.testing.assert_allclose(F.jacobian(lambda a: a ** 2, x).numpy(), np.diag(2 * x.numpy()))
    np.testing.assert_allclose(F.hessian(lambda a: (a ** 3).sum(), x).numpy(), np.diag(6 * x.numpy()))
    out, prod = F.jvp(lambda a: a * a, x, tg.ones(3, dtype=tg.float64))
    np.testing.assert_allclose(prod.numpy(), 2 * x.numpy())
    assert not out.requires_grad and not prod.requires_grad
    assert F.jacobian(lambda a: a * a, x, create_graph=True).requires_grad


def test_same_as_pytorch():
    torch = pytest.importorskip("torch")
    ours, theirs = _flat(_calls(tg)), _flat(_calls(torch))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_errors_name_the_function():
    F = tg.autograd.functional
    x = tg.ones(2)
    with pytest.raises(RuntimeError, match="independent of input 0. This is not allowed in strict mode"):
        F.jacobian(lambda a: tg.ones(2), x, strict=True)
    with pytest.raises(RuntimeError, match="The function given to hessian should return a single Tensor"):
        F.hessian(lambda a: a * 2, x)
    with pytest.raises(TypeError, match=r"The inputs\[0\] given to jacobian must be a Tensor, got list"):
        F.jacobian(lambda a: a, [[1.0]])
