"""The numba backend (`tracegrad.compile(fn, backend="numba")`): fusion, codegen, native runtime and disk cache.

Specified here:

1. every op-table row and shape variant (but the rows marked ``numba=False``: compositions of primitives other
   rows compile natively), compiled with ``backend="numba"`` in float32 (one compiled function
   per row and variant that computes the output and, for differentiable rows, calls ``out.backward(g)`` inside
   and returns the inputs' grads), called twice with fresh inputs (the second call runs the cached graph: one
   trace), equals eager within float32 round-off (rtol = atol = 2e-5). Not bit for bit, as the interpreter
   is: the kernels call libm's scalar transcendental functions where numpy uses its own SIMD ones, BLAS
   builds differ in summation order, and a fused sum accumulates in float64 where numpy sums float32 pairwise.
   float64 is left to the interpreter's tests: the numba code paths are the same, only the dtype differs.
   The rows whose output is not differentiable (NOT_DIFFERENTIABLE, checked against eager) get the forward only;
2. the fusion pass (`fuse_elementwise`): for small functions, how many groups and which ops each holds (an
   elementwise chain is one group, a sum of one joins it as the epilogue, a matmul splits groups, a value
   read by groups of different shapes, convexity through a matmul, expand as a broadcast read), the groups
   contracted to one vertex each form a DAG (`kernel_order` runs them), and the printout (``[fused N]``),
   `to_networkx()` (attribute ``group``) and `to_dot()` (one cluster per group) show the partition;
3. the generated module (`ModuleSource`) run by numba equals its plain-Python reference (`python_reference`)
   and the interpreter on the same inputs, for several graphs (broadcast loads, sum/amax/amin epilogues with
   NaN, int64, float64, a stored value read by two kernels, an expand of a value the kernel computes, a whole
   MLP training step with its matmuls and in-place state updates); the
   source is readable: a ``# kernel N:`` header per group, one statement per IR node commented with the node
   (``# %3 = mul %2, x``), ``prange`` only from `PARALLEL_THRESHOLD` elements on and never over a summed axis;
4. whole training steps under ``backend="numba"`` equal eager over several steps (MLP with SGD momentum and
   with Adam, a conv net with BatchNorm2d in train mode: losses, parameters, `.grad`, optimizer state and
   BatchNorm buffers within rtol 1e-5, atol 1e-6); the MLP step is a single native call. Also state
   written by ``copy_`` of a fused expression, a data-dependent branch whose guard fails after the native
   code (retrace, nothing half-applied), and NaN/inf propagating through kernels and epilogues as in eager;
5. the disk cache, in subprocesses with ``TRACEGRAD_CACHE_DIR`` set to a fresh directory: a second process
   loads numba's machine code instead of compiling (dispatcher cache hits, no misses), a corrupted or
   truncated ``tracegrad_kernels_*.py`` is detected and rewritten (results still right, the file intact
   again), and two processes compiling the same step at once both succeed with the right results;
6. ``TRACEGRAD_SHOW_KERNELS=1`` prints the generated source (and nothing is printed without it).

The in-process tests use a fresh cache directory of their own unless ``TRACEGRAD_CACHE_DIR`` is already set
(point it at a kept directory to make reruns warm). Cold, the op-table test compiles ~230 graphs (~0.4 s each).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zlib

import networkx as nx
import numpy as np
import pytest
from op_table import DOMAINS, NOT_DIFFERENTIABLE, make_inputs, variants
from training_steps import train_step

import tracegrad as tg
import tracegrad.nn as nn
import tracegrad.nn.functional as F
from tracegrad.compiler.codegen import PARALLEL_THRESHOLD, ModuleSource, python_reference
from tracegrad.compiler.fusion import fuse_elementwise, kernel_order
from tracegrad.runtime import native
from tracegrad.runtime.interpreter import Program

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL = ATOL = 2e-5  # float32 round-off: see the module docstring
# whole training steps (a few thousand values, the largest differences seen ~5e-7 after 5 steps)
TRAIN_RTOL, TRAIN_ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory):
    """A cache directory of this module's own (unless the caller chose one), so runs don't share state."""
    if os.environ.get("TRACEGRAD_CACHE_DIR"):
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRACEGRAD_CACHE_DIR", str(tmp_path_factory.mktemp("tracegrad-cache")))
        yield


# ============================================================================ 1. the op table, float32
PARAMS, IDS = variants(numba=True)



def _op_inputs(case, shapes):
    """Two sets of float32 inputs from the case's domain (the second differs: it runs the cached graph)."""
    first = make_inputs(case, shapes, np.float32)
    rng = np.random.default_rng(zlib.crc32(case.name.encode()) + 1)
    second = [np.asarray(DOMAINS[case.domain](rng, shape), np.float32) for shape in shapes]
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))
    return [first, second]


def _close(got, want, what, rtol=RTOL, atol=ATOL):
    """`got` (tensor or array) equals eager's `want` in shape and dtype, and in value within float32 round-off
    (exactly for integer and bool results)."""
    got = got.detach().numpy() if isinstance(got, tg.Tensor) else np.asarray(got)
    want = want.detach().numpy() if isinstance(want, tg.Tensor) else np.asarray(want)
    assert (got.shape, got.dtype) == (want.shape, want.dtype), \
        f"{what}: {got.dtype}{list(got.shape)}, eager gives {want.dtype}{list(want.shape)}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


@pytest.mark.parametrize("case,shapes", PARAMS, ids=IDS)
def test_op_table_float32_matches_eager(case, shapes):
    differentiable = case.name not in NOT_DIFFERENTIABLE

    def step(*args):
        if not differentiable:
            return case.fn(tg, *args)
        *xs, g = args
        out = case.fn(tg, *xs)
        out.backward(g)
        return out, tuple(x.grad for x in xs)

    compiled = tg.compile(step, backend="numba")
    out_shape = case.fn(tg, *[tg.tensor(a) for a in make_inputs(case, shapes, np.float32)]).shape
    rng = np.random.default_rng(zlib.crc32(case.name.encode()) + 2)
    for k, arrays in enumerate(_op_inputs(case, shapes)):
        what = f"call {k + 1}"
        if not differentiable:
            want = case.fn(tg, *[tg.tensor(a) for a in arrays])
            _close(compiled(*[tg.tensor(a) for a in arrays]), want, f"{what} forward")
            continue
        cot = rng.standard_normal(out_shape).astype(np.float32)
        eager_xs = [tg.tensor(a, requires_grad=True) for a in arrays]
        want = case.fn(tg, *eager_xs)
        want.backward(tg.tensor(cot))
        xs = [tg.tensor(a, requires_grad=True) for a in arrays]
        out, grads = compiled(*xs, tg.tensor(cot))
        _close(out, want, f"{what} forward")
        for i, (x, g, e) in enumerate(zip(xs, grads, eager_xs)):
            if e.grad is None:
                assert g is None and x.grad is None, f"{what}: input {i} got a gradient, eager gives None"
                continue
            assert g is not None, f"{what}: input {i} got no gradient, eager gives one"
            _close(g, e.grad, f"{what}: returned grad of input {i}")
            _close(x.grad, e.grad, f"{what}: .grad of input {i} after the call")
    assert len(compiled.retraces) == 1, f"the second call retraced: {compiled.retraces}"


# ============================================================================ 2. the fusion pass
def _fused(fn, *args):
    return fuse_elementwise(tg.jit.trace(fn, *args))


def _groups(graph) -> list:
    """The fusion groups as lists of op names, in the order of their ids."""
    out: dict = {}
    for node in graph.nodes:
        if node.group is not None:
            out.setdefault(node.group, []).append(node.op.name)
    return [out[k] for k in sorted(out)]


def _group_of(graph) -> dict:
    return {n.out.name: n.group for n in graph.nodes}


def _contracted(graph) -> nx.DiGraph:
    """The graph with each fusion group contracted to one vertex (and each other node a vertex of its own)."""
    unit = {n.out: ("g", n.group) if n.group is not None else ("n", n.out.name) for n in graph.nodes}
    dag = nx.DiGraph()
    dag.add_nodes_from(unit.values())
    for n in graph.nodes:
        for v in n.inputs:
            if v in unit and unit[v] != unit[n.out]:
                dag.add_edge(unit[v], unit[n.out])
    return dag


X34, X4, W43 = tg.ones(3, 4), tg.ones(4), tg.ones(4, 3)

FUSION_CASES = {
    # name: (function, example inputs, expected groups as op names)
    "chain": (lambda x: ((x * 2.0).exp() - 1.0).tanh().relu(), (X34,), [["mul", "exp", "sub", "tanh", "relu"]]),
    "chain-with-broadcast-input": (lambda x, b: (x + b).sigmoid() * b, (X34, X4), [["add", "sigmoid", "mul"]]),
    "sum-epilogue": (lambda x: (x.exp() * 3.0).sum(), (X34,), [["exp", "mul", "sum"]]),
    "amax-epilogue-then-new-group": (lambda x: (x - 1.0).amax(1) * 2.0, (X34,), [["sub", "amax"], ["mul"]]),
    "amin-epilogue": (lambda x: (x * x).amin(0, keepdim=True), (X34,), [["mul", "amin"]]),
    "matmul-splits": (lambda x, w: ((x * 2.0) @ w).tanh(), (X34, W43), [["mul"], ["tanh"]]),
    "reduction-of-an-outside-value": (lambda x, w: (x @ w).sum(0), (X34, W43), [["sum"]]),
    "expand-is-a-broadcast-read": (lambda x, y: x.expand(3, 4) * y + 1.0, (tg.ones(3, 1), X34),
                                   [["expand", "mul", "add"]]),
    # h (shape [4]) feeds a group over [4] and a group over [3, 4] that reads it broadcast
    "value-read-by-groups-of-two-shapes": (lambda x, y: ((h := x.exp() * 2.0) + 1.0, y * h), (X4, X34),
                                           [["exp", "mul", "add"], ["mul"]]),
    # the mul reads t directly and through a matmul: in t's group, the kernel would need the matmul inside it
    "convex-through-matmul": (lambda a, w: (t := a.tanh()) * (t @ w), (tg.ones(4, 4), tg.ones(4, 4)),
                              [["tanh"], ["mul"]]),
}


@pytest.mark.parametrize("name", list(FUSION_CASES))
def test_fusion_groups(name):
    fn, args, expected = FUSION_CASES[name]
    g = _fused(fn, *args)
    assert _groups(g) == expected, f"{name}:\n{g}"
    assert nx.is_directed_acyclic_graph(_contracted(g)), f"{name}: the groups form a cycle\n{g}"
    # the values are those of the unfused graph
    arrays = [np.random.default_rng(i).standard_normal(a.shape).astype(np.float32) for i, a in enumerate(args)]
    want = Program(tg.jit.trace(fn, *args)).outputs(arrays)
    got = native.NativeProgram(tg.jit.trace(fn, *args)).outputs(arrays)
    for w, o in zip(want, got):
        np.testing.assert_allclose(o, w, rtol=RTOL, atol=ATOL)


def test_epilogue_is_the_last_node_of_its_group_and_matmul_is_in_none():
    g = _fused(lambda x, w: ((x * 2.0) @ w).tanh().sum(1), X34, W43)
    by_op = {n.op.name: n for n in g.nodes}
    assert by_op["matmul"].group is None
    assert by_op["sum"].group == by_op["tanh"].group != by_op["mul"].group
    assert [[n.op.name for n in unit] for unit in kernel_order(g)] == [["mul"], ["matmul"], ["tanh", "sum"]]


def test_groups_contracted_form_a_dag_when_two_groups_read_each_others_values():
    """e and h start two groups; e + h joins e's and h - e must not join h's (each group would read the other's
    value: no order runs them). The forward of `maximum`'s backward on broadcast inputs has this shape."""
    fn = lambda a, b: ((e := a * 2.0) + (h := b * 3.0), h - e)  # noqa: E731
    g = _fused(fn, tg.ones(4), tg.ones(4))
    assert nx.is_directed_acyclic_graph(_contracted(g)), f"the groups form a cycle:\n{g}"
    kernel_order(g)
    arrays = [np.arange(4, dtype=np.float32), np.ones(4, np.float32)]
    got = native.NativeProgram(tg.jit.trace(fn, tg.ones(4), tg.ones(4))).outputs(arrays)
    np.testing.assert_array_equal(got[0], arrays[0] * 2 + 3)
    np.testing.assert_array_equal(got[1], 3 - arrays[0] * 2)


def test_independent_branches_joined_by_an_elementwise_op_are_one_group():
    """The groups are maximal (fusion.py's contract): a * 2 and b * 3 start apart but their sum joins them, and
    the union is convex, so the whole expression is one kernel (no intermediate stored)."""
    g = _fused(lambda a, b: a * 2.0 + b * 3.0, X34, X34)
    assert _groups(g) == [["mul", "mul", "add"]], str(g)


def test_printout_networkx_and_dot_show_the_partition():
    g = _fused(lambda x, w: ((x * 2.0).exp() @ w).tanh().sum(), X34, W43)
    text = str(g)
    for node in g.nodes:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{node.out.name}:"))
        if node.group is None:
            assert "[fused" not in line, line
        else:
            assert line.endswith(f"  [fused {node.group}]"), line
    assert text.count("[fused 0]") == 2 and text.count("[fused 1]") == 2
    nxg = g.to_networkx()
    assert {name: attrs["group"] for name, attrs in nxg.nodes(data=True) if attrs["op"] not in
            ("input", "state", "const")} == _group_of(g)
    assert all(attrs["group"] is None for _, attrs in nxg.nodes(data=True) if attrs["op"] in ("input", "const"))
    dot = g.to_dot()
    for gid in (0, 1):
        cluster = re.search(rf'subgraph "cluster_{gid}" \{{ label="fused {gid}"; style=dashed;\n(.*?)\n  \}}', dot,
                            re.S)
        assert cluster, dot
        members = re.findall(r'"(%\d+)" \[', cluster.group(1))
        assert members == [n.out.name for n in g.nodes if n.group == gid]
    assert "cluster_2" not in dot


def test_fusion_leaves_its_input_graph_unlabelled():
    traced = tg.jit.trace(lambda x: (x * 2.0).exp(), X34)
    fused = fuse_elementwise(traced)
    assert [n.group for n in fused.nodes] == [0, 0]
    assert [n.group for n in traced.nodes] == [None, None]


# ======================================================================= 3. generated module vs its Python reference
def _run_steps(code, fns, graph, arrays):
    """Run a generated module's steps (entry functions from `fns`, other nodes by their numpy forward) on copies
    of `arrays` (a kernel may store new state into the state's own buffer)."""
    env = dict(zip(graph.args + graph.state, [a.copy() for a in arrays]))
    env.update(graph.consts)
    for step in code.steps:
        if step[0] == "native":
            _, fname, reads, outs = step
            res = fns[fname](*[env[v] for v in reads])
            assert isinstance(res, tuple) and len(res) == len(outs)
            env.update(zip(outs, res))
        else:
            node = step[1]
            env[node.out] = np.asarray(node.op.forward(*[env[v] for v in node.inputs], **node.params))
    for new, target in code.inplace.items():  # stored into the state's buffer and not returned
        env.setdefault(new, env[target])
    return [np.asarray(env[v]) for v in _results(graph)]


def _results(graph) -> list:
    """What a call of the graph produces: its outputs, the new state and the new `.grad`s."""
    return graph.outputs + [v for _, v in graph.writes] + [v for _, v in graph.grad_writes if v is not None]


def _interpreted(graph, arrays) -> list:
    program = Program(graph)
    env = program.run([a.copy() for a in arrays])
    slots = program.output_slots + program.write_slots + [s for s in program.grad_slots if s is not None]
    return [np.asarray(env[s]) for s in slots]


def _mlp_step_graph():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss
    compiled = tg.compile(step)
    x, y = tg.ones(7, 5), tg.ones(7, 3)
    compiled(x, y)
    compiled(x, y)  # the first call made the momentum buffers: the second graph is the cached one
    (graph,) = compiled.graphs()
    return graph, [a.shape for a in [x, y]] + [v.shape for v in graph.state]


def _codegen_cases():
    nan = np.array([[1.0, np.nan, 3.0, 0.0], [2.0, 5.0, -1.0, 4.0], [0.5, 0.25, np.nan, -3.0]], np.float32)
    return {
        "broadcast-and-sum": (lambda x, b: ((x * 2.0 + b).tanh() * x).sum(1), [(4, 3), (3,)], None),
        "amax-amin-with-nan": (lambda x: ((x * 2.0).amax(0), (x - 1.0).amin(1, keepdim=True), x.abs().amax()),
                               None, [nan]),
        "stored-value-read-by-two-kernels": (lambda x, y: ((h := x.exp() * 2.0) + 1.0, (y * h).sum(0)),
                                             [(4,), (3, 4)], None),
        "where-compare-cast": (lambda x, y: (tg.where(x > y, x, -y) * (x < 0.5).float()).sum(), [(3, 4), (4,)],
                               None),
        "int64": (lambda n: ((n * 3 + 1).sum(0), (n * n).amax(1)), None, [np.arange(-6, 6).reshape(3, 4)]),
        # an expand of a value the kernel itself computes (a same-shape expand: what `copy_` records) reads the
        # kernel's local value, whether or not the value is also stored
        "expand-of-a-value-the-kernel-computes": (lambda x: (x * 2.0).expand(3, 4) + 1.0, [(3, 4)], None),
        "expand-of-a-stored-value-the-kernel-computes": (lambda x: ((y := x * 2.0).expand(3, 4) + 1.0, y),
                                                         [(3, 4)], None),
        "float64": (lambda x: ((x.exp() + 1.0).log() * x).sum(0), None,
                    [np.random.default_rng(5).standard_normal((5, 3))]),
        "mlp-training-step": (None, None, None),
    }


@pytest.mark.parametrize("name", list(_codegen_cases()))
def test_generated_kernels_equal_their_python_reference(name):
    fn, shapes, arrays = _codegen_cases()[name]
    if name == "mlp-training-step":
        graph, shapes = _mlp_step_graph()
    else:
        if arrays is None:
            arrays = [np.random.default_rng(i).standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)]
        graph = tg.jit.trace(fn, *[tg.tensor(a) for a in arrays])
    if arrays is None:
        arrays = [np.random.default_rng(i).standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)]
    program = native.NativeProgram(graph)  # the backend's own pipeline: its rewrites, fusion and codegen
    fused, code = program.graph, program.code
    assert [s[1] for s in code.steps if s[0] == "native"] == ["segment_0"], "one native segment expected"
    module = native.load_module(code.source)
    compiled = _run_steps(code, {s[1]: getattr(module, s[1]) for s in code.steps if s[0] == "native"},
                          fused, arrays)
    reference = _run_steps(code, python_reference(code.source), fused, arrays)
    interpreted = _interpreted(graph, arrays)
    assert len(compiled) == len(reference) == len(interpreted) == len(_results(graph))
    if name == "mlp-training-step":  # parameters and momentum buffers: stored into their own buffers
        assert code.source.count("# updated in place") == 8, code.source
    for i, (c, r, w) in enumerate(zip(compiled, reference, interpreted)):
        assert (c.shape, c.dtype) == (r.shape, r.dtype) == (w.shape, w.dtype), f"output {i}"
        # numba and Python evaluate the same statements; only float32 libm calls (tanhf vs tanh rounded) differ
        tol = 1e-6 if c.dtype == np.float32 else 1e-13
        np.testing.assert_allclose(c, r, rtol=tol, atol=tol, err_msg=f"{name}: output {i}, numba vs Python")
        np.testing.assert_allclose(c, w, rtol=RTOL, atol=ATOL, err_msg=f"{name}: output {i}, numba vs numpy")


def test_source_is_readable():
    g = fuse_elementwise(tg.jit.trace(lambda x, w, b: ((x @ w) * 2.0 + b).tanh().sum(0), X34, W43, tg.ones(3)))
    code = ModuleSource(g)
    lines = code.source.splitlines()
    compile(code.source, "<generated>", "exec")  # valid Python
    headers = [ln.strip() for ln in lines if ln.strip().startswith("# kernel")]
    assert headers == ["# kernel 0: %1 mul, %2 add, %3 tanh, %4 sum fused over [3, 3]"], code.source
    assert code.n_kernels == 1
    # one statement per IR node, commented with the node
    for node in g.nodes:
        mine = [ln for ln in lines if f"  # {node.out.name} = {node.op.name} " in ln]
        assert len(mine) == 1, f"{node}: {mine}"
    for comment in ("# %0 = matmul x, w", "# %1 = mul %0, c0", "# %2 = add %1, b", "# %3 = tanh %2",
                    "# %4 = sum %3 axes=(0,) keepdim=False", "# load b"):
        assert any(ln.endswith(comment) for ln in lines), comment
    assert "prange(" not in code.source and "parallel=False" in code.source
    assert len([ln for ln in lines if ln.startswith("def segment_")]) == 1


@pytest.mark.parametrize("shape,fn,parallel", [
    ((512, 512), lambda x: (x * 2.0).exp(), True),
    ((511, 512), lambda x: (x * 2.0).exp(), False),
    ((512, 512), lambda x: (x * 2.0).sum(1), True),
    ((512, 512), lambda x: (x * 2.0).sum(0), False),     # threads would race on the accumulator
    ((2, 512, 256), lambda x: (x * 2.0).amax((1, 2)), True),
], ids=["at-threshold", "below-threshold", "sum-rows", "sum-columns", "amax-inner"])
def test_prange_only_from_the_parallel_threshold_on(shape, fn, parallel):
    size = int(np.prod(shape))
    assert (size >= PARALLEL_THRESHOLD) is (shape != (511, 512))
    code = ModuleSource(fuse_elementwise(tg.jit.trace(fn, tg.ones(*shape))))
    loops = re.findall(r"for i\d in (prange|range)\(", code.source)
    assert loops[0] == ("prange" if parallel else "range") and "prange" not in loops[1:], code.source
    assert f"parallel={parallel}" in code.source


def test_parallel_kernel_equals_numpy():
    x = np.random.default_rng(3).standard_normal((512, 512)).astype(np.float32)
    b = x[0].copy()
    fn = lambda x, b: ((x * 2.0 + b).tanh() * x).sum(1)  # noqa: E731
    program = native.NativeProgram(tg.jit.trace(fn, tg.tensor(x), tg.tensor(b)))
    assert "prange(" in program.code.source
    (got,) = program.outputs([x, b])
    np.testing.assert_allclose(got, (np.tanh(x * np.float32(2.0) + b) * x).sum(1, dtype=np.float64), rtol=1e-5,
                               atol=1e-4)


# ============================================================================ 4. whole training steps
STEPS = 5


def _randn(seed, *shape):
    return tg.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _mlp():
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))


def _convnet():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def _held(model, opt) -> dict:
    """Parameters, their .grad, buffers and optimizer state, by name."""
    out = {}
    for name, p in model.named_parameters():
        out[name] = p
        out[name + ".grad"] = p.grad
    out.update(model.named_buffers())
    for i, p in enumerate(model.parameters()):
        for key, value in opt.state.get(p, {}).items():
            out[f"opt.state[{i}].{key}"] = value
    return out


def _train(make_model, make_opt, batches, loss_fn, steps=STEPS):
    """Train an eager and a numba-compiled copy side by side, comparing everything after every step."""
    setups = []
    for _ in range(2):
        tg.manual_seed(0)
        model = make_model()
        setups.append((model, make_opt(model.parameters())))

    eager = train_step(*setups[0], loss_fn)
    compiled = tg.compile(train_step(*setups[1], loss_fn), backend="numba")
    for i in range(steps):
        x, y = batches[i % len(batches)]
        _close(compiled(x, y), eager(x, y), f"step {i}: loss", TRAIN_RTOL, TRAIN_ATOL)
        e, c = _held(*setups[0]), _held(*setups[1])
        assert list(e) == list(c), f"step {i}: {list(e)} vs {list(c)}"
        for name in e:
            if e[name] is None:
                assert c[name] is None, f"step {i}: {name}"
            else:
                _close(c[name], e[name], f"step {i}: {name}", TRAIN_RTOL, TRAIN_ATOL)
    assert compiled.retraces[0] == "first call" and "optimizer state" in compiled.retraces[1]
    assert len(compiled.retraces) == 2, compiled.retraces
    (variants_,) = compiled._cache.values()
    (variant,) = variants_
    return compiled, variant, setups[1]


def _regression_batches():
    return [(_randn(10 + i, 7, 5), _randn(20 + i, 7, 3)) for i in range(3)]


@pytest.mark.parametrize("make_opt", [lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9),
                                      lambda ps: tg.optim.Adam(ps, lr=1e-2)], ids=["sgd-momentum", "adam"])
def test_mlp_training_steps_equal_eager_in_one_native_call(make_opt):
    _, variant, (model, opt) = _train(_mlp, make_opt, _regression_batches(), F.mse_loss)
    program = variant.program
    assert isinstance(program, native.NativeProgram)
    assert program.n_native == 1 and len(program.steps) == 1, [s[4] for s in program.steps]
    assert program.code.n_kernels >= 5  # forward, loss, backward and one update per parameter at least


def test_conv_net_with_batchnorm_training_steps_equal_eager():
    batches = [(_randn(30 + i, 6, 2, 8, 8), tg.tensor(np.random.default_rng(40 + i).integers(0, 3, 6)))
               for i in range(3)]
    _, variant, (model, _) = _train(_convnet, lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9), batches,
                                    F.cross_entropy)
    assert model[1].training and model[1].num_batches_tracked.item() == STEPS
    program = variant.program
    # convolution, its gradients, max pooling and the label indexing run natively: the whole step is a few calls
    assert not [s[4].op.name for s in program.steps if s[4]]
    assert program.n_native <= 3


def _native_and_interpreted(step, arrays, *extra):
    """`step` compiled for numba (untiered) and for the interpreter, each called twice on fresh leaves made from
    `arrays` (requiring grad) and `extra`: each backend's [output, leaf gradients...], the native program and
    the native compiled function."""
    native_step = tg.compile(step, backend="numba", tiered=False)
    results = []
    for compiled in (native_step, tg.compile(step, backend="interpret")):
        for _ in range(2):
            leaves = [tg.tensor(a, requires_grad=True) for a in arrays]
            y = compiled(*leaves, *extra)
        results.append([y.numpy()] + [leaf.grad.numpy() for leaf in leaves])
    program = native_step.last_variant.program
    assert isinstance(program, native.NativeProgram)
    return results, program, native_step


@pytest.mark.parametrize("kernel, stride, padding, dilation", [(2, 2, 0, 1), (3, 2, 1, 1), ((2, 3), (1, 2), 0, 2)])
def test_max_pool_runs_natively_and_equals_the_interpreter(kernel, stride, padding, dilation):
    # ties (rounded values), NaN and -inf windows pick the first maximum, as numpy's argmax over the padded window
    x = np.round(np.random.default_rng(3).standard_normal((3, 2, 7, 8)), 0).astype(np.float32)
    x[0, 0, 1, 1], x[1, 1, 2:4, 3:5], x[2, 0, 0, :3] = np.nan, -np.inf, np.nan

    def step(x):
        y = F.max_pool2d(x, kernel, stride, padding, dilation)
        (y * y.detach().nan_to_num(0.5)).sum().backward()
        return y

    (got, want), program, _ = _native_and_interpreted(step, [x])
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert not [s[4].op.name for s in program.steps if s[4]]


@pytest.mark.parametrize("kernel, stride, padding, count_include_pad", [(2, 2, 0, True), (3, 2, 1, False),
                                                                        ((2, 3), (1, 2), 1, True)])
def test_avg_pool_runs_natively_within_round_off(kernel, stride, padding, count_include_pad):
    def step(x):
        y = F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad)
        (y * y).sum().backward()
        return y

    x = np.random.default_rng(7).standard_normal((3, 2, 7, 8)).astype(np.float32)
    (got, want), program, _ = _native_and_interpreted(step, [x])
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not [s[4].op.name for s in program.steps if s[4]]


@pytest.mark.parametrize("stride, padding, dilation, dtype", [(1, 0, 1, "float32"), (2, 1, 1, "float64"),
                                                               ((2, 1), (0, 2), (1, 2), "float32"),
                                                               ((1, 2), (1, 0), 1, "float32")])
def test_convolution_and_its_gradients_run_natively(stride, padding, dilation, dtype):
    def step(x, w, b):
        y = F.conv2d(x, w, b, stride, padding, dilation)
        (y * y).sum().backward()
        return y

    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s).astype(dtype) for s in ((3, 2, 7, 6), (4, 2, 3, 2), (4,))]
    (got, want), program, _ = _native_and_interpreted(step, arrays)
    for a, e in zip(got, want):
        np.testing.assert_allclose(a, e, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)
    assert not [s[4].op.name for s in program.steps if s[4]]  # the whole step is native


def test_index_arrays_run_natively_with_their_bounds_checked():
    def step(x, i, j):
        y = x[i, j]
        (y * y).sum().backward()
        return y

    x = np.random.default_rng(6).standard_normal((4, 5)).astype(np.float32)
    i, j = tg.tensor([0, 3, 3, 1, 3]), tg.tensor([1, -1, -1, 4, 0])  # repeats: their gradients add up
    (got, want), program, native_step = _native_and_interpreted(step, [x], i, j)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert program.n_native == len(program.steps) == 1
    leaf = tg.tensor(x, requires_grad=True)
    with pytest.raises(IndexError, match=r"index 7 is out of bounds for axis 1 with size 5") as info:
        native_step(leaf, i, tg.tensor([1, 7, 0, 0, 0]))
    assert "getitem" in str(info.value) and "test_numba_backend.py" in str(info.value)  # the node, the user's line
    assert leaf.grad is None  # nothing half-applied


class _Buffers(nn.Module):
    """Two captured buffers updated by `copy_` (an exponential moving average, as of a model's weights)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("ema", tg.zeros(3, 4))
        self.register_buffer("last", tg.zeros(3, 4))


@pytest.mark.parametrize("returned", [False, True], ids=["new-value-not-returned", "new-value-returned"])
def test_copy_into_captured_buffers_equals_eager(returned):
    """`buf.copy_(expr)` of a fused expression (the new value is an expand of a value the kernel computes)."""
    def make():
        bufs = _Buffers()

        def step(x):
            with tg.no_grad():
                new = bufs.ema * 0.9 + x * 0.1
                bufs.ema.copy_(new)
                bufs.last.copy_(x * 2.0)
            return new if returned else x + 1.0
        return bufs, step
    (eager_bufs, eager), (bufs, step) = make(), make()
    compiled = tg.compile(step, backend="numba")
    for i in range(4):
        x = _randn(50 + i, 3, 4)
        _close(compiled(x), eager(x), f"call {i}: output")
        _close(bufs.ema, eager_bufs.ema, f"call {i}: ema")
        _close(bufs.last, eager_bufs.last, f"call {i}: last")
    assert len(compiled.retraces) == 1, compiled.retraces


def test_a_label_out_of_range_fails_the_native_guard_and_raises_pytorchs_error_with_nothing_updated():
    """The label guard is checked inside the native segment, before any kernel writes state: the failed call
    retraces, eager mode raises PyTorch's error, and the parameters and momentum buffers are untouched."""
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 4))
    opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    compiled = tg.compile(train_step(model, opt, F.cross_entropy), backend="numba", tiered=False)
    x, y = tg.randn(16, 6), tg.randint(0, 4, (16,))
    for _ in range(3):
        compiled(x, y)
    program = compiled.last_variant.program
    assert program.n_native == len(program.steps) == 1 and program.code.checks[0][0] == "guard"
    before = [p.detach().numpy().copy() for p in model.parameters()] + \
        [opt.state[p]["momentum_buffer"].numpy().copy() for p in model.parameters()]
    bad = y.clone()
    bad[5] = 7
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        compiled(x, bad)
    after = [p.detach().numpy() for p in model.parameters()] + [opt.state[p]["momentum_buffer"].numpy()
                                                       for p in model.parameters()]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_a_cross_entropy_step_is_one_native_call_updating_its_state_in_place():
    """The label guard is checked and the label gather/scatter runs inside the one native segment; the update
    kernels after them store the new parameters and momentum buffers in their own buffers."""
    def make():
        tg.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 4))
        return model, tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    (m_e, o_e), (m_c, o_c) = make(), make()
    eager, compiled = train_step(m_e, o_e, F.cross_entropy), tg.compile(train_step(m_c, o_c, F.cross_entropy),
                                                                        backend="numba")
    x, y = tg.randn(16, 6), tg.randint(0, 4, (16,))
    for i in range(5):
        _close(compiled(x, y), eager(x, y), f"call {i}: loss")
    buffers = [p._data for p in m_c.parameters()]
    for i in range(3):
        _close(compiled(x, y), eager(x, y), f"call {i + 5}: loss")
    assert [p._data for p in m_c.parameters()] == buffers
    for p, q in zip(m_c.parameters(), m_e.parameters()):
        _close(p, q, "parameter")
        _close(o_c.state[p]["momentum_buffer"], o_e.state[q]["momentum_buffer"], "momentum")
    program = compiled.last_variant.program
    assert program.n_native == len(program.steps) == 1
    assert len(program.code.inplace) == 8  # 4 parameters, 4 momentum buffers
    assert program.write_slots == [None] * 8


def test_failed_guard_after_a_native_segment_retraces_and_applies_nothing():
    """A data-dependent branch: the guard is checked after the native code; a call that takes the other branch
    retraces (the state is written only after everything ran), and both variants equal eager."""
    def make():
        w = tg.tensor([1.0, -2.0, 3.0])

        def f(x):
            s = (x * w).sum()
            with tg.no_grad():
                if s > 0:
                    w.mul_(0.5)
                else:
                    w.add_(x.exp())
            return s * 2.0
        return w, f
    (w_e, eager), (w_c, f) = make(), make()
    compiled = tg.compile(f, backend="numba")
    buffer = w_c._data
    for i, sign in enumerate([1.0, 1.0, -1.0, -1.0, 1.0, -1.0]):
        x = tg.full((3,), sign * (i + 1))
        _close(compiled(x), eager(x), f"call {i}: output")
        _close(w_c, w_e, f"call {i}: w")
    assert w_c._data is buffer
    assert len(compiled.retraces) == 2 and "guard bool()" in compiled.retraces[1], compiled.retraces


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_nan_and_inf_propagate_as_in_eager():
    """Special values through the kernels' scalar expressions and epilogues (NaN-propagating max/min/clamp, as
    numpy; values compared with NaNs equal, and -0.0 equal to 0.0)."""
    x = np.array([[np.nan, np.inf, -np.inf, -0.0], [0.0, 1.5, -2.0, 1e30], [-1e-30, 88.0, -100.0, 0.5]], np.float32)
    y = np.array([[1.0, np.nan, 2.0, 0.0], [-0.0, np.inf, -np.inf, 3.0], [np.nan, -1.0, 0.0, 0.5]], np.float32)

    def f(a, b):
        return (a.relu(), a.log(), a.sigmoid(), a.clamp(-0.5, 0.7), a.clamp(min=b), tg.maximum(a, b),
                tg.minimum(a, b), a / b, a % b, tg.where(a > b, a, b), a != b, tg.amax(a * 1.0, 0),
                tg.amin(a + b, 1), (a * b).sum(0), a.softmax(1), a.logsumexp(1))
    compiled = tg.compile(f, backend="numba")
    for a, b in [(x, y), (y, x)]:
        want = f(tg.tensor(a), tg.tensor(b))
        for k in range(2):
            got = compiled(tg.tensor(a), tg.tensor(b))
            for i, (o, w) in enumerate(zip(got, want)):
                o, w = o.numpy(), w.numpy()
                assert (o.shape, o.dtype) == (w.shape, w.dtype), i
                np.testing.assert_allclose(o, w, rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=f"output {i}")
    assert len(compiled.retraces) == 1


# ============================================================================ 5. the disk cache, across processes
CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tracegrad as tg
    import tracegrad.nn as nn
    import tracegrad.nn.functional as F

    def setup():
        tg.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
        opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        def step(x, y):
            opt.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return model, step

    rng = np.random.default_rng(0)
    batches = [(tg.tensor(rng.standard_normal((7, 5)).astype(np.float32)),
                tg.tensor(rng.standard_normal((7, 3)).astype(np.float32))) for _ in range(4)]
    out = {}
    for mode in ("eager", "numba"):
        model, step = setup()
        if mode == "numba":
            step = tg.compile(step, backend="numba")
        out[mode] = [float(step(x, y).item()) for x, y in batches]
        out[mode + "_params"] = [p.detach().numpy().tolist() for p in model.parameters()]
    (variant,) = next(iter(step._cache.values()))
    entry = variant.program.steps[0][0]
    out["hits"] = sum(entry.stats.cache_hits.values())
    out["misses"] = sum(entry.stats.cache_misses.values())
    out["module_file"] = sys.modules[entry.py_func.__module__].__file__
    out["retraces"] = step.retraces
    out["n_native"] = variant.program.n_native
    print(json.dumps(out))
""")


def _child(cache, wait=True):
    """Run CHILD (eager and numba-compiled MLP training, 4 steps) in a new process with its cache in `cache`."""
    env = dict(os.environ, TRACEGRAD_CACHE_DIR=str(cache), PYTHONPATH=REPO)
    env.pop("TRACEGRAD_SHOW_KERNELS", None)
    proc = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return _result(proc) if wait else proc


def _result(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"child failed:\n{err}"
    res = json.loads(out.strip().splitlines()[-1])
    # the numba step equals eager (calls 1 and 2 trace, the first making the momentum buffers; 3 and 4 run the
    # native code)
    assert len(res["retraces"]) == 2 and res["n_native"] == 1, res["retraces"]
    np.testing.assert_allclose(res["numba"], res["eager"], rtol=TRAIN_RTOL, atol=TRAIN_ATOL)
    for p, q in zip(res["numba_params"], res["eager_params"]):
        np.testing.assert_allclose(p, q, rtol=TRAIN_RTOL, atol=TRAIN_ATOL)
    return res


def _kernel_files(cache) -> dict:
    """{file name: text} of the generated modules in a cache directory."""
    return {p.name: p.read_text() for p in sorted(cache.glob("tracegrad_kernels_*.py"))}


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache directory filled by one child process, and that process's result (it compiled: all misses)."""
    cache = tmp_path_factory.mktemp("warm-cache")
    res = _child(cache)
    assert res["misses"] > 0 and res["hits"] == 0, res
    assert os.path.dirname(res["module_file"]) == str(cache)
    assert os.path.basename(res["module_file"]) in _kernel_files(cache)
    return cache, res


def test_second_process_loads_the_machine_code_from_disk(warm_cache):
    cache, first = warm_cache
    files = _kernel_files(cache)
    second = _child(cache)
    assert second["hits"] > 0 and second["misses"] == 0, second
    assert second["module_file"] == first["module_file"]
    assert second["numba"] == first["numba"] and second["numba_params"] == first["numba_params"]
    assert _kernel_files(cache) == files


def test_damaged_kernel_files_are_detected_and_rewritten(warm_cache, tmp_path):
    """Each generated module in the cache is damaged (the one the step runs by a same-length edit that still
    imports: float32 rounding made float64); the next process notices, rewrites them and gets eager's results."""
    src, first = warm_cache
    cache = tmp_path / "cache"
    shutil.copytree(src, cache)
    good = _kernel_files(cache)
    running = os.path.basename(first["module_file"])
    damages = [lambda t: t[:len(t) // 2], lambda t: "", lambda t: t[:-1] + "#"]
    for k, (name, text) in enumerate(good.items()):
        if name == running:
            assert "np.float32(" in text
            damaged = text.replace("np.float32(", "np.float64(")
        else:
            damaged = damages[k % len(damages)](text)
        assert damaged != text
        (cache / name).write_text(damaged)
    res = _child(cache)
    assert res["numba"] == first["numba"] and res["numba_params"] == first["numba_params"]
    assert _kernel_files(cache) == good, "a damaged kernel file was not rewritten"


def test_two_processes_compiling_the_same_step_at_once(tmp_path):
    procs = [_child(tmp_path, wait=False) for _ in range(2)]
    results = [_result(p) for p in procs]
    assert results[0]["numba"] == results[1]["numba"]
    files = _kernel_files(tmp_path)
    assert os.path.basename(results[0]["module_file"]) in files
    assert not list(tmp_path.glob("*.tmp")), "temporary files left behind"
    # and the cache they left is sound: a third process only loads
    third = _child(tmp_path)
    assert third["hits"] > 0 and third["misses"] == 0, third
    assert third["numba"] == results[0]["numba"]
    assert _kernel_files(tmp_path) == files


# ============================================================================ 6. TRACEGRAD_SHOW_KERNELS
def test_show_kernels_prints_the_generated_source(monkeypatch, capsys):
    def scaled_tanh(x):
        return (x * 3.0).tanh()

    monkeypatch.delenv("TRACEGRAD_SHOW_KERNELS", raising=False)
    quiet = tg.compile(scaled_tanh, backend="numba")
    quiet(tg.ones(2, 5))
    assert capsys.readouterr().out == ""

    monkeypatch.setenv("TRACEGRAD_SHOW_KERNELS", "1")
    compiled = tg.compile(scaled_tanh, backend="numba")
    x = tg.ones(2, 5)
    compiled(x)  # the traced call runs eagerly: the kernels are generated when the graph first runs
    assert capsys.readouterr().out == ""
    compiled(x)
    out = capsys.readouterr().out
    (variant,) = next(iter(compiled._cache.values()))
    assert out.startswith("# ---- tracegrad kernels for scaled_tanh\n")
    assert variant.program.code.source in out
    for text in ("@njit(cache=True", "def segment_0(", "# kernel 0: %0 mul, %1 tanh fused over [2, 5]",
                 "# %1 = tanh %0"):
        assert text in out, text
    np.testing.assert_allclose(compiled(x).numpy(), np.tanh(np.full((2, 5), 3.0, np.float32)), rtol=RTOL)


def test_gemm_into_reads_any_blas_layout_and_refuses_the_rest():
    """`compiler.blas.gemm_into`, the matmul of generated kernels: row- and column-major operands with any
    leading dimension are read in place; a broadcast (stride 0) is refused (False, nothing written) and the
    kernels retry on contiguous copies; empty products and k = 0 are handled without BLAS."""
    from numba import njit

    from tracegrad.compiler.blas import gemm_into

    @njit
    def product(a, b):
        out = np.full((a.shape[0], b.shape[1]), np.nan, a.dtype)
        return gemm_into(a, b, out), out

    rng = np.random.default_rng(0)
    big = rng.standard_normal((9, 12)).astype(np.float32)
    b = rng.standard_normal((4, 5)).astype(np.float32)
    cases = [(big[:3, :4], b), (big[:4, :3].T, b), (big[1:4, 2:6], big[:5, 1:5].T),  # slices and transposes
             (big[::2, :4][:3], b[:, ::-1].copy())]
    for a, bb in cases:
        ok, out = product(a, bb)
        assert ok
        np.testing.assert_allclose(out, a @ bb, rtol=1e-5, atol=1e-5)
    ok, out = product(big[:3, :4], np.broadcast_to(b[:1], (4, 5)))
    assert not ok and np.isnan(out).all()
    ok, out = product(np.ones((3, 0), np.float32), np.ones((0, 5), np.float32))
    assert ok and (out == 0).all()
    ok, out = product(np.ones((0, 2), np.float32), np.ones((2, 5), np.float32))
    assert ok and out.shape == (0, 5)
    a64 = rng.standard_normal((3, 4))
    ok, out = product(a64, a64.T)
    np.testing.assert_allclose(out, a64 @ a64.T, rtol=1e-12)


def test_a_broadcast_operand_of_a_matmul_is_copied_for_blas():
    f = tg.compile(lambda a, b: (a.expand(4, 3) @ b).sum(), backend="numba", tiered=False)
    a, b = tg.tensor([[1.0, 2.0, 3.0]]), tg.ones(3, 2)
    for _ in range(2):
        assert f(a, b).item() == 48.0
    assert f.last_variant.program.n_native == 1
