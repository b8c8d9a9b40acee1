"""The Tensor's user-facing surface: dtypes, type promotion, creation, metadata, conversions, repr, indexing and
the API forms of the shape ops, each checked against PyTorch's behaviour (torch itself is only needed by the tests
that compare against it directly; they are skipped without it)."""
import numpy as np
import pytest

import tracegrad as tg

# ------------------------------------------------------------------------------------------ dtypes


@pytest.mark.parametrize("data,kwargs,dtype", [
    ([1.0], {}, "float32"),
    ([1, 2.5], {}, "float32"),
    (1.0, {}, "float32"),
    ([1], {}, "int64"),
    (3, {}, "int64"),
    (True, {}, "bool"),
    ([True, False], {}, "bool"),
    (np.array([1.0, 2.0]), {}, "float64"),
    (np.array([1.0], np.float32), {}, "float32"),
    (np.array([1, 2]), {}, "int64"),
    (np.array([True]), {}, "bool"),
    ([1, 2], {"dtype": tg.float32}, "float32"),
    ([1.5], {"dtype": tg.float64}, "float64"),
    ([1.7], {"dtype": tg.long}, "int64"),
    ([0, 3], {"dtype": tg.bool}, "bool"),
])
def test_tensor_infers_pytorchs_default_dtypes(data, kwargs, dtype):
    assert tg.tensor(data, **kwargs).dtype is getattr(tg, dtype)


def test_dtype_aliases_and_names():
    assert tg.float is tg.float32 and tg.double is tg.float64 and tg.long is tg.int64
    assert [repr(d) for d in (tg.float32, tg.float64, tg.int64, tg.bool)] == \
        ["tracegrad.float32", "tracegrad.float64", "tracegrad.int64", "tracegrad.bool"]
    assert isinstance(tg.float32, tg.dtype)
    assert tg.tensor([1.0]).is_floating_point() and not tg.tensor([1]).is_floating_point()


def test_default_dtype_can_be_float64():
    tg.set_default_dtype(tg.float64)  # conftest restores float32 before every test
    assert tg.get_default_dtype() is tg.float64
    assert tg.tensor([1.0]).dtype is tg.float64 and tg.zeros(2).dtype is tg.float64
    assert (tg.tensor([1]) + 0.5).dtype is tg.float64
    assert repr(tg.tensor([1.0], dtype=tg.float32)) == "tensor([1.], dtype=tracegrad.float32)"
    with pytest.raises(TypeError, match="floating"):
        tg.set_default_dtype(tg.int64)


def test_from_numpy_shares_memory_and_keeps_dtype():
    a = np.array([1.0, 2.0, 3.0])
    t = tg.from_numpy(a)
    assert t.dtype is tg.float64
    a[0] = 7.0
    assert t.tolist() == [7.0, 2.0, 3.0]
    t[1] = -1.0
    assert a.tolist() == [7.0, -1.0, 3.0]
    assert tg.from_numpy(np.zeros(2, np.float32)).dtype is tg.float32
    assert tg.from_numpy(np.zeros(2, np.int64)).dtype is tg.int64


def test_tensor_copies_its_input():
    a = np.array([1.0, 2.0])
    t = tg.tensor(a)
    a[0] = 5.0
    assert t.tolist() == [1.0, 2.0]
    u = tg.tensor(t)
    t[0] = 9.0
    assert u.tolist() == [1.0, 2.0]


def test_from_numpy_rejects_unsupported_dtypes_by_name():
    with pytest.raises(TypeError, match="uint32"):
        tg.from_numpy(np.array([1, 2], np.uint32))
    with pytest.raises(TypeError, match="complex64"):
        tg.from_numpy(np.array([1.0], np.complex64))


@pytest.mark.parametrize("data,method,args,dtype,values", [
    ([2.0, -2.0, 0.0], "float", (), "float32", [2.0, -2.0, 0.0]),
    ([2.0, -2.0, 0.0], "double", (), "float64", [2.0, -2.0, 0.0]),
    ([2.7, -2.7, 0.2], "long", (), "int64", [2, -2, 0]),  # truncation toward zero, as in PyTorch
    ([2.0, -2.0, 0.0], "bool", (), "bool", [True, True, False]),
    ([2.0, -2.0, 0.0], "to", (tg.float64,), "float64", [2.0, -2.0, 0.0]),
    ([2.7, -2.7, 0.2], "to", (tg.int64,), "int64", [2, -2, 0]),
    ([2.0, -2.0, 0.0], "to", ("cpu", tg.float64), "float64", [2.0, -2.0, 0.0]),
    ([2.0, -2.0, 0.0], "to", (tg.tensor([1]),), "int64", [2, -2, 0]),
    ([1, 0, 3], "float", (), "float32", [1.0, 0.0, 3.0]),
    ([True, False], "long", (), "int64", [1, 0]),
    ([True, False], "double", (), "float64", [1.0, 0.0]),
])
def test_dtype_conversions(data, method, args, dtype, values):
    x = tg.tensor(data)
    before = x.dtype
    out = getattr(x, method)(*args)
    assert out.dtype is getattr(tg, dtype)
    assert out.tolist() == values
    assert x.dtype is before  # the input is unchanged


def test_to_same_dtype_returns_self():
    x = tg.tensor([1.0, 2.0])
    assert x.to(tg.float32) is x and x.float() is x
    assert x.to(tg.float32, copy=True) is not x


# ------------------------------------------------------------------------------------------ type promotion
# Operands: "f32", "f64", "i64", "b" are tensors of shape [2]; a "()" suffix makes them 0-dim; Python numbers as is.
_SHORT = {"b": "bool", "i64": "int64", "f32": "float32", "f64": "float64"}
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
        "//": lambda a, b: a // b, "**": lambda a, b: a ** b, "<": lambda a, b: a < b}
PROMOTION = [
    # tensor op tensor, both dimensioned
    ("b", "+", "b", "bool"),
    ("b", "+", "i64", "int64"),
    ("b", "+", "f32", "float32"),
    ("b", "*", "f64", "float64"),
    ("i64", "+", "i64", "int64"),
    ("i64", "+", "f32", "float32"),  # numpy would say float64
    ("i64", "*", "f64", "float64"),
    ("f32", "+", "f64", "float64"),
    ("f64", "-", "f32", "float64"),
    # tensor op Python scalar
    ("i64", "+", 1.5, "float32"),
    ("f32", "+", 1, "float32"),
    ("f32", "*", 2.5, "float32"),
    ("f64", "+", 1.5, "float64"),
    ("b", "+", 1, "int64"),
    ("b", "*", 2.5, "float32"),
    ("b", "+", True, "bool"),
    ("i64", "+", True, "int64"),
    ("i64", "*", 3, "int64"),
    (1.5, "-", "i64", "float32"),
    (2, "*", "b", "int64"),
    (1, "+", "f64", "float64"),
    # 0-dim tensors only win when of a higher category
    ("f32", "+", "f64()", "float32"),
    ("i64", "+", "f64()", "float64"),
    ("i64", "+", "f32()", "float32"),
    ("f32()", "*", "i64", "float32"),
    ("b", "+", "i64()", "int64"),
    ("i64", "+", "b()", "int64"),
    ("f32()", "+", "f64()", "float64"),
    ("i64()", "+", "f32()", "float32"),
    ("i64()", "+", 1.5, "float32"),
    ("f64()", "+", 1.5, "float64"),
    ("f64()", "+", 1, "float64"),
    # division, floor division, power, comparison
    ("i64", "/", "i64", "float32"),
    ("b", "/", "b", "float32"),
    ("i64", "/", 2, "float32"),
    (1, "/", "i64", "float32"),
    ("f64", "/", "i64", "float64"),
    ("i64", "//", "i64", "int64"),
    ("i64", "//", 2.0, "float32"),
    ("i64", "**", "i64", "int64"),
    ("i64", "**", 2, "int64"),
    ("i64", "**", 0.5, "float32"),
    (2, "**", "i64", "int64"),
    (1.5, "**", "i64", "float32"),
    ("f32", "**", "i64", "float32"),
    ("i64", "<", 1.5, "bool"),
    ("f32", "<", "f64", "bool"),
]
PROMOTION_IDS = [f"{a}{op}{b}" for a, op, b, _ in PROMOTION]


def _operand(m, spec):
    if not isinstance(spec, str):
        return spec
    name, zero_dim = spec.removesuffix("()"), spec.endswith("()")
    return m.full(() if zero_dim else (2,), 2, dtype=getattr(m, _SHORT[name]))


@pytest.mark.parametrize("a,op,b,dtype", PROMOTION, ids=PROMOTION_IDS)
def test_type_promotion(a, op, b, dtype):
    out = _OPS[op](_operand(tg, a), _operand(tg, b))
    assert out.dtype is getattr(tg, dtype)
    assert out.shape == (() if all(not isinstance(s, str) or s.endswith("()") for s in (a, b)) else (2,))


@pytest.mark.parametrize("a,op,b,dtype", PROMOTION, ids=PROMOTION_IDS)
def test_type_promotion_table_is_pytorchs(a, op, b, dtype):
    torch = pytest.importorskip("torch")
    ours = _OPS[op](_operand(tg, a), _operand(tg, b))
    theirs = _OPS[op](_operand(torch, a), _operand(torch, b))
    assert str(theirs.dtype) == f"torch.{dtype}"
    assert ours.tolist() == theirs.tolist()


def test_promotion_values_follow_the_result_dtype():
    assert (tg.tensor([3]) / tg.tensor([2])).tolist() == [1.5]
    assert (tg.tensor([3]) // tg.tensor([2])).tolist() == [1]
    assert (tg.tensor([3]) ** 2).tolist() == [9]
    assert (tg.tensor([True, False]) + tg.tensor([True, True])).tolist() == [True, True]
    assert (tg.tensor([True, False]) + 1).tolist() == [2, 1]
    assert tg.promote_types(tg.int64, tg.float32) is tg.float32
    assert tg.result_type(tg.tensor([1, 2]), 1.5) is tg.float32
    assert tg.result_type(tg.tensor([1.0], dtype=tg.float32), tg.tensor(1.0, dtype=tg.float64)) is tg.float32


def test_bool_subtraction_and_negation_raise_as_in_pytorch():
    b = tg.tensor([True, False])
    with pytest.raises(RuntimeError, match="Subtraction.*bool"):
        b - b
    with pytest.raises(RuntimeError, match="Negation.*bool"):
        -b


# ------------------------------------------------------------------------------------------ creation
@pytest.mark.parametrize("fn,value", [(tg.zeros, 0.0), (tg.ones, 1.0)])
def test_zeros_ones(fn, value):
    for x in (fn(2, 3), fn((2, 3)), fn([2, 3])):
        assert x.shape == (2, 3) and x.dtype is tg.float32
        assert x.tolist() == [[value] * 3] * 2
    assert fn(2, dtype=tg.int64).tolist() == [int(value)] * 2
    assert fn(2, dtype=tg.bool).tolist() == [bool(value)] * 2
    assert fn().shape == () and fn(0).shape == (0,)


@pytest.mark.parametrize("fill,dtype", [(3, "int64"), (1.5, "float32"), (True, "bool")])
def test_full_dtype_follows_fill_value(fill, dtype):
    x = tg.full((2, 2), fill)
    assert x.dtype is getattr(tg, dtype)
    assert x.tolist() == [[fill] * 2] * 2
    assert tg.full((3,), fill, dtype=tg.float64).dtype is tg.float64


def test_empty():
    x = tg.empty(2, 3)
    assert x.shape == (2, 3) and x.dtype is tg.float32
    assert tg.empty((4,), dtype=tg.int64).dtype is tg.int64


@pytest.mark.parametrize("args,dtype,values", [
    ((5,), "int64", [0, 1, 2, 3, 4]),
    ((2, 5), "int64", [2, 3, 4]),
    ((1, 10, 3), "int64", [1, 4, 7]),
    ((5, 0, -2), "int64", [5, 3, 1]),
    ((3.0,), "float32", [0.0, 1.0, 2.0]),
    ((1, 2.5, 0.5), "float32", [1.0, 1.5, 2.0]),
    ((0, 1, 0.25), "float32", [0.0, 0.25, 0.5, 0.75]),
    ((0, 0), "int64", []),
])
def test_arange(args, dtype, values):
    x = tg.arange(*args)
    assert x.dtype is getattr(tg, dtype)
    assert x.tolist() == values


def test_arange_dtype_and_bad_step():
    assert tg.arange(3, dtype=tg.float64).tolist() == [0.0, 1.0, 2.0]
    assert tg.arange(3, dtype=tg.float64).dtype is tg.float64
    with pytest.raises(RuntimeError):
        tg.arange(0, 5, 0)
    with pytest.raises(RuntimeError):
        tg.arange(5, 0, 1)


def test_linspace():
    x = tg.linspace(0, 1, 5)
    assert x.dtype is tg.float32 and x.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert tg.linspace(-1, 1, 3, dtype=tg.float64).tolist() == [-1.0, 0.0, 1.0]
    assert tg.linspace(2, 2, 1).tolist() == [2.0]


def test_eye():
    assert tg.eye(2).tolist() == [[1.0, 0.0], [0.0, 1.0]] and tg.eye(2).dtype is tg.float32
    assert tg.eye(2, 3).tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert tg.eye(3, 1, dtype=tg.int64).tolist() == [[1], [0], [0]]


def test_rand_randn_randint_shapes_dtypes_and_ranges():
    u = tg.rand(100, 10)
    assert u.shape == (100, 10) and u.dtype is tg.float32
    assert 0.0 <= u.min().item() and u.max().item() < 1.0 and 0.4 < u.mean().item() < 0.6
    n = tg.randn((200, 10))
    assert n.shape == (200, 10) and n.dtype is tg.float32
    assert abs(n.mean().item()) < 0.1 and 0.9 < n.std().item() < 1.1
    assert tg.rand(3, dtype=tg.float64).dtype is tg.float64
    r = tg.randint(3, 7, (1000,))
    assert r.dtype is tg.int64 and r.shape == (1000,)
    assert sorted(set(r.tolist())) == [3, 4, 5, 6]
    assert set(tg.randint(2, (50,)).tolist()) == {0, 1}
    assert tg.randint(0, 5, (2, 3)).shape == (2, 3)
    p = tg.randperm(6)
    assert p.dtype is tg.int64 and sorted(p.tolist()) == list(range(6))
    with pytest.raises(RuntimeError):
        tg.rand(2, dtype=tg.int64)


@pytest.mark.parametrize("make", [lambda: tg.rand(4), lambda: tg.randn(2, 2), lambda: tg.randint(0, 1000, (5,)),
                                  lambda: tg.randperm(10)])
def test_manual_seed_determinism(make):
    tg.manual_seed(123)
    a = make()
    tg.manual_seed(123)
    b = make()
    assert a.tolist() == b.tolist()
    c = make()  # the stream moved on
    tg.manual_seed(124)
    d = make()
    assert a.tolist() != c.tolist() and a.tolist() != d.tolist()
    assert tg.initial_seed() == 124


def test_generator_argument_is_independent_of_the_global_stream():
    g1, g2 = tg.Generator().manual_seed(5), tg.Generator().manual_seed(5)
    tg.manual_seed(0)
    a = tg.rand(3, generator=g1)
    tg.rand(10)
    assert tg.rand(3, generator=g2).tolist() == a.tolist()


@pytest.mark.parametrize("fn,args,check", [
    (tg.zeros_like, (), lambda t: t.tolist() == [[0, 0, 0], [0, 0, 0]]),
    (tg.ones_like, (), lambda t: t.tolist() == [[1, 1, 1], [1, 1, 1]]),
    (tg.empty_like, (), lambda t: True),
    (tg.full_like, (7,), lambda t: t.tolist() == [[7, 7, 7], [7, 7, 7]]),
    (tg.randint_like, (0, 4), lambda t: set(t.tolist()[0] + t.tolist()[1]) <= {0, 1, 2, 3}),
])
def test_like_functions_keep_shape_and_dtype(fn, args, check):
    x = tg.tensor([[1, 2, 3], [4, 5, 6]])
    out = fn(x, *args)
    assert out.shape == (2, 3) and out.dtype is tg.int64 and check(out)
    assert fn(x, *args, dtype=tg.float64).dtype is tg.float64


def test_like_functions_on_floats():
    x = tg.zeros(4, 5, dtype=tg.float64)
    for fn in (tg.rand_like, tg.randn_like, tg.zeros_like, tg.ones_like, tg.empty_like):
        out = fn(x)
        assert out.shape == (4, 5) and out.dtype is tg.float64
    assert tg.full_like(tg.tensor([1, 2]), 2.5).tolist() == [2, 2]  # the fill is cast to x's dtype
    assert tg.ones_like(x, requires_grad=True).requires_grad


@pytest.mark.parametrize("make", [lambda: tg.tensor([1.0, 2.0], requires_grad=True),
                                  lambda: tg.zeros(2, requires_grad=True), lambda: tg.ones(2, requires_grad=True),
                                  lambda: tg.randn(2, requires_grad=True), lambda: tg.rand(2, requires_grad=True),
                                  lambda: tg.full((2,), 1.5, requires_grad=True),
                                  lambda: tg.arange(2.0, requires_grad=True),
                                  lambda: tg.empty(2, requires_grad=True)])
def test_requires_grad_on_creation(make):
    x = make()
    assert x.requires_grad and x.is_leaf and x.grad_fn is None and x.grad is None


def test_requires_grad_needs_a_floating_dtype():
    with pytest.raises(RuntimeError, match="floating point"):
        tg.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        tg.zeros(2, dtype=tg.int64).requires_grad_()


@pytest.mark.parametrize("make", [lambda: tg.zeros(2, -1), lambda: tg.ones((-3,)), lambda: tg.empty(-1),
                                  lambda: tg.full((-2, 2), 1.0), lambda: tg.rand(-1), lambda: tg.randn(2, -2)])
def test_negative_size_raises(make):
    with pytest.raises(RuntimeError, match="negative"):
        make()


def test_bad_tensor_data_raises():
    with pytest.raises(ValueError):
        tg.tensor([[1, 2], [3]])
    with pytest.raises(TypeError):
        tg.tensor("abc")


# ------------------------------------------------------------------------------------------ metadata, conversions
def test_shape_and_size():
    x = tg.zeros(2, 3)
    assert x.shape == (2, 3) and isinstance(x.shape, tuple)
    assert repr(x.shape) == "tracegrad.Size([2, 3])" and repr(tg.tensor(1.0).shape) == "tracegrad.Size([])"
    assert x.size() == (2, 3) and repr(x.size()) == "tracegrad.Size([2, 3])"
    assert x.size(0) == 2 and x.size(-1) == 3 and x.size(1) == 3
    assert x.shape.numel() == 6
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.size(2)


@pytest.mark.parametrize("make,ndim,numel,length", [
    (lambda: tg.tensor(1.0), 0, 1, None),
    (lambda: tg.zeros(5), 1, 5, 5),
    (lambda: tg.zeros(2, 3), 2, 6, 2),
    (lambda: tg.zeros(4, 0, 2), 3, 0, 4),
])
def test_dim_numel_len(make, ndim, numel, length):
    x = make()
    assert x.dim() == x.ndim == ndim
    assert x.numel() == tg.numel(x) == numel
    if length is None:
        with pytest.raises(TypeError, match="0-d"):
            len(x)
    else:
        assert len(x) == length


def test_numpy_shares_memory():
    x = tg.tensor([1.0, 2.0])
    a = x.numpy()
    assert a.dtype == np.float32
    a[0] = 5.0
    assert x.tolist() == [5.0, 2.0]
    x[1] = 6.0
    assert a.tolist() == [5.0, 6.0]
    assert np.asarray(x) is a


def test_numpy_of_a_tensor_requiring_grad_says_to_detach():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"detach\(\)"):
        x.numpy()
    with pytest.raises(RuntimeError, match=r"detach\(\)"):
        (x * 2).numpy()
    assert x.detach().numpy().tolist() == [1.0, 2.0]


def test_item_and_scalar_conversions():
    assert tg.tensor(2.5).item() == 2.5 and isinstance(tg.tensor(2.5).item(), float)
    assert tg.tensor([[7]]).item() == 7 and isinstance(tg.tensor([[7]]).item(), int)
    assert tg.tensor(True).item() is True
    assert float(tg.tensor([3])) == 3.0 and int(tg.tensor([2.7])) == 2 and int(tg.tensor(-2.7)) == -2
    assert bool(tg.tensor([1.0])) is True and bool(tg.tensor(0)) is False
    assert [10, 20, 30][tg.tensor(1)] == 20  # __index__
    with pytest.raises(RuntimeError, match="2 elements"):
        tg.tensor([1.0, 2.0]).item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tg.tensor([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="ambiguous"):
        if tg.tensor([True, True]):
            pass


@pytest.mark.parametrize("convert", [float, int])
def test_number_conversion_of_several_elements_raises_valueerror(convert):
    # PyTorch: ValueError: only one element tensors can be converted to Python scalars
    with pytest.raises(ValueError, match="only one element tensors"):
        convert(tg.tensor([1.0, 2.0]))


def test_tolist():
    assert tg.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert tg.tensor([1.5, 2.0]).tolist() == [1.5, 2.0]
    assert tg.tensor(3.5).tolist() == 3.5
    assert tg.tensor([True]).tolist() == [True]
    assert tg.zeros(2, 0).tolist() == [[], []]


def test_iteration_is_over_dim_0():
    x = tg.tensor([[1, 2], [3, 4], [5, 6]])
    rows = list(x)
    assert len(rows) == 3 and all(isinstance(r, tg.Tensor) and r.shape == (2,) for r in rows)
    assert [r.tolist() for r in rows] == [[1, 2], [3, 4], [5, 6]]
    assert [v.item() for v in tg.tensor([1.5, 2.5])] == [1.5, 2.5]
    a, b = tg.tensor([1, 2])
    assert (a.item(), b.item()) == (1, 2) and a.shape == ()
    with pytest.raises(TypeError, match="0-d"):
        iter(tg.tensor(1.0))


def test_is_tensor_and_device():
    assert tg.is_tensor(tg.zeros(1)) and not tg.is_tensor(np.zeros(1))
    assert tg.zeros(1).device == tg.device("cpu") and str(tg.zeros(1).device) == "cpu"


# ------------------------------------------------------------------------------------------ repr
# Expected strings are PyTorch's (torch 2.13) with "torch." replaced by "tracegrad.".
REPRS = [
    ("requires_grad", lambda m: m.tensor([1.5, 1.5], requires_grad=True),
     "tensor([1.5000, 1.5000], requires_grad=True)"),
    ("float_ints", lambda m: m.tensor([1., 2.]), "tensor([1., 2.])"),
    ("int", lambda m: m.tensor([1, 2]), "tensor([1, 2])"),
    ("bool", lambda m: m.tensor([True, False]), "tensor([ True, False])"),
    ("bool_2d", lambda m: m.tensor([[True], [False]]), "tensor([[ True],\n        [False]])"),
    ("float_2d", lambda m: m.tensor([[1.5, -2.25], [3.0, 4.125]]),
     "tensor([[ 1.5000, -2.2500],\n        [ 3.0000,  4.1250]])"),
    ("int_2d", lambda m: m.tensor([[1, -20], [300, 4]]), "tensor([[  1, -20],\n        [300,   4]])"),
    ("int_3d", lambda m: m.arange(8).reshape(2, 2, 2),
     "tensor([[[0, 1],\n         [2, 3]],\n\n        [[4, 5],\n         [6, 7]]])"),
    ("grad_fn", lambda m: m.tensor([1., 2.], requires_grad=True) + 1, "tensor([2., 3.], grad_fn=<AddBackward0>)"),
    ("float64", lambda m: m.tensor([1.5, 2.0], dtype=m.float64), "tensor([1.5000, 2.0000], dtype=tracegrad.float64)"),
    ("float64_grad", lambda m: m.tensor([1.5], dtype=m.float64, requires_grad=True) * 2,
     "tensor([3.], dtype=tracegrad.float64, grad_fn=<MulBackward0>)"),
    ("float64_leaf", lambda m: m.tensor([1.0], dtype=m.float64, requires_grad=True),
     "tensor([1.], dtype=tracegrad.float64, requires_grad=True)"),
    ("sci_small", lambda m: m.tensor([1e-5, 1.0]), "tensor([1.0000e-05, 1.0000e+00])"),
    ("sci_small_neg", lambda m: m.tensor([-1e-5, 1.0]), "tensor([-1.0000e-05,  1.0000e+00])"),
    ("sci_large", lambda m: m.tensor([1e9, 1.5]), "tensor([1.0000e+09, 1.5000e+00])"),
    ("sci_ratio", lambda m: m.tensor([0.001, 1.5]), "tensor([1.0000e-03, 1.5000e+00])"),
    ("sci_2d", lambda m: m.tensor([[-1e-6, 2.0], [3.0, 4e5]]),
     "tensor([[-1.0000e-06,  2.0000e+00],\n        [ 3.0000e+00,  4.0000e+05]])"),
    ("ratio_1000_ints", lambda m: m.tensor([1.0, 1000.0]), "tensor([   1., 1000.])"),
    ("ratio_1001_ints", lambda m: m.tensor([1.0, 1001.0]), "tensor([1.0000e+00, 1.0010e+03])"),
    ("mixed_widths", lambda m: m.tensor([0.0, -0.5, 100.25]), "tensor([  0.0000,  -0.5000, 100.2500])"),
    ("zero_dim", lambda m: m.tensor(3.5), "tensor(3.5000)"),
    ("zero_dim_int", lambda m: m.tensor(3), "tensor(3)"),
    ("zero_dim_bool", lambda m: m.tensor(True), "tensor(True)"),
    ("zero_dim_float64", lambda m: m.tensor(2.0, dtype=m.float64), "tensor(2., dtype=tracegrad.float64)"),
    ("zero_dim_grad_fn", lambda m: m.tensor([1.0, 2.0], requires_grad=True).sum(),
     "tensor(3., grad_fn=<SumBackward0>)"),
    ("empty", lambda m: m.tensor([]), "tensor([])"),
    ("empty_int", lambda m: m.tensor([], dtype=m.int64), "tensor([], dtype=tracegrad.int64)"),
    ("empty_bool", lambda m: m.tensor([], dtype=m.bool), "tensor([], dtype=tracegrad.bool)"),
    ("empty_2d", lambda m: m.zeros(0, 3), "tensor([], size=(0, 3))"),
    ("empty_2d_int", lambda m: m.zeros(2, 0, dtype=m.int64), "tensor([], size=(2, 0), dtype=tracegrad.int64)"),
    ("wrapped_1d", lambda m: m.arange(30).float(),
     "tensor([ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12., 13.,\n"
     "        14., 15., 16., 17., 18., 19., 20., 21., 22., 23., 24., 25., 26., 27.,\n"
     "        28., 29.])"),
    ("wrapped_2d", lambda m: m.arange(24).float().reshape(2, 12) / 7,
     "tensor([[0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000, 1.1429,\n"
     "         1.2857, 1.4286, 1.5714],\n"
     "        [1.7143, 1.8571, 2.0000, 2.1429, 2.2857, 2.4286, 2.5714, 2.7143, 2.8571,\n"
     "         3.0000, 3.1429, 3.2857]])"),
    ("nan_inf", lambda m: m.tensor([float("nan"), 1.0, float("inf")]), "tensor([nan, 1., inf])"),
    ("nan_neg_inf", lambda m: m.tensor([float("nan"), 1.0, -float("inf")]), "tensor([nan, 1., -inf])"),
    ("nan_decimal", lambda m: m.tensor([float("nan"), 1.5]), "tensor([   nan, 1.5000])"),
    ("negative_zero", lambda m: m.tensor([-0.0, 1.0]), "tensor([-0., 1.])"),
    ("summarized_1d", lambda m: m.arange(2000).float(),
     "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n        1.9990e+03])"),
    ("summarized_2d", lambda m: m.arange(2000).reshape(40, 50),
     "tensor([[   0,    1,    2,  ...,   47,   48,   49],\n"
     "        [  50,   51,   52,  ...,   97,   98,   99],\n"
     "        [ 100,  101,  102,  ...,  147,  148,  149],\n"
     "        ...,\n"
     "        [1850, 1851, 1852,  ..., 1897, 1898, 1899],\n"
     "        [1900, 1901, 1902,  ..., 1947, 1948, 1949],\n"
     "        [1950, 1951, 1952,  ..., 1997, 1998, 1999]])"),
]
REPR_IDS = [name for name, _, _ in REPRS]


@pytest.mark.parametrize("make,expected", [(mk, ex) for _, mk, ex in REPRS], ids=REPR_IDS)
def test_repr(make, expected):
    assert repr(make(tg)) == expected


@pytest.mark.parametrize("make,expected", [(mk, ex) for _, mk, ex in REPRS], ids=REPR_IDS)
def test_repr_table_is_pytorchs(make, expected):
    torch = pytest.importorskip("torch")
    assert repr(make(torch)).replace("torch.", "tracegrad.") == expected


def test_str_and_format():
    assert str(tg.tensor([1.0, 2.5])) == "tensor([1.0000, 2.5000])"
    assert f"{tg.tensor(1.5):.2f}" == "1.50"
    assert f"{tg.tensor([1, 2])}" == "tensor([1, 2])"


# ------------------------------------------------------------------------------------------ indexing
_A = np.arange(24).reshape(2, 3, 4)
GETITEM = [
    ("int", 1),
    ("neg_int", -1),
    ("two_ints", (0, 2)),
    ("all_ints_neg", (-1, -2, -3)),
    ("slice", slice(1, 3)),
    ("slice_step", (slice(None), slice(None), slice(None, None, 2))),
    ("slice_step_start", (slice(None), slice(1, None, 2), slice(3, 0, 1))),
    ("slice_beyond_end", (slice(None), slice(1, 10))),
    ("int_and_slice", (1, slice(None), slice(1, 4, 2))),
    ("none", None),
    ("none_middle", (slice(None), None, 0)),
    ("ellipsis", Ellipsis),
    ("ellipsis_int", (Ellipsis, 1)),
    ("none_ellipsis_none", (None, 0, Ellipsis, None)),
    ("bool_mask_dim0", np.array([False, True])),
    ("bool_mask_all", _A % 3 == 0),
    ("int_bool_mask_2d", (1, _A[0] > 4)),
    ("slice_bool_mask_2d", (slice(None), _A[0] % 2 == 0)),
    ("int_list", [1, 0, 1]),
    ("int_array_neg", np.array([-1, 0])),
    ("int_arrays_pair", (np.array([0, 1]), np.array([2, 0]))),
    ("slice_int_array", (slice(None), np.array([0, 2]))),
    ("int_array_2d", (np.array([[0, 1], [1, 1]]), 1)),
    ("int_slice_array", (1, slice(None, 2), np.array([3, 0, 3]))),
    ("array_int_slice_array", (np.array([0, 1]), 0, slice(1, 3))),
]
# Where PyTorch and numpy disagree, PyTorch's result: an int separated from an index array by a slice is a plain
# select in PyTorch (the slice's dim stays first), while numpy treats it as an index array broadcast with the other.
TORCH_NOT_NUMPY = {"int_slice_array": [[15, 12, 15], [19, 16, 19]]}


def _as_tg_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    converted = tuple(tg.from_numpy(p.astype(np.int64) if p.dtype.kind == "i" else p)
                      if isinstance(p, np.ndarray) else p for p in parts)
    return converted if isinstance(index, tuple) else converted[0]


def _expected(name, index):
    return TORCH_NOT_NUMPY.get(name, _A[index].tolist())


@pytest.mark.parametrize("name,index", GETITEM, ids=[n for n, _ in GETITEM])
def test_getitem(name, index):
    out = tg.tensor(_A)[_as_tg_index(index)]
    expected = _expected(name, index)
    assert out.shape == np.shape(expected) and out.dtype is tg.int64
    assert out.tolist() == expected


@pytest.mark.parametrize("name,index", GETITEM, ids=[n for n, _ in GETITEM])
def test_getitem_table_is_pytorchs(name, index):
    torch = pytest.importorskip("torch")
    parts = index if isinstance(index, tuple) else (index,)
    parts = tuple(torch.from_numpy(p) if isinstance(p, np.ndarray) else p for p in parts)
    theirs = torch.from_numpy(_A)[parts if isinstance(index, tuple) else parts[0]]
    assert theirs.tolist() == _expected(name, index)


def test_getitem_with_python_list_and_tensor_indices_agree():
    x = tg.tensor(_A)
    assert x[[1, 0]].tolist() == x[tg.tensor([1, 0])].tolist() == _A[[1, 0]].tolist()
    assert x[x > 20].tolist() == [21, 22, 23]
    assert x[tg.tensor(1)].tolist() == _A[1].tolist()


def test_getitem_of_zero_dim_tensor():
    x = tg.tensor(5.0)
    assert x[()].item() == 5.0 and x[None].shape == (1,) and x[...].shape == ()


SETITEM = [
    ("int_scalar", 0, 5.0),
    ("neg_int_scalar", (-1, -1), -3.0),
    ("slice_step_scalar", (slice(None), slice(None, None, 2)), 7.0),
    ("row_broadcast", (slice(None), 1), np.array([7.0, 8.0, 9.0])),
    ("column_broadcast", (slice(1, None), slice(None, None, 2)), np.array([[1.0], [2.0]])),
    ("full_block", (slice(0, 2), slice(1, 3)), np.array([[1.0, 2.0], [3.0, 4.0]])),
    ("zero_dim_tensor", (Ellipsis, 0), np.array(3.5)),
    ("bool_mask", np.arange(12).reshape(3, 4) % 5 == 0, -1.0),
    ("bool_mask_rows", np.array([True, False, True]), np.array([1.0, 2.0, 3.0, 4.0])),
    ("int_array", np.array([0, 2]), -2.0),
    ("int_arrays_values", (np.array([0, 1, 2]), np.array([3, 2, 1])), np.array([10.0, 20.0, 30.0])),
    ("none", (None, 1), 6.0),
]


@pytest.mark.parametrize("index,value", [(i, v) for _, i, v in SETITEM], ids=[n for n, _, _ in SETITEM])
@pytest.mark.parametrize("as_tensor", [False, True], ids=["number_or_array", "tensor"])
def test_setitem_matches_numpy(index, value, as_tensor):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = tg.tensor(a)
    if isinstance(value, np.ndarray) or as_tensor:
        x[_as_tg_index(index)] = tg.tensor(np.asarray(value, np.float32))
    else:
        x[_as_tg_index(index)] = value
    a[index] = value
    assert x.tolist() == a.tolist() and x.dtype is tg.float32


def test_setitem_int_slice_array_follows_pytorch():
    # PyTorch: the slice's dim comes first in the indexed shape [2, 2], so value[i, j] goes to x[1, i, [3, 0][j]]
    x = tg.zeros(2, 3, 4)
    x[1, :2, [3, 0]] = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x[1].tolist() == [[2.0, 0.0, 0.0, 1.0], [4.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]]


def test_setitem_casts_to_the_tensors_dtype():
    x = tg.zeros(3, dtype=tg.int64)
    x[0] = 2.7
    x[1:] = tg.tensor([True, True])
    assert x.tolist() == [2, 1, 1] and x.dtype is tg.int64
    b = tg.zeros(2, dtype=tg.bool)
    b[1] = 1
    assert b.tolist() == [False, True]


def test_setitem_broadcast_mismatch_raises():
    x = tg.zeros(3, 4)
    with pytest.raises(RuntimeError):
        x[:, 0] = tg.tensor([1.0, 2.0])


def test_views_share_memory_with_their_base():
    x = tg.tensor(np.arange(12.0).reshape(3, 4))
    row, col, block, flat, tr = x[0], x[:, 1], x[1:, ::2], x.reshape(12), x.T
    x[0, 1] = 100.0
    assert row.tolist() == [0.0, 100.0, 2.0, 3.0]
    assert col.tolist() == [100.0, 5.0, 9.0] and flat[1].item() == 100.0 and tr[1, 0].item() == 100.0
    x.add_(1)
    assert row.tolist() == [1.0, 101.0, 3.0, 4.0] and block.tolist() == [[5.0, 7.0], [9.0, 11.0]]
    row[0] = -1.0  # and writing through a view changes the base
    block[1, 1] = -2.0
    assert x[0, 0].item() == -1.0 and x[2, 2].item() == -2.0
    fancy = x[[0, 1]]  # advanced indexing copies
    x[0, 0] = 50.0
    assert fancy[0, 0].item() == -1.0


@pytest.mark.parametrize("index,message", [
    (5, "index 5 is out of bounds for dimension 0 with size 2"),
    (-3, "index -3 is out of bounds for dimension 0 with size 2"),
    ((0, 7), "index 7 is out of bounds for dimension 1 with size 3"),
    ((0, 0, 4), "index 4 is out of bounds for dimension 2 with size 4"),
    ([0, 5], "index 5 is out of bounds for dimension 0 with size 2"),
])
def test_out_of_range_index_raises_indexerror(index, message):
    x = tg.tensor(_A)
    with pytest.raises(IndexError, match=message):
        x[index]
    with pytest.raises(IndexError, match=message):
        x[index] = 0


def test_too_many_indices_and_bad_index_types_raise():
    x = tg.zeros(2, 3)
    with pytest.raises(IndexError):
        x[0, 0, 0]
    with pytest.raises(IndexError):
        x[tg.tensor([0.0])]
    with pytest.raises(IndexError):
        x["a"]
    with pytest.raises(IndexError):
        x[tg.tensor([True, False, True])]  # mask shape doesn't match dim 0


def test_negative_slice_step_raises_valueerror():
    # PyTorch: ValueError: step must be greater than zero
    x = tg.arange(6)
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[::-1]


# ------------------------------------------------------------------------------------------ shape ops: API forms
_X = tg.arange(24).reshape(2, 3, 4)
SHAPES = [
    ("reshape_-1", lambda x: x.reshape(-1, 4), (6, 4)),
    ("reshape_tuple", lambda x: x.reshape((4, 6)), (4, 6)),
    ("reshape_flat", lambda x: x.reshape(-1), (24,)),
    ("reshape_fn", lambda x: tg.reshape(x, (3, -1)), (3, 8)),
    ("view", lambda x: x.view(4, -1), (4, 6)),
    ("view_tuple", lambda x: x.view((2, 12)), (2, 12)),
    ("permute", lambda x: x.permute(2, 0, 1), (4, 2, 3)),
    ("permute_tuple", lambda x: x.permute((1, 2, 0)), (3, 4, 2)),
    ("permute_fn", lambda x: tg.permute(x, (2, 1, 0)), (4, 3, 2)),
    ("transpose", lambda x: x.transpose(0, 2), (4, 3, 2)),
    ("transpose_neg", lambda x: tg.transpose(x, -1, -2), (2, 4, 3)),
    ("T", lambda x: x[0].T, (4, 3)),
    ("t", lambda x: x[0].t(), (4, 3)),
    ("squeeze", lambda x: x.reshape(1, 2, 1, 12).squeeze(), (2, 12)),
    ("squeeze_dim", lambda x: x.reshape(1, 2, 1, 12).squeeze(2), (1, 2, 12)),
    ("squeeze_non_1", lambda x: x.squeeze(0), (2, 3, 4)),
    ("unsqueeze_0", lambda x: x.unsqueeze(0), (1, 2, 3, 4)),
    ("unsqueeze_-1", lambda x: tg.unsqueeze(x, -1), (2, 3, 4, 1)),
    ("unsqueeze_mid", lambda x: x.unsqueeze(2), (2, 3, 1, 4)),
    ("expand", lambda x: x[:, :1].expand(2, 5, 4), (2, 5, 4)),
    ("expand_-1", lambda x: x[:1].expand(3, -1, -1), (3, 3, 4)),
    ("expand_new_dims", lambda x: x.expand(2, 2, 3, 4), (2, 2, 3, 4)),
    ("expand_tuple", lambda x: x[:, :, :1].expand((2, 3, 7)), (2, 3, 7)),
    ("flatten", lambda x: x.flatten(), (24,)),
    ("flatten_start", lambda x: x.flatten(1), (2, 12)),
    ("flatten_range", lambda x: tg.flatten(x, 0, 1), (6, 4)),
    ("cat_0", lambda x: tg.cat([x, x]), (4, 3, 4)),
    ("cat_1", lambda x: tg.cat([x, x[:, :1]], dim=1), (2, 4, 4)),
    ("cat_-1", lambda x: tg.cat((x, x, x), -1), (2, 3, 12)),
    ("stack_0", lambda x: tg.stack([x, x]), (2, 2, 3, 4)),
    ("stack_-1", lambda x: tg.stack([x, x, x], dim=-1), (2, 3, 4, 3)),
    ("stack_1", lambda x: tg.stack([x, x], 1), (2, 2, 3, 4)),
]


@pytest.mark.parametrize("fn,shape", [(f, s) for _, f, s in SHAPES], ids=[n for n, _, _ in SHAPES])
def test_shape_op_result_shapes(fn, shape):
    out = fn(_X)
    assert out.shape == shape and out.dtype is tg.int64


@pytest.mark.parametrize("fn,shapes", [
    (lambda x: x.split(1), [(1, 3, 4)] * 2),
    (lambda x: tg.split(x, 2, dim=1), [(2, 2, 4), (2, 1, 4)]),
    (lambda x: x.split([1, 3], dim=-1), [(2, 3, 1), (2, 3, 3)]),
    (lambda x: tg.split(x, (1, 1, 1), 1), [(2, 1, 4)] * 3),
    (lambda x: x.chunk(2, dim=2), [(2, 3, 2)] * 2),
    (lambda x: tg.chunk(x, 2, 1), [(2, 2, 4), (2, 1, 4)]),
    (lambda x: x.reshape(6, 4).chunk(4), [(2, 4)] * 3),  # ceil(6/4) = 2 per chunk: 3 chunks, as in PyTorch
    (lambda x: x.reshape(24)[:5].chunk(3), [(2,), (2,), (1,)]),
    (lambda x: x.unbind(1), [(2, 4)] * 3),
])
def test_split_chunk_shapes(fn, shapes):
    parts = fn(_X)
    assert isinstance(parts, tuple) and [p.shape for p in parts] == shapes


def test_shape_op_errors():
    with pytest.raises(RuntimeError, match="invalid for input of size 24"):
        _X.reshape(5, -1)
    with pytest.raises(RuntimeError):
        _X.reshape(-1, -1)
    with pytest.raises(RuntimeError):
        _X.permute(0, 1)
    with pytest.raises(IndexError, match="Dimension out of range"):
        _X.transpose(0, 3)
    with pytest.raises(RuntimeError):
        tg.cat([])
    with pytest.raises(RuntimeError, match="equal size"):
        tg.stack([_X, _X[0]])
    with pytest.raises(RuntimeError, match="sum exactly to 3"):
        _X.split([1, 1], dim=1)


FUNCTION_AND_METHOD = [
    ("exp", ()), ("log", ()), ("sqrt", ()), ("tanh", ()), ("sigmoid", ()), ("sin", ()), ("cos", ()), ("abs", ()),
    ("neg", ()), ("relu", ()), ("sign", ()), ("square", ()), ("rsqrt", ()), ("clamp", (0.5, 1.5)),
    ("add", (2.0,)), ("sub", (2.0,)), ("mul", (2.0,)), ("div", (2.0,)), ("pow", (2.0,)), ("maximum", (None,)),
    ("sum", ()), ("sum", (1,)), ("mean", (0,)), ("amax", (1,)), ("argmax", (1,)), ("var", ()), ("std", ()),
    ("norm", ()), ("logsumexp", (1,)), ("softmax", (1,)), ("log_softmax", (-1,)),
    ("reshape", ((3, 2),)), ("permute", ((1, 0),)), ("transpose", (0, 1)), ("t", ()), ("squeeze", ()),
    ("unsqueeze", (1,)), ("flatten", ()), ("split", (1,)), ("chunk", (2,)), ("unbind", (1,)), ("select", (1, 0)),
    ("matmul", ("T",)), ("eq", (1.0,)), ("gt", (1.0,)), ("isnan", ()), ("clone", ()),
]


@pytest.mark.parametrize("name,args", FUNCTION_AND_METHOD, ids=[f"{n}{a}" for n, a in FUNCTION_AND_METHOD])
def test_function_and_method_forms_agree(name, args):
    x = tg.tensor([[0.5, 1.0, 1.5], [2.0, 2.5, 3.0]])
    args = tuple(x if a is None else x.T if a == "T" else a for a in args)
    by_function, by_method = getattr(tg, name)(x, *args), getattr(x, name)(*args)
    if isinstance(by_function, tuple):
        assert [t.tolist() for t in by_function] == [t.tolist() for t in by_method]
    else:
        assert by_function.shape == by_method.shape and by_function.dtype is by_method.dtype
        assert by_function.tolist() == by_method.tolist()


def test_exp_function_and_method_values():
    x = tg.tensor([0.0, 1.0])
    assert tg.exp(x).tolist() == x.exp().tolist() == pytest.approx([1.0, np.e])
    assert tg.exp(tg.tensor([0, 1])).dtype is tg.float32  # integer inputs give the default float


def test_function_and_method_names_are_pytorchs():
    torch = pytest.importorskip("torch")
    names = sorted({n for n, _ in FUNCTION_AND_METHOD})
    assert [n for n in names if not (hasattr(torch, n) and hasattr(torch.Tensor, n))] == []
