"""Devices (issue 15): tracegrad computes on the CPU; PyTorch's device lines run unchanged, and using any
other device is an error naming where it was used, never silently ignored."""
import pytest

import tracegrad as tg

CPU_ONLY = "tracegrad computes on the CPU only, so device '{}' can't be used (tracegrad.cuda.is_available() is False)"


def test_the_usual_device_lines_run_on_the_cpu():
    device = tg.device("cuda" if tg.cuda.is_available() else "cpu")
    model = tg.nn.Linear(3, 2).to(device)
    x = tg.randn(4, 3, device=device).to(device)
    out = model(x)
    assert device == tg.device("cpu") and out.device == device and str(out.device) == "cpu"
    assert x.cpu() is x and model.cpu() is model and x.to("cpu") is x
    assert not tg.cuda.is_available() and tg.cuda.device_count() == 0 and not tg.accelerator.is_available()
    assert not tg.backends.mps.is_available()
    tg.cuda.manual_seed_all(0)  # harmless without CUDA, as in PyTorch
    assert x.to("cpu", tg.float64).dtype == tg.float64 and x.to(device=device, dtype=tg.float64).dtype == tg.float64
    assert model.to("cpu", tg.float64).weight.dtype == tg.float64


def test_device_objects_behave_like_pytorchs():
    assert repr(tg.device("cpu")) == "device(type='cpu')" and repr(tg.device("cuda", 1)) == \
        "device(type='cuda', index=1)"
    assert str(tg.device("cuda:1")) == "cuda:1" and tg.device("cpu:0").index == 0
    assert tg.device(tg.device("cpu")) == tg.device("cpu") and hash(tg.device("cpu")) == hash(tg.device("cpu"))
    assert tg.device("cpu") != "cpu"  # as in PyTorch 2.13
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda, .* device type at start of device string: gpu"):
        tg.device("gpu")
    with pytest.raises(RuntimeError, match="Invalid device string: 'cuda:x'"):
        tg.device("cuda:x")


@pytest.mark.parametrize("where,use,device", [
    ("zeros", lambda: tg.zeros(2, device="cuda"), "cuda"),
    ("tensor", lambda: tg.tensor([1.0], device="mps"), "mps"),
    ("randn", lambda: tg.randn(2, device=tg.device("cuda", 0)), "cuda:0"),
    ("Tensor.cuda", lambda: tg.ones(2).cuda(), "cuda"),
    ("Tensor.to", lambda: tg.ones(2).to("cuda"), "cuda"),
    ("Tensor.to", lambda: tg.ones(2).to(0), "cuda:0"),
    ("Tensor.to", lambda: tg.ones(2).to(device="mps"), "mps"),
    ("Linear.to", lambda: tg.nn.Linear(2, 2).to("cuda"), "cuda"),
    ("Linear.cuda", lambda: tg.nn.Linear(2, 2).cuda(), "cuda"),
    ("nn.Linear", lambda: tg.nn.Linear(2, 2, device="cuda"), "cuda"),
    ("nn.BatchNorm2d", lambda: tg.nn.BatchNorm2d(2, device="cuda"), "cuda"),
])
def test_using_another_device_is_an_error_naming_where(where, use, device):
    with pytest.raises(RuntimeError) as e:
        use()
    assert str(e.value).startswith(f"{where}: " + CPU_ONLY.format(device))


def test_moving_to_the_cpu_inside_a_compiled_function_costs_nothing():
    f = tg.compile(lambda x: (x.to("cpu") * 2.0).cpu().sum())
    for _ in range(3):
        assert f(tg.ones(3)).item() == 6.0
    assert [n.op.name for n in f.explain(tg.ones(3)).graph.nodes] == ["mul", "sum"]
