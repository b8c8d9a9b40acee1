"""Everyday Tensor API of PyTorch (issue 15): formatting, `type` and the legacy tensor types, `new_*`, sizes in
bytes, `inference_mode`, `size=` of the creation functions, the default device, and `set_num_threads`."""
import threading

import numpy as np
import pytest

import tracegrad as tg

DTYPES = ["float32", "float64", "int64", "bool"]


# ------------------------------------------------------------------------------------------ formatting
FORMATTED = [(187, None), (1.5, None), (0.1, None), (-2.25, "float64"), (True, None), (3, "float64")]
SPECS = ["", ".3f", ">8", ".2e", "+", "^9.1f"]


@pytest.mark.parametrize("value,dtype", FORMATTED)
def test_a_0d_tensor_formats_its_value_as_pytorch(value, dtype):
    torch = pytest.importorskip("torch")
    for spec in SPECS:
        if isinstance(value, bool) and spec in ("+",):
            continue
        ours = tg.tensor(value, dtype=None if dtype is None else getattr(tg, dtype))
        theirs = torch.tensor(value, dtype=None if dtype is None else getattr(torch, dtype))
        assert format(ours, spec) == format(theirs, spec), spec
    assert f"{tg.tensor(187)}" == "{}".format(tg.tensor(187)) == "187"  # noqa: UP032 - str.format, too
    assert f"{tg.tensor(1.5, requires_grad=True):.2f}" == "1.50"


def test_other_tensors_format_as_str_and_refuse_a_spec():
    torch = pytest.importorskip("torch")
    for make in (lambda lib: lib.tensor([1.0, 2.5]), lambda lib: lib.tensor([[1, 2]]), lambda lib: lib.ones(1),
                 lambda lib: lib.nn.Parameter(lib.tensor(1.0))):
        ours, theirs = make(tg), make(torch)
        assert f"{ours}" == str(ours) == str(theirs).replace("torch.", "tracegrad.")
        with pytest.raises(TypeError, match=r"unsupported format string passed to \w+.__format__"):
            format(ours, ".2f")
        with pytest.raises(TypeError):
            format(theirs, ".2f")


# ------------------------------------------------------------------------------------------ type, sizes, new_*
@pytest.mark.parametrize("dtype", DTYPES)
def test_type_names_and_sizes_are_pytorchs(dtype):
    torch = pytest.importorskip("torch")
    ours, theirs = tg.ones(2, 3, dtype=getattr(tg, dtype)), torch.ones(2, 3, dtype=getattr(torch, dtype))
    assert ours.type() == theirs.type()
    assert (ours.element_size(), ours.itemsize, ours.nbytes) == (theirs.element_size(), theirs.itemsize,
                                                                 theirs.nbytes)
    for target in DTYPES:
        name = getattr(torch, target)
        assert ours.type(getattr(tg, target)).type() == theirs.type(name).type()
        legacy = theirs.type(name).type()
        converted = ours.type(legacy)
        assert converted.type() == legacy and np.array_equal(converted.numpy(), theirs.type(legacy).numpy())
        assert (converted is ours) == (target == dtype)


def test_legacy_tensor_types():
    x = tg.ones(2)
    assert isinstance(x, tg.FloatTensor) and not isinstance(x, tg.LongTensor)
    assert isinstance(x.long(), tg.LongTensor) and not isinstance(np.ones(2), tg.FloatTensor)
    assert x.type(tg.DoubleTensor).dtype == tg.float64 and x.type(tg.FloatTensor) is x
    assert tg.FloatTensor(2, 3).shape == (2, 3) and tg.FloatTensor(tg.Size([4])).shape == (4,)
    assert tg.FloatTensor().shape == (0,) and tg.BoolTensor(1).dtype == tg.bool
    assert tg.equal(tg.LongTensor([1, 2]), tg.tensor([1, 2])) and tg.equal(tg.FloatTensor((2, 3)), tg.tensor([2., 3.]))
    alias = tg.FloatTensor(x)
    alias[0] = 5.0
    assert x[0].item() == 5.0  # the same data, as in PyTorch
    with pytest.raises(TypeError, match="FloatTensor: expected a tensor of dtype tracegrad.float32"):
        tg.FloatTensor(tg.tensor([1]))
    assert repr(tg.FloatTensor) == "<class 'tracegrad.FloatTensor'>"
    with pytest.raises(ValueError, match="invalid type: 'torch.Foo'"):
        x.type("torch.Foo")
    with pytest.raises(ValueError, match="invalid type: 'torch.BFloat16Tensor' .tracegrad's tensor types are"):
        x.type("torch.BFloat16Tensor")
    assert x.type("torch.IntTensor").dtype is tg.int32 and isinstance(x.half(), tg.HalfTensor)
    with pytest.raises(RuntimeError, match="Tensor.type: tracegrad computes on the CPU only"):
        x.type("torch.cuda.FloatTensor")


NEW = [
    ("new_zeros", lambda x: x.new_zeros(2, 3)),
    ("new_zeros tuple", lambda x: x.new_zeros((2, 3))),
    ("new_zeros size=", lambda x: x.new_zeros(size=(2, 3))),
    ("new_ones", lambda x: x.new_ones([3])),
    ("new_ones dtype", lambda x: x.new_ones(2, dtype=DT["float64"])),
    ("new_empty", lambda x: x.new_empty(2, 2).fill_(0)),
    ("new_full int value", lambda x: x.new_full((2,), 3)),
    ("new_full float value", lambda x: x.new_full([1, 2], 2.5)),
    ("new_tensor", lambda x: x.new_tensor([1, 2])),
    ("new_tensor dtype", lambda x: x.new_tensor([[1.5]], dtype=DT["float32"])),
]
DT = {}


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("name,make", NEW, ids=[n for n, _ in NEW])
def test_new_tensors_are_pytorchs(name, make, dtype):
    torch = pytest.importorskip("torch")
    DT.clear()
    DT.update({d: getattr(tg, d) for d in DTYPES})
    ours = make(tg.ones(1, dtype=getattr(tg, dtype)))
    DT.update({d: getattr(torch, d) for d in DTYPES})
    theirs = make(torch.ones(1, dtype=getattr(torch, dtype)))
    assert (str(ours.dtype).split(".")[1], tuple(ours.shape)) == (str(theirs.dtype).split(".")[1],
                                                                  tuple(theirs.shape))
    assert np.array_equal(ours.numpy(), theirs.numpy())


def test_new_tensors_take_requires_grad_and_devices():
    x = tg.ones(1, dtype=tg.float64)
    z = x.new_zeros(2, requires_grad=True)
    assert z.requires_grad and z.is_leaf and z.dtype == tg.float64
    assert x.new_tensor(tg.tensor([1, 2]), device="cpu").dtype == tg.float64
    with pytest.raises(RuntimeError, match="new_ones: tracegrad computes on the CPU only, so device 'cuda'"):
        x.new_ones(2, device="cuda")


# ------------------------------------------------------------------------------------------ inference mode
def test_inference_mode_makes_inference_tensors():
    w = tg.ones(2, requires_grad=True)
    assert not tg.is_inference_mode_enabled()
    with tg.inference_mode():
        assert tg.is_inference_mode_enabled() and not tg.is_grad_enabled()
        made, computed, drawn = tg.ones(2), w * 2, tg.randn(2)
        view_of_normal, detached = w[:1], w.detach()
        view_of_inference = made[:1]
        with tg.inference_mode(False):  # as PyTorch: leaving inference mode enables grad
            assert tg.is_grad_enabled() and not tg.is_inference_mode_enabled() and not tg.ones(1).is_inference()
    assert not tg.is_inference_mode_enabled() and tg.is_grad_enabled()
    assert made.is_inference() and computed.is_inference() and drawn.is_inference()
    assert view_of_inference.is_inference() and made.t().is_inference()
    assert not (view_of_normal.is_inference() or detached.is_inference() or w.is_inference())
    assert not computed.requires_grad and not tg.ones(1).is_inference()


def test_autograd_may_not_save_inference_tensors():
    w = tg.ones(2, requires_grad=True)
    with tg.inference_mode():
        x = tg.ones(2)
    assert not (w + x).is_inference()  # add saves neither input: allowed, as in PyTorch
    for use in (lambda: w * x, lambda: x @ w, lambda: tg.nn.functional.linear(x.reshape(1, 2), w.reshape(1, 2))):
        with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
            use()
    with pytest.raises(RuntimeError, match="Setting requires_grad=True on inference tensor outside InferenceMode"):
        x.requires_grad_()
    (x.clone() * w).sum().backward()  # a clone is a normal tensor
    assert tg.equal(w.grad, x)
    with tg.no_grad():
        assert not (w * x).requires_grad


def test_inference_mode_matches_pytorch():
    torch = pytest.importorskip("torch")
    cases = [lambda lib, w, x: w + x, lambda lib, w, x: w * x, lambda lib, w, x: x * 3,
             lambda lib, w, x: x.reshape(2, 1) * w, lambda lib, w, x: (x.clone() * w).sum(),
             lambda lib, w, x: x.requires_grad_(), lambda lib, w, x: lib.exp(x) - w]

    def outcomes(lib):
        out = []
        for case in cases:
            w = lib.ones(2, requires_grad=True)
            with lib.inference_mode():
                x = lib.ones(2)
            try:
                r = case(lib, w, x)
                out.append((r.requires_grad, r.is_inference()))
            except RuntimeError as e:
                out.append(str(e)[:40])
        return out
    assert outcomes(tg) == outcomes(torch)


def test_inference_mode_as_decorator_and_per_thread():
    w = tg.ones(2, requires_grad=True)

    @tg.inference_mode
    def bare(a):
        return a * 2

    @tg.inference_mode()
    def called(a):
        return a * 2

    @tg.inference_mode(mode=False)
    def off(a):
        return a * 2

    assert bare(w).is_inference() and called(w).is_inference() and not called(w).requires_grad
    with tg.inference_mode():
        assert off(w).requires_grad and not off(w).is_inference()
    seen = []
    with tg.inference_mode():
        thread = threading.Thread(target=lambda: seen.append((tg.is_inference_mode_enabled(), tg.is_grad_enabled())))
        thread.start()
        thread.join()
    assert seen == [(False, True)]


# ------------------------------------------------------------------------------------------ creation, device
@pytest.mark.parametrize("name", ["zeros", "ones", "empty", "rand", "randn"])
def test_creation_takes_size_as_a_keyword(name):
    fn = getattr(tg, name)
    assert fn(size=(2, 3)).shape == fn(size=[2, 3]).shape == fn(2, 3).shape == (2, 3)
    assert fn(size=(2,), dtype=tg.float64).dtype == tg.float64 and fn(size=()).shape == ()
    with pytest.raises(TypeError, match=f"{name}\\(\\) got multiple values for argument 'size'"):
        fn(2, size=(3,))
    full = tg.full(size=(2, 2), fill_value=1.5)
    assert full.shape == (2, 2) and full[0, 0].item() == 1.5


def test_default_device_is_the_cpu():
    assert tg.get_default_device() == tg.device("cpu")
    for dev in ("cpu", tg.device("cpu"), None):
        tg.set_default_device(dev)
        assert tg.get_default_device() == tg.device("cpu")
    with pytest.raises(RuntimeError, match="set_default_device: tracegrad computes on the CPU only, so device 'cuda'"):
        tg.set_default_device("cuda")


# ------------------------------------------------------------------------------------------ threads
def test_set_num_threads_pins_every_blas_and_numba():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numba

    before = tg.get_num_threads()
    try:
        tg.set_num_threads(1)
        blas = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
        assert blas and all(lib["num_threads"] == 1 for lib in blas)
        assert any("scipy" in lib["filepath"] for lib in blas)  # the BLAS numba's kernels call
        assert tg.get_num_threads() == 1 and numba.get_num_threads() == 1
    finally:
        tg.set_num_threads(before)
    assert tg.get_num_threads() == before
    for bad, message in ((0, "set_num_threads expects a positive integer"),
                         (1.5, "set_num_threads expects an int, but got float"),
                         (True, "set_num_threads expects an int, but got bool")):
        with pytest.raises(RuntimeError, match=message):
            tg.set_num_threads(bad)
