"""The defaults of `compile` (issue 13): fused numba kernels, and a JIT that never makes anyone wait.

* the default backend is numba: after `wait_native()` a default-compiled step runs native code (this test
  fails if the interpreter silently stays);
* tiering: the calls before native code arrives run in the interpreter (bit-equal to eager), the switch
  happens at a call boundary, and the state (weights, optimizer buffers, `.grad`s) stays consistent with
  eager across it;
* a failed native compile leaves a working interpreted step, with one warning saying why;
* a variant whose kernels are already loaded (a new batch size of the same step) runs native at once.
"""
import numpy as np
import pytest

import tracegrad as tg
from tracegrad import nn
from tracegrad.runtime import tiered


@pytest.fixture(autouse=True)
def _defaults(monkeypatch, tmp_path_factory):
    """The library's own defaults (the suite's conftest pins the interpreter), with a kernel cache of our own."""
    monkeypatch.delenv("TRACEGRAD_BACKEND", raising=False)
    monkeypatch.delenv("TRACEGRAD_TIERED", raising=False)
    monkeypatch.setenv("TRACEGRAD_CACHE_DIR", str(tmp_path_factory.mktemp("tiered-cache")))


def _mlp_step(hidden, seed=0):
    """A training step; each test uses its own `hidden` size, so its kernels are not loaded by another test."""
    tg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Linear(hidden, 3))
    opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step, model, opt


def _batch(n=8, seed=1):
    rng = np.random.default_rng(seed)
    return (tg.tensor(rng.standard_normal((n, 6)).astype(np.float32)),
            tg.tensor(rng.standard_normal((n, 3)).astype(np.float32)))


def test_the_default_backend_is_numba_and_it_ends_up_native():
    step, _, _ = _mlp_step(16)
    compiled = tg.compile(step)
    assert compiled.backend == "numba" and compiled.tiered
    x, y = _batch()
    for _ in range(3):
        compiled(x, y)
    compiled.wait_native()
    compiled(x, y)
    variant = compiled.last_variant
    assert variant.tier == "native", "the default compile must end up running native code"
    assert type(variant.program).__name__ == "NativeProgram" and variant.program.n_native >= 1


def test_tiering_runs_the_interpreter_until_native_code_arrives_and_state_stays_consistent():
    eager, m_eager, o_eager = _mlp_step(17)
    step, model, opt = _mlp_step(17)
    compiled = tg.compile(step)
    x, y = _batch()
    losses = []
    for i in range(12):
        if i == 6:
            compiled.wait_native()  # the switch happens at the next call boundary
        a, b = eager(x, y), compiled(x, y)
        losses.append((a, b))
        variant = compiled.last_variant
        if i < 6:  # trace, trace (optimizer state), then the interpreter: bit-equal to eager
            assert a == b, i
            assert variant.tier in (None, "interpreter")
            for p, q in zip(m_eager.parameters(), model.parameters()):
                np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
        else:
            assert variant.tier == "native"
            assert b == pytest.approx(a, rel=1e-5)
    assert variant.native_after == 4  # calls 3..6 ran interpreted (the first replay is call 3)
    for p, q in zip(m_eager.parameters(), model.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(opt.state[q]["momentum_buffer"].numpy(),
                                   o_eager.state[p]["momentum_buffer"].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert len(compiled.retraces) == 2


def test_a_failed_native_compile_keeps_a_working_interpreted_step(monkeypatch):
    monkeypatch.setattr(tiered.sys, "executable", "/bin/false")  # the compile worker fails at once
    monkeypatch.setattr(tiered, "_WORKER", [])
    tiered._BY_KEY.clear()
    eager, _, _ = _mlp_step(18)
    step, _, _ = _mlp_step(18)
    compiled = tg.compile(step)
    x, y = _batch()
    for _ in range(3):
        assert eager(x, y) == compiled(x, y)
    with pytest.warns(RuntimeWarning, match=r"the native code of a variant could not be built \(exit code 1\); it "
                                            r"keeps running in the interpreter"):
        compiled.wait_native()
    for _ in range(3):
        assert eager(x, y) == compiled(x, y)  # still bit-equal: the interpreter
    assert compiled.last_variant.tier == "interpreter"
    tiered._BY_KEY.clear()


def test_a_new_batch_size_of_a_native_step_runs_native_at_once():
    step, _, _ = _mlp_step(19)
    compiled = tg.compile(step)
    x, y = _batch(8)
    for _ in range(3):
        compiled(x, y)
    compiled.wait_native()
    compiled(x, y)
    xs, ys = _batch(5, seed=2)
    compiled(xs, ys)  # the trace of the new size
    compiled(xs, ys)  # its first replay: the same kernels are loaded already
    small = compiled.last_variant
    assert small.graph.args[0].shape == (5, 6)
    assert small.tier == "native" and small.job is None


def test_a_warm_kernel_cache_is_loaded_by_a_thread_without_compiling(monkeypatch):
    from tracegrad.runtime import native
    warm, _, _ = _mlp_step(21)
    warm = tg.compile(warm, tiered=False)  # fills the kernel cache on disk
    x, y = _batch()
    for _ in range(3):
        warm(x, y)
    native._LOADED.clear()  # as if this were a new process: the machine code is on disk only
    jobs = len(tiered._BY_KEY)
    eager, _, _ = _mlp_step(21)
    step, _, _ = _mlp_step(21)
    compiled = tg.compile(step)
    for _ in range(3):
        assert eager(x, y) == compiled(x, y)  # the interpreter meanwhile: bit-equal
    variant = compiled.last_variant
    assert isinstance(variant.job, tiered.NativeJob)
    variant.job.wait()
    assert variant.job.native_from == "loaded from the kernel cache" and len(tiered._BY_KEY) == jobs  # no compile
    a, b = eager(x, y), compiled(x, y)  # the switch, at this call boundary, without waiting
    assert variant.tier == "native" and variant.native_after == 1  # call 3 (its first replay) was interpreted
    assert variant.native_from == "loaded from the kernel cache"
    assert b == pytest.approx(a, rel=1e-5)


def test_a_failed_load_keeps_the_interpreter_and_says_why(monkeypatch):
    from tracegrad.runtime import native
    warm, _, _ = _mlp_step(22)
    warm = tg.compile(warm, tiered=False)
    x, y = _batch()
    for _ in range(3):
        warm(x, y)
    native._LOADED.clear()

    def broken(*args, **kwargs):
        raise OSError("disk gone")
    monkeypatch.setattr(native, "NativeProgram", broken)
    step, _, _ = _mlp_step(22)
    compiled = tg.compile(step)
    for _ in range(3):
        compiled(x, y)
    with pytest.warns(RuntimeWarning, match=r"could not be built \(OSError: disk gone\)"):
        compiled.wait_native()
    compiled(x, y)
    assert compiled.last_variant.tier == "interpreter"


def test_a_cold_first_replay_leaves_codegen_and_compiling_to_other_threads(monkeypatch):
    """The first replay of a cold start only copies its inputs: generating the module, writing the job and
    starting the worker happen on a background thread, so the first calls cost what interpreted ones cost."""
    import threading

    from tracegrad.compiler import codegen
    from tracegrad.runtime import native
    monkeypatch.setattr(native, "_LOADED", {})  # nothing loaded yet, as in a fresh process
    threads = []
    real = codegen.ModuleSource.__init__

    def recording(self, *args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        real(self, *args, **kwargs)
    monkeypatch.setattr(codegen.ModuleSource, "__init__", recording)
    step, _, _ = _mlp_step(23)
    compiled = tg.compile(step)
    x, y = _batch()
    for _ in range(3):
        compiled(x, y)
    compiled.wait_native()
    compiled(x, y)
    assert compiled.last_variant.tier == "native" and threads and not any(threads)
