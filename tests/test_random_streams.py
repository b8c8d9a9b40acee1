"""Random streams equal PyTorch's CPU streams: the same seed gives the same numbers, layers and batches."""
import re

import numpy as np
import pytest

import tracegrad as tg

# PyTorch 2.13's own output for these seeds (recorded once from torch, so this file checks without torch too)
TORCH_RAND_SEED0 = [0.49625658988952637, 0.7682217955589294, 0.08847743272781372]
TORCH_RANDN_SEED0 = [1.5409960746765137, -0.293428897857666, -2.1787893772125244]
TORCH_RANDPERM6_SEED0 = [2, 5, 3, 0, 1, 4]


def test_seeded_draws_are_pytorchs_without_torch_installed():
    tg.manual_seed(0)
    assert tg.rand(3).tolist() == TORCH_RAND_SEED0
    tg.manual_seed(0)
    assert tg.randn(3).tolist() == TORCH_RANDN_SEED0
    assert tg.randperm(6, generator=tg.Generator().manual_seed(0)).tolist() == TORCH_RANDPERM6_SEED0


def test_state_round_trips_and_restores_the_cached_normal_sample():
    tg.manual_seed(3)
    tg.randn(1)  # leaves the pair's second sample cached
    state = tg.get_rng_state()
    a = tg.randn(5)
    tg.set_rng_state(state)
    assert tg.equal(a, tg.randn(5))


def _draws(m):
    """The same calls in tracegrad and in torch; every value must agree."""
    out = {}
    for seed in (0, 7, 2 ** 40 + 5):
        m.manual_seed(seed)
        out[seed] = [
            m.rand(5), m.rand(3, dtype=m.float64), m.randn(3), m.randn(4), m.randn(37), m.randn(5, dtype=m.float64),
            m.randn(40, dtype=m.float64), m.randint(0, 10, (6,)), m.randint(-5, 2 ** 40, (3,)), m.randperm(11),
            m.rand_like(m.zeros(2, 2)), m.normal(2.0, 3.0, size=(3,)), m.normal(m.zeros(20), m.ones(20) * 2),
            m.bernoulli(m.full((9,), 0.3)), m.empty(6).bernoulli_(0.7), m.empty(5).uniform_(-0.3, 0.7),
            m.empty(17).normal_(0.5, 0.25), m.empty(5).random_(3, 9), m.empty(4, dtype=m.int64).random_(),
            m.empty(5).exponential_(2.0), m.nn.functional.dropout(m.ones(12), 0.3),
        ]
    return out


def test_every_draw_equals_pytorchs_for_the_same_seed():
    torch = pytest.importorskip("torch")
    ours, theirs = _draws(tg), _draws(torch)
    for seed in ours:
        for i, (a, b) in enumerate(zip(ours[seed], theirs[seed])):
            # NOTE: float32 normal samples in blocks of 16 differ by an ulp (PyTorch's AVX log/sin/cos)
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-6, atol=1e-6, err_msg=f"seed {seed}, draw {i}")


def _layers(m):
    m.manual_seed(0)
    net = m.nn.Sequential(m.nn.Conv2d(3, 4, 3), m.nn.BatchNorm2d(4), m.nn.ReLU(), m.nn.Flatten(),
                          m.nn.Linear(4 * 4 * 4, 5), m.nn.Embedding(7, 3))
    return [p.detach().numpy() for p in net.parameters()]


def test_seeded_layers_hold_pytorchs_initial_weights_bit_for_bit():
    torch = pytest.importorskip("torch")
    ours, theirs = _layers(tg), _layers(torch)
    for a, b in zip(ours[:-1], theirs[:-1]):  # uniform draws (conv, linear), constants (batch norm)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ours[-1], theirs[-1], rtol=2e-6)  # normal draws: an ulp from PyTorch's AVX math


def _epochs(m):
    m.manual_seed(0)
    ds = m.utils.data.TensorDataset(m.arange(10))
    loader = m.utils.data.DataLoader(ds, batch_size=4, shuffle=True)
    batches = [[b[0].tolist() for b in loader] for _ in range(2)]
    split = [list(s) for s in m.utils.data.random_split(range(10), [0.7, 0.3])]
    return batches, split, m.rand(2).tolist()


def test_shuffled_epochs_and_random_split_follow_pytorchs_stream():
    torch = pytest.importorskip("torch")
    assert _epochs(tg) == _epochs(torch)


def test_in_place_fills_check_their_arguments():
    with pytest.raises(RuntimeError, match="bernoulli_ expects p to be in"):
        tg.empty(2).bernoulli_(1.5)
    with pytest.raises(RuntimeError, match="normal_ expects a floating point tensor"):
        tg.zeros(2, dtype=tg.int64).normal_()
    with pytest.raises(RuntimeError, match="normal expects std >= 0.0"):
        tg.normal(0.0, -1.0, size=(2,))


def test_a_compiled_step_draws_what_eager_draws():
    def step(x):
        return tg.nn.functional.dropout(x, 0.4) + tg.randn(3, 4) + tg.empty(3, 4).uniform_(-1, 1)

    x = tg.ones(3, 4)
    compiled = tg.compile(step)
    tg.manual_seed(5)
    eager = [step(x) for _ in range(3)]
    tg.manual_seed(5)
    for e in eager:
        assert tg.equal(compiled(x), e)


# ------------------------------------------------------------------------------------------ linalg-optim block
def _probabilities(rng, shape, dtype):
    p = (rng.random(shape) * (rng.random(shape) > 0.3)).astype(dtype)
    p[..., 0] += dtype(0.01)
    return p


def test_multinomial_draws_pytorchs_samples():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for k, (shape, dtype) in enumerate([((7,), np.float32), ((3, 11), np.float64), ((2, 300), np.float32)]):
        p = _probabilities(rng, shape, dtype)
        positive = int((p > 0).sum(-1).min())
        for replacement, n in ((True, 17), (True, 1), (False, 1), (False, 4), (False, shape[-1])):
            seed = 11 * k + n
            ours = tg.multinomial(tg.tensor(p), n, replacement, generator=tg.Generator().manual_seed(seed))
            theirs = torch.multinomial(torch.tensor(p), n, replacement, generator=torch.Generator().manual_seed(seed))
            assert ours.dtype is tg.int64 and tuple(ours.shape) == tuple(theirs.shape)
            # NOTE: without replacement, the categories of probability 0 come last in an order PyTorch's topk
            # leaves to its sort (ties); the draws before them are the same
            m = n if replacement else min(n, positive)
            np.testing.assert_array_equal(ours.numpy()[..., :m], theirs.numpy()[..., :m], err_msg=f"{shape} {n}")
    tg.manual_seed(5)
    torch.manual_seed(5)
    assert tg.tensor([1.0, 2.0]).multinomial(6, True).tolist() == torch.tensor([1.0, 2.0]).multinomial(6, True).tolist()
    assert tg.rand(2).tolist() == torch.rand(2).tolist()  # the global stream advanced alike


def test_multinomial_errors_and_compiled_draws():
    for args, message in [((tg.ones(2, 2, 2), 1), "prob_dist must be 1 or 2 dim"),
                          ((tg.ones(3, dtype=tg.int64), 1), "multinomial only supports floating-point dtypes for "
                                                            "input, got: Long"),
                          ((tg.ones(3), 0), "cannot sample n_sample <= 0 samples"),
                          ((tg.ones(3), 4), "cannot sample n_sample > prob_dist.size(-1) samples without replacement"),
                          ((tg.tensor([1.0, -1.0]), 1), "probability tensor contains either `inf`, `nan` or "
                                                        "element < 0"),
                          ((tg.zeros(2), 1), "invalid multinomial distribution (sum of probabilities <= 0)"),
                          ((tg.tensor([1.0, -1.0]), 2, True), "encountering probability entry < 0"),
                          ((tg.tensor([1.0, float("inf")]), 2, True), "encountering probability entry = infinity")]:
        with pytest.raises(RuntimeError, match=re.escape(message)):
            tg.multinomial(*args)
    draw = tg.compile(lambda p: tg.multinomial(p, 5, True), backend="interpret")
    p = tg.tensor([0.2, 0.5, 0.3])
    tg.manual_seed(1)
    compiled = [draw(p).tolist() for _ in range(3)]
    tg.manual_seed(1)
    assert compiled == [tg.multinomial(p, 5, True).tolist() for _ in range(3)]
