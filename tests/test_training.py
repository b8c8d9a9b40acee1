"""Everyday PyTorch training code with `import tracegrad as torch`: the classic Net and a small MLP."""
import numpy as np
import pytest

import tracegrad as torch
import tracegrad.nn as nn
import tracegrad.nn.functional as F


class Net(nn.Module):
    """The classic tutorial network: Linear 10->5, relu, Linear 5->2."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 5)
        self.fc2 = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def _train(style: str, steps: int = 5, lr: float = 0.1):
    torch.manual_seed(0)
    net = Net()
    data = torch.randn(16, 10)
    target = torch.randn(16, 2)
    opt = torch.optim.SGD(net.parameters(), lr=lr) if style == "optim" else None
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(net(data), target)
        losses.append(loss.item())
        if style == "manual":
            net.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in net.parameters():
                    p.data = p.data - lr * p.grad
        elif style == "autograd.grad":
            grads = torch.autograd.grad(loss, net.parameters())
            with torch.no_grad():
                for p, g in zip(net.parameters(), grads):
                    p -= lr * g
        else:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net, losses


def test_the_three_update_styles_give_the_same_parameters():
    results = {style: _train(style) for style in ("manual", "autograd.grad", "optim")}
    reference, ref_losses = results["manual"]
    assert ref_losses[-1] < ref_losses[0]
    for style, (net, losses) in results.items():
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-6, err_msg=style)
        for (name, p), q in zip(net.named_parameters(), reference.parameters()):
            np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-6, atol=1e-7,
                                       err_msg=f"{style}: {name}")


def test_a_small_mlp_learns_a_separable_problem():
    torch.manual_seed(0)
    n = 512
    x = torch.randn(n, 2)
    y = ((x[:, 0] * x[:, 1]) > 0).long()  # XOR-like quadrants: not linearly separable, but learnable
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True)
    for _ in range(40):
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy >= 0.95


def test_training_with_pytorch_gives_pytorchs_losses():
    """Same initial weights and data, SGD with momentum: the same loss at every step (skipped without torch)."""
    th = pytest.importorskip("torch")
    ours, _ = _train("manual", steps=0)
    theirs = th.nn.Sequential(th.nn.Linear(10, 5), th.nn.ReLU(), th.nn.Linear(5, 2))
    with th.no_grad():
        for (_, p), q in zip(ours.named_parameters(), theirs.parameters()):
            q.copy_(th.from_numpy(p.detach().numpy().copy()))
    rng = np.random.default_rng(1)
    data, target = rng.standard_normal((16, 10), dtype=np.float32), rng.standard_normal((16, 2), dtype=np.float32)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    opt_theirs = th.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    for _ in range(10):
        for opt, model, lib in ((opt_ours, ours, torch), (opt_theirs, theirs, th)):
            opt.zero_grad()
            loss = lib.nn.functional.mse_loss(model(lib.tensor(data)), lib.tensor(target))
            loss.backward()
            opt.step()
            model.last_loss = loss.item()
        assert ours.last_loss == pytest.approx(theirs.last_loss, rel=1e-5)
