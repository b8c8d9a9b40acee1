"""ResNet-18 end to end, with torchvision's key names, and parity with a PyTorch ResNet-18 (when installed)."""
import numpy as np
import pytest

import tracegrad as tg


@pytest.fixture(scope="module")
def resnet():
    tg.manual_seed(0)
    return tg.models.resnet18()


def test_resnet18_has_torchvisions_size_and_key_names(resnet):
    assert sum(p.numel() for p in resnet.parameters()) == 11_689_512
    keys = list(resnet.state_dict())
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                        "bn1.num_batches_tracked"]
    for key in ["layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var",
                "layer4.1.bn2.bias", "fc.weight", "fc.bias"]:
        assert key in keys
    assert len(keys) == 122


def test_resnet18_flow_from_the_issue(resnet):
    """model(data) -> loss -> backward -> one SGD-momentum step, as in the issue, on a (1, 3, 64, 64) input."""
    model = resnet
    model.train()
    data = tg.rand(1, 3, 64, 64)
    labels = tg.rand(1, 1000)
    loss = (model(data) - labels).sum()
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    before = model.fc.weight.detach().clone()
    grad = model.fc.weight.grad.clone()
    opt = tg.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    opt.step()  # first step: the momentum buffer is the gradient itself
    np.testing.assert_allclose(model.fc.weight.detach().numpy(), (before - 1e-2 * grad).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(opt.state[model.fc.weight]["momentum_buffer"].numpy(), grad.numpy())
    assert model.bn1.num_batches_tracked.item() == 1


def test_resnet18_eval_mode_is_deterministic_and_batch_independent(resnet):
    resnet.eval()
    x = tg.rand(2, 3, 32, 32)
    with tg.no_grad():
        both = resnet(x)
        first = resnet(x[:1])
    np.testing.assert_allclose(both[:1].numpy(), first.numpy(), rtol=1e-4, atol=1e-5)
    resnet.train()


def _torch_resnet18():
    torch = pytest.importorskip("torch")
    from tracegrad.bench.training import torch_resnet18
    return torch, torch_resnet18()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_resnet18_matches_pytorch_with_the_same_weights(mode):
    torch, theirs = _torch_resnet18()
    ours = tg.models.resnet18()
    theirs.double()
    ours.double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    getattr(ours, mode)()
    getattr(theirs, mode)()
    x = np.random.default_rng(0).random((2, 3, 64, 64))
    labels = np.random.default_rng(1).random((2, 1000))
    ours_loss = (ours(tg.tensor(x)) - tg.tensor(labels)).sum()
    theirs_loss = (theirs(torch.tensor(x)) - torch.tensor(labels)).sum()
    ours_loss.backward()
    theirs_loss.backward()
    assert ours_loss.item() == pytest.approx(theirs_loss.item(), rel=1e-12)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(ours.layer3[0].bn1.running_var.numpy(), theirs.layer3[0].bn1.running_var.numpy(),
                               rtol=1e-12)
