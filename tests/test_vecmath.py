"""The vectorizable float32 exp, log and tanh of the numba kernels against float64, over the whole float32 range.

Inputs: 2M random bit patterns (every exponent, both signs, denormals, infinities, NaN), a dense sweep over the
interesting range, and the special values. The bounds are the ones `tracegrad.compiler.vecmath` documents.
"""
import numba
import numpy as np
import pytest

from tracegrad.compiler.vecmath import exp_f32, log_f32, tanh_f32

TINY = np.float32(1.17549435e-38)  # the smallest normal float32
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-40, TINY, 3.4028235e38, -3.4028235e38,
                    88.72, 88.73, 89.0, -87.3, -103.9, -104.5, 1.0, -1.0, 0.5, 1e-4, -1e-4, 9.0, -9.0], np.float32)


@numba.njit
def _apply(which, x, out):
    for i in range(x.size):
        if which == 0:
            out[i] = exp_f32(x[i])
        elif which == 1:
            out[i] = log_f32(x[i])
        else:
            out[i] = tanh_f32(x[i])


def _inputs():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2 ** 32, 2_000_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return np.concatenate([bits, SPECIAL, np.linspace(-110, 90, 200_001, dtype=np.float32),
                           np.geomspace(1e-45, 1e4, 100_000).astype(np.float32)])


@pytest.mark.parametrize("which, ref, max_ulp", [(0, np.exp, 2.0), (1, np.log, 2.0), (2, np.tanh, 5.0)],
                         ids=["exp", "log", "tanh"])
def test_error_bound_over_the_whole_range(which, ref, max_ulp):
    x = _inputs()
    got = np.empty_like(x)
    _apply(which, x, got)
    with np.errstate(all="ignore"):
        exact = ref(x.astype(np.float64))
        exact32 = exact.astype(np.float32)
    normal = np.isfinite(exact32) & (np.abs(exact) >= TINY)
    ulp = np.spacing(np.abs(exact32[normal])).astype(np.float64)
    err = np.abs(got[normal].astype(np.float64) - exact[normal]) / ulp
    assert err.max() <= max_ulp, f"{err.max()} ulp at x={x[normal][err.argmax()]!r}"
    # results below the normal range: within one denormal step
    sub = np.abs(exact) < TINY
    assert np.all(np.abs(got[sub].astype(np.float64) - exact[sub]) <= 2.0 ** -149)
    # overflow, infinities, NaN and the edges of the domain: exactly what float64 rounded to float32 gives
    special = ~normal & ~sub
    np.testing.assert_array_equal(got[special], exact32[special])


def test_special_values():
    got = {}
    for which, name in enumerate(("exp", "log", "tanh")):
        out = np.empty_like(SPECIAL)
        _apply(which, SPECIAL, out)
        got[name] = dict(zip(SPECIAL.tolist(), out.tolist()))
    assert got["exp"][np.inf] == np.inf and got["exp"][-np.inf] == 0.0 and got["exp"][0.0] == 1.0
    assert got["log"][0.0] == -np.inf and got["log"][-0.0] == -np.inf and got["log"][np.inf] == np.inf
    assert np.isnan(got["log"][-1.0]) and np.isnan(got["log"][-np.inf])
    assert got["tanh"][np.inf] == 1.0 and got["tanh"][-np.inf] == -1.0 and got["tanh"][9.0] == 1.0
    assert np.signbit(got["tanh"][-0.0]) and got["tanh"][float(np.float32(1e-4))] == np.float32(1e-4)
    for name in ("exp", "log", "tanh"):
        nan_out = [v for k, v in got[name].items() if k != k]
        assert all(v != v for v in nan_out)
