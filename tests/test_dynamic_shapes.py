"""A new batch size costs a trace, not a native compile (issue 11): sizes that follow the batch are symbols.

Specified here (`compiler.dynamic`, the numba codegen's `module_source`, `runtime.native`):

1. an MLP training step (Linear-ReLU-Linear, SGD with momentum; MSE loss and cross-entropy) compiled with
   ``backend="numba"`` and called at batch 64 several times, then at batch 16 several times, then at 64 again,
   equals an eager copy after every step (loss, parameters, .grad, momentum buffers; float32 round-off), and
   the batch-16 variant compiles nothing: its generated module text is the batch-64 one, `load_module` finds
   it loaded already, and every numba dispatcher it runs is one the batch-64 variant ran, with no new
   signature, cache hit or cache miss;
2. a small CNN step (Conv2d, ReLU, MaxPool2d, flattened with ``x.view(x.size(0), -1)`` and with ``nn.Flatten``,
   Linear) at two batch sizes equals eager, and its segments are shared too; so are steps with Adam, AdamW,
   BatchNorm1d, LayerNorm, an L1 loss, an Embedding, and a label per position (``(B, 5, 10)`` scores
   flattened to ``(B*5, 10)``: a product symbol);
3. a batch size equal to a hidden size (batch 64 through Linear(64, 64)) is still right at batch 16 (and the
   hidden 64 stays a literal, so the module is shared); batch size 1 (no symbol: size 1 broadcasts) is right;
   a reshape to a literal size equal to the batch size is right at another batch size (another module); a
   product symbol split back into the batch in another segment is computed there (``n0 = n1 // (5)``); a 0-d
   argument gets no symbol;
4. the generated text: sizes that follow the batch are symbols read from the segment's arrays (``n0 =
   v3.shape[0]``, ``range(n0)``), `symbols` says what each is, comments name them in `module_source` and show
   this trace's sizes in `source`; with ``dynamic=False`` nothing is symbolic.

The tests use a fresh ``TRACEGRAD_CACHE_DIR`` of their own unless one is set.
"""
import os
import re

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.nn as nn
import tracegrad.nn.functional as F
from tracegrad.compiler.codegen import ModuleSource, native_graph
from tracegrad.compiler.dynamic import Size, symbolic_sizes
from tracegrad.runtime import native

RTOL, ATOL = 1e-5, 1e-6  # float32 round-off over a few training steps (as test_numba_backend's training tests)


@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory):
    """A cache directory of this module's own (unless the caller chose one); native code built in this process
    at the first replay (no background compile: these tests look at what this process loads and compiles)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRACEGRAD_TIERED", "0")
        if not os.environ.get("TRACEGRAD_CACHE_DIR"):
            mp.setenv("TRACEGRAD_CACHE_DIR", str(tmp_path_factory.mktemp("tracegrad-cache")))
        yield


@pytest.fixture
def loads(monkeypatch):
    """Every `load_module` call: (the module text, whether that text was loaded in this process already)."""
    seen = []
    real = native.load_module

    def spy(source):
        before = set(native._LOADED)
        module = real(source)
        seen.append((source, set(native._LOADED) == before))
        return module
    monkeypatch.setattr(native, "load_module", spy)
    return seen


def _close(got, want, what):
    got = got.detach().numpy() if isinstance(got, tg.Tensor) else np.asarray(got)
    want = want.detach().numpy() if isinstance(want, tg.Tensor) else np.asarray(want)
    assert (got.shape, got.dtype) == (want.shape, want.dtype), what
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


def _held(model, opt) -> dict:
    out = {}
    for name, p in model.named_parameters():
        out[name], out[name + ".grad"] = p, p.grad
    out.update(model.named_buffers())
    for i, p in enumerate(model.parameters()):
        for key, value in opt.state.get(p, {}).items():
            if isinstance(value, tg.Tensor):
                out[f"opt.state[{i}].{key}"] = value
    return out


def _sgd(params):
    return tg.optim.SGD(params, lr=0.05, momentum=0.9)


def _pair(make_model, loss_fn, make_opt=_sgd):
    """An eager and a numba-compiled training step of two copies of one model (SGD with momentum by default)."""
    steps = []
    for _ in range(2):
        tg.manual_seed(0)
        model = make_model()
        opt = make_opt(model.parameters())

        def step(x, y, model=model, opt=opt):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return loss
        steps.append((model, opt, step))
    (em, eo, eager), (cm, co, step) = steps
    compiled = tg.compile(step, backend="numba")

    def run(x, y, what):
        _close(compiled(x, y), eager(x, y), f"{what}: loss")
        e, c = _held(em, eo), _held(cm, co)
        assert list(e) == list(c), what
        for name in e:
            if e[name] is None:
                assert c[name] is None, f"{what}: {name}"
            else:
                _close(c[name], e[name], f"{what}: {name}")
    return compiled, run


def _programs(compiled) -> dict:
    """The native programs built so far, by the batch size of the variant's first argument."""
    out = {}
    for variants in compiled._cache.values():
        for v in variants:
            if getattr(v, "_program", None) is not None:
                out[v.graph.args[0].shape[0]] = v.program
    return out


def _dispatchers(program) -> list:
    return [fn for fn, *_, node in program.steps if node is None]


def _compiles(fn) -> tuple:
    """What numba did for a dispatcher so far: its signatures, cache hits and cache misses."""
    return (list(fn.signatures), sum(fn.stats.cache_hits.values()), sum(fn.stats.cache_misses.values()))


def _batches(seed, n, d_in, target):
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.standard_normal((n, d_in)).astype(np.float32))
    if target == "classes":
        return x, tg.tensor(rng.integers(0, 10, n))
    return x, tg.tensor(rng.standard_normal((n, target)).astype(np.float32))


# ============================================================================ 1. an MLP training step
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_smaller_last_batch_compiles_nothing_new(loss, loads):
    loss_fn, target = (F.mse_loss, 10) if loss == "mse" else (F.cross_entropy, "classes")
    compiled, run = _pair(lambda: nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 10)), loss_fn)
    for i in range(4):  # calls 1-2 trace (the first makes the momentum buffers), 3-4 run the native code
        run(*_batches(i, 64, 20, target), f"batch 64, step {i}")
    (big,) = _programs(compiled).values()
    seen_big = list(loads)
    assert seen_big, "the batch-64 variant loaded no module"
    before = {id(fn): _compiles(fn) for fn in _dispatchers(big)}

    for i in range(4):  # call 1 traces the new size, 2-4 run its native program
        run(*_batches(10 + i, 16, 20, target), f"batch 16, step {i}")
    small = _programs(compiled)[16]
    assert [s for s, _ in loads[len(seen_big):]] == [s for s, _ in seen_big], \
        "the batch-16 graph generated another module text"
    assert all(hit for _, hit in loads[len(seen_big):]), "the batch-16 module was not loaded already"
    assert small.code.module_source == big.code.module_source
    assert small.code.source != big.code.source  # its comments show this trace's sizes
    for fn in _dispatchers(small):
        assert id(fn) in before, f"{fn.py_func.__name__}: a dispatcher the batch-64 variant didn't run"
        assert _compiles(fn) == before[id(fn)], f"{fn.py_func.__name__}: numba compiled for batch 16"

    for i in range(2):  # batch 64 again: its variant, still cached
        run(*_batches(20 + i, 64, 20, target), f"batch 64 again, step {i}")
    assert len(loads) == 2 * len(seen_big)
    assert len(compiled.retraces) == 3, compiled.retraces
    assert big.code.symbols["n0"].startswith("x dim 0")


# ============================================================================ 2. a small CNN
class _ViewFlatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


@pytest.mark.parametrize("flatten", [_ViewFlatten, nn.Flatten], ids=["view", "nn.Flatten"])
def test_cnn_step_at_two_batch_sizes(flatten, loads):
    def make():
        # the second convolution's input gradient (conv2d_input_grad) follows the batch too
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                             nn.ReLU(), flatten(), nn.Linear(4 * 4 * 4, 3))
    compiled, run = _pair(make, F.cross_entropy)

    def batch(seed, n):
        rng = np.random.default_rng(seed)
        return (tg.tensor(rng.standard_normal((n, 1, 8, 8)).astype(np.float32)),
                tg.tensor(rng.integers(0, 3, n)))
    for i in range(3):
        run(*batch(i, 8), f"batch 8, step {i}")
    n_big = len(loads)
    for i in range(3):
        run(*batch(10 + i, 5), f"batch 5, step {i}")
    for i in range(2):
        run(*batch(20 + i, 8), f"batch 8 again, step {i}")
    programs = _programs(compiled)
    assert programs[5].code.module_source == programs[8].code.module_source
    assert all(hit for _, hit in loads[n_big:]) and len(loads) == 2 * n_big
    # convolution, pooling and the label indexing run natively: the whole step is native calls
    assert not [s[4] for s in programs[5].steps if s[4]]


MODELS = {
    # name: (model, optimizer, loss, input and target at batch size n)
    "adam-mse": (lambda: nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 10)),
                 lambda ps: tg.optim.Adam(ps, lr=1e-2), F.mse_loss, lambda s, n: _batches(s, n, 20, 10)),
    # BatchNorm's running variance is updated with momentum * n/(n-1): a constant read as an array
    "batchnorm1d": (lambda: nn.Sequential(nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)),
                    _sgd, F.cross_entropy, lambda s, n: _batches(s, n, 20, "classes")),
    # the LayerNorm divides by its 32 features: read as an array too (32 is a multiple of 16)
    "layernorm-l1": (lambda: nn.Sequential(nn.Linear(20, 32), nn.LayerNorm(32), nn.ReLU(), nn.Linear(32, 10)),
                     lambda ps: tg.optim.AdamW(ps, lr=1e-2), F.l1_loss, lambda s, n: _batches(s, n, 20, 10)),
    "embedding": (lambda: nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(8 * 5, 10)), _sgd,
                  F.cross_entropy, lambda s, n: (tg.tensor(np.random.default_rng(s).integers(0, 50, (n, 5))),
                                                 _batches(s, n, 1, "classes")[1])),
    # a label per position: (B, 5, 10) scores flattened to (B*5, 10), and the gradient reshaped back
    "sequence": (lambda: nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 10)), _sgd,
                 lambda out, y: F.cross_entropy(out.reshape(-1, 10), y.reshape(-1)),
                 lambda s, n: (tg.tensor(np.random.default_rng(s).integers(0, 50, (n, 5))),
                               tg.tensor(np.random.default_rng(s + 1).integers(0, 10, (n, 5))))),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_other_models_share_their_modules_across_batch_sizes(name, loads):
    make_model, make_opt, loss_fn, batch = MODELS[name]
    compiled, run = _pair(make_model, loss_fn, make_opt)
    for i in range(3):
        run(*batch(i, 64), f"batch 64, step {i}")
    n_big = len(loads)
    for i in range(3):
        run(*batch(10 + i, 16), f"batch 16, step {i}")
    run(*batch(20, 64), "batch 64 again")
    programs = _programs(compiled)
    assert programs[16].code.module_source == programs[64].code.module_source
    assert len(loads) == 2 * n_big and all(hit for _, hit in loads[n_big:])
    if name == "sequence":  # the product of the batch and the sequence length is a symbol of its own
        assert "n2 = n0 * 5" in programs[64].code.module_source, programs[64].code.module_source


# ============================================================================ 3. sizes that coincide, size 1, literals
def test_batch_size_equal_to_a_hidden_size(loads):
    compiled, run = _pair(lambda: nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)), F.cross_entropy)
    for i in range(3):
        run(*_batches(i, 64, 64, "classes"), f"batch 64, step {i}")
    for i in range(3):
        run(*_batches(10 + i, 16, 64, "classes"), f"batch 16, step {i}")
    run(*_batches(20, 64, 64, "classes"), "batch 64 again")
    programs = _programs(compiled)
    source = programs[64].code.module_source
    assert "range(64)" in source and "range(n0)" in source  # the hidden size is a literal, the batch a symbol
    assert programs[16].code.module_source == source


def test_batch_size_one(loads):
    compiled, run = _pair(lambda: nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 10)), F.mse_loss)
    for i in range(3):
        run(*_batches(i, 64, 20, 10), f"batch 64, step {i}")
    for i in range(3):
        run(*_batches(10 + i, 1, 20, 10), f"batch 1, step {i}")
    run(*_batches(20, 64, 20, 10), "batch 64 again")
    programs = _programs(compiled)
    assert not programs[1].code.symbols and "n0" not in programs[1].code.module_source
    assert programs[1].code.module_source != programs[64].code.module_source


def _compiled_pair(fn):
    compiled = tg.compile(fn, backend="numba")

    def run(*args):
        want = fn(*args)
        for _ in range(2):  # the first call at a new size traces, the second runs the native code
            got = compiled(*args)
            for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
                np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=2e-5, atol=2e-5)
    return compiled, run


def test_reshape_to_a_literal_equal_to_the_batch_size():
    """At batch 8, ``x.reshape(8, -1)`` keeps x's rows (the 8 is printed as the symbol); at batch 4 the same code
    makes 8 rows of half the width: another graph, another text, each right."""
    def f(x, w):
        return ((x.reshape(8, -1) * 2.0).tanh() @ w).sum(0)
    compiled, run = _compiled_pair(f)
    rng = np.random.default_rng(0)
    for n, width in [(8, 6), (4, 12), (8, 6)]:
        run(tg.tensor(rng.standard_normal((n, width)).astype(np.float32)),
            tg.tensor(rng.standard_normal((6, 3)).astype(np.float32)))
    programs = _programs(compiled)
    assert programs[8].code.module_source != programs[4].code.module_source


def test_a_product_split_back_into_the_batch(loads):
    """(B, 5) -> (B*5,) is a product symbol; a later segment that receives only the (B*5,) array and reshapes it
    back to (B, 5) computes B from it."""
    def f(x):
        h = (x * 2.0).reshape(-1)
        h[0] = 0.0  # index_put runs in numpy: the reshape back is in another segment
        return (h.reshape(-1, 5) + 1.0).sum(1)
    compiled, run = _compiled_pair(f)
    rng = np.random.default_rng(2)
    for n in (8, 4, 8):
        run(tg.tensor(rng.standard_normal((n, 5)).astype(np.float32)))
    programs = _programs(compiled)
    text = programs[8].code.module_source
    assert programs[8].code.symbols == {"n0": "x dim 0", "n1": "n0 * 5"}
    assert "n1 = n0 * 5" in text and "n0 = n1 // (5)" in text and ".reshape((n0, 5))" in text, text
    assert programs[4].code.module_source == text and [hit for _, hit in loads] == [False, True]


def test_zero_dim_argument_gets_no_symbol(loads):
    def f(x, s):
        return (x * s).exp().sum(0), (x - s).amax()
    compiled, run = _compiled_pair(f)
    rng = np.random.default_rng(1)
    for n in (8, 4, 8):
        run(tg.tensor(rng.standard_normal((n, 5)).astype(np.float32)), tg.tensor(np.float32(0.5)))
    programs = _programs(compiled)
    assert programs[8].code.symbols == {"n0": "x dim 0"}
    assert programs[4].code.module_source == programs[8].code.module_source
    assert [hit for _, hit in loads] == [False, True]


# ============================================================================ 4. the generated text
def _mse_step_graph(n):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss
    compiled = tg.compile(step)
    x, y = tg.ones(n, 20), tg.ones(n, 10)
    compiled(x, y)
    compiled(x, y)
    (graph,) = compiled.graphs()
    return native_graph(graph)


def test_generated_text_names_the_batch():
    code = ModuleSource(_mse_step_graph(64))
    text, shown = code.module_source, code.source
    assert code.symbols == {"n0": "x dim 0, y dim 0"}  # x - y joins the two arguments' batch dimensions
    assert code.segment_symbols == {"segment_0": {"n0": (code.graph.args[0], 0)}}
    assert "    n0 = v3.shape[0]  # x dim 0, y dim 0\n" in text and "for i0 in range(n0):" in text
    assert "np.empty((n0, 32), np.float32)" in text and "np.empty((n0, 10), np.float32)" in text
    assert re.search(r"# kernel \d+: .* fused over \[n0, 32\]", text)
    assert not re.search(r"\b64\b", text), "a batch size left in the module text"
    # the mean's count (64 * 10) and its gradient's scale (2 / 640) are read as 0-d arrays, not printed as literals
    assert "640" not in text and repr(np.float32(2 / 640).item()) not in text
    # what people read: the same code, this trace's sizes in the comments
    assert re.sub(r"#.*", "", shown) == re.sub(r"#.*", "", text)
    assert re.search(r"# kernel \d+: .* fused over \[64, 32\]", shown)
    assert "n0 = x dim 0, y dim 0 (= 64 in this trace)" in shown
    assert ModuleSource(_mse_step_graph(16)).module_source == text
    static = ModuleSource(_mse_step_graph(64), dynamic=False)
    assert static.symbols == {} and "n0" not in static.module_source and "range(64)" in static.module_source
    assert static.module_source == static.source


def test_symbolic_sizes_follow_the_registry_rules():
    g = tg.jit.trace(lambda x, b, w: ((x + b) @ w).relu().sum(0, keepdim=True).expand(5, 3) * x[:, :3],
                 tg.ones(5, 4), tg.ones(4), tg.ones(4, 3))
    sizes = symbolic_sizes(g)
    assert sizes.symbols == {"n0": "x dim 0", "n1": "b dim 0, w dim 0"}  # b + x and x @ w join 4 with 4
    shapes = {n.out.name: sizes.shape(n.out) for n in g.nodes}
    by_op = {n.op.name: sizes.shape(n.out) for n in g.nodes}
    assert by_op["matmul"] == (5, 3) and isinstance(by_op["matmul"][0], Size) and by_op["matmul"][0].name == "n0"
    assert not isinstance(by_op["sum"][0], Size)  # keepdim's 1 is a literal
    assert isinstance(by_op["expand"][0], Size)  # expand(5, 3) * x[...]: joined through the multiplication
    assert all(isinstance(s[0], Size) for s in shapes.values() if s and s[0] == 5), shapes
    assert symbolic_sizes(tg.jit.trace(lambda x: x * 2.0, tg.ones(1, 3))).symbols == {}
