"""`tracegrad.save` / `tracegrad.load` (issue 15): PyTorch's file format, round trips of every kind of object,
weights_only, map_location, paths and file objects, and files that PyTorch reads and writes."""
import io
import pathlib
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import tracegrad as tg


def _round_trip(obj, **load_kwargs):
    buf = io.BytesIO()
    tg.save(obj, buf)
    buf.seek(0)
    return tg.load(buf, **load_kwargs)


def _assert_same(a, b):
    """Equal values of the same types; tensors with equal dtype, shape, strides, values and requires_grad."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, tg.Tensor):
        assert (a.dtype, a.shape, a.requires_grad) == (b.dtype, b.shape, b.requires_grad)
        assert a._data.strides == b._data.strides or a.numel() == 0
        assert np.array_equal(a.detach().numpy(), b.detach().numpy(), equal_nan=True)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b or (a != a and b != b)


_BASE = tg.arange(24.0).reshape(2, 3, 4)
OBJECTS = {
    "float32": tg.randn(3, 4),
    "float64": tg.randn(2, dtype=tg.float64),
    "int64": tg.tensor([[1, -2], [3, 2**40]]),
    "bool": tg.tensor([True, False, True]),
    "0-d": tg.tensor(2.5),
    "empty": tg.zeros(0, 3),
    "nan-inf": tg.tensor([float("nan"), float("inf"), -0.0]),
    "transposed": _BASE.permute(2, 0, 1),
    "stepped-slice": _BASE[:, 1:, ::2],
    "expanded": tg.ones(3, 1).expand(3, 4),
    "requires-grad": tg.randn(2, requires_grad=True),
    "non-leaf": tg.randn(2, requires_grad=True) * 2,
    "parameter": tg.nn.Parameter(tg.randn(2, 2)),
    "frozen-parameter": tg.nn.Parameter(tg.randn(2), requires_grad=False),
    "primitives": [None, True, 3, -2**70, 1.5, float("nan"), "text", b"\x00bytes", 2 + 3j, (1, (2,)), {1, 2}],
    "containers": {"a": [tg.ones(2), (tg.zeros(1), {"b": tg.tensor(1)})], 7: OrderedDict(x=tg.ones(1))},
    "dtype-device-size": [tg.float32, tg.float64, tg.int64, tg.bool, tg.device("cpu"), tg.device("cuda", 1),
                          tg.Size([2, 3])],
}


@pytest.mark.parametrize("name", list(OBJECTS))
def test_round_trip(name):
    obj = OBJECTS[name]
    back = _round_trip(obj)
    if name == "non-leaf":  # as PyTorch: saved as a leaf that requires grad
        obj = obj.detach().requires_grad_(True)
    _assert_same(obj, back)


def test_a_state_dict_round_trips_exactly_and_loads_into_a_model():
    net = tg.nn.Sequential(tg.nn.Conv2d(1, 2, 3), tg.nn.BatchNorm2d(2), tg.nn.Flatten(), tg.nn.Linear(8, 3))
    net(tg.randn(4, 1, 4, 4))  # running statistics and num_batches_tracked move
    sd = net.state_dict()
    back = _round_trip(sd)
    _assert_same(sd, back)
    fresh = tg.nn.Sequential(tg.nn.Conv2d(1, 2, 3), tg.nn.BatchNorm2d(2), tg.nn.Flatten(), tg.nn.Linear(8, 3))
    fresh.load_state_dict(back)
    x = tg.randn(2, 1, 4, 4)
    net.eval(), fresh.eval()
    assert tg.equal(net(x), fresh(x))


def test_views_load_as_views_of_one_array():
    base = tg.arange(12.0).reshape(3, 4)
    loaded_base, loaded_t, loaded_row, again = _round_trip([base, base.t(), base[1], base])
    assert again is loaded_base  # one object saved twice is one object
    loaded_base[1, 0] = 100.0
    assert loaded_t[0, 1].item() == 100.0 and loaded_row[0].item() == 100.0
    p = tg.nn.Parameter(tg.ones(3))
    sd = _round_trip({"p": p, "d": p.detach()})
    sd["d"][0] = 5.0
    assert sd["p"][0].item() == 5.0 and isinstance(sd["p"], tg.nn.Parameter)


def test_optimizer_state_dict_round_trips_and_training_goes_on_the_same():
    def setup():
        tg.manual_seed(1)
        net = tg.nn.Linear(3, 2)
        return net, tg.optim.Adam(net.parameters(), lr=0.1)

    def step(net, opt):
        opt.zero_grad()
        ((net(tg.ones(4, 3)) - 1) ** 2).mean().backward()
        opt.step()

    net, opt = setup()
    step(net, opt)
    net_sd, opt_sd = _round_trip([net.state_dict(), opt.state_dict()])
    _assert_same(opt.state_dict(), opt_sd)
    net2, opt2 = setup()
    net2.load_state_dict(net_sd)
    opt2.load_state_dict(opt_sd)
    step(net, opt), step(net2, opt2)
    assert tg.equal(net.weight, net2.weight) and tg.equal(net.bias, net2.bias)


def test_a_whole_module_needs_weights_only_false():
    net = tg.nn.Sequential(tg.nn.Linear(3, 4), tg.nn.ReLU(), tg.nn.Linear(4, 1))
    buf = io.BytesIO()
    tg.save(net, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError) as info:
        tg.load(buf)
    message = str(info.value)
    assert "GLOBAL tracegrad.nn.module.Sequential was not an allowed global" in message
    assert "weights_only=False" in message and "trusted source" in message
    buf.seek(0)
    back = tg.load(buf, weights_only=False)
    x = tg.randn(2, 3)
    assert type(back) is tg.nn.Sequential and tg.equal(back(x), net(x))
    assert isinstance(back[0].weight, tg.nn.Parameter) and back[0].weight.requires_grad


CALLED = []


def _side_effect(*args):
    CALLED.append(args)
    return "ran"


class Malicious:
    def __reduce__(self):
        return _side_effect, ("payload",)


class Plain:
    def __init__(self, value):
        self.value = value


def test_weights_only_refuses_any_other_global_without_calling_it():
    buf = io.BytesIO()
    tg.save({"w": tg.ones(1), "x": Malicious()}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match=f"GLOBAL {__name__}._side_effect was not an allowed global"):
        tg.load(buf)
    assert CALLED == []
    buf.seek(0)
    assert tg.load(buf, weights_only=False)["x"] == "ran" and CALLED == [("payload",)]


def test_safe_globals_admit_a_trusted_class():
    buf = io.BytesIO()
    tg.save([Plain(3)], buf)
    with tg.serialization.safe_globals([Plain]):
        buf.seek(0)
        assert tg.load(buf)[0].value == 3
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="Plain was not an allowed global"):
        tg.load(buf)
    tg.serialization.add_safe_globals([Plain])
    try:
        buf.seek(0)
        assert tg.load(buf)[0].value == 3 and Plain in tg.serialization.get_safe_globals()
    finally:
        tg.serialization.clear_safe_globals()
    assert tg.serialization.get_safe_globals() == []


def _rewrite(data: bytes, edit) -> bytes:
    """The archive with each record's bytes passed through `edit(name, payload)`."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, edit(info.filename, src.read(info)))
    return out.getvalue()


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    tg.save(obj, buf)
    return buf.getvalue()


def test_map_location():
    x = tg.arange(3.0)
    data = _saved({"x": x})
    seen = []
    for where in ("cpu", tg.device("cpu"), {"cpu": "cpu"}, lambda storage, loc: storage,
                  lambda storage, loc: seen.append(loc)):
        assert tg.equal(tg.load(io.BytesIO(data), map_location=where)["x"], x)
    assert seen == ["cpu"]
    with pytest.raises(RuntimeError, match="load: tracegrad computes on the CPU only, so device 'cuda' can't be used"):
        tg.load(io.BytesIO(data), map_location="cuda")
    with pytest.raises(RuntimeError, match="maps to 'cuda:0'.*map_location='cpu'"):
        tg.load(io.BytesIO(data), map_location={"cpu": "cuda:0"})
    with pytest.raises(TypeError, match="map_location must be"):
        tg.load(io.BytesIO(data), map_location=3)


def test_a_file_saved_on_a_gpu_needs_map_location():
    x = tg.arange(3.0)
    # NOTE: the pickle names each storage's device; write 'cuda:0' where tracegrad wrote 'cpu'
    on_gpu = _rewrite(_saved([x]), lambda name, b: b.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
                      if name.endswith("data.pkl") else b)
    with pytest.raises(RuntimeError, match="saved on device 'cuda:0'.*CPU only.*pass map_location='cpu'"):
        tg.load(io.BytesIO(on_gpu))
    for where in ("cpu", {"cuda:0": "cpu"}, lambda storage, loc: storage):
        assert tg.equal(tg.load(io.BytesIO(on_gpu), map_location=where)[0], x)


def test_paths_and_file_objects(tmp_path):
    x = tg.randn(2, 3)
    tg.save(x, str(tmp_path / "a.pt"))
    tg.save(x, tmp_path / "b.pt")
    with open(tmp_path / "c.pt", "wb") as f:
        tg.save(x, f)
    for name in ("a.pt", "b.pt", "c.pt"):
        assert tg.equal(tg.load(tmp_path / name), x) and tg.equal(tg.load(str(tmp_path / name)), x)
        with open(tmp_path / name, "rb") as f:
            assert tg.equal(tg.load(f), x)

    class Stream(io.RawIOBase):  # readable, not seekable
        def __init__(self, data):
            self.inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self.inner.readinto(b)

    assert tg.equal(tg.load(Stream(pathlib.Path(tmp_path / "a.pt").read_bytes())), x)
    with pytest.raises(AttributeError, match="expected 'f' to be string, path, or a file-like object"):
        tg.save(x, 5)
    with pytest.raises(AttributeError, match="with a 'read' attribute"):
        tg.load(5)


def test_what_is_not_such_a_file_is_refused_clearly(tmp_path):
    with pytest.raises(pickle.UnpicklingError, match="not a file written by tracegrad.save or torch.save"):
        tg.load(io.BytesIO(pickle.dumps({"a": 1})))
    # a tensor whose size reaches past its storage is refused, not read out of bounds
    data = _rewrite(_saved(tg.zeros(2)), lambda name, b: b.replace(b"K\x02\x85", b"K\xc8\x85", 1)
                    if name.endswith("data.pkl") else b)
    with pytest.raises(pickle.UnpicklingError, match="lies outside its storage of 2 elements"):
        tg.load(io.BytesIO(data))


def test_saving_is_deterministic_and_reads_the_other_byte_order():
    x = {"w": tg.randn(3, 2, dtype=tg.float64), "i": tg.tensor([1, 2**33])}
    data = _saved(x)
    assert _saved(x) == data

    def swap(name, payload):
        if name.endswith("byteorder"):
            return b"big" if payload == b"little" else b"little"
        if "/data/" in name:
            return np.frombuffer(payload, np.int64).byteswap().tobytes()  # both tensors have 8-byte elements
        return payload
    _assert_same(x, tg.load(io.BytesIO(_rewrite(data, swap))))


# ------------------------------------------------------------------------------------------ PyTorch
def _models(torch):
    def make(nn):
        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    return make(tg.nn), make(torch.nn)


def test_a_tracegrad_state_dict_loads_in_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    ours, theirs = _models(torch)
    ours(tg.randn(4, 1, 4, 4))  # move the running statistics
    tg.save(ours.state_dict(), tmp_path / "ours.pt")
    sd = torch.load(tmp_path / "ours.pt")  # weights_only=True: only PyTorch's safe globals
    assert [(k, v.dtype, tuple(v.shape)) for k, v in sd.items()] == \
        [(k, getattr(torch, v.dtype.name), tuple(v.shape)) for k, v in ours.state_dict().items()]
    theirs.load_state_dict(sd)
    ours.eval(), theirs.eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(theirs(torch.from_numpy(x)).detach().numpy(), ours(tg.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_a_pytorch_state_dict_loads_in_tracegrad(tmp_path):
    torch = pytest.importorskip("torch")
    ours, theirs = _models(torch)
    theirs(torch.randn(4, 1, 4, 4))
    torch.save(theirs.state_dict(), tmp_path / "theirs.pt")
    sd = tg.load(tmp_path / "theirs.pt")
    assert type(sd) is OrderedDict and sd["1.num_batches_tracked"].dtype == tg.int64
    ours.load_state_dict(sd)
    ours.eval(), theirs.eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(tg.tensor(x)).detach().numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_tensors_views_and_objects_cross_both_ways():
    torch = pytest.importorskip("torch")
    base = tg.arange(12.0).reshape(3, 4)
    obj = [base, base.t(), base[1:, ::2], tg.nn.Parameter(tg.ones(2)), tg.ones(2, requires_grad=True),
           tg.tensor([True, False]), tg.tensor(3), tg.float64, tg.device("cpu"), tg.Size([2, 3]), {"k": (1, "s")}]
    theirs = torch.load(io.BytesIO(_saved(obj)))
    assert theirs[0].untyped_storage().data_ptr() == theirs[1].untyped_storage().data_ptr() == \
        theirs[2].untyped_storage().data_ptr()
    assert [t.stride() for t in theirs[:3]] == [(4, 1), (1, 4), (4, 2)] and theirs[2].storage_offset() == 4
    assert isinstance(theirs[3], torch.nn.Parameter) and theirs[4].requires_grad and theirs[5].dtype == torch.bool
    assert theirs[7:] == [torch.float64, torch.device("cpu"), torch.Size([2, 3]), {"k": (1, "s")}]
    for ours_t, their_t in zip(obj[:7], theirs[:7]):
        assert np.array_equal(ours_t.detach().numpy(), their_t.detach().numpy())

    buf = io.BytesIO()
    torch.save(theirs, buf)  # and back: PyTorch's file of the same objects
    buf.seek(0)
    back = tg.load(buf)
    _assert_same(obj, back)
    back[0][0, 1] = -1.0
    assert back[1][1, 0].item() == -1.0  # still views of one array


def test_pytorch_optimizer_state_continues_in_tracegrad():
    torch = pytest.importorskip("torch")

    def step(lib, net, opt):
        opt.zero_grad()
        ((net(lib.ones(4, 3)) - 1) ** 2).mean().backward()
        opt.step()

    theirs = torch.nn.Linear(3, 2)
    their_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    step(torch, theirs, their_opt)
    buf = io.BytesIO()
    torch.save({"model": theirs.state_dict(), "opt": their_opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = tg.load(buf)
    ours = tg.nn.Linear(3, 2)
    ours.load_state_dict(ckpt["model"])
    our_opt = tg.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    our_opt.load_state_dict(ckpt["opt"])
    step(torch, theirs, their_opt), step(tg, ours, our_opt)
    np.testing.assert_allclose(ours.weight.detach().numpy(), theirs.weight.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_pytorch_files_tracegrad_cannot_hold_are_refused_clearly():
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save(torch.nn.Linear(2, 2), buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="GLOBAL torch.nn.modules.linear.Linear was not an allowed"):
        tg.load(buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="a PyTorch object that tracegrad can't rebuild.*state_dict"):
        tg.load(buf, weights_only=False)
    buf = io.BytesIO()
    torch.save({"h": torch.ones(2, dtype=torch.bfloat16)}, buf)
    buf.seek(0)
    with pytest.raises(TypeError, match="torch.BFloat16Storage tensor, of a dtype tracegrad lacks"):
        tg.load(buf)


def test_every_dtype_round_trips_through_pytorch():
    torch = pytest.importorskip("torch")
    ours = {d.name: tg.arange(4).to(d) for d in tg.dtypes.ALL}
    buf = io.BytesIO()
    tg.save(ours, buf)
    buf.seek(0)
    theirs = torch.load(buf)
    assert {k: (str(v.dtype), v.tolist()) for k, v in theirs.items()} == \
        {k: (f"torch.{k}", v.tolist()) for k, v in ours.items()}
    buf = io.BytesIO()
    torch.save(theirs, buf)
    buf.seek(0)
    back = tg.load(buf)
    assert all(back[k].dtype is v.dtype and tg.equal(back[k], v) for k, v in ours.items())
