"""`tracegrad.nn.Module` and the layers as modules: registration, traversal, modes, state_dict, containers,
default initialization, `nn.init`, repr, and a small CNN against PyTorch (skipped without torch)."""
from __future__ import annotations

import math
import re
from collections import OrderedDict

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import nn


def _arr(t):
    return t.detach().numpy()


class Net(nn.Module):
    """Two submodules, a direct Parameter, a persistent and a non-persistent buffer."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.scale = nn.Parameter(tg.ones(3))
        self.block = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.BatchNorm1d(3))
        self.register_buffer("steps", tg.zeros(1))
        self.register_buffer("cache", tg.zeros(2), persistent=False)

    def forward(self, x):
        return self.block(self.fc1(x) * self.scale)


# ---------------------------------------------------------------- registration
def test_parameters_submodules_and_buffers_are_registered():
    net = Net()
    assert list(net._parameters) == ["scale"]
    assert list(net._modules) == ["fc1", "block"]
    assert list(net._buffers) == ["steps", "cache"]
    assert isinstance(net.scale, nn.Parameter) and net.scale.requires_grad and net.scale.is_leaf
    assert net.fc1.weight is net._modules["fc1"]._parameters["weight"]
    assert "fc1" not in net.__dict__ and "scale" not in net.__dict__
    assert {"fc1", "scale", "block", "steps", "cache"} <= set(dir(net))


def test_named_parameters_order_and_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "block.0.weight", "block.0.bias", "block.2.weight",
                     "block.2.bias"]
    assert [p for p in net.parameters()] == [p for _, p in net.named_parameters()]
    assert [n for n, _ in net.named_parameters(prefix="net")][:2] == ["net.scale", "net.fc1.weight"]
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert all(isinstance(p, nn.Parameter) for p in net.parameters())


def test_named_parameters_order_matches_pytorch():
    torch = pytest.importorskip("torch")

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(4, 3)
            self.scale = torch.nn.Parameter(torch.ones(3))
            self.block = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU(), torch.nn.BatchNorm1d(3))
            self.register_buffer("steps", torch.zeros(1))
            self.register_buffer("cache", torch.zeros(2), persistent=False)

    ours, theirs = Net(), TorchNet()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_shared_parameters_and_modules_are_listed_once():
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(net.parameters())) == 2
    assert [n for n, _ in net.named_modules()] == ["", "0", "1"]
    assert [n for n, _ in net.named_modules(remove_duplicate=False)] == ["", "0", "1", "2"]
    assert list(net.children()) == [shared, net[1]]
    # the same Parameter in two modules
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.weight = a.weight
    pair = nn.Sequential(a, b)
    assert [n for n, _ in pair.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    # state_dict keeps every name (as PyTorch does): a shared tensor is saved under each
    assert list(pair.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_named_parameters_without_dedup_lists_a_shared_module_under_each_name():
    """PyTorch: Sequential(shared, ReLU(), shared).named_parameters(remove_duplicate=False) gives
    ['0.weight', '0.bias', '2.weight', '2.bias']."""
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in net.named_parameters(remove_duplicate=False)] == ["0.weight", "0.bias", "2.weight",
                                                                            "2.bias"]
    bn = nn.BatchNorm1d(2)
    twice = nn.Sequential(bn, bn)
    assert [n for n, _ in twice.named_buffers(remove_duplicate=False)] == [
        "0.running_mean", "0.running_var", "0.num_batches_tracked", "1.running_mean", "1.running_var",
        "1.num_batches_tracked"]


def test_buffers_persistent_and_not():
    net = Net()
    assert [n for n, _ in net.named_buffers()] == ["steps", "cache", "block.2.running_mean", "block.2.running_var",
                                                   "block.2.num_batches_tracked"]
    assert list(net.buffers())[0] is net.steps
    sd = net.state_dict()
    assert "steps" in sd and "cache" not in sd
    assert not net.steps.requires_grad
    assert [n for n, _ in net.named_buffers(recurse=False)] == ["steps", "cache"]
    # re-registering as persistent puts it back in the state_dict
    net.register_buffer("cache", tg.ones(2))
    assert "cache" in net.state_dict()
    net.register_buffer("maybe", None)
    assert "maybe" not in dict(net.named_buffers()) and net.maybe is None


def test_register_buffer_rejects_non_tensors():
    with pytest.raises(TypeError, match="cannot assign 'list' object to buffer 'b'"):
        nn.Module().register_buffer("b", [1.0])


def test_reassignment_moves_between_kinds():
    m = nn.Module()
    m.x = nn.Parameter(tg.zeros(2))
    assert "x" in m._parameters
    m.x = nn.Linear(1, 1)  # a module replaces the parameter
    assert "x" in m._modules and "x" not in m._parameters
    m.x = nn.Parameter(tg.ones(1))  # and back
    assert "x" in m._parameters and "x" not in m._modules
    m.x = None  # None keeps the name as a parameter slot, skipped by parameters()
    assert m._parameters["x"] is None and m.x is None and list(m.parameters()) == []
    m.register_buffer("b", tg.zeros(2))
    new = tg.ones(2)
    m.b = new  # assigning a tensor to a buffer name replaces the buffer
    assert m._buffers["b"] is new and m.b is new
    m.plain = 3
    assert m.plain == 3 and "plain" in m.__dict__


def test_assigning_a_plain_tensor_to_a_parameter_name_raises():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign '.*' as parameter 'weight' \\(.*Parameter or None expected\\)"):
        m.weight = tg.ones(2, 2)
    m.register_buffer("b", tg.zeros(1))
    with pytest.raises(TypeError, match="cannot assign 'int' as buffer 'b'"):
        m.b = 3


def test_assigning_a_non_module_to_a_submodule_name_raises():
    """PyTorch: m.sub = 3 where `sub` is a child module raises
    TypeError: cannot assign 'int' as child module 'sub' (torch.nn.Module or None expected)."""
    m = nn.Module()
    m.sub = nn.Linear(1, 1)
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'sub'"):
        m.sub = 3


def test_plain_attributes_may_be_set_before_module_init():
    """PyTorch allows plain attributes before Module.__init__(); only parameters/modules/buffers need it."""

    class Early(nn.Module):
        def __init__(self):
            self.width = 4
            super().__init__()
            self.fc = nn.Linear(self.width, 1)

    assert Early().fc.in_features == 4


def test_parameters_before_module_init_raise():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tg.ones(1))

    with pytest.raises(AttributeError, match=re.escape("before Module.__init__() call")):
        Bad()


def test_deletion():
    net = Net()
    del net.scale
    del net.fc1
    del net.steps
    assert "scale" not in dict(net.named_parameters())
    assert [n for n, _ in net.named_children()] == ["block"]
    assert "steps" not in net.state_dict()
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'fc1'"):
        net.fc1
    net.plain = 1
    del net.plain
    assert not hasattr(net, "plain")


def test_register_parameter_and_add_module():
    m = nn.Module()
    m.register_parameter("w", nn.Parameter(tg.ones(2)))
    m.add_module("child", nn.ReLU())
    m.register_parameter("none", None)
    assert [n for n, _ in m.named_parameters()] == ["w"]
    assert list(m._parameters) == ["w", "none"]
    assert isinstance(m.child, nn.ReLU)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' object to parameter 'x'"):
        m.register_parameter("x", tg.ones(1))


# ---------------------------------------------------------------- traversal
def test_children_modules_and_named_modules():
    net = Net()
    assert list(net.children()) == [net.fc1, net.block]
    assert [n for n, _ in net.named_children()] == ["fc1", "block"]
    names = [n for n, _ in net.named_modules()]
    assert names == ["", "fc1", "block", "block.0", "block.1", "block.2"]
    mods = list(net.modules())
    assert mods[0] is net and mods[3] is net.block[0] and len(mods) == 6
    assert [n for n, _ in net.named_modules(prefix="root")][:2] == ["root", "root.fc1"]
    assert net.get_submodule("block.2") is net.block[2]
    assert net.get_submodule("") is net


# ---------------------------------------------------------------- modes, grads, apply, dtype
def test_train_and_eval_propagate():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not net.block[2].training
    net.block.train()
    assert net.block[2].training and not net.training and not net.fc1.training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("yes")


def _backward(net):
    net(tg.randn(5, 4)).sum().backward()


def test_zero_grad_set_to_none_and_to_zero():
    net = Net()
    _backward(net)
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    grads = [p.grad for p in net.parameters()]
    _backward(net)
    assert all(p.grad is g for p, g in zip(net.parameters(), grads))  # accumulated into the same tensors
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_requires_grad_():
    net = Net()
    assert net.requires_grad_(False) is net
    assert not any(p.requires_grad for p in net.parameters())
    out = net(tg.randn(5, 4))
    assert not out.requires_grad
    net.fc1.requires_grad_()
    assert [n for n, p in net.named_parameters() if p.requires_grad] == ["fc1.weight", "fc1.bias"]


def test_apply_visits_children_before_parent():
    net = Net()
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Linear", "Linear", "ReLU", "BatchNorm1d", "Sequential", "Net"]

    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)

    net.apply(init)
    assert (_arr(net.fc1.weight) == 0.5).all() and (_arr(net.block[0].weight) == 0.5).all()


def test_to_float64_and_double_keep_parameter_objects():
    net = Net()
    _backward(net)
    params = {n: p for n, p in net.named_parameters()}
    values = {n: _arr(p).copy() for n, p in params.items()}
    assert net.to(tg.float64) is net
    for n, p in net.named_parameters():
        assert p is params[n] and isinstance(p, nn.Parameter) and p.requires_grad
        assert p.dtype is tg.float64 and p.grad.dtype is tg.float64
        np.testing.assert_array_equal(_arr(p), values[n].astype(np.float64))
    assert net.block[2].running_mean.dtype is tg.float64 and net.steps.dtype is tg.float64
    assert net.block[2].num_batches_tracked.dtype is tg.int64  # integer buffers are not cast
    assert net(tg.randn(5, 4, dtype=tg.float64)).dtype is tg.float64
    assert net.float() is net and net.fc1.weight.dtype is tg.float32
    assert nn.Linear(2, 2).double().weight.dtype is tg.float64
    assert net.to("cpu") is net and net.fc1.weight.dtype is tg.float32
    assert net.to(dtype=tg.float64).fc1.weight.dtype is tg.float64


def test_forward_missing():
    class NoForward(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match=re.escape('Module [NoForward] is missing the required "forward" '
                                                            'function')):
        NoForward()(tg.ones(1))


def test_call_runs_forward_with_arguments():
    class Add(nn.Module):
        def forward(self, a, b=1.0, *, scale=1.0):
            return (a + b) * scale

    assert Add()(tg.tensor(1.0), tg.tensor(2.0), scale=2.0).item() == 6.0


# ---------------------------------------------------------------- repr
def _nested(m):
    """The same architecture in tracegrad (m = tracegrad) or torch."""
    mnn = m.nn

    class Block(mnn.Module):
        def __init__(self):
            super().__init__()
            self.conv = mnn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn = mnn.BatchNorm2d(8)
            self.act = mnn.ReLU()

        def forward(self, x):
            return self.act(self.bn(self.conv(x)))

    return mnn.Sequential(OrderedDict(
        block=Block(),
        convs=mnn.Sequential(mnn.Conv2d(8, 8, (3, 2), stride=(2, 1), padding=(1, 0), dilation=2, groups=2),
                             mnn.Conv2d(8, 4, 1, padding="same")),
        pool=mnn.MaxPool2d(2), avg=mnn.AvgPool2d(3, stride=1, padding=1), ad=mnn.AdaptiveAvgPool2d((2, 2)),
        flat=mnn.Flatten(), drop=mnn.Dropout(0.25),
        heads=mnn.ModuleList([mnn.Linear(16, 10), mnn.Linear(16, 2, bias=False)]),
        d=mnn.ModuleDict({"ln": mnn.LayerNorm(10), "emb": mnn.Embedding(5, 3, padding_idx=0)}),
        acts=mnn.Sequential(mnn.LeakyReLU(0.2), mnn.GELU(), mnn.GELU(approximate="tanh"), mnn.Tanh(), mnn.Sigmoid(),
                            mnn.Softmax(dim=1), mnn.LogSoftmax(dim=-1), mnn.ReLU(inplace=True), mnn.Identity()),
        bn1=mnn.BatchNorm1d(4, momentum=None, affine=False), ln2=mnn.LayerNorm((2, 3), elementwise_affine=False),
        losses=mnn.ModuleList([mnn.MSELoss(), mnn.L1Loss(), mnn.CrossEntropyLoss(), mnn.NLLLoss(), mnn.BCELoss(),
                               mnn.BCEWithLogitsLoss()]),
        empty=mnn.Sequential(),
    ))


# What PyTorch 2.13 prints for `_nested(torch)`.
NESTED_REPR = """\
Sequential(
  (block): Block(
    (conv): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
    (bn): BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    (act): ReLU()
  )
  (convs): Sequential(
    (0): Conv2d(8, 8, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(2, 2), groups=2)
    (1): Conv2d(8, 4, kernel_size=(1, 1), stride=(1, 1), padding=same)
  )
  (pool): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (avg): AvgPool2d(kernel_size=3, stride=1, padding=1)
  (ad): AdaptiveAvgPool2d(output_size=(2, 2))
  (flat): Flatten(start_dim=1, end_dim=-1)
  (drop): Dropout(p=0.25, inplace=False)
  (heads): ModuleList(
    (0): Linear(in_features=16, out_features=10, bias=True)
    (1): Linear(in_features=16, out_features=2, bias=False)
  )
  (d): ModuleDict(
    (ln): LayerNorm((10,), eps=1e-05, elementwise_affine=True, bias=True)
    (emb): Embedding(5, 3, padding_idx=0)
  )
  (acts): Sequential(
    (0): LeakyReLU(negative_slope=0.2)
    (1): GELU(approximate='none')
    (2): GELU(approximate='tanh')
    (3): Tanh()
    (4): Sigmoid()
    (5): Softmax(dim=1)
    (6): LogSoftmax(dim=-1)
    (7): ReLU(inplace=True)
    (8): Identity()
  )
  (bn1): BatchNorm1d(4, eps=1e-05, momentum=None, affine=False, bias=False, track_running_stats=True)
  (ln2): LayerNorm((2, 3), eps=1e-05, elementwise_affine=False, bias=False)
  (losses): ModuleList(
    (0): MSELoss()
    (1): L1Loss()
    (2): CrossEntropyLoss()
    (3): NLLLoss()
    (4): BCELoss()
    (5): BCEWithLogitsLoss()
  )
  (empty): Sequential()
)"""


def test_nested_repr_is_pytorchs():
    assert repr(_nested(tg)) == NESTED_REPR


def test_nested_repr_matches_installed_pytorch():
    torch = pytest.importorskip("torch")
    assert repr(_nested(tg)) == repr(_nested(torch))


# (constructor, what PyTorch 2.13 prints)
LAYER_REPRS = [
    (lambda nn: nn.Linear(2, 3), "Linear(in_features=2, out_features=3, bias=True)"),
    (lambda nn: nn.Conv2d(3, 4, 3), "Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1))"),
    (lambda nn: nn.Conv2d(3, 4, 3, padding="valid"), "Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=valid)"),
    (lambda nn: nn.Conv2d(3, 4, 3, padding=(0, 1)), "Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(0, 1))"),
    (lambda nn: nn.Conv2d(4, 4, (1, 3), 2, 1, 2, 4, False),
     "Conv2d(4, 4, kernel_size=(1, 3), stride=(2, 2), padding=(1, 1), dilation=(2, 2), groups=4, bias=False)"),
    (lambda nn: nn.BatchNorm2d(3), "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, "
                                   "track_running_stats=True)"),
    (lambda nn: nn.BatchNorm1d(3, eps=1e-3, momentum=None, track_running_stats=False),
     "BatchNorm1d(3, eps=0.001, momentum=None, affine=True, bias=True, track_running_stats=False)"),
    (lambda nn: nn.LayerNorm(4), "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)"),
    (lambda nn: nn.LayerNorm([2, 4], bias=False), "LayerNorm((2, 4), eps=1e-05, elementwise_affine=True, bias=False)"),
    (lambda nn: nn.MaxPool2d((2, 3), stride=1, padding=1),
     "MaxPool2d(kernel_size=(2, 3), stride=1, padding=1, dilation=1, ceil_mode=False)"),
    (lambda nn: nn.AvgPool2d(2, count_include_pad=False), "AvgPool2d(kernel_size=2, stride=2, padding=0)"),
    (lambda nn: nn.AdaptiveAvgPool2d(1), "AdaptiveAvgPool2d(output_size=1)"),
    (lambda nn: nn.Flatten(0), "Flatten(start_dim=0, end_dim=-1)"),
    (lambda nn: nn.Dropout(), "Dropout(p=0.5, inplace=False)"),
    (lambda nn: nn.Embedding(4, 2), "Embedding(4, 2)"),
    (lambda nn: nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
    (lambda nn: nn.LeakyReLU(inplace=True), "LeakyReLU(negative_slope=0.01, inplace=True)"),
    (lambda nn: nn.Softmax(), "Softmax(dim=None)"),
    (lambda nn: nn.GELU(), "GELU(approximate='none')"),
    (lambda nn: nn.ReLU(), "ReLU()"),
    (lambda nn: nn.Sigmoid(), "Sigmoid()"),
    (lambda nn: nn.Identity(), "Identity()"),
    (lambda nn: nn.CrossEntropyLoss(), "CrossEntropyLoss()"),
]
LAYER_IDS = [r.split("(")[0] + f"_{i}" for i, (_, r) in enumerate(LAYER_REPRS)]


@pytest.mark.parametrize("make,expected", LAYER_REPRS, ids=LAYER_IDS)
def test_layer_repr(make, expected):
    assert repr(make(nn)) == expected


@pytest.mark.parametrize("make,expected", LAYER_REPRS, ids=LAYER_IDS)
def test_layer_repr_matches_installed_pytorch(make, expected):
    torch = pytest.importorskip("torch")
    assert repr(make(nn)) == repr(make(torch.nn))


def test_custom_extra_repr_and_multiline():
    class Custom(nn.Module):
        def extra_repr(self):
            return "a=1\nb=2"

    assert repr(Custom()) == "Custom(\n  a=1\n  b=2\n)"
    outer = nn.Sequential(Custom())
    assert repr(outer) == "Sequential(\n  (0): Custom(\n    a=1\n    b=2\n  )\n)"


# ---------------------------------------------------------------- default initialization
def test_linear_default_init_bounds():
    tg.manual_seed(1)
    lin = nn.Linear(50, 400)
    bound = 1 / math.sqrt(50)
    w, b = _arr(lin.weight), _arr(lin.bias)
    assert w.shape == (400, 50) and b.shape == (400,)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # uniform on [-bound, bound]
    assert lin.weight.dtype is tg.float32
    assert nn.Linear(3, 2, bias=False).bias is None
    assert nn.Linear(3, 2, dtype=tg.float64).weight.dtype is tg.float64


def test_conv2d_default_init_bounds():
    tg.manual_seed(2)
    conv = nn.Conv2d(6, 64, 3, groups=2)
    fan_in = 3 * 9  # in_channels / groups * kh * kw
    bound = 1 / math.sqrt(fan_in)
    w, b = _arr(conv.weight), _arr(conv.bias)
    assert w.shape == (64, 3, 3, 3)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert np.abs(b).max() <= bound
    assert nn.Conv2d(2, 2, 1, bias=False).bias is None


def test_norm_and_embedding_default_init():
    bn = nn.BatchNorm2d(5)
    np.testing.assert_array_equal(_arr(bn.weight), np.ones(5))
    np.testing.assert_array_equal(_arr(bn.bias), np.zeros(5))
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(5))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(5))
    assert bn.num_batches_tracked.item() == 0 and bn.num_batches_tracked.dtype is tg.int64
    assert nn.BatchNorm2d(5, affine=False).weight is None
    ln = nn.LayerNorm((2, 3))
    np.testing.assert_array_equal(_arr(ln.weight), np.ones((2, 3)))
    np.testing.assert_array_equal(_arr(ln.bias), np.zeros((2, 3)))
    tg.manual_seed(3)
    emb = _arr(nn.Embedding(1000, 100).weight)
    assert abs(emb.mean()) < 0.01 and abs(emb.std() - 1) < 0.01


# ---------------------------------------------------------------- nn.init
def test_calculate_gain():
    g = nn.init.calculate_gain
    assert g("linear") == g("conv2d") == g("sigmoid") == g("conv_transpose2d") == 1.0
    assert g("tanh") == pytest.approx(5 / 3)
    assert g("relu") == pytest.approx(math.sqrt(2))
    assert g("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert g("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / (1 + 0.04)))
    assert g("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert g("selu") == 0.75
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        g("foo")


def test_calculate_gain_parity_with_pytorch():
    torch = pytest.importorskip("torch")
    for args in [("linear",), ("conv2d",), ("sigmoid",), ("tanh",), ("relu",), ("leaky_relu",),
                 ("leaky_relu", 0.2), ("selu",)]:
        assert nn.init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args), rel=1e-12)


BIG = (300, 200, 2, 2)  # fan_in = 800, fan_out = 1200; 240000 elements
FAN_IN, FAN_OUT = 200 * 4, 300 * 4


def _big():
    return tg.empty(*BIG, dtype=tg.float64)


@pytest.mark.parametrize("name,fn,std,bound", [
    ("xavier_uniform", lambda t: nn.init.xavier_uniform_(t), math.sqrt(2 / (FAN_IN + FAN_OUT)),
     math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("xavier_uniform_gain", lambda t: nn.init.xavier_uniform_(t, gain=2.0), 2 * math.sqrt(2 / (FAN_IN + FAN_OUT)),
     2 * math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("xavier_normal", lambda t: nn.init.xavier_normal_(t), math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
    ("kaiming_uniform_relu", lambda t: nn.init.kaiming_uniform_(t, nonlinearity="relu"), math.sqrt(2 / FAN_IN),
     math.sqrt(6 / FAN_IN)),
    ("kaiming_uniform_a_sqrt5", lambda t: nn.init.kaiming_uniform_(t, a=math.sqrt(5)), 1 / math.sqrt(3 * FAN_IN),
     1 / math.sqrt(FAN_IN)),
    ("kaiming_uniform_fan_out", lambda t: nn.init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"),
     math.sqrt(2 / FAN_OUT), math.sqrt(6 / FAN_OUT)),
    ("kaiming_normal", lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu"), math.sqrt(2 / FAN_IN), None),
    ("kaiming_normal_fan_out_leaky", lambda t: nn.init.kaiming_normal_(t, a=0.2, mode="fan_out"),
     math.sqrt(2 / (1 + 0.04)) / math.sqrt(FAN_OUT), None),
    ("uniform", lambda t: nn.init.uniform_(t, -0.5, 1.5), 2 / math.sqrt(12), None),
    ("normal", lambda t: nn.init.normal_(t, 0.0, 0.3), 0.3, None),
])
def test_init_statistics(name, fn, std, bound):
    t = _big()
    assert fn(t) is t
    a = t.numpy()
    assert abs(a.std() - std) < 0.01 * std
    mean = 0.5 if name == "uniform" else 0.0
    assert abs(a.mean() - mean) < 0.01 * std
    if bound is not None:
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.999 * bound


def test_init_normal_mean_and_uniform_range():
    t = tg.empty(1000, 100)
    nn.init.normal_(t, mean=3.0, std=0.5)
    assert abs(t.numpy().mean() - 3.0) < 0.005
    nn.init.uniform_(t, 2.0, 3.0)
    assert t.numpy().min() >= 2.0 and t.numpy().max() <= 3.0


def test_init_constant_zeros_ones_on_parameters_stay_leaves():
    p = nn.Parameter(tg.empty(3, 4))
    assert nn.init.constant_(p, 0.25) is p
    np.testing.assert_array_equal(_arr(p), np.full((3, 4), 0.25, np.float32))
    nn.init.zeros_(p)
    np.testing.assert_array_equal(_arr(p), np.zeros((3, 4)))
    nn.init.ones_(p)
    np.testing.assert_array_equal(_arr(p), np.ones((3, 4)))
    nn.init.xavier_uniform_(p)
    assert p.is_leaf and p.grad_fn is None and p.requires_grad


def test_init_fan_errors():
    with pytest.raises(ValueError, match="Fan in and fan out can not be computed for tensor with fewer than 2 "
                                         "dimensions"):
        nn.init.xavier_uniform_(tg.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported, please use one of fan_in, fan_out"):
        nn.init.kaiming_uniform_(tg.empty(2, 2), mode="fan_avg")


def test_init_generator_is_reproducible():
    a = nn.init.kaiming_uniform_(tg.empty(10, 10), generator=tg.Generator().manual_seed(3)).numpy()
    b = nn.init.kaiming_uniform_(tg.empty(10, 10), generator=tg.Generator().manual_seed(3)).numpy()
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- state_dict
def test_state_dict_keys():
    assert list(nn.Linear(2, 3).state_dict()) == ["weight", "bias"]
    assert list(nn.Linear(2, 3, bias=False).state_dict()) == ["weight"]
    assert list(nn.Conv2d(2, 3, 3).state_dict()) == ["weight", "bias"]
    assert list(nn.BatchNorm2d(3).state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                                    "num_batches_tracked"]
    assert list(nn.BatchNorm1d(3, affine=False).state_dict()) == ["running_mean", "running_var",
                                                                  "num_batches_tracked"]
    assert list(nn.LayerNorm(3).state_dict()) == ["weight", "bias"]
    assert list(nn.Embedding(3, 2).state_dict()) == ["weight"]
    seq = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                      "1.num_batches_tracked", "4.weight", "4.bias"]
    named = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), head=nn.Sequential(nn.Linear(2, 2))))
    assert list(named.state_dict()) == ["conv.weight", "conv.bias", "head.0.weight", "head.0.bias"]


def test_state_dict_values_are_detached_and_share_storage():
    lin = nn.Linear(2, 3)
    sd = lin.state_dict()
    assert isinstance(sd, OrderedDict)
    assert not sd["weight"].requires_grad and not isinstance(sd["weight"], nn.Parameter)
    np.testing.assert_array_equal(sd["weight"].numpy(), _arr(lin.weight))
    with tg.no_grad():
        lin.weight.fill_(2.0)
    assert (sd["weight"].numpy() == 2.0).all()
    kept = lin.state_dict(keep_vars=True)
    assert kept["weight"] is lin.weight


def _cnn(m=tg):
    mnn = m.nn
    return mnn.Sequential(mnn.Conv2d(2, 3, 3), mnn.BatchNorm2d(3), mnn.ReLU(), mnn.Flatten(), mnn.Linear(12, 2))


def test_load_state_dict_round_trip_from_tensors():
    tg.manual_seed(0)
    src = _cnn()
    src(tg.randn(4, 2, 4, 4))  # non-trivial running stats
    dst = _cnn()
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert tuple(result) == ([], [])
    for (k, a), (k2, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert k == k2 and a.dtype is b.dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert dst[1].num_batches_tracked.item() == 1
    x = tg.randn(2, 2, 4, 4)
    np.testing.assert_array_equal(_arr(src.eval()(x)), _arr(dst.eval()(x)))


def test_load_state_dict_from_numpy_arrays_casts_to_the_parameter_dtype():
    src, dst = _cnn(), _cnn()
    arrays = {k: v.numpy().astype(np.float64) if v.is_floating_point() else v.numpy()
              for k, v in src.state_dict().items()}
    dst.load_state_dict(arrays)
    assert dst[0].weight.dtype is tg.float32 and dst[1].num_batches_tracked.dtype is tg.int64
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[k].numpy(), v.numpy())


def test_load_state_dict_keeps_parameter_and_buffer_objects():
    src, dst = _cnn(), _cnn()
    before = {k: id(v) for k, v in dst.state_dict(keep_vars=True).items()}
    params = list(dst.parameters())
    dst.load_state_dict({k: v.numpy() for k, v in src.state_dict().items()})
    assert {k: id(v) for k, v in dst.state_dict(keep_vars=True).items()} == before
    assert all(a is b for a, b in zip(params, dst.parameters()))
    np.testing.assert_array_equal(_arr(params[0]), _arr(src[0].weight))
    assert all(p.requires_grad and p.is_leaf for p in dst.parameters())


def test_load_state_dict_strict_lists_missing_and_unexpected_keys():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    sd = {k: v for k, v in m.state_dict().items() if k != "0.bias"}
    sd["extra"] = tg.ones(1)
    with pytest.raises(RuntimeError) as info:
        m.load_state_dict(sd)
    msg = str(info.value)
    # PyTorch's text for the same call
    assert msg == ('Error(s) in loading state_dict for Sequential:\n\tMissing key(s) in state_dict: "0.bias". '
                   '\n\tUnexpected key(s) in state_dict: "extra". ')


def test_load_state_dict_error_leaves_module_unchanged_under_strict():
    m = nn.Linear(2, 2)
    before = _arr(m.weight).copy()
    with pytest.raises(RuntimeError, match="^Error\\(s\\) in loading state_dict for Linear:"):
        m.load_state_dict({"weight": tg.zeros(2, 2)})
    np.testing.assert_array_equal(_arr(m.weight), before)


def test_load_state_dict_size_mismatch_raises_even_when_not_strict():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    sd = dict(m.state_dict())
    sd["2.weight"] = tg.ones(2, 5)
    pattern = (r"^Error\(s\) in loading state_dict for Sequential:\n\tsize mismatch for 2\.weight: copying a param "
               r"with shape (tracegrad\.Size\()?\[2, 5\]\)? from checkpoint, the shape in current model is "
               r"(tracegrad\.Size\()?\[2, 3\]\)?\.$")
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=pattern):
            m.load_state_dict(sd, strict=strict)


def test_load_state_dict_not_strict_returns_keys_and_loads_the_rest():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    sd = {k: tg.zeros(*v.shape) for k, v in m.state_dict().items() if k != "0.bias"}
    sd["extra"] = tg.ones(1)
    bias = _arr(m[0].bias).copy()
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == ["0.bias"] and unexpected == ["extra"]
    assert not _arr(m[0].weight).any() and not _arr(m[2].weight).any()
    np.testing.assert_array_equal(_arr(m[0].bias), bias)


def test_state_dict_keys_match_pytorch():
    torch = pytest.importorskip("torch")
    assert list(_cnn(tg).state_dict()) == list(_cnn(torch).state_dict())
    assert list(_nested(tg).state_dict()) == list(_nested(torch).state_dict())


# ---------------------------------------------------------------- containers
def test_sequential():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and seq[1] is b
    assert list(seq) == [a, b, c]
    sliced = seq[1:]
    assert isinstance(sliced, nn.Sequential) and list(sliced) == [b, c]
    assert list(sliced._modules) == ["1", "2"]  # PyTorch keeps the original keys
    with pytest.raises(IndexError):
        seq[3]
    x = tg.randn(4, 2)
    np.testing.assert_allclose(_arr(seq(x)), _arr(c(b(a(x)))))
    d = nn.Tanh()
    assert seq.append(d) is seq and len(seq) == 4 and seq[3] is d and list(seq._modules)[-1] == "3"
    named = nn.Sequential(OrderedDict([("first", a), ("act", b)]))
    assert list(named._modules) == ["first", "act"] and named.first is a and named[1] is b
    assert [n for n, _ in named.named_parameters()] == ["first.weight", "first.bias"]
    assert len(nn.Sequential()) == 0
    y = tg.randn(2)
    assert nn.Sequential()(y) is y


def test_module_list():
    layers = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()])
    assert len(layers) == 2 and isinstance(layers[1], nn.ReLU) and isinstance(layers[-1], nn.ReLU)
    t = nn.Tanh()
    assert layers.append(t) is layers and layers[2] is t
    s = nn.Sigmoid()
    assert layers.extend([nn.Linear(2, 1), s]) is layers and len(layers) == 5 and layers[4] is s
    first = nn.Identity()
    layers.insert(0, first)
    assert layers[0] is first and len(layers) == 6 and layers[3] is t
    assert list(layers._modules) == [str(i) for i in range(6)]
    mid = nn.GELU()
    layers.insert(2, mid)
    assert layers[2] is mid and layers[4] is t
    assert [n for n, _ in layers.named_parameters()] == ["1.weight", "1.bias", "5.weight", "5.bias"]
    sliced = layers[1:3]
    assert isinstance(sliced, nn.ModuleList) and len(sliced) == 2 and sliced[1] is mid
    new = nn.ReLU()
    layers[0] = new
    assert layers[0] is new and len(layers) == 7
    assert list(iter(layers))[0] is new
    assert len(nn.ModuleList()) == 0
    with pytest.raises(IndexError):
        layers[7]


def test_module_dict():
    lin, act = nn.Linear(2, 2), nn.ReLU()
    d = nn.ModuleDict({"lin": lin, "act": act})
    assert d["lin"] is lin and len(d) == 2
    assert "act" in d and "nope" not in d
    assert list(d.keys()) == ["lin", "act"] and list(d) == ["lin", "act"]
    assert list(d.items()) == [("lin", lin), ("act", act)]
    assert list(d.values()) == [lin, act]
    t = nn.Tanh()
    d["t"] = t
    assert d["t"] is t and d.t is t and list(d.keys())[-1] == "t"
    assert [n for n, _ in d.named_parameters()] == ["lin.weight", "lin.bias"]
    del d["lin"]
    assert "lin" not in d and list(d.parameters()) == []
    with pytest.raises(KeyError):
        d["lin"]
    assert len(nn.ModuleDict()) == 0


# ---------------------------------------------------------------- layers as modules
def test_layer_modules_forward_like_functional():
    F = nn.functional
    x = tg.randn(2, 3, 6, 6)
    assert tuple(nn.MaxPool2d(2)(x).shape) == (2, 3, 3, 3)
    np.testing.assert_array_equal(_arr(nn.MaxPool2d(3, 1, 1)(x)), _arr(F.max_pool2d(x, 3, 1, 1)))
    np.testing.assert_array_equal(_arr(nn.AvgPool2d(3, 2, 1, count_include_pad=False)(x)),
                                  _arr(F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)))
    np.testing.assert_array_equal(_arr(nn.AdaptiveAvgPool2d((4, 5))(x)), _arr(F.adaptive_avg_pool2d(x, (4, 5))))
    assert tuple(nn.Flatten()(x).shape) == (2, 108)
    assert tuple(nn.Flatten(0, 1)(x).shape) == (6, 6, 6)
    np.testing.assert_array_equal(_arr(nn.LeakyReLU(0.3)(x)), _arr(F.leaky_relu(x, 0.3)))
    np.testing.assert_array_equal(_arr(nn.GELU("tanh")(x)), _arr(F.gelu(x, approximate="tanh")))
    np.testing.assert_array_equal(_arr(nn.Softmax(dim=1)(x)), _arr(F.softmax(x, 1)))
    np.testing.assert_array_equal(_arr(nn.LogSoftmax(dim=-1)(x)), _arr(F.log_softmax(x, -1)))
    np.testing.assert_array_equal(_arr(nn.Sigmoid()(x)), _arr(F.sigmoid(x)))
    np.testing.assert_array_equal(_arr(nn.Tanh()(x)), _arr(F.tanh(x)))
    np.testing.assert_array_equal(_arr(nn.ReLU()(x)), _arr(F.relu(x)))
    assert nn.Identity(3, k=1)(x) is x
    ln = nn.LayerNorm(6)
    np.testing.assert_array_equal(_arr(ln(x)), _arr(F.layer_norm(x, (6,), ln.weight, ln.bias)))
    conv = nn.Conv2d(3, 4, 3, stride=2, padding="valid")
    np.testing.assert_array_equal(_arr(conv(x)), _arr(F.conv2d(x, conv.weight, conv.bias, 2)))
    same = nn.Conv2d(3, 4, 3, padding="same", dilation=2)
    assert tuple(same(x).shape) == (2, 4, 6, 6)
    with pytest.raises(ValueError, match="BatchNorm2d: expected 4D input \\(got 2D input\\)"):
        nn.BatchNorm2d(3)(tg.randn(2, 3))


def test_softmax_module_implicit_dim():
    x3 = tg.randn(2, 3, 4)
    # PyTorch's legacy rule for dim=None: dim 0 for 0-, 1- and 3-D inputs, else 1
    np.testing.assert_allclose(_arr(nn.Softmax()(x3)), _arr(nn.functional.softmax(x3, 0)))
    x2 = tg.randn(2, 3)
    np.testing.assert_allclose(_arr(nn.LogSoftmax()(x2)), _arr(nn.functional.log_softmax(x2, 1)))


# ---------------------------------------------------------------- a small CNN against PyTorch
def _parity_cnn(m):
    mnn = m.nn
    return mnn.Sequential(
        mnn.Conv2d(3, 8, 3, padding=1), mnn.BatchNorm2d(8), mnn.ReLU(), mnn.MaxPool2d(2),
        mnn.Conv2d(8, 8, 3, stride=1, padding=1, groups=2, bias=False), mnn.BatchNorm2d(8), mnn.ReLU(),
        mnn.AvgPool2d(2), mnn.AdaptiveAvgPool2d((2, 2)), mnn.Flatten(), mnn.Dropout(0.5), mnn.Linear(32, 10),
    )


def test_small_cnn_matches_pytorch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs, ours = _parity_cnn(torch), _parity_cnn(tg)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 3, 12, 12)).astype(np.float32)
    seed = np.random.default_rng(1).standard_normal((4, 10)).astype(np.float32)

    # train mode (dropout in eval so the two runs are deterministic)
    for net in (ours, theirs):
        net.train()
        net[10].eval()
    xo, xt = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_o, out_t = ours(xo), theirs(xt)
    np.testing.assert_allclose(_arr(out_o), out_t.detach().numpy(), rtol=1e-4, atol=1e-5)
    (out_o * tg.tensor(seed)).sum().backward()
    (out_t * torch.tensor(seed)).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)
    theirs_buffers = dict(theirs.named_buffers())
    for name, b in ours.named_buffers():
        np.testing.assert_allclose(b.numpy(), theirs_buffers[name].numpy(), rtol=1e-4, atol=1e-6, err_msg=name)

    # eval mode: running statistics, dropout off
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        expected = theirs(torch.tensor(x)).numpy()
    with tg.no_grad():
        got = ours(tg.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    for name, b in ours.named_buffers():  # eval did not touch the running statistics
        np.testing.assert_allclose(b.numpy(), theirs_buffers[name].numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
