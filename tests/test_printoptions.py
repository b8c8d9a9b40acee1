"""`tracegrad.set_printoptions` against PyTorch's printouts: precision, threshold, edgeitems, linewidth, sci_mode
and the profiles, on tensors of every printing regime (fixed, integer-valued, scientific, summarized, nested)."""
import numpy as np
import pytest

import tracegrad as tg

torch = pytest.importorskip("torch")

_rng = np.random.default_rng(0)
ARRAYS = {
    "matrix": _rng.standard_normal((3, 4)).astype(np.float32),
    "long_vector": _rng.standard_normal(2000).astype(np.float32),
    "wide_range": (_rng.standard_normal((4, 30)) * 1e5).astype(np.float32),
    "integer_valued": np.arange(20.0, dtype=np.float32),
    "nonfinite": np.array([1e-5, 1.0, np.nan, np.inf, -0.0], np.float32),
    "int64": _rng.integers(-100, 100, (5, 30)),
    "scalar": np.array(3.25, np.float32),
    "bool": np.array([[True, False]]),
    "summarized_3d": _rng.standard_normal((2, 3, 600)).astype(np.float32),
    "empty": np.zeros((0, 3), np.float32),
}
OPTIONS = [dict(precision=2), dict(threshold=5), dict(edgeitems=1, threshold=10), dict(linewidth=40),
           dict(sci_mode=True), dict(sci_mode=False), dict(profile="short"), dict(profile="full", linewidth=120),
           dict(edgeitems=0, threshold=3), dict(precision=6, sci_mode=True), dict(precision=0)]


@pytest.fixture
def restore():
    yield
    tg.set_printoptions(profile="default")
    torch.set_printoptions(profile="default")


def _same(t, u):
    assert repr(u) == repr(t).replace("torch.", "tracegrad.")


@pytest.mark.parametrize("options", OPTIONS, ids=[",".join(f"{k}={v}" for k, v in o.items()) for o in OPTIONS])
def test_printouts_equal_pytorchs(options, restore):
    torch.set_printoptions(**options)
    tg.set_printoptions(**options)
    assert tg.get_printoptions() == torch._tensor_str.get_printoptions()
    for name, a in ARRAYS.items():
        _same(torch.tensor(a), tg.tensor(a))
        if a.dtype == np.float32 and a.size:  # with the grad_fn suffix, wrapped to the line width as PyTorch's
            _same(torch.tensor(a, requires_grad=True) * 2, tg.tensor(a, requires_grad=True) * 2)


def test_a_call_without_sci_mode_sets_it_back_to_automatic_and_printoptions_restores(restore):
    x = [1.5, 250.0]
    tg.set_printoptions(sci_mode=True)
    assert repr(tg.tensor(x)) == "tensor([1.5000e+00, 2.5000e+02])"
    tg.set_printoptions(precision=3)  # sci_mode is None again, as in PyTorch
    assert repr(tg.tensor(x)) == "tensor([  1.500, 250.000])"
    with tg.printoptions(precision=1, linewidth=20):
        assert repr(tg.tensor(x)) == "tensor([  1.5,\n        250.0])"
    assert tg.get_printoptions()["precision"] == 3
    with pytest.raises(ValueError, match="profile"):
        tg.set_printoptions(profile="long")
