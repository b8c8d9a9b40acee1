"""The nn-more layers as modules: PyTorch's reprs, state_dict keys, seeded initial weights (bit for bit) and outputs;
channel and alpha dropout masks from PyTorch's stream; instance norm's running statistics; ConvTranspose2d's
output_size; ParameterList and ParameterDict; errors (with PyTorch's exception classes); and a compiled training
step through several new layers and losses, on both backends. The functions themselves are rows of
tests/test_nn_functional.py's table."""
from __future__ import annotations

import re
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.nn.functional as F
from tracegrad import nn


def _layers(m):
    """One of each new layer (several option sets for the convolutions), built in this order after manual_seed(0)."""
    nn = m.nn
    return [
        nn.Conv1d(2, 4, 3), nn.Conv1d(2, 4, 3, stride=2, padding=1, dilation=2, groups=2, bias=False,
                                      padding_mode="reflect"),
        nn.Conv1d(2, 4, 4, padding="same", padding_mode="circular"),
        nn.Conv2d(2, 3, 3, padding=1, padding_mode="replicate"),
        nn.ConvTranspose2d(2, 4, 3), nn.ConvTranspose2d(4, 6, (2, 3), stride=2, padding=1, output_padding=1, groups=2,
                                                        bias=False, dilation=(1, 2)),
        nn.ConvTranspose1d(2, 4, 3, stride=3), nn.MaxPool1d(3, 2, 1), nn.AvgPool1d(2), nn.AdaptiveMaxPool2d((2, None)),
        nn.AdaptiveMaxPool1d(3), nn.AdaptiveAvgPool1d(4), nn.Unfold((2, 3), stride=2), nn.Fold(4, 2),
        nn.ZeroPad2d((1, 2, 3, 4)), nn.ConstantPad2d(2, 0.5), nn.ConstantPad1d((1, 2), 3.0), nn.ReflectionPad2d(1),
        nn.ReflectionPad1d(2), nn.ReplicationPad2d((1, 0, 2, 1)), nn.ReplicationPad1d(1), nn.ZeroPad1d(2),
        nn.CircularPad2d(1), nn.CircularPad1d((2, 1)), nn.CosineSimilarity(), nn.PairwiseDistance(),
        nn.GroupNorm(2, 4), nn.GroupNorm(2, 4, affine=False), nn.RMSNorm([2, 3], eps=1e-3), nn.InstanceNorm1d(3),
        nn.InstanceNorm2d(3, affine=True, track_running_stats=True), nn.BatchNorm3d(3), nn.Dropout1d(),
        nn.Dropout2d(0.2), nn.AlphaDropout(0.1), nn.FeatureAlphaDropout(), nn.Bilinear(2, 3, 4),
        nn.Bilinear(2, 3, 4, bias=False), nn.Unflatten(1, (2, 5)), nn.KLDivLoss(), nn.TripletMarginLoss(),
        nn.MarginRankingLoss(), nn.HingeEmbeddingLoss(), nn.CosineEmbeddingLoss(), nn.SoftMarginLoss(),
        nn.MultiLabelSoftMarginLoss(weight=m.ones(3)), nn.PoissonNLLLoss(), nn.GaussianNLLLoss(),
        nn.MultiMarginLoss(weight=m.ones(3)),
        nn.ParameterList([nn.Parameter(m.ones(3, 4)), nn.Parameter(m.ones(5))]), nn.ParameterList([m.ones(3)]),
        nn.ParameterDict({"b": nn.Parameter(m.ones(2)), "a": m.ones(2, 2, dtype=m.float64)}),
    ]


def _example_inputs(layer) -> list:
    """Input shapes for the layers with parameters or state (their outputs are compared), else []."""
    name = type(layer).__name__
    if name.startswith("Conv"):
        return [(2, layer.in_channels) + (5,) * len(layer.kernel_size)]
    return {"GroupNorm": [(2, 4, 3)], "RMSNorm": [(4, 2, 3)], "InstanceNorm2d": [(2, 3, 4, 4)],
            "BatchNorm3d": [(2, 3, 2, 2, 2)], "Bilinear": [(5, 2), (5, 3)]}.get(name, [])


def test_layers_have_pytorchs_reprs_state_dicts_and_seeded_weights():
    torch = pytest.importorskip("torch")
    tg.manual_seed(0)
    ours = _layers(tg)
    torch.manual_seed(0)
    theirs = _layers(torch)
    rng = np.random.default_rng(0)
    for a, b in zip(ours, theirs):
        what = repr(b)
        assert repr(a).replace("tracegrad.", "torch.") == what
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb), what
        for k in sb:
            assert sa[k].shape == tuple(sb[k].shape) and sa[k].dtype.np == sb[k].numpy().dtype, (what, k)
            np.testing.assert_array_equal(sa[k].numpy(), sb[k].numpy(), err_msg=f"{what}: {k}")
        a.load_state_dict({k: v.numpy() for k, v in sb.items()})
        if _example_inputs(a):
            xs = [rng.standard_normal(s).astype(np.float32) for s in _example_inputs(a)]
            got = a(*[tg.tensor(x) for x in xs]).detach().numpy()
            np.testing.assert_allclose(got, b(*[torch.tensor(x) for x in xs]).detach().numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=what)


@pytest.mark.filterwarnings("ignore:dropout2d")
def test_channel_and_alpha_dropout_draw_pytorchs_masks():
    torch = pytest.importorskip("torch")

    def draws(m):
        m.manual_seed(3)
        x, F_ = m.ones(3, 5, 4) * 1.5, m.nn.functional
        return [F_.dropout1d(x, 0.3), F_.dropout1d(x[0], 0.5), F_.dropout2d(x.reshape(3, 5, 2, 2), 0.4),
                F_.dropout2d(x, 0.4), m.nn.Dropout2d(0.25)(x.reshape(3, 5, 2, 2)), F_.alpha_dropout(x, 0.2, True),
                m.nn.AlphaDropout(0.3)(x), F_.feature_alpha_dropout(x.double(), 0.3, True), F_.dropout1d(x, 1.0)]

    for a, b in zip(draws(tg), draws(torch)):
        assert a.dtype.np == b.numpy().dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_channel_dropout_zeroes_whole_channels_and_scales_the_rest():
    x = tg.ones(20, 30, 2, 3, dtype=tg.float64, requires_grad=True)
    y = F.dropout2d(x, 0.4)
    out = y.detach().numpy()
    per_channel = out.reshape(20, 30, -1)
    assert (per_channel.min(-1) == per_channel.max(-1)).all()  # a channel is kept or dropped as a whole
    kept = per_channel[..., 0] != 0
    assert abs(kept.mean() - 0.6) < 0.06
    np.testing.assert_allclose(per_channel[kept], 1 / 0.6, rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), out, rtol=1e-12)
    layer = nn.Dropout1d(0.5).eval()
    z = tg.randn(2, 3, 4)
    assert layer(z) is z and F.alpha_dropout(z, 0.5) is z  # alpha_dropout's training defaults to False


def test_instance_norm_running_statistics_like_pytorch():
    torch = pytest.importorskip("torch")
    xs = [np.random.default_rng(i).standard_normal((2, 3, 4, 5)).astype(np.float32) * (i + 1) for i in range(3)]
    for kwargs in ({"affine": True, "track_running_stats": True}, {"track_running_stats": True, "momentum": None}):
        ours, theirs = nn.InstanceNorm2d(3, **kwargs), torch.nn.InstanceNorm2d(3, **kwargs)
        for x in xs:
            np.testing.assert_allclose(ours(tg.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach().numpy(),
                                       rtol=1e-5, atol=1e-5)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-6)
        ours.eval(), theirs.eval()
        np.testing.assert_allclose(ours(tg.tensor(xs[0][0])).detach().numpy(),
                                   theirs(torch.tensor(xs[0][0])).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_conv_transpose2d_output_size_picks_the_output_padding():
    up = nn.ConvTranspose2d(2, 1, 3, stride=3, padding=1)
    x = tg.ones(1, 2, 4, 4)
    assert up(x).shape == (1, 1, 10, 10)
    assert up(x, output_size=(11, 12)).shape == (1, 1, 11, 12)
    assert up(x, output_size=[1, 1, 12, 10]).shape == (1, 1, 12, 10)
    with pytest.raises(ValueError, match=re.escape("requested an output size of [13, 10], but valid sizes range from "
                                                   "[10, 10] to [12, 12] (for an input of [4, 4])")):
        up(x, output_size=(13, 10))


def test_parameter_list_and_dict_register_convert_and_train():
    torch = pytest.importorskip("torch")
    ps = nn.ParameterList([tg.ones(2), nn.Parameter(tg.zeros(3))])
    ps.append(tg.full((1,), 2.0)).extend([nn.Parameter(tg.ones(4))])
    ps += [tg.ones(1)]
    assert len(ps) == 5 and all(isinstance(p, nn.Parameter) and p.requires_grad for p in ps)
    assert [n for n, _ in ps.named_parameters()] == ["0", "1", "2", "3", "4"]
    assert ps[-1] is ps[4] and len(ps[1:4]) == 3 and ps[1:4][0] is ps[1]
    with pytest.raises(IndexError, match="index 5 is out of range"):
        ps[5]
    with pytest.raises(RuntimeError, match="ParameterList should not be called"):
        ps(1)
    pd = nn.ParameterDict({"w": tg.ones(2)})
    pd["b"] = nn.Parameter(tg.zeros(2))
    pd.update(OrderedDict(z=tg.ones(1), a=tg.ones(1)))
    assert list(pd) == ["w", "b", "z", "a"] and list(pd.state_dict()) == ["w", "b", "z", "a"]
    assert pd.pop("z").shape == (1,) and "z" not in pd and pd.get("z") is None and len(pd) == 3
    assert list((pd | nn.ParameterDict({"c": tg.ones(1)})).keys()) == ["w", "b", "a", "c"]
    model = nn.Module()
    model.ps, model.pd = ps, pd
    opt = tg.optim.SGD(model.parameters(), lr=0.5)
    (sum(p.sum() for p in ps) + pd["w"].sum()).backward()
    opt.step()
    np.testing.assert_array_equal(ps[0].detach().numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(pd["w"].detach().numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(pd["b"].detach().numpy(), [0.0, 0.0])  # no gradient: unchanged
    theirs = torch.nn.Module()
    theirs.ps = torch.nn.ParameterList([torch.ones(2), torch.ones(3), torch.ones(1), torch.ones(4), torch.ones(1)])
    theirs.pd = torch.nn.ParameterDict(OrderedDict(w=torch.ones(2), b=torch.ones(2), a=torch.ones(1)))
    model.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert list(model.state_dict()) == list(theirs.state_dict())
    assert repr(model).replace("tracegrad.", "torch.") == repr(theirs)


# (name, call, exception class, message pattern, the same call in torch or None): the torch call must raise the class
ERRORS = [
    ("pad_reflect_too_wide", lambda m: m.nn.functional.pad(m.ones(1, 1, 3), (3, 3), mode="reflect"), RuntimeError,
     re.escape("Padding size should be less than the corresponding input dimension, but got: padding (3, 3) at "
               "dimension 2 of input [1, 1, 3]")),
    ("pad_circular_wraps_twice", lambda m: m.nn.functional.pad(m.ones(1, 1, 3), (4, 4), mode="circular"),
     RuntimeError, "Padding value causes wrapping around more than once."),
    ("pad_reflect_rank", lambda m: m.nn.functional.pad(m.ones(3), (1, 1), mode="reflect"), NotImplementedError,
     "Padding size 2 is not supported for 1D input tensor"),
    ("pad_unknown_mode", lambda m: m.nn.functional.pad(m.ones(1, 1, 3), (1, 1), mode="foo"), NotImplementedError,
     "Unrecognised padding mode foo"),
    ("pad_value_with_reflect", lambda m: m.nn.functional.pad(m.ones(1, 1, 3), (1, 1), mode="reflect", value=1.0),
     RuntimeError, "Padding mode \"reflect\" doesn't take in value argument"),
    ("pad_too_long", lambda m: m.nn.functional.pad(m.ones(1, 2, 3), (1,) * 8), RuntimeError,
     "Padding length should be less than or equal to two times the input dimension"),
    ("pad_float_amount", lambda m: m.nn.functional.pad(m.ones(1, 1, 3), (1.0, 2)), TypeError,
     "must be tuple of ints, but found element of type float at pos 0"),
    ("conv_transpose2d_channels", lambda m: m.nn.functional.conv_transpose2d(m.ones(1, 3, 4, 4), m.ones(2, 4, 3, 3)),
     RuntimeError, re.escape("weight of size [2, 4, 3, 3], expected input[1, 3, 4, 4] to have 2 channels")),
    ("conv_transpose2d_output_padding",
     lambda m: m.nn.functional.conv_transpose2d(m.ones(1, 2, 4, 4), m.ones(2, 4, 3, 3), output_padding=1),
     RuntimeError, "output padding must be smaller than either stride or dilation"),
    ("conv1d_channels", lambda m: m.nn.functional.conv1d(m.ones(2, 3, 5), m.ones(4, 6, 3)), RuntimeError,
     re.escape("weight of size [4, 6, 3], expected input[2, 3, 5] to have 6 channels, but got 3 channels instead")),
    ("conv_transpose_padding_mode", lambda m: m.nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect"), ValueError,
     'Only "zeros" padding mode is supported for ConvTranspose2d'),
    ("conv_bad_padding_mode", lambda m: m.nn.Conv1d(2, 2, 3, padding_mode="mirror"), ValueError,
     "padding_mode must be one of"),
    ("conv_same_strided", lambda m: m.nn.Conv1d(2, 2, 3, stride=2, padding="same"), ValueError,
     "padding='same' is not supported for strided convolutions"),
    ("fold_blocks", lambda m: m.nn.functional.fold(m.ones(1, 4, 5), (3, 3), 2), RuntimeError,
     re.escape("expected size of input's dimension 2 to match the calculated number of sliding blocks 2 * 2 = 4, but "
               "got input.size(2)=5")),
    ("fold_kernel_product", lambda m: m.nn.functional.fold(m.ones(1, 5, 4), (3, 3), 2), RuntimeError,
     "to be divisible by the product of kernel_size"),
    ("group_norm_groups", lambda m: m.nn.functional.group_norm(m.ones(2, 6, 3), 4), RuntimeError,
     re.escape("Expected number of channels in input to be divisible by num_groups, but got input of shape "
               "[2, 6, 3] and num_groups=4")),
    ("group_norm_module", lambda m: m.nn.GroupNorm(4, 6), ValueError,
     re.escape("num_channels (6) must be divisible by num_groups (4)")),
    ("instance_norm_dims", lambda m: m.nn.InstanceNorm1d(3)(m.ones(1, 1, 3, 4)), ValueError,
     "expected 2D or 3D input"),
    ("instance_norm_one_element", lambda m: m.nn.functional.instance_norm(m.ones(2, 3, 1)), ValueError,
     "Expected more than 1 spatial element when training"),
    ("batch_norm_3d_dims", lambda m: m.nn.BatchNorm3d(3)(m.ones(2, 3, 4, 4)), ValueError, "expected 5D input"),
    ("dropout1d_dims", lambda m: m.nn.functional.dropout1d(m.ones(2, 3, 4, 5)), RuntimeError,
     "dropout1d: Expected 2D or 3D input, but received a 4D input"),
    ("dropout2d_p", lambda m: m.nn.functional.dropout2d(m.ones(2, 3, 4, 5), 1.5), ValueError,
     "dropout probability has to be between 0 and 1, but got 1.5"),
    ("adaptive_max_pool2d_dims", lambda m: m.nn.functional.adaptive_max_pool2d(m.ones(4, 5), 2), RuntimeError,
     "Expected 3D or 4D tensor"),
    ("triplet_margin", lambda m: m.nn.functional.triplet_margin_loss(m.ones(2, 3), m.ones(2, 3), m.ones(2, 3),
                                                                     margin=0.0), ValueError,
     "margin must be greater than 0, got 0.0"),
    ("triplet_dims", lambda m: m.nn.functional.triplet_margin_loss(m.ones(2, 3), m.ones(3), m.ones(2, 3)),
     RuntimeError, "anchor 2D, positive 1D, and negative 2D inputs"),
    ("margin_ranking_dims", lambda m: m.nn.functional.margin_ranking_loss(m.ones(2), m.ones(2), m.ones(2, 1)),
     RuntimeError, "All input tensors should have same dimension"),
    ("cosine_embedding_dims", lambda m: m.nn.functional.cosine_embedding_loss(m.ones(2, 3), m.ones(2, 3),
                                                                              m.ones(2, 1)), RuntimeError,
     "0D or 1D target tensor expected, multi-target not supported"),
    ("multi_margin_p", lambda m: m.nn.functional.multi_margin_loss(m.ones(2, 3), m.zeros(2, dtype=m.int64), p=3),
     ValueError, "only p == 1 and p == 2 supported"),
    ("gaussian_negative_var", lambda m: m.nn.functional.gaussian_nll_loss(m.ones(2, 3), m.ones(2, 3),
                                                                          -m.ones(2, 3)), ValueError,
     "var has negative entry/entries"),
    ("gaussian_var_size", lambda m: m.nn.functional.gaussian_nll_loss(m.ones(2, 3), m.ones(2, 3), m.ones(3, 2)),
     ValueError, "var is of incorrect size"),
    ("kl_div_reduction", lambda m: m.nn.functional.kl_div(m.ones(2), m.ones(2), reduction="xyz"), ValueError,
     "xyz is not a valid value for reduction"),
    ("bilinear_sizes", lambda m: m.nn.functional.bilinear(m.ones(2, 3), m.ones(2, 4), m.ones(5, 3, 3)),
     RuntimeError, "bilinear"),
    ("unflatten_size", lambda m: m.nn.Unflatten(1, 2.5), TypeError, "unflattened_size must be tuple of ints"),
]


@pytest.mark.parametrize("name,fn,exc,pattern", ERRORS, ids=[e[0] for e in ERRORS])
def test_error(name, fn, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fn(tg)


def test_error_table_matches_pytorch_exception_classes():
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn, exc, _ in ERRORS:
            with pytest.raises(exc):
                fn(torch)


# ---------------------------------------------------------------- a training step through the new layers
def _model(m):
    nn = m.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect")
            self.norm = nn.GroupNorm(2, 4)
            self.drop = nn.Dropout2d(0.25)
            self.up = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)
            self.inorm = nn.InstanceNorm2d(3, affine=True)
            self.pool = nn.AdaptiveMaxPool2d((2, 3))
            self.seq = nn.Conv1d(3, 4, 2, padding=1, padding_mode="replicate")
            self.pair = nn.Bilinear(4, 3, 5)

        def forward(self, x):
            h = self.up(self.drop(m.relu(self.norm(self.conv(x)))))
            h = self.pool(self.inorm(h)).flatten(2)             # (N, 3, 6)
            s = self.seq(m.nn.functional.pad(h, (1, 1), mode="circular")).amax(-1)  # (N, 4)
            return self.pair(s, h.mean(-1))                     # (N, 5)

    return Net()


def _loss(m, out, y):
    f = m.nn.functional
    return (f.kl_div(f.log_softmax(out, 1), f.softmax(y, 1), reduction="batchmean")
            + f.triplet_margin_loss(out, y, y[m.tensor([3, 2, 1, 0])]) + f.multi_margin_loss(out, y.argmax(1)))


def _train(m, steps=3, compile_backend=None):
    m.manual_seed(0)
    model = _model(m)
    opt = m.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(5)
    x = m.tensor(rng.standard_normal((4, 2, 5, 6)).astype(np.float32))
    y = m.tensor(rng.standard_normal((4, 5)).astype(np.float32))

    def step(x, y):
        opt.zero_grad()
        loss = _loss(m, model(x), y)
        loss.backward()
        opt.step()
        return loss

    if compile_backend is not None:
        step = tg.compile(step, backend=compile_backend)
    losses = [step(x, y).item() for _ in range(steps)]
    return losses, [p.detach().numpy().copy() for p in model.parameters()], step


def test_compiled_training_step_through_new_layers_equals_eager():
    """The interpreter runs the graph bit-equal to eager, over steps with fresh dropout masks."""
    losses, params, _ = _train(tg)
    c_losses, c_params, compiled = _train(tg, compile_backend="interpret")
    assert compiled.eager_calls == 0
    for a, b in zip([np.array(losses)] + params, [np.array(c_losses)] + c_params):
        np.testing.assert_array_equal(b, a)


def test_numba_training_step_through_new_layers_equals_eager():
    """A smaller model (numba compiles each kernel): a transposed convolution, reflection padding and adaptive max
    pooling (index arrays into the input: gathers forward, scatter-adds backward) and the soft margin loss."""
    def train(backend):
        tg.manual_seed(0)
        model = nn.Sequential(nn.ConvTranspose2d(2, 2, 2, stride=2), nn.ReflectionPad2d(1), nn.AdaptiveMaxPool2d(2),
                              nn.Flatten())
        opt = tg.optim.SGD(model.parameters(), lr=0.1)
        x, y = tg.randn(3, 2, 2, 2), tg.randn(3, 8).sign()

        def step(x, y):
            opt.zero_grad()
            loss = F.soft_margin_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss

        if backend is not None:
            step = tg.compile(step, backend=backend, tiered=False)
        return [step(x, y).item() for _ in range(4)], [p.detach().numpy().copy() for p in model.parameters()]

    (losses, params), (c_losses, c_params) = train(None), train("numba")
    np.testing.assert_allclose(c_losses, losses, rtol=1e-5)
    for a, b in zip(params, c_params):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_training_step_through_new_layers_equals_pytorchs():
    torch = pytest.importorskip("torch")
    losses, params, _ = _train(tg)
    t_losses, t_params, _ = _train(torch)
    np.testing.assert_allclose(losses, t_losses, rtol=1e-5)
    for a, b in zip(params, t_params):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
