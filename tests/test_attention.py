"""Attention and the Transformer, against PyTorch 2.13.

* `F.scaled_dot_product_attention`: no mask, bool and float masks broadcast over batch dims, is_causal (square,
  upper-left when L != S, with a mask too), scale, 2- to 5-D inputs, broadcast batch dims, GQA, a row that may
  attend to nothing (zeros), dropout masks from PyTorch's stream: outputs and the gradients of q, k, v;
* `nn.MultiheadAttention`: seeded weights, state_dict keys and repr as PyTorch's; every option (batch_first,
  kdim/vdim, masks of each kind, need_weights, average_attn_weights, add_bias_kv, add_zero_attn, bias=False,
  is_causal, unbatched, dropout in training) with PyTorch's state_dict loaded: outputs, weights and the gradients
  of the inputs and of every parameter;
* `TransformerEncoderLayer`, `TransformerEncoder` (masks, causal detection), the decoder and `Transformer`;
* `nn.Embedding` / `F.embedding` options language models use: padding_idx, max_norm (in place), norm_type,
  scale_grad_by_freq, from_pretrained;
* gradcheck in float64; a compiled 2-layer encoder training step (interpreter bit-equal to eager, over steps with
  fresh dropout masks), an embedding step compiled, attention under numba (within round-off); PyTorch's error
  messages and warnings.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.nn.functional as F
from tracegrad import nn

# PyTorch warns about these as tracegrad does (test_warnings_are_pytorchs)
pytestmark = [pytest.mark.filterwarnings("ignore:enable_nested_tensor is True"),
              pytest.mark.filterwarnings("ignore:Support for mismatched")]


def _np(t):
    return None if t is None else t.detach().numpy()


def _close(ours, theirs, what, rtol=1e-5):
    """float32 within ~1e-5 relative to the largest magnitude (elements near 0 carry the others' round-off)."""
    a, b = _np(ours), _np(theirs)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    scale = np.abs(b[np.isfinite(b)]).max() if np.isfinite(b).any() else 1.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=what)


def _run(m, module, call, arrays, train, theirs_state=None):
    """Seed, build `module(m)` (loading PyTorch's state_dict into ours), run `call(m, module, *tensors)` with float
    arrays requiring grad, backpropagate a fixed random projection of the outputs: (outputs, input grads, named
    parameter grads)."""
    m.manual_seed(0)
    mod = module(m)
    if theirs_state is not None:
        mod.load_state_dict(theirs_state)
    mod.train(train)
    tensors = [m.tensor(a, requires_grad=a.dtype.kind == "f" and a.ndim > 0 and not name.endswith("mask"))
               for name, a in arrays]
    m.manual_seed(1)  # the dropout draws
    outs = call(m, mod, *tensors)
    outs = [o for o in (outs if isinstance(outs, tuple) else (outs,)) if o is not None]
    rng = np.random.default_rng(7)
    loss = sum((o * m.tensor(rng.standard_normal(tuple(o.shape)).astype(np.float32))).sum() for o in outs)
    loss.backward()
    grads = [t.grad for t in tensors if t.requires_grad]
    return mod, outs, grads, [(n, p.grad) for n, p in mod.named_parameters()]


def _compare_with_pytorch(module, call, arrays, train=False):
    torch = pytest.importorskip("torch")
    theirs = _run(torch, module, call, arrays, train)
    state = {k: v.detach().numpy() for k, v in theirs[0].state_dict().items()}
    ours = _run(tg, module, call, arrays, train, state)
    assert list(ours[0].state_dict()) == list(theirs[0].state_dict())
    for i, (a, b) in enumerate(zip(ours[1], theirs[1], strict=True)):
        _close(a, b, f"output {i}")
    for i, (a, b) in enumerate(zip(ours[2], theirs[2], strict=True)):
        _close(a, b, f"gradient of input {i}")
    for (na, a), (nb, b) in zip(ours[3], theirs[3], strict=True):
        assert na == nb
        _close(a, b, f"gradient of {na}")


def _arrays(seed, **shapes):
    rng = np.random.default_rng(seed)
    return [(name, rng.standard_normal(s).astype(np.float32)) for name, s in shapes.items()]


# ------------------------------------------------------------------------------------ scaled_dot_product_attention
def _bool_mask(shape, seed, dead_row=False):
    m = np.random.default_rng(seed).random(shape) > 0.3
    if dead_row:
        m[..., 1, :] = False  # query 1 may attend to nothing: zeros, as PyTorch's
    return m


SDPA_CASES = [  # id, shapes of q, k, v, mask (None or an array), keyword arguments
    ("4d", (2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), None, {}),
    ("bool_mask_dead_row", (2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), _bool_mask((4, 5), 0, True), {}),
    ("float_mask_per_head_scale", (2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 8),
     np.random.default_rng(1).standard_normal((3, 1, 5)).astype(np.float32), {"scale": 0.3}),
    ("causal_upper_left", (3, 4, 8), (3, 6, 8), (3, 6, 8), None, {"is_causal": True}),
    # NOTE: PyTorch's 4-D CPU kernel combines is_causal with a mask, its math kernel (other ranks, dropout) raises
    ("causal_and_bool_mask", (2, 2, 3, 4), (2, 2, 3, 4), (2, 2, 3, 4), _bool_mask((2, 1, 3, 3), 2),
     {"is_causal": True}),
    ("5d_bool_mask", (2, 2, 2, 3, 4), (2, 2, 2, 3, 4), (2, 2, 2, 3, 4), _bool_mask((2, 1, 1, 3, 3), 2), {}),
    ("2d_float_mask", (4, 8), (4, 8), (4, 8), np.triu(np.full((4, 4), -np.inf, np.float32), 1), {}),
    ("broadcast_batch", (2, 3, 4, 8), (1, 3, 5, 8), (1, 3, 5, 8), None, {}),
    ("gqa", (2, 4, 3, 8), (2, 2, 5, 8), (2, 2, 5, 8), _bool_mask((3, 5), 3), {"enable_gqa": True}),
]


@pytest.mark.parametrize("q, k, v, mask, kwargs", [c[1:] for c in SDPA_CASES], ids=[c[0] for c in SDPA_CASES])
def test_sdpa_matches_pytorch(q, k, v, mask, kwargs):
    arrays = _arrays(0, q=q, k=k, v=v) + ([] if mask is None else [("attn_mask", mask)])

    def call(m, _, *t):
        return m.nn.functional.scaled_dot_product_attention(*t[:3], attn_mask=t[3] if len(t) > 3 else None, **kwargs)

    _compare_with_pytorch(lambda m: m.nn.Module(), call, arrays)


def test_sdpa_masked_row_is_zero_with_zero_gradient():
    q, k, v = (tg.randn(2, 4, 3, requires_grad=True) for _ in range(3))
    mask = tg.tensor(_bool_mask((4, 4), 0, dead_row=True))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out.sum().backward()
    assert (out[:, 1] == 0).all() and (q.grad[:, 1] == 0).all() and not k.grad.isnan().any()


def test_sdpa_dropout_draws_pytorchs_mask():
    arrays = _arrays(1, q=(2, 2, 4, 8), k=(2, 2, 6, 8), v=(2, 2, 6, 8)) + [("attn_mask", _bool_mask((4, 6), 4))]

    def call(m, _, q, k, v, mask):
        return m.nn.functional.scaled_dot_product_attention(q, k, v, mask, dropout_p=0.4)

    _compare_with_pytorch(lambda m: m.nn.Module(), call, arrays)


def test_sdpa_gradcheck():
    rng = np.random.default_rng(0)
    q, k, v = (tg.tensor(rng.standard_normal(s), dtype=tg.float64, requires_grad=True)
               for s in ((2, 3, 4), (2, 5, 4), (2, 5, 2)))
    bias = tg.tensor(rng.standard_normal((3, 5)), dtype=tg.float64, requires_grad=True)
    keep = tg.tensor(_bool_mask((3, 5), 1, dead_row=True))
    assert tg.autograd.gradcheck(lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, b, scale=0.7),
                                 (q, k, v, bias))
    assert tg.autograd.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, keep), (q, k, v))
    assert tg.autograd.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), (q, k, v))


# ------------------------------------------------------------------------------------------ MultiheadAttention
def _mha_masks(spec: dict, n, L, S, H):
    """Masks by kind; MultiheadAttention's bool masks are True where attention is *not* allowed."""
    rng = np.random.default_rng(3)
    kinds = {
        "kpm": lambda: np.arange(S)[None, :] >= np.array([S, S - 2, S - 1][:n])[:, None],
        "kpm_1d": lambda: np.arange(S) >= S - 2,
        "kpm_float": lambda: rng.standard_normal((n, S)).astype(np.float32),
        "kpm_dead": lambda: np.stack([np.ones(S, bool)] + [np.zeros(S, bool)] * (n - 1)),
        "causal": lambda: np.triu(np.ones((L, S), bool), 1),
        "causal_float": lambda: np.triu(np.full((L, S), -np.inf, np.float32), 1),
        "float_3d": lambda: rng.standard_normal((n * H, L, S)).astype(np.float32),
    }
    return [(name, kinds[kind]()) for name, kind in spec.items()]


MHA_CASES = [  # id, constructor kwargs, inputs ("self", "kv": key is value, "qkv"), L, S, N (None: unbatched),
    #            masks by argument, forward kwargs, train
    ("self_bool_masks_weights", {}, "self", 5, 5, 3, {"key_padding_mask": "kpm", "attn_mask": "causal"}, {}, False),
    ("batch_first_cross_float_3d_mask", {"batch_first": True}, "kv", 4, 6, 3, {"attn_mask": "float_3d"},
     {"need_weights": False}, False),
    ("kdim_vdim_per_head_weights", {"kdim": 3, "vdim": 5}, "qkv", 4, 6, 2, {"key_padding_mask": "kpm_float"},
     {"average_attn_weights": False}, False),
    ("bias_kv_zero_attn", {"add_bias_kv": True, "add_zero_attn": True}, "self", 5, 5, 3,
     {"key_padding_mask": "kpm", "attn_mask": "causal"}, {}, False),
    ("unbatched", {}, "qkv", 4, 6, None, {"key_padding_mask": "kpm_1d"}, {}, False),
    ("no_bias_is_causal", {"bias": False, "batch_first": True}, "self", 5, 5, 2, {"attn_mask": "causal_float"},
     {"is_causal": True, "need_weights": False}, False),
    ("padded_sequence_sdpa_zeros", {"batch_first": True}, "self", 5, 5, 3, {"key_padding_mask": "kpm_dead"},
     {"need_weights": False}, False),
    ("train_dropout_weights", {"dropout": 0.3}, "self", 5, 5, 2, {"key_padding_mask": "kpm"}, {}, True),
    ("train_dropout_sdpa", {"dropout": 0.3, "batch_first": True}, "kv", 4, 6, 2, {}, {"need_weights": False}, True),
]


@pytest.mark.parametrize("ctor, inputs, L, S, n, masks, kwargs, train", [c[1:] for c in MHA_CASES],
                         ids=[c[0] for c in MHA_CASES])
def test_multihead_attention_matches_pytorch(ctor, inputs, L, S, n, masks, kwargs, train):
    E, H = 8, 2
    batch_first = ctor.get("batch_first", False)

    def shape(length, dim):
        return (length, dim) if n is None else (n, length, dim) if batch_first else (length, n, dim)

    shapes = {"query": shape(L, E)}
    if inputs != "self":
        shapes["key"] = shape(S, ctor.get("kdim", E))
    if inputs == "qkv":
        shapes["value"] = shape(S, ctor.get("vdim", E))
    arrays = _arrays(2, **shapes) + _mha_masks(masks, n or 1, L, S, H)
    names = [name for name, _ in arrays]

    def call(m, mha, *t):
        q = t[0]
        k = t[1] if inputs != "self" else q
        v = t[2] if inputs == "qkv" else k
        mask_args = {name: t[names.index(name)] for name in masks}
        return mha(q, k, v, **mask_args, **kwargs)

    _compare_with_pytorch(lambda m: m.nn.MultiheadAttention(E, H, **ctor), call, arrays, train)


def test_multihead_attention_seeded_weights_state_dict_and_repr_are_pytorchs():
    torch = pytest.importorskip("torch")
    for kwargs in ({}, {"kdim": 3, "vdim": 5, "bias": False}, {"add_bias_kv": True, "batch_first": True}):
        tg.manual_seed(0)
        ours = nn.MultiheadAttention(8, 2, **kwargs)
        torch.manual_seed(0)
        theirs = torch.nn.MultiheadAttention(8, 2, **kwargs)
        assert repr(ours).replace("tracegrad.", "torch.") == repr(theirs)
        sa, sb = ours.state_dict(), theirs.state_dict()
        assert list(sa) == list(sb)
        for key in sb:
            if key in ("bias_k", "bias_v"):  # NOTE: PyTorch's float32 normal draws use AVX log/sin/cos: an ulp apart
                np.testing.assert_allclose(sa[key].numpy(), sb[key].numpy(), rtol=1e-6, err_msg=key)
            else:
                np.testing.assert_array_equal(sa[key].numpy(), sb[key].numpy(), err_msg=key)


def test_multihead_attention_padded_row_need_weights_is_nan_as_pytorch():
    """need_weights=True takes softmax (a row that may attend to nothing is nan), need_weights=False
    scaled_dot_product_attention (zeros): PyTorch's two paths, kept apart."""
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    x = tg.randn(2, 3, 4)
    kpm = tg.tensor([[True] * 3, [False] * 3])
    out, weights = mha(x, x, x, key_padding_mask=kpm)
    assert out[0].isnan().all() and weights[0].isnan().all() and not out[1].isnan().any()
    out, _ = mha(x, x, x, key_padding_mask=kpm, need_weights=False)
    assert not out.isnan().any()


def test_multihead_attention_gradcheck():
    rng = np.random.default_rng(0)
    x, w_in, b_in, w_out = (tg.tensor(rng.standard_normal(s), dtype=tg.float64, requires_grad=True)
                            for s in ((3, 2, 4), (12, 4), (12,), (4, 4)))
    kpm = tg.tensor([[False, False, True], [False, False, False]])

    def mha(x, w_in, b_in, w_out):
        out, weights = F.multi_head_attention_forward(x, x, x, 4, 2, w_in, b_in, None, None, False, 0.0, w_out, None,
                                                      key_padding_mask=kpm)
        return out.sum() + (weights * weights).sum()

    assert tg.autograd.gradcheck(mha, (x, w_in, b_in, w_out))


# ---------------------------------------------------------------------------------------- the Transformer modules
ENCODER_LAYER_CASES = [  # id, constructor kwargs (activation by name: a module or function of m), masks, train
    ("post_norm_relu_masks", {}, {"src_mask": "causal_float", "src_key_padding_mask": "kpm"}, False),
    ("pre_norm_gelu_batch_first", {"norm_first": True, "activation": "gelu", "batch_first": True},
     {"src_key_padding_mask": "kpm"}, False),
    ("gelu_tanh_module_no_bias", {"activation": "GELU_tanh", "bias": False, "layer_norm_eps": 1e-3},
     {"src_mask": "causal"}, False),
    ("train_no_dropout", {"dropout": 0.0, "activation": "F.gelu"}, {"src_mask": "causal_float"}, True),
    ("train_dropout", {"dropout": 0.2, "batch_first": True, "norm_first": True}, {"src_key_padding_mask": "kpm"},
     True),
]


def _activation(m, kwargs):
    kwargs = dict(kwargs)
    act = kwargs.get("activation")
    if act == "GELU_tanh":
        kwargs["activation"] = m.nn.GELU(approximate="tanh")
    elif act == "F.gelu":
        kwargs["activation"] = m.nn.functional.gelu
    return kwargs


def _seq_arrays(batch_first, n=3, length=5, d=8, seed=4):
    return _arrays(seed, src=(n, length, d) if batch_first else (length, n, d))


@pytest.mark.parametrize("ctor, masks, train", [c[1:] for c in ENCODER_LAYER_CASES],
                         ids=[c[0] for c in ENCODER_LAYER_CASES])
def test_transformer_encoder_layer_matches_pytorch(ctor, masks, train):
    arrays = _seq_arrays(ctor.get("batch_first", False)) + _mha_masks(masks, 3, 5, 5, 2)
    names = [name for name, _ in arrays]

    def call(m, layer, src, *t):
        return layer(src, **{name: t[names.index(name) - 1] for name in masks})

    _compare_with_pytorch(lambda m: m.nn.TransformerEncoderLayer(8, 2, 16, **_activation(m, ctor)), call, arrays,
                          train)


@pytest.mark.parametrize("batch_first, is_causal", [(False, None), (True, True)])
def test_transformer_encoder_matches_pytorch(batch_first, is_causal):
    """Two deep copies of a layer and a final norm; the causal mask is detected (None) or declared."""
    arrays = _seq_arrays(batch_first) + _mha_masks({"mask": "causal_float", "src_key_padding_mask": "kpm"}, 3, 5, 5,
                                                   2)

    def build(m):
        layer = m.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=batch_first)
        return m.nn.TransformerEncoder(layer, 2, norm=m.nn.LayerNorm(8))

    def call(m, enc, src, mask, kpm):
        return enc(src, mask=mask, src_key_padding_mask=kpm, is_causal=is_causal)

    _compare_with_pytorch(build, call, arrays)


def test_transformer_matches_pytorch_from_the_same_seed():
    """Seeded, the whole Transformer starts from PyTorch's weights (Xavier re-initialization in parameter order);
    its encoder-decoder output and every gradient match, with target causal and padding masks."""
    torch = pytest.importorskip("torch")

    def build(m):
        return m.nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=16,
                                dropout=0.1)

    tg.manual_seed(0)
    ours = build(tg)
    torch.manual_seed(0)
    theirs = build(torch)
    for (ka, a), (kb, b) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
        assert ka == kb
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=ka)
    arrays = _arrays(5, src=(6, 2, 8), tgt=(4, 2, 8)) + [
        ("tgt_mask", np.triu(np.full((4, 4), -np.inf, np.float32), 1)),
        ("memory_key_padding_mask", np.array([[False] * 6, [False] * 4 + [True] * 2]))]

    def call(m, model, src, tgt, tgt_mask, memory_kpm):
        return model(src, tgt, tgt_mask=tgt_mask, src_key_padding_mask=memory_kpm,
                     memory_key_padding_mask=memory_kpm)

    _compare_with_pytorch(build, call, arrays)


def test_generate_square_subsequent_mask_and_causal_detection():
    torch = pytest.importorskip("torch")
    mask = nn.Transformer.generate_square_subsequent_mask(4, dtype=tg.float64)
    np.testing.assert_array_equal(mask.numpy(), torch.nn.Transformer.generate_square_subsequent_mask(
        4, dtype=torch.float64).numpy())
    from tracegrad.nn.transformer import _detect_is_causal_mask
    assert _detect_is_causal_mask(mask) and _detect_is_causal_mask(mask, size=4)
    assert not _detect_is_causal_mask(mask, size=5) and not _detect_is_causal_mask(mask.T)
    assert not _detect_is_causal_mask(mask, is_causal=False) and _detect_is_causal_mask(None, is_causal=True)


def test_encoder_layers_are_copies():
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2)
    w0, w1 = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert w0 is not w1 and w0 is not layer.linear1.weight and (w0 == w1).all()
    assert enc.layers[1].activation is F.relu and enc.layers[0].activation_relu_or_gelu == 1
    assert enc.use_nested_tensor and enc.enable_nested_tensor


# --------------------------------------------------------------------------------------------------- Embedding
EMBEDDING_CASES = [{}, {"padding_idx": -2}, {"max_norm": 1.0}, {"max_norm": 1.5, "norm_type": 1.0, "padding_idx": 1,
                                                                  "scale_grad_by_freq": True},
                   {"scale_grad_by_freq": True}, {"sparse": True, "padding_idx": 2}]


@pytest.mark.parametrize("kwargs", EMBEDDING_CASES, ids=lambda kw: "-".join(kw) or "default")
def test_embedding_options_match_pytorch(kwargs):
    """Outputs, the weight after max_norm's in-place renormalization, and the weight's gradient (scaled by the
    counts of each index, zero for the padding row); the repr."""
    torch = pytest.importorskip("torch")
    idx = np.array([[0, 3, 1, 3], [3, 3, 2, 4]])
    proj = np.arange(24.0, dtype=np.float32).reshape(2, 4, 3)
    results = []
    for m in (torch, tg):
        m.manual_seed(0)
        emb = m.nn.Embedding(6, 3, **kwargs)
        if m is tg:  # NOTE: PyTorch's float32 normal draws are an ulp apart from tracegrad's (AVX log/sin/cos)
            emb.load_state_dict({"weight": results[0][1]})
        out = emb(m.tensor(idx))
        (out * m.tensor(proj)).sum().backward()
        results.append((_np(out), _np(emb.weight), emb.weight.grad.to_dense() if m is torch else emb.weight.grad,
                        repr(emb)))
        if m is torch:  # the weight before the forward, for ours
            m.manual_seed(0)
            results[0] = results[0][:1] + (_np(m.nn.Embedding(6, 3, **kwargs).weight),) + results[0][2:]
    (out_t, _, grad_t, repr_t), (out_o, w_o, grad_o, repr_o) = results
    assert repr_o == repr_t
    np.testing.assert_allclose(out_o, out_t, rtol=1e-6)
    np.testing.assert_allclose(w_o[idx.ravel()], out_t.reshape(-1, 3), rtol=1e-6)  # renormalized in place
    np.testing.assert_allclose(_np(grad_o), _np(grad_t), rtol=1e-6)


def test_embedding_from_pretrained_shares_and_freezes():
    w = tg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    emb = nn.Embedding.from_pretrained(w, padding_idx=1)
    assert not emb.weight.requires_grad and emb.padding_idx == 1
    w[0, 0] = 10.0  # the same storage, as PyTorch's
    assert emb(tg.tensor([0])).tolist() == [[10.0, 2.0]]
    emb = nn.Embedding.from_pretrained(w, freeze=False, max_norm=1.0)
    emb(tg.tensor([2])).sum().backward()
    assert emb.weight.requires_grad and emb.weight.grad[2].tolist() == [1.0, 1.0]
    np.testing.assert_allclose(w[2].norm().item(), 1.0, rtol=1e-6)


def test_compiled_embedding_step_equals_eager_bit_for_bit():
    """max_norm's in-place renormalization is written back, scale_grad_by_freq and padding_idx shape the gradient."""
    def train(backend):
        tg.manual_seed(0)
        emb = nn.Embedding(10, 4, padding_idx=0, max_norm=1.2, scale_grad_by_freq=True)
        head = nn.Linear(4, 10)
        opt = tg.optim.SGD([*emb.parameters(), *head.parameters()], lr=0.5)
        idx = tg.tensor([[1, 2, 2, 0], [3, 2, 0, 0]])

        def step(idx):
            opt.zero_grad()
            loss = F.cross_entropy(head(emb(idx)).reshape(-1, 10), idx.reshape(-1))
            loss.backward()
            opt.step()
            return loss

        if backend is not None:
            step = tg.compile(step, backend=backend)
        return [step(idx).item() for _ in range(3)], [_np(p).copy() for p in (emb.weight, head.weight)]

    (losses, params), (c_losses, c_params) = train(None), train("interpret")
    assert c_losses == losses
    for a, b in zip(params, c_params, strict=True):
        np.testing.assert_array_equal(b, a)


# ---------------------------------------------------------------------------------------------------- compiled
def _encoder_training(backend, steps=3):
    """A 2-layer encoder's training step (dropout, masks, Adam): losses, parameters, grads and Adam's state."""
    tg.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(16))
    opt = tg.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x, y = (tg.tensor(rng.standard_normal((4, 6, 16)).astype(np.float32)) for _ in range(2))
    mask = nn.Transformer.generate_square_subsequent_mask(6)
    kpm = tg.tensor(np.arange(6)[None, :] >= np.array([6, 4, 5, 6])[:, None])

    def step(x, y, mask, kpm):
        opt.zero_grad()
        loss = ((model(x, mask=mask, src_key_padding_mask=kpm) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    if backend is not None:
        step = tg.compile(step, backend=backend)
    tg.manual_seed(1)
    losses = [step(x, y, mask, kpm).item() for _ in range(steps)]
    state = [np.array(t.detach().numpy()) for p in model.parameters() for t in (p, p.grad, *opt.state[p].values())]
    return losses, state, step


def test_compiled_encoder_training_step_equals_eager_bit_for_bit():
    losses, state, _ = _encoder_training(None)
    c_losses, c_state, compiled = _encoder_training("interpret")
    assert c_losses == losses and compiled.eager_calls == 0
    for a, b in zip(state, c_state, strict=True):
        np.testing.assert_array_equal(b, a)


def test_attention_under_numba_within_round_off():
    """Masked, scaled attention and its gradients as numba kernels: the scale, the mask and the softmax fused.
    Unbatched, so that the matrix products are native too and the whole graph compiles into one native function
    (batched products run their numpy forward between native segments, as in the interpreter)."""
    rng = np.random.default_rng(0)
    q, k, v = (tg.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
               for s in ((5, 4), (6, 4), (6, 3)))
    mask = tg.tensor(_bool_mask((5, 6), 0, dead_row=True))

    def step(q, k, v, mask):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.4)
        loss = (out * out).sum()
        return (loss, *tg.autograd.grad(loss, (q, k, v)))

    eager = step(q, k, v, mask)
    compiled = tg.compile(step, backend="numba", tiered=False)
    for _ in range(2):
        got = compiled(q, k, v, mask)
    assert compiled.explain(q, k, v, mask).native_calls == 1
    for a, b in zip(got, eager, strict=True):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------------- errors
# (id, call on the module m, exception class); the message must be PyTorch's (tracegrad.Size printed for torch.Size)
ERRORS = [
    ("heads_divide", lambda m: m.nn.MultiheadAttention(10, 3), AssertionError),
    ("heads_positive", lambda m: m.nn.MultiheadAttention(8, 0), ValueError),
    ("mask_2d_shape", lambda m: m.nn.MultiheadAttention(4, 2)(m.ones(5, 2, 4), m.ones(5, 2, 4), m.ones(5, 2, 4),
                                                             attn_mask=m.ones(4, 4)), RuntimeError),
    ("mask_3d_shape", lambda m: m.nn.MultiheadAttention(4, 2)(m.ones(5, 2, 4), m.ones(5, 2, 4), m.ones(5, 2, 4),
                                                             attn_mask=m.ones(2, 5, 5)), RuntimeError),
    ("mask_4d", lambda m: m.nn.MultiheadAttention(4, 2)(m.ones(5, 2, 4), m.ones(5, 2, 4), m.ones(5, 2, 4),
                                                       attn_mask=m.ones(1, 4, 5, 5)), AssertionError),
    ("key_padding_mask_shape", lambda m: m.nn.MultiheadAttention(4, 2)(
        m.ones(5, 2, 4), m.ones(5, 2, 4), m.ones(5, 2, 4), key_padding_mask=m.ones(3, 5, dtype=m.bool)),
     AssertionError),
    ("key_padding_mask_rank", lambda m: m.nn.MultiheadAttention(4, 2)(
        m.ones(5, 2, 4), m.ones(5, 2, 4), m.ones(5, 2, 4), key_padding_mask=m.ones(2, 5, 1, dtype=m.bool)),
     AssertionError),
    ("mask_dtype", lambda m: m.nn.MultiheadAttention(4, 2)(m.ones(5, 2, 4), m.ones(5, 2, 4), m.ones(5, 2, 4),
                                                          attn_mask=m.ones(5, 5, dtype=m.int64)), AssertionError),
    ("is_causal_without_mask", lambda m: m.nn.MultiheadAttention(4, 2)(
        m.ones(5, 2, 4), m.ones(5, 2, 4), m.ones(5, 2, 4), is_causal=True), RuntimeError),
    ("query_rank", lambda m: m.nn.MultiheadAttention(4, 2)(m.ones(1, 5, 2, 4), m.ones(5, 2, 4), m.ones(5, 2, 4)),
     AssertionError),
    ("key_value_shapes", lambda m: m.nn.MultiheadAttention(4, 2)(m.ones(5, 2, 4), m.ones(5, 2, 4), m.ones(6, 2, 4)),
     AssertionError),
    ("embed_dim", lambda m: m.nn.MultiheadAttention(4, 2)(m.ones(5, 2, 6), m.ones(5, 2, 6), m.ones(5, 2, 6)),
     AssertionError),
    ("sdpa_mask_shape", lambda m: m.nn.functional.scaled_dot_product_attention(
        m.ones(2, 3, 4, 8), m.ones(2, 3, 5, 8), m.ones(2, 3, 5, 8), attn_mask=m.ones(3, 5, dtype=m.bool)),
     RuntimeError),
    ("sdpa_mask_rank", lambda m: m.nn.functional.scaled_dot_product_attention(
        m.ones(2, 3, 4, 8), m.ones(2, 3, 5, 8), m.ones(2, 3, 5, 8), attn_mask=m.ones(1, 2, 3, 4, 5, dtype=m.bool)),
     RuntimeError),
    ("sdpa_mask_dtype", lambda m: m.nn.functional.scaled_dot_product_attention(
        m.ones(2, 4, 8), m.ones(2, 5, 8), m.ones(2, 5, 8), attn_mask=m.ones(4, 5, dtype=m.int64)), RuntimeError),
    ("sdpa_float_mask_dtype", lambda m: m.nn.functional.scaled_dot_product_attention(
        m.ones(2, 4, 8), m.ones(2, 5, 8), m.ones(2, 5, 8), attn_mask=m.ones(4, 5, dtype=m.float64)), RuntimeError),
    ("sdpa_rank", lambda m: m.nn.functional.scaled_dot_product_attention(m.ones(8), m.ones(8), m.ones(8)),
     RuntimeError),
    ("sdpa_dtypes", lambda m: m.nn.functional.scaled_dot_product_attention(
        m.ones(2, 4, 8, dtype=m.float64), m.ones(2, 5, 8), m.ones(2, 5, 8)), RuntimeError),
    ("sdpa_dropout", lambda m: m.nn.functional.scaled_dot_product_attention(
        m.ones(2, 4, 8), m.ones(2, 5, 8), m.ones(2, 5, 8), dropout_p=1.5), RuntimeError),
    ("sdpa_head_dim", lambda m: m.nn.functional.scaled_dot_product_attention(
        m.ones(2, 3, 4, 8), m.ones(2, 3, 5, 7), m.ones(2, 3, 5, 8)), RuntimeError),
    ("sdpa_gqa", lambda m: m.nn.functional.scaled_dot_product_attention(
        m.ones(2, 3, 4, 8), m.ones(2, 2, 5, 8), m.ones(2, 2, 5, 8), enable_gqa=True), RuntimeError),
    ("activation", lambda m: m.nn.TransformerEncoderLayer(8, 2, activation="tanh"), RuntimeError),
    ("transformer_batch", lambda m: m.nn.Transformer(8, 2, 1, 1, 16)(m.ones(5, 2, 8), m.ones(4, 3, 8)),
     RuntimeError),
    ("transformer_features", lambda m: m.nn.Transformer(8, 2, 1, 1, 16)(m.ones(5, 2, 8), m.ones(4, 2, 6)),
     RuntimeError),
    ("embedding_padding_idx", lambda m: m.nn.Embedding(4, 2, padding_idx=4), AssertionError),
    ("embedding_padding_idx_negative", lambda m: m.nn.functional.embedding(m.tensor([0]), m.ones(4, 2), padding_idx=-5),
     AssertionError),
    ("embedding_pretrained_rank", lambda m: m.nn.Embedding.from_pretrained(m.ones(4)), AssertionError),
    ("embedding_weight_shape", lambda m: m.nn.Embedding(4, 2, _weight=m.ones(4, 3)), AssertionError),
]
PREFIX_ONLY = {"sdpa_gqa"}  # PyTorch's message stops mid-sentence ("...the number of heads in "); ours ends it


@pytest.mark.parametrize("call, exc, name", [(c[1], c[2], c[0]) for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_errors_are_pytorchs(call, exc, name):
    torch = pytest.importorskip("torch")
    with pytest.raises(exc) as theirs:
        call(torch)
    message = str(theirs.value).replace("torch.", "tracegrad.")
    pattern = re.escape(message) if name in PREFIX_ONLY else re.escape(message) + "$"
    with pytest.raises(exc, match="^" + pattern):
        call(tg)


def test_warnings_are_pytorchs():
    torch = pytest.importorskip("torch")

    def messages(m):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m.nn.TransformerEncoder(m.nn.TransformerEncoderLayer(8, 2, 16), 1)
            m.nn.TransformerEncoder(m.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, norm_first=True), 1)
            mha = m.nn.MultiheadAttention(4, 2)
            x = m.ones(3, 2, 4)
            mha(x, x, x, key_padding_mask=m.zeros(2, 3, dtype=m.bool), attn_mask=m.zeros(3, 3))
        return [(w.category, str(w.message)) for w in caught]

    assert messages(tg) == messages(torch)
