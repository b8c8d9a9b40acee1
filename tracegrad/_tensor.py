"""The eager Tensor: a numpy array plus PyTorch's autograd state, and `apply`, which runs one op.

>>> import tracegrad as tg
>>> x = tg.tensor([1.5, 1.5], requires_grad=True)
>>> x
tensor([1.5000, 1.5000], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad
tensor([3., 3.])
"""
from __future__ import annotations

import warnings

import numpy as np

from . import _tracing, dtypes
from .autograd import node as _node_module
from .autograd.grad_mode import STATE as _GRAD
from .autograd.node import AccumulateGrad, Node, RemovableHandle
from .ops.registry import AbstractValue, Kind
from .ops.shapes import fmt

_NP_TO_DTYPE = {d.np: d for d in dtypes.ALL}

# NOTE: numpy warns on overflow, division by zero and invalid values; PyTorch doesn't, and an
# np.errstate block per op costs 3 us. A filter scoped to tracegrad's modules costs nothing.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"tracegrad(\..*)?$")


class Size(tuple):
    """A tensor's shape: a tuple that prints like ``tracegrad.Size([2, 3])``."""

    def __repr__(self):
        return f"tracegrad.Size({list(self)})"

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


class Tensor:
    """An n-dimensional array with autograd, backed by numpy.

    Create tensors with `tracegrad.tensor`, `zeros`, `randn`, ...; every op has a method form
    (`x.exp()`) and a function form (`tracegrad.exp(x)`).
    """

    __slots__ = ("_data", "_rg", "grad_fn", "_grad", "_vbox", "_base", "_acc", "_inf", "__weakref__")
    __array_priority__ = 1000  # numpy scalars and arrays defer to Tensor's reflected operators

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _make(data: np.ndarray, requires_grad: bool = False, grad_fn=None) -> Tensor:
        t = Tensor.__new__(Tensor)
        t._data = data
        t._rg = requires_grad
        t.grad_fn = grad_fn
        t._grad = None
        t._vbox = None
        t._base = None
        t._acc = None
        t._inf = False  # an inference tensor (made in `inference_mode`): autograd may not save it
        if _tracing.TRACER is not None:
            _tracing.TRACER.born(t)
        return t

    def __init__(self, data, dtype=None, requires_grad=False):
        from .creation import _to_array
        self._data = _to_array(data, dtype)
        self._rg = False
        self.grad_fn = self._grad = self._vbox = self._base = self._acc = None
        self._inf = _GRAD.inference
        if _tracing.TRACER is not None:
            _tracing.TRACER.born(self)
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------------ metadata
    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._data.shape)
        from .ops.shapes import normalize_dim
        return self._data.shape[normalize_dim("size", dim, self._data.ndim)]

    @property
    def dtype(self) -> dtypes.DType:
        return _NP_TO_DTYPE[self._data.dtype]

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def element_size(self) -> int:
        """Bytes per element (``x.itemsize``); ``x.nbytes`` is ``x.numel() * x.element_size()``."""
        return self._data.itemsize

    @property
    def itemsize(self) -> int:
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    def is_inference(self) -> bool:
        """Whether this tensor was made in `tracegrad.inference_mode` (autograd may not save it for backward)."""
        return self._inf

    def type(self, dtype=None, non_blocking: bool = False, **kwargs):
        """PyTorch's legacy type name (``'torch.FloatTensor'``) without an argument; with a dtype, a legacy name
        (``'torch.DoubleTensor'``) or a legacy type (``tracegrad.LongTensor``), this tensor as that type (itself
        if it is of that type already).

        >>> import tracegrad as tg
        >>> x = tg.ones(2)
        >>> x.type(), x.type("torch.LongTensor"), x.type(tg.float32) is x
        ('torch.FloatTensor', tensor([1, 1]), True)
        """
        if dtype is None:
            return f"torch.{self.dtype.tensor_type}"
        target = _type_dtype(dtype)
        return self if target is self.dtype else self.to(target)

    # ------------------------------------------------------------------ new tensors like this one
    def _new_dtype(self, dtype, device, where: str):
        from .devices import check
        check(device, where)
        return dtype if dtype is not None else self.dtype

    def new_zeros(self, *args, size=None, dtype=None, device=None, requires_grad=False):
        """Zeros of `size`, by default with this tensor's dtype (``x.new_zeros(2, 3)``, ``x.new_zeros((2, 3))``).

        >>> import tracegrad as tg
        >>> tg.tensor([1, 2]).new_zeros(2, 3).dtype
        tracegrad.int64
        """
        from .creation import zeros
        return zeros(*args, size=size, dtype=self._new_dtype(dtype, device, "new_zeros"),
                     requires_grad=requires_grad)

    def new_ones(self, *args, size=None, dtype=None, device=None, requires_grad=False):
        """Ones of `size`, by default with this tensor's dtype."""
        from .creation import ones
        return ones(*args, size=size, dtype=self._new_dtype(dtype, device, "new_ones"),
                    requires_grad=requires_grad)

    def new_empty(self, *args, size=None, dtype=None, device=None, requires_grad=False):
        """An uninitialized tensor of `size`, by default with this tensor's dtype."""
        from .creation import empty
        return empty(*args, size=size, dtype=self._new_dtype(dtype, device, "new_empty"),
                     requires_grad=requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
        """`size` filled with `fill_value`, by default with this tensor's dtype (not the value's).

        >>> import tracegrad as tg
        >>> tg.zeros(1).new_full((2,), 3)
        tensor([3., 3.])
        """
        from .creation import full
        return full(size, fill_value, dtype=self._new_dtype(dtype, device, "new_full"), requires_grad=requires_grad)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
        """A copy of `data` as a new leaf tensor, by default with this tensor's dtype.

        >>> import tracegrad as tg
        >>> tg.zeros(1, dtype=tg.float64).new_tensor([1, 2])
        tensor([1., 2.], dtype=tracegrad.float64)
        """
        from .creation import tensor
        return tensor(data, dtype=self._new_dtype(dtype, device, "new_tensor"), requires_grad=requires_grad)

    @property
    def device(self):
        """Always the CPU (`tracegrad.devices`)."""
        from .devices import CPU
        return CPU

    def cpu(self, memory_format=None) -> Tensor:
        """This tensor: it is on the CPU already (as PyTorch returns the tensor itself then)."""
        return self

    def cuda(self, device=None, non_blocking: bool = False, memory_format=None) -> Tensor:
        from .devices import check
        check("cuda" if device is None else device, "Tensor.cuda")
        return self

    # casts to the dtypes without a method in ops.functions (`x.float()`, `x.long()`, ... are there)
    def half(self, memory_format=None) -> Tensor:
        """``self.to(tracegrad.float16)``."""
        return self.to(dtypes.float16)

    def int(self, memory_format=None) -> Tensor:
        """``self.to(tracegrad.int32)``.

        >>> import tracegrad as tg
        >>> tg.tensor([1.7, -1.7]).int()
        tensor([ 1, -1], dtype=tracegrad.int32)
        """
        return self.to(dtypes.int32)

    def short(self, memory_format=None) -> Tensor:
        """``self.to(tracegrad.int16)``."""
        return self.to(dtypes.int16)

    def char(self, memory_format=None) -> Tensor:
        """``self.to(tracegrad.int8)``."""
        return self.to(dtypes.int8)

    def byte(self, memory_format=None) -> Tensor:
        """``self.to(tracegrad.uint8)``."""
        return self.to(dtypes.uint8)

    @property
    def aval(self) -> AbstractValue:
        return AbstractValue(self._data.shape, self.dtype)

    def __len__(self):
        if not self._data.ndim:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if not self._data.ndim:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __hash__(self):
        return id(self)

    # ------------------------------------------------------------------ autograd state
    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag: bool):
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use a "
                               "computed variable in a subgraph that doesn't require differentiation use "
                               "var_no_grad = var.detach().")
        if requires_grad and self._inf and not _GRAD.inference:
            raise RuntimeError("Setting requires_grad=True on inference tensor outside InferenceMode is not allowed.")
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients "
                               f"(got a tensor of dtype {self.dtype})")
        self._rg = bool(requires_grad)
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def grad(self):
        if self.grad_fn is not None and not self.retains_grad:
            warnings.warn("The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
                          "attribute won't be populated during autograd.backward(). If you indeed want the .grad "
                          "field to be populated for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor.",
                          UserWarning, stacklevel=2)
        if _tracing.TRACER is not None:
            _tracing.TRACER.touch_grad(self)
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got {type(value).__name__}")
            if value._data.shape != self._data.shape:
                raise RuntimeError(f"assigned grad has data of a different size: {fmt(value.shape)} "
                                   f"(tensor has {fmt(self.shape)})")
            if value._data.dtype != self._data.dtype:
                raise RuntimeError(f"assigned grad has data of a different type: {value.dtype} (tensor has "
                                   f"{self.dtype})")
        if _tracing.TRACER is not None:
            _tracing.TRACER.touch_grad(self)
        self._grad = value

    @property
    def output_nr(self) -> int:
        """Which output of its `grad_fn` this tensor is (0 but for the outputs of a custom Function with several)."""
        fn = self.grad_fn
        return 0 if fn is None or fn._ports is None else fn.output_nr(self)

    @property
    def retains_grad(self) -> bool:
        return self.grad_fn is not None and self.grad_fn.retains(self)

    def retain_grad(self) -> None:
        """Populate `.grad` of this non-leaf during backward (leaves always get it)."""
        if not self._rg:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            self.grad_fn.retain(self)

    def _accumulator(self) -> AccumulateGrad:
        if self._acc is None:
            self._acc = AccumulateGrad(self)
        return self._acc

    def register_hook(self, hook) -> RemovableHandle:
        """Call `hook(grad)` when this tensor's gradient is computed; a returned tensor replaces it."""
        if not self._rg:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        node = self._accumulator() if self.grad_fn is None else self.grad_fn
        return node.add_pre_hook(hook, self)

    def register_post_accumulate_grad_hook(self, hook) -> RemovableHandle:
        """Call `hook(self)` after a backward pass has accumulated a gradient into this leaf's `.grad` (eager and
        compiled; DistributedDataParallel starts averaging a bucket of gradients from such hooks).

        >>> import tracegrad as tg
        >>> w = tg.ones(2, requires_grad=True)
        >>> h = w.register_post_accumulate_grad_hook(lambda p: print("grad:", p.grad))
        >>> (w * 3).sum().backward()
        grad: tensor([3., 3.])
        """
        if not self._rg:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        return self._accumulator().add_post_hook(hook)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` (see `tracegrad.autograd.backward`)."""
        from .autograd.engine import backward
        backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    def detach(self) -> Tensor:
        """A tensor sharing storage (and version counter) with self, outside the graph."""
        t = Tensor._make(self._data)
        t._vbox = self._version_box()
        t._base = self._base
        t._inf = self._inf
        if _tracing.TRACER is not None:
            _tracing.TRACER.alias(t, self)
        return t

    def detach_(self) -> Tensor:
        if self._base is not None and self._base._rg:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self.grad_fn = None
        self._rg = False
        return self

    @property
    def data(self) -> Tensor:
        """Same storage, no autograd history, own version counter (in-place changes go unchecked)."""
        t = Tensor._make(self._data)
        t._inf = self._inf
        if _tracing.TRACER is not None:
            _tracing.TRACER.alias(t, self)
        return t

    @data.setter
    def data(self, value: Tensor):
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be a Tensor, got {type(value).__name__}")
        if value._data.dtype != self._data.dtype and self._rg and value._data.dtype.kind != "f":
            raise RuntimeError(f"data set to a tensor of dtype {value.dtype} on a tensor that requires grad")
        if _tracing.TRACER is not None:
            _tracing.TRACER.set_data(self, value)
            return
        self._data = value._data

    def _version_box(self) -> list:
        if self._vbox is None:
            self._vbox = [0, False]  # [version, has views that require grad]; shared with views
        return self._vbox

    @property
    def _version(self) -> int:
        return 0 if self._vbox is None else self._vbox[0]

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """The underlying array (shares memory)."""
        if self._rg:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
                               "instead.")
        if _tracing.TRACER is not None:
            _tracing.TRACER.concretize(self, "numpy")
        return self._data

    def __array__(self, dtype=None, copy=None):
        if self._rg:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
                               "instead.")
        if _tracing.TRACER is not None:
            _tracing.TRACER.concretize(self, "numpy")
        return self._data if dtype is None else self._data.astype(dtype)

    def item(self):
        """The value of a one-element tensor as a Python number (while tracing: a number of the graph, see
        `tracer.scalars`, that becomes a guard only when Python decides something with it)."""
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        if _tracing.TRACER is not None:
            return _tracing.TRACER.item(self)
        return self._data.reshape(()).item()

    def tolist(self):
        if _tracing.TRACER is not None:
            return _tracing.TRACER.tolist(self)
        return self._data.tolist()

    def _python_value(self):
        """The value for float()/int()/index: Python demands an exact number, so tracing specializes on it."""
        if _tracing.TRACER is not None:
            _tracing.TRACER.concretize(self, "item")
        return self._data.reshape(()).item()

    def __float__(self):
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return float(self._python_value())

    def __int__(self):
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return int(self._python_value())

    def __index__(self):
        if self._data.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self._python_value())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self._data.size} elements is ambiguous")
        if _tracing.TRACER is not None:
            _tracing.TRACER.concretize(self, "bool")
        return bool(self._data.reshape(()))

    def __repr__(self):
        from .printing import tensor_repr
        return tensor_repr(self)

    def __format__(self, spec):
        """As PyTorch: a 0-d tensor formats its value (``f"{t:.3f}"``, and ``f"{t}"`` is ``str(t.item())``); any
        other tensor formats as ``str(t)`` with an empty spec, and raises TypeError with another spec."""
        if self._data.ndim == 0 and type(self) is Tensor:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __reduce__(self):
        return (_rebuild, (self._data, self._rg))

    def __deepcopy__(self, memo):
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                               "protocol at the moment.")
        t = Tensor._make(self._data.copy(), self._rg)
        if self._grad is not None:
            t._grad = Tensor._make(self._grad._data.copy())
        memo[id(self)] = t
        return t


_node_module.Tensor, _node_module._NP_TO_DTYPE = Tensor, _NP_TO_DTYPE


def _type_dtype(spec) -> dtypes.DType:
    """The dtype `Tensor.type` converts to: a dtype, a legacy type or its name (``'torch.FloatTensor'``)."""
    if isinstance(spec, LegacyTensorType):
        return spec.dtype
    if isinstance(spec, str):
        name = spec.removeprefix("torch.")
        if name.startswith("cuda."):
            from .devices import check
            check("cuda", "Tensor.type")
        found = _LEGACY_NAMES.get(name)
        if found is None:
            raise ValueError(f"invalid type: {spec!r}" + (f" (tracegrad's tensor types are "
                             f"{', '.join('torch.' + n for n in _LEGACY_NAMES)})" if name.endswith("Tensor") else ""))
        return found
    return dtypes.as_dtype(spec)


class LegacyTensorType(type):
    """PyTorch's legacy tensor types (`tracegrad.FloatTensor`, ...): ``isinstance(x, FloatTensor)`` checks the
    dtype, ``x.type(FloatTensor)`` converts, ``FloatTensor(2, 3)`` is an uninitialized tensor of that shape and
    ``FloatTensor([1, 2])`` one holding that data.

    >>> import tracegrad as tg
    >>> isinstance(tg.ones(2), tg.FloatTensor), tg.LongTensor([1, 2]), tg.DoubleTensor(2, 3).shape
    (True, tensor([1, 2]), tracegrad.Size([2, 3]))
    """

    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj.dtype is cls.dtype

    def __call__(cls, *args, device=None):
        from . import creation
        from .devices import check
        check(device, cls.__name__)
        if not args:
            return creation.empty(0, dtype=cls.dtype)
        if len(args) == 1 and not isinstance(args[0], (int, np.integer, Size)):
            data = args[0]
            if isinstance(data, Tensor):
                if data.dtype is not cls.dtype:
                    raise TypeError(f"{cls.__name__}: expected a tensor of dtype {cls.dtype} (got {data.dtype})")
                return data.detach()  # as PyTorch: the same data
            return creation.tensor(data, dtype=cls.dtype)
        return creation.empty(*args, dtype=cls.dtype)

    def __repr__(cls):
        return f"<class 'tracegrad.{cls.__name__}'>"


_LEGACY_TYPES = {d: LegacyTensorType(d.tensor_type, (), {"dtype": d, "__module__": "tracegrad"}) for d in dtypes.ALL}
FloatTensor, DoubleTensor, HalfTensor = (_LEGACY_TYPES[d] for d in (dtypes.float32, dtypes.float64, dtypes.float16))
LongTensor, IntTensor, ShortTensor, CharTensor, ByteTensor, BoolTensor = (
    _LEGACY_TYPES[d] for d in (dtypes.int64, dtypes.int32, dtypes.int16, dtypes.int8, dtypes.uint8, dtypes.bool_))
_LEGACY_NAMES = {d.tensor_type: d for d in dtypes.ALL}


def _rebuild(data, requires_grad):
    return Tensor._make(data, requires_grad)


_MOVEMENT = Kind.MOVEMENT
# Set by the test suite: every op's shape/dtype rule is checked against its numpy forward.
CHECK_RULES = False
OPS_SEEN: set = set()


def apply(op, *inputs, **params) -> Tensor:
    """Run primitive `op` on tensors: its numpy forward, then (if grad is on) its autograd node.

    This is the one door every primitive goes through in eager mode.
    """
    arrays = [t._data for t in inputs]
    try:
        out = op.forward(*arrays, **params) if params else op.forward(*arrays)
    except Exception as e:  # numpy's error: ask the op's shape rule for the user-facing one
        raise _op_error(op, inputs, params, e) from None
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    res = Tensor._make(out)
    if CHECK_RULES:
        _check_rule(op, inputs, params, res)
    if out.base is not None and op.kind is _MOVEMENT:
        src = arrays[0]
        if out.base is src or (src.base is not None and out.base is src.base):
            res._base = inputs[0]._base if inputs[0]._base is not None else inputs[0]
            res._vbox = inputs[0]._version_box()  # views share their base's version counter
            res._inf = res._base._inf  # as PyTorch: a view is an inference tensor if its base is one
    # NOTE: only floating results take part in autograd (PyTorch: integer and bool tensors never require grad,
    # so `x.long()` cuts the graph instead of passing gradients through a cast)
    if _GRAD.enabled:
        if op.differentiable and out.dtype.kind == "f":
            for t in inputs:
                if t._rg:
                    res._rg = True
                    res.grad_fn = Node(op, params, inputs, res) if _tracing.TRACER is None else \
                        _tracing.TRACER.grad_fn(op)
                    if res._base is not None:
                        res._vbox[1] = True
                    break
    elif _GRAD.inference and res._base is None:
        res._inf = True  # a new tensor made in inference mode (a view has its base's flag)
    if _tracing.TRACER is not None:
        _tracing.TRACER.record(op, inputs, params, res)
    return res


def _avals(inputs) -> list:
    return [AbstractValue(t._data.shape, t.dtype) for t in inputs]


def _check_rule(op, inputs, params, res) -> None:
    expected = op.infer(*_avals(inputs), **params)
    if (expected.shape, expected.dtype) != (res._data.shape, res.dtype):
        raise AssertionError(f"{op.name}: shape rule says {expected}, forward gave {res.aval}")
    OPS_SEEN.add(op.name)


def _op_error(op, inputs, params, error) -> Exception:
    if getattr(error, "user_facing", False):  # a forward's own error for users (linalg's LinAlgError)
        return error
    avals = _avals(inputs)
    try:
        op.infer(*avals, **params)
    except (RuntimeError, TypeError, IndexError, ValueError) as ours:
        return ours
    what = ", ".join(f"{fmt(a.shape)} {a.dtype}" for a in avals)
    cls = IndexError if isinstance(error, IndexError) else RuntimeError
    return cls(f"{op.name}: {error} (inputs: {what})")
