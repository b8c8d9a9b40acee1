"""Recurrent layers and packed sequences (`nn.RNN`, `nn.LSTM`, `nn.GRU`, the cells, `nn.utils.rnn`), specified
against PyTorch:

* a seed gives PyTorch's initial weights bit for bit, under PyTorch's parameter names, and the same repr;
* outputs, h_n / c_n and the gradients of the input, the initial states and every parameter equal PyTorch's
  (float32, ~1e-5) for layers 1/2, bidirectional, batch_first, bias=False, proj_size, initial states,
  unbatched input, relu, dropout in eval (and in training: PyTorch's masks for a seed), and packed input
  sorted and unsorted; the cells batched and unbatched, with and without a hidden state;
* pad/pack/unpack give PyTorch's layouts (data, batch_sizes, sorted/unsorted indices) and gradients;
* gradcheck in float64 for each cell and a small two-layer bidirectional module (padded and packed);
* a training step under `compile(backend="interpret")` equals eager bit for bit; under numba it is within
  round-off, and each step's gate arithmetic is one fused kernel; packed batches with other lengths but the
  same padded size replay the same graph;
* the error messages are PyTorch's.
"""
import re
import warnings

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.nn.functional as F
from tracegrad import nn
from tracegrad.nn.utils import rnn as rnn_utils

I, H = 3, 4  # noqa: E741 - input and hidden size, as the PyTorch docs name them


def _torch():
    return pytest.importorskip("torch")


def _rand(seed, *shape, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _np(t):
    return None if t is None else t.detach().numpy()


def _close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6, err_msg=what)


# ------------------------------------------------------------------------------- construction and init
def _modules(m):
    n = m.nn
    return [n.RNN(I, H), n.RNN(I, H, 2, "relu", bidirectional=True), n.LSTM(I, H, bias=False),
            n.LSTM(I, H, num_layers=2, batch_first=True, dropout=0.5, bidirectional=True, proj_size=2),
            n.GRU(I, H, num_layers=3), n.RNNCell(I, H, nonlinearity="relu"), n.LSTMCell(I, H, bias=False),
            n.GRUCell(I, H)]


def test_seeded_weights_names_and_repr_are_pytorchs():
    torch = _torch()
    tg.manual_seed(0)
    ours = _modules(tg)
    torch.manual_seed(0)
    theirs = _modules(torch)
    for a, b in zip(ours, theirs):
        assert repr(a) == repr(b)
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb), repr(b)
        for k in sb:
            np.testing.assert_array_equal(sa[k].numpy(), sb[k].numpy(), err_msg=f"{b!r}: {k}")
    lstm, their_lstm = ours[3], theirs[3]
    assert [[p.shape for p in ps] for ps in lstm.all_weights] == \
        [[tuple(p.shape) for p in ps] for ps in their_lstm.all_weights]
    assert lstm.all_weights[1][0] is lstm.weight_ih_l0_reverse
    assert lstm._flat_weights_names == their_lstm._flat_weights_names
    lstm.flatten_parameters()  # a no-op, as PyTorch's on CPU
    assert nn.RNN(I, H, nonlinearity="relu").nonlinearity == "relu" and nn.RNN(I, H, 1, "relu").mode == "RNN_RELU"


# ------------------------------------------------------------------------------- module parity
def _run_module(m, kind, kwargs, x, hx, lengths=None, enforce_sorted=True, state=None):
    """Build the module (seed 0, or `state` loaded), run it, backprop random weights of every output; returns
    the arrays to compare: output, h_n (c_n), gradients of x, of the initial states and of every parameter."""
    m.manual_seed(0)
    mod = getattr(m.nn, kind)(**kwargs)
    if state is not None:
        mod.load_state_dict(state)
    mod.eval() if kwargs.get("dropout") else mod.train()
    xt = m.tensor(x, requires_grad=True)
    hs = [m.tensor(h, requires_grad=True) for h in hx] if hx else []
    arg = None if not hs else (tuple(hs) if kind == "LSTM" else hs[0])
    inp = xt
    if lengths is not None:
        inp = m.nn.utils.rnn.pack_padded_sequence(xt, m.tensor(lengths), batch_first=kwargs.get("batch_first", False),
                                                  enforce_sorted=enforce_sorted)
    out, hidden = mod(inp, arg)
    res = {}
    if lengths is not None:
        res.update(data=out.data, batch_sizes=out.batch_sizes, sorted=out.sorted_indices,
                   unsorted=out.unsorted_indices)
        out = out.data
    hidden = hidden if isinstance(hidden, tuple) else (hidden,)
    res.update(out=out, **{f"h_n{i}": h for i, h in enumerate(hidden)})
    seeds = [_rand(10 + i, *t.shape) for i, t in enumerate((out, *hidden))]
    loss = sum((t * m.tensor(s)).sum() for t, s in zip((out, *hidden), seeds))
    loss.backward()
    res["dx"] = xt.grad
    res.update({f"dh{i}": h.grad for i, h in enumerate(hs)})
    res.update({f"grad {k}": p.grad for k, p in mod.named_parameters()})
    return {k: _np(v) for k, v in res.items()}


def _states(kind, kwargs, batch, seed=5):
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    h = [_rand(seed, layers, batch, kwargs.get("proj_size") or H)]
    return h + [_rand(seed + 1, layers, batch, H)] if kind == "LSTM" else h


MODULE_CASES = [
    ("RNN", {}, False, False),
    ("RNN", {"nonlinearity": "relu", "num_layers": 2, "bidirectional": True, "batch_first": True}, True, False),
    ("RNN", {"bias": False}, False, True),
    ("LSTM", {}, False, False),
    ("LSTM", {"num_layers": 2, "bidirectional": True, "batch_first": True}, True, False),
    ("LSTM", {"bias": False, "num_layers": 2, "dropout": 0.5}, True, False),
    ("LSTM", {"proj_size": 2, "num_layers": 2, "bidirectional": True}, True, False),
    ("LSTM", {"bidirectional": True}, True, True),
    ("GRU", {}, True, False),
    ("GRU", {"num_layers": 2, "bidirectional": True, "batch_first": True, "bias": False}, False, False),
    ("GRU", {"num_layers": 2, "dropout": 0.3}, False, True),
]


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("kind,options,with_state,unbatched", MODULE_CASES,
                         ids=[f"{k}-{'-'.join(map(str, o.items())) or 'default'}-{'h0' if s else ''}"
                              f"{'-unbatched' if u else ''}" for k, o, s, u in MODULE_CASES])
def test_module_matches_pytorch(kind, options, with_state, unbatched):
    torch = _torch()
    kwargs = {"input_size": I, "hidden_size": H, **options}
    steps, batch = 5, 3
    x = _rand(1, steps, I) if unbatched else _rand(1, *((batch, steps) if options.get("batch_first") else
                                                       (steps, batch)), I)
    hx = None
    if with_state:
        hx = _states(kind, kwargs, batch)
        if unbatched:
            hx = [h[:, 0] for h in hx]
    theirs = _run_module(torch, kind, kwargs, x, hx)
    # our module starts from other weights and loads PyTorch's state_dict
    torch.manual_seed(0)
    state = {k: v.numpy() for k, v in getattr(torch.nn, kind)(**kwargs).state_dict().items()}
    tg.manual_seed(1)
    ours = _run_module(tg, kind, kwargs, x, hx, state=state)
    assert sorted(ours) == sorted(theirs)
    for k in theirs:
        assert ours[k].shape == theirs[k].shape, k
        _close(ours[k], theirs[k], k)


PACKED_CASES = [("LSTM", True, True), ("LSTM", False, True), ("GRU", False, False), ("RNN", True, False)]


@pytest.mark.parametrize("kind,sorted_lengths,with_state", PACKED_CASES)
def test_packed_input_matches_pytorch(kind, sorted_lengths, with_state):
    torch = _torch()
    kwargs = {"input_size": I, "hidden_size": H, "num_layers": 2, "bidirectional": True,
              "batch_first": not sorted_lengths}
    lengths = [6, 4, 4, 1] if sorted_lengths else [3, 6, 1, 4]
    x = _rand(2, *((6, 4) if sorted_lengths else (4, 6)), I)
    hx = _states(kind, kwargs, 4) if with_state else None
    ours = _run_module(tg, kind, kwargs, x, hx, lengths, enforce_sorted=sorted_lengths)
    theirs = _run_module(torch, kind, kwargs, x, hx, lengths, enforce_sorted=sorted_lengths)
    assert sorted(ours) == sorted(theirs)
    for k in theirs:
        if theirs[k] is None:
            assert ours[k] is None, k
            continue
        assert ours[k].shape == theirs[k].shape and ours[k].dtype == theirs[k].dtype, k
        _close(ours[k], theirs[k], k)


def test_packed_output_pads_back_like_pytorch():
    torch = _torch()
    x = _rand(3, 4, 5, I)

    def run(m):
        m.manual_seed(0)
        gru = m.nn.GRU(I, H, batch_first=True)
        xt = m.tensor(x, requires_grad=True)
        packed = m.nn.utils.rnn.pack_padded_sequence(xt, m.tensor([2, 5, 1, 3]), batch_first=True,
                                                     enforce_sorted=False)
        out, h = gru(packed)
        padded, lengths = m.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, padding_value=-2.0,
                                                             total_length=7)
        (padded.tanh().sum() + h.sum()).backward()
        return [_np(t) for t in (padded, lengths, h, xt.grad, gru.weight_hh_l0.grad)]

    for a, b in zip(run(tg), run(torch)):
        _close(a, b, "pad_packed_sequence after a GRU")


def test_dropout_in_training_draws_pytorchs_masks():
    torch = _torch()
    x = _rand(4, 5, 3, I)

    def run(m):
        m.manual_seed(0)
        lstm = m.nn.LSTM(I, H, num_layers=3, dropout=0.4, bidirectional=True)
        return [_np(lstm(m.tensor(x))[0]) for _ in range(2)]  # two calls: fresh masks each

    ours, theirs = run(tg), run(torch)
    for a, b in zip(ours, theirs):
        _close(a, b, "dropout between layers")
    assert not np.allclose(ours[0], ours[1])
    lstm = nn.LSTM(I, H, num_layers=2, dropout=0.4).eval()
    np.testing.assert_array_equal(_np(lstm(tg.tensor(x))[0]), _np(lstm(tg.tensor(x))[0]))


# ------------------------------------------------------------------------------- cells
CELL_CASES = [("RNNCell", {}, True, True), ("RNNCell", {"nonlinearity": "relu", "bias": False}, False, True),
              ("LSTMCell", {}, True, True), ("LSTMCell", {"bias": False}, True, False),
              ("LSTMCell", {}, False, True), ("GRUCell", {}, True, True), ("GRUCell", {}, True, False),
              ("GRUCell", {"bias": False}, False, False)]


@pytest.mark.parametrize("kind,options,with_state,batched", CELL_CASES)
def test_cells_match_pytorch(kind, options, with_state, batched):
    torch = _torch()
    x = _rand(6, 2, I) if batched else _rand(6, I)
    states = [_rand(7 + i, *((2, H) if batched else (H,))) for i in range(2 if kind == "LSTMCell" else 1)]

    def run(m):
        m.manual_seed(0)
        cell = getattr(m.nn, kind)(I, H, **options)
        xt = m.tensor(x, requires_grad=True)
        hs = [m.tensor(s, requires_grad=True) for s in states]
        out = cell(xt, (tuple(hs) if kind == "LSTMCell" else hs[0]) if with_state else None)
        outs = out if isinstance(out, tuple) else (out,)
        sum((o * m.tensor(_rand(20 + i, *o.shape))).sum() for i, o in enumerate(outs)).backward()
        return [_np(t) for t in (*outs, xt.grad, *(h.grad for h in hs if with_state),
                                 *(p.grad for p in cell.parameters()))]

    ours, theirs = run(tg), run(torch)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        _close(a, b, kind)


# ------------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_gradcheck(kind):
    cell = getattr(nn, kind)(2, 3, dtype=tg.float64)
    x = tg.tensor(_rand(1, 2, 2, dtype=np.float64), requires_grad=True)
    h = tg.tensor(_rand(2, 2, 3, dtype=np.float64), requires_grad=True)
    c = tg.tensor(_rand(3, 2, 3, dtype=np.float64), requires_grad=True)
    if kind == "LSTMCell":
        assert tg.autograd.gradcheck(lambda x, h, c: tg.cat(cell(x, (h, c)), 1), (x, h, c))
    else:
        assert tg.autograd.gradcheck(lambda x, h: cell(x, h), (x, h))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_two_layer_bidirectional_gradcheck(kind):
    mod = getattr(nn, kind)(2, 2, num_layers=2, bidirectional=True, dtype=tg.float64)
    x = tg.tensor(_rand(1, 3, 2, 2, dtype=np.float64), requires_grad=True)
    h0 = tg.tensor(_rand(2, 4, 2, 2, dtype=np.float64), requires_grad=kind == "LSTM")
    lengths = tg.tensor([3, 2])
    weights = [tg.tensor(_rand(k, *shape, dtype=np.float64)) for k, shape in enumerate([(3, 2, 4), (5, 4), (4, 2, 2)])]

    def run(x, h0):  # a few weighted sums of every output (the Jacobian's rows are backward passes)
        hx = (h0, h0 * 0.5) if kind == "LSTM" else h0
        out, hidden = mod(x, hx)
        packed, hidden_p = mod(rnn_utils.pack_padded_sequence(x, lengths), hx)
        h, h_p = (hidden, hidden_p) if kind == "GRU" else (hidden[1], hidden_p[0])
        w_out, w_packed, w_h = weights
        return tg.stack([(out * w_out).sum(), (packed.data * w_packed).sum(), (h * w_h).sum() + (h_p * w_h).sum()])

    assert tg.autograd.gradcheck(run, (x, h0))


# ------------------------------------------------------------------------------- nn.utils.rnn
def test_pad_pack_unpack_match_pytorch():
    torch = _torch()
    seqs = [_rand(30 + i, n, 2) for i, n in enumerate([2, 4, 1])]

    def run(m):
        u = m.nn.utils.rnn
        ts = [m.tensor(s, requires_grad=True) for s in seqs]
        out = [u.pad_sequence(ts), u.pad_sequence(ts, batch_first=True, padding_value=-1.0),
               u.pad_sequence(ts, batch_first=True, padding_side="left")]
        p = u.pack_sequence(ts, enforce_sorted=False)
        q = u.pack_sequence(sorted(ts, key=len, reverse=True))
        out += [p.data, p.batch_sizes, p.sorted_indices, p.unsorted_indices, q.data, q.batch_sizes]
        assert q.sorted_indices is None and q.unsorted_indices is None
        out += list(u.pad_packed_sequence(p, batch_first=True, padding_value=3.0, total_length=6))
        out += list(u.pad_packed_sequence(q))
        # NOTE: PyTorch's unpad_sequence transposes its argument in place: give it a tensor of its own
        out += u.unpack_sequence(p) + u.unpad_sequence(u.pad_sequence(ts), m.tensor([2, 4, 1]))
        sum((t.tanh() * (k + 1)).sum() for k, t in enumerate(out) if t.is_floating_point()).backward()
        return out + [t.grad for t in ts]

    ours, theirs = run(tg), run(torch)
    assert len(ours) == len(theirs)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype.np == _np(b).dtype, k
        _close(_np(a), _np(b), f"output {k}")
    packed = rnn_utils.pack_sequence([tg.tensor([1, 2]), tg.tensor([3, 4, 5])], enforce_sorted=False)
    data, batch_sizes, sorted_indices, unsorted_indices = packed  # a named tuple, as PyTorch's
    assert isinstance(packed, tuple) and packed._fields == ("data", "batch_sizes", "sorted_indices",
                                                           "unsorted_indices")
    assert packed[1] is batch_sizes and data.tolist() == [3, 1, 4, 2, 5]
    assert repr(packed) == repr(torch.nn.utils.rnn.pack_sequence(
        [torch.tensor([1, 2]), torch.tensor([3, 4, 5])], enforce_sorted=False))
    assert packed.double().data.dtype is tg.float64 and packed.to(tg.int64) is packed


def test_a_packed_sequence_built_from_data_and_batch_sizes_runs_like_pytorchs():
    torch = _torch()
    data = _rand(8, 6, I)

    def run(m):
        m.manual_seed(0)
        lstm = m.nn.LSTM(I, H, bidirectional=True)
        d = m.tensor(data, requires_grad=True)
        packed = m.nn.utils.rnn.PackedSequence(d, m.tensor([3, 2, 1]))
        out, (h, c) = lstm(packed)
        (out.data.sin().sum() + h.sum()).backward()
        padded, lengths = m.nn.utils.rnn.pad_packed_sequence(out)
        return [_np(t) for t in (out.data, out.batch_sizes, h, c, d.grad, padded, lengths)]

    for a, b in zip(run(tg), run(torch)):
        _close(a, b, "PackedSequence(data, batch_sizes)")


# ------------------------------------------------------------------------------- compile
def _train_step(model, opt, packed_length=None):
    def step(x, y, lengths=None):
        opt.zero_grad()
        if lengths is None:
            out, _ = model(x)
        else:
            packed = rnn_utils.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = model(packed)
            out, _ = rnn_utils.pad_packed_sequence(out, batch_first=True, total_length=packed_length)
        loss = F.mse_loss(out, y)
        loss.backward()
        opt.step()
        return loss
    return step


def _pair(kind, optimizer="Adam", **kwargs):
    made = []
    for _ in range(2):
        tg.manual_seed(0)
        model = getattr(nn, kind)(I, H, **kwargs)
        made.append((model, getattr(tg.optim, optimizer)(model.parameters(), lr=0.05)))
    return made


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_compiled_training_step_equals_eager_bit_for_bit(kind):
    (m1, o1), (m2, o2) = _pair(kind, num_layers=2, bidirectional=True)
    eager, compiled = _train_step(m1, o1), tg.compile(_train_step(m2, o2), backend="interpret")
    for i in range(3):
        x, y = tg.tensor(_rand(40 + i, 4, 3, I)), tg.tensor(_rand(50 + i, 4, 3, 2 * H))
        assert eager(x, y).item() == compiled(x, y).item()
    for (name, a), b in zip(m1.named_parameters(), m2.parameters()):
        np.testing.assert_array_equal(_np(a), _np(b), err_msg=name)
        np.testing.assert_array_equal(_np(a.grad), _np(b.grad), err_msg=name)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_packed_batches_of_other_lengths_share_one_compiled_graph(kind):
    (m1, o1), (m2, o2) = _pair(kind, bidirectional=True)
    steps = 5
    eager = _train_step(m1, o1, packed_length=steps)
    compiled = tg.compile(_train_step(m2, o2, packed_length=steps), backend="interpret")
    for i, lengths in enumerate([[5, 2, 3], [1, 4, 4], [2, 2, 5], [3, 1, 1]]):
        x, y = tg.tensor(_rand(60 + i, 3, steps, I)), tg.tensor(_rand(70 + i, 3, steps, 2 * H))
        lens = tg.tensor(lengths)
        assert eager(x, y, lens).item() == compiled(x, y, lens).item()
    # the first call, and the second (Adam's state appeared): never the lengths
    assert len(compiled.retraces) == 2 and not any("length" in r for r in compiled.retraces), compiled.retraces
    assert len(compiled.graphs()) == 1
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(_np(a), _np(b))


def test_a_packed_sequence_crosses_a_compiled_functions_boundary():
    gru = nn.GRU(I, H)
    compiled = tg.compile(lambda p: gru(p), backend="interpret")

    def packed(seed, lengths):
        return rnn_utils.pack_sequence([tg.tensor(_rand(seed + k, n, I)) for k, n in enumerate(lengths)])

    for p in [packed(0, [4, 2]), packed(10, [4, 2]), packed(20, [3, 3, 1]), packed(0, [4, 2]), packed(30, [4, 2]),
              packed(40, [4, 2, 2]), packed(50, [4, 3, 1])]:
        (out, h), (ref, ref_h) = compiled(p), gru(p)
        assert isinstance(out, rnn_utils.PackedSequence)  # outputs are rebuilt from their fields
        np.testing.assert_array_equal(_np(out.data), _np(ref.data))
        np.testing.assert_array_equal(_np(out.batch_sizes), _np(ref.batch_sizes))
        np.testing.assert_array_equal(_np(h), _np(ref_h))
    # an argument arrives as its fields: other batch sizes are another shape, or a guard on their values fails
    assert len(compiled.graphs()) == 4 and compiled.retraces[3].startswith("guard"), compiled.retraces


def test_numba_training_step_fuses_each_steps_gate_arithmetic():
    (m1, o1), (m2, o2) = _pair("LSTM", "SGD")  # SGD: one variant, the fewest kernels to compile
    eager = _train_step(m1, o1)
    compiled = tg.compile(_train_step(m2, o2), backend="numba", tiered=False)
    # NOTE: one time step: each step adds two native segments, and a cold numba compile costs seconds per segment
    for i in range(3):
        x, y = tg.tensor(_rand(80 + i, 1, 2, I)), tg.tensor(_rand(90 + i, 1, 2, H))
        np.testing.assert_allclose(compiled(x, y).item(), eager(x, y).item(), rtol=1e-5)
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(_np(b), _np(a), rtol=1e-4, atol=1e-6)
    steps = 3  # explain() traces and fuses without compiling
    fused = compiled.explain(tg.tensor(_rand(1, steps, 2, I)), tg.tensor(_rand(2, steps, 2, H))).fused
    gate_ops = ("sigmoid", "tanh", "add", "mul")
    forward = [n for n in fused.nodes if n.phase == "forward" and n.op.name in gate_ops and n.out.shape == (2, H)]
    assert sum(n.op.name in ("sigmoid", "tanh") for n in forward) == 5 * steps  # 3 sigmoids, tanh(g), tanh(c)
    groups = [n.group for n in forward]
    assert None not in groups
    # all of one step's gate arithmetic in one kernel, one kernel per step
    assert len(set(groups)) == steps and all(groups.count(g) == len(forward) // steps for g in set(groups))


# ------------------------------------------------------------------------------- errors
ERRORS = [
    (lambda m: m.nn.LSTM(3, 4)(m.zeros(5, 2, 6)), RuntimeError),
    (lambda m: m.nn.LSTM(3, 4)(m.zeros(5, 2, 3), (m.zeros(1, 3, 4), m.zeros(1, 2, 4))), RuntimeError),
    (lambda m: m.nn.LSTM(3, 4)(m.zeros(5, 2, 3), (m.zeros(1, 2, 4), m.zeros(1, 2, 5))), RuntimeError),
    (lambda m: m.nn.LSTM(3, 4)(m.zeros(5, 2, 3), (m.zeros(2, 4), m.zeros(1, 2, 4))), RuntimeError),
    (lambda m: m.nn.LSTM(3, 4)(m.zeros(5, 3), (m.zeros(1, 2, 4), m.zeros(1, 2, 4))), RuntimeError),
    (lambda m: m.nn.LSTM(3, 4)(m.zeros(5, 2, 3, 1)), ValueError),
    (lambda m: m.nn.LSTM(3, 4)(m.zeros(5, 2, 3, dtype=m.float64)), ValueError),
    (lambda m: m.nn.GRU(3, 4)(m.zeros(5, 2, 3), m.zeros(1, 3, 4)), RuntimeError),
    (lambda m: m.nn.GRU(3, 4)(m.zeros(5, 2, 3), m.zeros(3, 4)), RuntimeError),
    (lambda m: m.nn.GRU(3, 4)(m.zeros(5, 3), m.zeros(1, 3, 4)), RuntimeError),
    (lambda m: m.nn.RNN(3, 4)(m.zeros(5, 6)), RuntimeError),
    (lambda m: m.nn.RNN(3, 4)(m.zeros(5, 2, 3, 3)), ValueError),
    (lambda m: m.nn.RNN(3, 4, nonlinearity="sigmoid"), ValueError),
    (lambda m: m.nn.GRU(3, 4, proj_size=2), ValueError),
    (lambda m: m.nn.LSTM(3, 4, proj_size=4), ValueError),
    (lambda m: m.nn.LSTM(3, 4, dropout=1.5), ValueError),
    (lambda m: m.nn.LSTM(3, 4, num_layers=0), ValueError),
    (lambda m: m.nn.LSTM(3, 0), ValueError),
    (lambda m: m.nn.LSTMCell(3, 4)(m.zeros(2, 5)), RuntimeError),
    (lambda m: m.nn.LSTMCell(3, 4)(m.zeros(2, 3), (m.zeros(3, 4), m.zeros(2, 4))), RuntimeError),
    (lambda m: m.nn.LSTMCell(3, 4)(m.zeros(2, 3), (m.zeros(2, 4), m.zeros(2, 5))), RuntimeError),
    (lambda m: m.nn.LSTMCell(3, 4)(m.zeros(2, 3, 1)), ValueError),
    (lambda m: m.nn.GRUCell(3, 4)(m.zeros(2, 3), m.zeros(2, 5)), RuntimeError),
    (lambda m: m.nn.GRUCell(3, 4)(m.zeros(2, 3), m.zeros(2, 5, 1)), ValueError),
    (lambda m: m.nn.RNNCell(3, 4)(m.zeros(2, 3), m.zeros(3, 4)), RuntimeError),
    (lambda m: m.nn.utils.rnn.pack_padded_sequence(m.zeros(5, 3, 2), [2, 3, 1]), RuntimeError),
    (lambda m: m.nn.utils.rnn.pack_padded_sequence(m.zeros(5, 3, 2), m.tensor([3, 2, 0])), RuntimeError),
    (lambda m: m.nn.utils.rnn.pack_padded_sequence(m.zeros(5, 3, 2), [3, 2]), RuntimeError),
    (lambda m: m.nn.utils.rnn.pad_packed_sequence(m.nn.utils.rnn.pack_padded_sequence(m.zeros(5, 3, 2), [3, 2, 1]),
                                                  total_length=2), ValueError),
    (lambda m: m.nn.utils.rnn.pad_sequence([m.zeros(2, 3), m.zeros(3, 4)]), RuntimeError),
    (lambda m: m.nn.utils.rnn.pad_sequence([m.zeros(2), m.zeros(3)], padding_side="middle"), RuntimeError),
    (lambda m: m.nn.utils.rnn.pad_sequence([]), RuntimeError),
    (lambda m: m.nn.utils.rnn.pad_sequence(3), RuntimeError),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_are_pytorchs(case):
    torch = _torch()
    make, kind = ERRORS[case]
    with pytest.raises(kind) as theirs:
        make(torch)
    expected = str(theirs.value).replace("torch.", "tracegrad.").replace("<class 'int'>", "<class 'int'>")
    with pytest.raises(kind, match=re.escape(expected)):
        make(tg)


def test_errors_without_a_pytorch_counterpart():
    with pytest.raises(RuntimeError, match=re.escape("a length (6) is larger than the padded sequence length (5)")):
        rnn_utils.pack_padded_sequence(tg.zeros(5, 3, 2), [6, 2, 1])  # PyTorch reads past the tensor
    with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0 in RNN"):
        nn.GRU(3, 4)(tg.zeros(0, 2, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nn.LSTM(3, 4, dropout=0.5)
    assert "non-zero dropout expects num_layers greater than 1, but got dropout=0.5 and num_layers=1" in \
        str(caught[0].message)
