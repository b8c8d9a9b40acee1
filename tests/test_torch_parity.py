"""The op table run through PyTorch too (skipped when torch is not installed; tracegrad never needs it)."""
import numpy as np
import pytest
from op_table import make_inputs, variants

import tracegrad as tg

torch = pytest.importorskip("torch")
PARAMS, IDS = variants()
# Node names that follow from how PyTorch decomposes an op internally, not from what the op is:
# 2.5 / x is reciprocal(x) * 2.5 in PyTorch; matmul with a 1-D left operand ends in a squeeze or view.
KNOWN_NAME_DIFFERENCES = {("rdiv_scalar", "MulBackward0"), ("matmul", "SqueezeBackward4"),
                          ("matmul", "UnsafeViewBackward0")}


def _run(m, case, arrays, requires_grad):
    make = (lambda a: tg.tensor(a, requires_grad=requires_grad)) if m is tg else \
        (lambda a: torch.tensor(a, requires_grad=requires_grad))
    ts = [make(a) for a in arrays]
    return ts, case.fn(m, *ts)


@pytest.mark.parametrize("case,shapes", PARAMS, ids=IDS)
def test_same_values_gradients_and_grad_fn_names_as_pytorch(case, shapes):
    arrays = make_inputs(case, shapes, np.float32)
    ours_in, ours = _run(tg, case, arrays, case.grad)
    theirs_in, theirs = _run(torch, case, arrays, case.grad)
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
    if not case.grad:
        return
    name = theirs.grad_fn.name().replace("torch::autograd::", "")
    assert ours.grad_fn.name() == name or (case.name, name) in KNOWN_NAME_DIFFERENCES
    seed = np.random.default_rng(0).standard_normal(tuple(ours.shape)).astype(np.float32)
    ours.backward(tg.tensor(seed))
    theirs.backward(torch.tensor(seed))
    for a, b in zip(ours_in, theirs_in):
        if b.grad is None:
            assert a.grad is None or not a.grad.numpy().any()
        else:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)
