"""Compiling unrolled loops (an RNN over time steps): the passes and codegen rules that make them cheap.

Specified here:

1. `merge_slice_gradients` (a default pass): the gradients of ``x[t]`` reads and `chunk` pieces, each zeros with the
   gradient added at the slice (``index_add``), summed, become one ``cat`` when the slices are disjoint runs of one
   axis (gaps filled with zeros); overlapping slices stay a sum. Exact: the interpreter still equals eager bit for
   bit on an LSTM-style loop;
2. `merge_summed_matmuls` (numba backend only): a sum of three or more matrix products (an RNN's weight gradient,
   one ``g_t.T @ h_t`` per step) becomes one product of concatenations, within round-off of eager;
3. the codegen: a static basic ``getitem`` and a permute that only kernels read are reads inside kernels (no numpy
   step), a permute read by a matmul stays a view; ``cat`` and a basic ``index_add`` run natively; a kernel storing
   four or more arrays of one dtype stores them in one buffer; a run of more than `SEGMENT_LIMIT` native units runs
   kernel by kernel, and segments whose code differs only in names and read offsets share one numba function
   (called with the offsets); all within round-off of eager;
4. the forward of an embedding-style ``index_add`` (rows picked by one index array) equals ``np.add.at`` bit for bit;
5. ``set_num_threads`` before numba is imported still limits numba's parallel loops in the thread running them.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.nn as nn
from tracegrad.compiler import codegen
from tracegrad.compiler.passes import merge_slice_gradients, merge_summed_matmuls, run_pipeline
from tracegrad.ops.primitives import _index_add_forward
from tracegrad.runtime import native

RTOL = ATOL = 2e-5


def _lstm_step(T=5, B=3, H=4, V=7, seed=0):
    """A hand-written LSTM language-model training step (input projection once, ``xp[t]``, ``chunk``)."""
    tg.manual_seed(seed)
    emb = nn.Embedding(V, H)
    w_ih, w_hh = nn.Parameter(tg.randn(4 * H, H) * 0.3), nn.Parameter(tg.randn(4 * H, H) * 0.3)
    b = nn.Parameter(tg.randn(4 * H) * 0.1)
    head = nn.Linear(H, V)
    params = [emb.weight, w_ih, w_hh, b, *head.parameters()]
    opt = tg.optim.Adam(params, lr=1e-2)

    def step(x, y):
        opt.zero_grad()
        xp = (emb(x).reshape(T * B, H) @ w_ih.t() + b).reshape(T, B, 4 * H)
        h, c, outs = tg.zeros(B, H), tg.zeros(B, H), []
        for t in range(T):
            i, f, g, o = (xp[t] + h @ w_hh.t()).chunk(4, 1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            h = o.sigmoid() * c.tanh()
            outs.append(h)
        loss = nn.functional.cross_entropy(head(tg.stack(outs).reshape(T * B, H)), y.reshape(T * B))
        loss.backward()
        opt.step()
        return loss.item()

    x, y = tg.randint(0, V, (T, B)), tg.randint(0, V, (T, B))
    return step, x, y, params


def _train(backend, steps=3, **kw):
    step, x, y, params = _lstm_step(**kw)
    f = step if backend is None else tg.compile(step, backend=backend, tiered=False)
    losses = [f(x, y) for _ in range(steps)]
    return f, losses, [p.detach().numpy().copy() for p in params], (x, y)


# ---------------------------------------------------------------------------------------------- 1. slice gradients
def test_slice_gradients_become_one_cat():
    def f(x):
        a, b = x[0], x[1]
        (g,) = tg.autograd.grad((a * 2.0 + b * 3.0).sum(), [x])
        return g

    x = tg.ones(2, 3, requires_grad=True)
    graph = tg.jit.trace(f, x)
    assert [n.op.name for n in graph.nodes].count("index_add") == 2
    merged = run_pipeline(graph)
    names = [n.op.name for n in merged.nodes]
    assert "index_add" not in names and names.count("cat") == 1, merged
    np.testing.assert_array_equal(tg.compile(f)(x).numpy(), f(x).numpy())
    np.testing.assert_array_equal(f(x).numpy(), [[2, 2, 2], [3, 3, 3]])


def test_chunk_gradients_with_a_gap_are_a_cat_with_zeros():
    def f(x):
        p, _, r = x.chunk(3, 1)
        (g,) = tg.autograd.grad((p * p + r).sum(), [x])
        return g

    x = tg.arange(12.0).reshape(2, 6).requires_grad_()
    merged = merge_slice_gradients(tg.jit.trace(f, x))
    assert [n.op.name for n in merged.nodes].count("cat") == 1, merged
    np.testing.assert_array_equal(tg.compile(f)(x).numpy(), f(x).numpy())
    np.testing.assert_array_equal(f(x).numpy(), [[0, 2, 0, 0, 1, 1], [12, 14, 0, 0, 1, 1]])


def test_overlapping_slices_stay_a_sum():
    def f(x):
        (g,) = tg.autograd.grad((x[0:2] * x[1:3]).sum(), [x])
        return g

    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    merged = merge_slice_gradients(tg.jit.trace(f, x))
    assert [n.op.name for n in merged.nodes].count("index_add") == 2 and "cat" not in [n.op.name for n in merged.nodes]
    np.testing.assert_array_equal(tg.compile(f)(x).numpy(), [2.0, 4.0, 2.0])


def test_lstm_loop_compiled_by_the_interpreter_equals_eager_bit_for_bit():
    _, eager_losses, eager_params, _ = _train(None)
    f, losses, params, (x, y) = _train("interpret")
    assert losses == eager_losses
    for p, q in zip(params, eager_params):
        np.testing.assert_array_equal(p, q)
    scatters = [n for n in f.last_variant.graph.nodes if n.op.name == "index_add"]
    assert len(scatters) == 2 and all(len(n.inputs) > 1 for n in scatters)  # only the embedding's and the labels'
    assert [n.op.name for n in f.last_variant.graph.nodes].count("cat") >= 5  # xp's gradient and each step's gates


# ---------------------------------------------------------------------------------------------- 2. summed matmuls
def test_summed_matmuls_become_one_product():
    def f(a, b):
        out = a[0].t() @ b[0]
        for t in range(1, 4):
            out = out + a[t].t() @ b[t]
        return out

    a, b = tg.randn(4, 2, 3), tg.randn(4, 2, 5)
    graph = run_pipeline(tg.jit.trace(f, a, b))
    merged = merge_summed_matmuls(graph)
    assert [n.op.name for n in graph.nodes].count("matmul") == 4
    assert [n.op.name for n in merged.nodes].count("matmul") == 1, merged
    np.testing.assert_allclose(tg.compile(f, backend="numba", tiered=False)(a, b).numpy(), f(a, b).numpy(),
                               rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------------------- 3. codegen
def _cell_loop(xp, w):
    """Two LSTM-style steps: ``xp[t]`` reads, `chunk` pieces, a state that keeps four values for the backward."""
    h = c = tg.zeros(xp.shape[1], w.shape[1])
    for t in range(xp.shape[0]):
        i, f, g, o = (xp[t] + h @ w.t()).chunk(4, 1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
    return tg.autograd.grad((h * h).sum(), [xp, w])


def test_cell_loop_runs_in_one_native_segment():
    """Under `SEGMENT_LIMIT`: slices, permutes, cats and the chunk gradients all run natively, in one segment."""
    xp, w = tg.randn(2, 3, 8, requires_grad=True), tg.randn(8, 2, requires_grad=True)
    step = tg.compile(_cell_loop, backend="numba", tiered=False)
    for got, expected in zip(step(xp, w), _cell_loop(xp, w)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=RTOL, atol=ATOL)
    program = step.last_variant.program
    steps = program.code.steps
    assert [s[0] for s in steps] == ["native"], [s[1].op.name for s in steps if s[0] == "node"]
    assert "buf_" in program.code.module_source  # the cell keeps its values for the backward in one buffer
    # the gates' gradients, laid side by side as the next product's operand, are written there by their kernel
    assert "written by this kernel" in program.code.source, program.code.source


def test_long_runs_run_kernel_by_kernel_and_share_functions(monkeypatch):
    monkeypatch.setattr(codegen, "SEGMENT_LIMIT", 6)
    _, eager_losses, eager_params, _ = _train(None, T=5, H=2)
    f, losses, params, _ = _train("numba", T=5, H=2)
    np.testing.assert_allclose(losses, eager_losses, rtol=RTOL, atol=ATOL)
    for p, q in zip(params, eager_params):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-5)
    code = f.last_variant.program.code
    natives = [s for s in code.steps if s[0] == "native"]
    functions = {s[1] for s in natives}
    assert code.n_shared >= 2 and len(functions) < len(natives), (code.n_shared, len(functions), len(natives))
    shared = [s for s in natives if len(s) == 5]
    assert shared and len({s[4] for s in shared}) > 1, "shared functions are called with their own offsets"
    assert "np.uint64(p0" in code.module_source  # offsets as unsigned arguments (loops still vectorize)


def test_permute_read_by_a_matmul_stays_a_view():
    def f(x, w):
        return (x @ w.t()).tanh() + x.t().sum(0)

    x, w = tg.randn(3, 3), tg.randn(3, 3)
    program = native.NativeProgram(tg.jit.trace(f, x, w))
    groups = [n for n in program.graph.nodes if n.op.name == "permute" and n.group is not None]
    kept = [n for n in program.graph.nodes if n.op.name == "permute" and n.group is None]
    assert len(groups) == 1 and len(kept) == 1  # x.t() read by the kernel; w.t() handed to BLAS
    np.testing.assert_allclose(program.outputs([x.numpy(), w.numpy()])[0], f(x, w).numpy(), rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------------------- 4. index_add
@pytest.mark.parametrize("rows_shape,size,tail,dtype", [((100,), 7, (5,), np.float32), ((8, 9), 5, (3, 2), np.float64),
                                                       ((70,), 3, (), np.float32)])
def test_row_index_add_equals_add_at_bit_for_bit(rows_shape, size, tail, dtype):
    rng = np.random.default_rng(0)
    rows = rng.integers(-size, size, rows_shape)
    g = rng.standard_normal(rows_shape + tail).astype(dtype)
    expected = np.zeros((size,) + tail, dtype)
    np.add.at(expected, (rows,), g)
    got = _index_add_forward(g, rows, shape=(size,) + tail, index=(rows,))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)


def test_set_num_threads_reaches_numba_imported_later(tmp_path):
    """`set_num_threads(1)` before numba is imported still limits the native kernels' parallel loops (numba keeps
    the count per thread; the runtime applies it before running native code)."""
    script = textwrap.dedent("""
        import sys
        import tracegrad as tg
        tg.set_num_threads(1)
        assert "numba" not in sys.modules
        f = tg.compile(lambda x: (x * 2.0).sum(), backend="numba", tiered=False)
        for _ in range(3):
            f(tg.ones(4))
        import numba
        print(numba.get_num_threads())
    """)
    env = {**os.environ, "TRACEGRAD_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1"]
