"""Property tests: broadcasting and its gradients, for random shapes, against numpy."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tracegrad as tg

OPS = {"add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
       "mul": (lambda a, b: a * b, np.multiply), "maximum": (tg.maximum, np.maximum),
       "where": (lambda a, b: tg.where(a > b, a, b), lambda a, b: np.where(a > b, a, b))}


def _sum_to(g, shape):
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)


@settings(max_examples=60, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
       op=st.sampled_from(sorted(OPS)), seed=st.integers(0, 2 ** 16))
def test_broadcast_forward_and_gradient_shapes_and_sums(shapes, op, seed):
    fn, ref = OPS[op]
    rng = np.random.default_rng(seed)
    a_np, b_np = (rng.standard_normal(s) for s in shapes.input_shapes)
    a, b = tg.tensor(a_np, requires_grad=True), tg.tensor(b_np, requires_grad=True)
    out = fn(a, b)
    assert out.shape == shapes.result_shape
    np.testing.assert_allclose(out.detach().numpy(), ref(a_np, b_np))
    g = rng.standard_normal(shapes.result_shape)
    out.backward(tg.tensor(g))
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
    if op in ("add", "sub"):  # the gradient is the upstream gradient summed over the broadcast dims
        np.testing.assert_allclose(a.grad.numpy(), _sum_to(g, a_np.shape).reshape(a_np.shape))
        np.testing.assert_allclose(b.grad.numpy(), (1 if op == "add" else -1) * _sum_to(g, b_np.shape)
                                   .reshape(b_np.shape))


SCALARS = st.one_of(st.booleans(), st.integers(-5, 5), st.floats(-5, 5, allow_nan=False))
DTYPES = st.sampled_from([tg.bool, tg.int64, tg.float32, tg.float64])


@settings(max_examples=80, deadline=None)
@given(d1=DTYPES, d2=DTYPES, dims=st.tuples(st.integers(0, 1), st.integers(0, 1)), s=SCALARS)
def test_type_promotion_is_symmetric_and_operations_agree_with_result_type(d1, d2, dims, s):
    a = tg.ones(*(2,) * dims[0], dtype=d1)
    b = tg.ones(*(2,) * dims[1], dtype=d2)
    assert tg.result_type(a, b) is tg.result_type(b, a)
    assert (a * b).dtype is tg.result_type(a, b)
    assert (a * s).dtype is tg.result_type(a, s) is (s * a).dtype
