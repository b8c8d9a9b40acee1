"""Every primitive op, defined once: numpy forward, shape/dtype rule, VJP, kind, scalar expression.

VJPs are one rule per input, `rule(g, out, *inputs, **params)`, written in tracegrad's own ops so the
same rule serves eager autograd, higher-order gradients and (later) the compiler's autodiff pass.
Broadcasting is not handled here: the engine sums each gradient back to its input's shape.
Everything else (sub, relu, softmax, var, ...) is composed from these in the modules `functions.py` gathers
(`arithmetic.py`, `reductions.py`, ...).
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from .registry import AbstractValue as AV
from .registry import Kind, Op, register
from .shapes import broadcast_shapes, broadcastable_to, fmt, index_shape, reduced_shape

E, R, M, OPAQUE = Kind.ELEMENTWISE, Kind.REDUCTION, Kind.MOVEMENT, Kind.OPAQUE


def _zeros_like(x):
    from ..creation import zeros_like
    return zeros_like(x)


def _F():
    # NOTE: the rules call the user-facing functions, which import this module; bind lazily.
    from . import functions
    return functions


# ---------------------------------------------------------------- shape/dtype rules
def _same(x, **_):
    return x


def _to_bool(x, **_):
    return AV(x.shape, dtypes.bool_)


def _binary(name, out_dtype=None):
    def infer(a, b, **_):
        if a.dtype is not b.dtype:
            raise TypeError(f"{name}: operands must share a dtype after promotion, got {a.dtype} and {b.dtype}")
        return AV(broadcast_shapes(name, a.shape, b.shape), out_dtype or a.dtype)
    return infer


def _unary(name, forward, scalar, vjp=None, saves=(), infer=_same, **kw):
    return register(Op(name, E, forward, infer, vjp, saves, scalar, arity=1, **kw))


def _binop(name, forward, scalar, vjp=None, saves=(), out_dtype=None, **kw):
    return register(Op(name, E, forward, _binary(name, out_dtype), vjp, saves, scalar, arity=2, **kw))


# ---------------------------------------------------------------- elementwise
neg = _unary("neg", np.negative, "(-{0})", (lambda g, out, x: -g,))
exp = _unary("exp", np.exp, "math.exp({0})", (lambda g, out, x: g * out,), ("out",))
log = _unary("log", np.log, "math.log({0})", (lambda g, out, x: g / x,), (0,))
sqrt = _unary("sqrt", np.sqrt, "math.sqrt({0})", (lambda g, out, x: g / (out * 2),), ("out",))
tanh = _unary("tanh", np.tanh, "math.tanh({0})", (lambda g, out, x: g * (1 - out * out),), ("out",))
# NOTE: sigmoid is a primitive, not 1/(1+exp(-x)): the composite overflows exp() for x << 0 and
# needs three saved values in backward; the primitive saves its output only.
sigmoid = _unary("sigmoid", lambda x: np.reciprocal(1 + np.exp(-x)), "(1.0 / (1.0 + math.exp(-{0})))",
                 (lambda g, out, x: g * out * (1 - out),), ("out",))
# NOTE: relu is a primitive for speed: where(x > 0, x, 0) is exact too, but numpy's where over a
# random mask runs ~10x slower than maximum. Its VJP is relu_backward(g, out): g where out > 0 or out is
# nan, else 0, so the gradient at 0 is 0 as in PyTorch (maximum(x, 0) as a composite would split it in half
# there). relu_backward is PyTorch's threshold_backward: differentiable in `out` too (with a zero derivative),
# so a gradient taken with create_graph=True requires grad and its own gradient is zeros, not an error.
relu_backward = _binop("relu_backward", lambda g, out: np.where(out <= 0, np.zeros((), g.dtype), g),
                       "({0} if not {1} <= 0 else 0.0)",
                       (lambda gg, out, g, o: relu_backward_fn(gg, o), lambda gg, out, g, o: _zeros_like(o)), (1,))
relu = _unary("relu", lambda x: np.maximum(x, 0), "({0} if not {0} <= 0 else 0.0)",
              (lambda g, out, x: relu_backward_fn(g, out),), ("out",))


def relu_backward_fn(g, out):
    return _F().apply(relu_backward, g, out)


def _erf(x):
    # NOTE: numpy has no erf; a numba ufunc over libm's erf is exact and vectorized. Built on first
    # use (numba's import and compile cost ~1 s), then cached on disk by numba.
    global _erf_ufunc
    if _erf_ufunc is None:
        import numba

        @numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
        def erf_ufunc(v):
            return math.erf(v)
        _erf_ufunc = erf_ufunc
    return _erf_ufunc(x)


_erf_ufunc = None
erf = _unary("erf", _erf, "math.erf({0})",
             (lambda g, out, x: g * (2 / math.sqrt(math.pi)) * (-(x * x)).exp(),), (0,))
# NOTE: log_sigmoid is a primitive for stability: log(sigmoid(x)) underflows to log(0) for x << 0.
log_sigmoid = _unary("log_sigmoid", lambda x: -np.logaddexp(0, -x).astype(x.dtype, copy=False),
                     "(-(max(-{0}, 0.0) + math.log1p(math.exp(-abs({0})))))",
                     (lambda g, out, x: g * (-x).sigmoid(),), (0,), backward_name="LogSigmoidBackward0")
sin = _unary("sin", np.sin, "math.sin({0})", (lambda g, out, x: g * x.cos(),), (0,))
cos = _unary("cos", np.cos, "math.cos({0})", (lambda g, out, x: -g * x.sin(),), (0,))
def _sign(x):
    # NOTE: PyTorch's sign(nan) is 0 (numpy's is nan), as the generated kernels' comparisons give
    out = np.sign(x)
    return np.where(out != out, out.dtype.type(0), out) if out.dtype.kind == "f" else out


# NOTE: sign is differentiable with a zero derivative, as in PyTorch (its result requires grad), so abs's
# gradient g * sign(x) taken with create_graph=True has a gradient of its own: zeros.
sign = _unary("sign", _sign, "(({0} > 0) - ({0} < 0))", (lambda g, out, x: _zeros_like(g),))
abs_ = _unary("abs", np.abs, "abs({0})", (lambda g, out, x: g * x.sign(),), (0,))
logical_not = _unary("logical_not", np.logical_not, "(not {0})", infer=_to_bool)
isnan = _unary("isnan", np.isnan, "({0} != {0})", infer=_to_bool)
# cast's gradient is g itself: the engine converts every gradient to its input's dtype.
cast = _unary("cast", lambda x, dtype: x.astype(dtype.np), "np.{dtype.name}({0})",
              (lambda g, out, x, dtype: g,),
              infer=lambda x, dtype: AV(x.shape, dtype), backward_name="ToCopyBackward0")

add = _binop("add", np.add, "({0} + {1})", (lambda g, out, a, b: g, lambda g, out, a, b: g))
# NOTE: sub is a primitive for speed: as add(a, neg(b)) it is exact too, but costs eager mode a second
# pass over memory and a second node (`1 - y * y` in tanh's VJP would take four passes instead of three).
sub = _binop("sub", np.subtract, "({0} - {1})", (lambda g, out, a, b: g, lambda g, out, a, b: -g))
mul = _binop("mul", np.multiply, "({0} * {1})", (lambda g, out, a, b: g * b, lambda g, out, a, b: g * a), (0, 1),
             saved_by=((1,), (0,)))
# NOTE: div is a primitive: a * (1 / b) is not correctly rounded, and eager, PyTorch and compiled code
# must agree bit for bit on true division.
div = _binop("div", np.true_divide, "({0} / {1})",
             (lambda g, out, a, b: g / b, lambda g, out, a, b: -g * out / b), (1, "out"))
pow_ = _binop("pow", np.power, "({0} ** {1})",
              # PyTorch's convention: d/da a**0 = 0 everywhere (not 0 * a**-1, nan at a = 0)
              (lambda g, out, a, b: _F().where(b == 0, 0.0, g * b * a ** (b - 1)),
               # PyTorch's convention: d/db a**b = 0 where a == 0 and b >= 0 (not nan from log(0)).
               lambda g, out, a, b: _F().where((a == 0) & (b >= 0), 0.0, g * out * a.log())), (0, 1, "out"))
# NOTE: ties split the gradient in half, as PyTorch's maximum does; an input is masked only where it is the
# smaller one, so where either is nan (the result is nan) both get the whole gradient, as in PyTorch.
maximum = _binop("maximum", np.maximum, "({0} if {0} >= {1} or {0} != {0} else {1})",
                 (lambda g, out, a, b: _F().where(a == b, g * 0.5, _F().where(a < b, 0.0, g)),
                  lambda g, out, a, b: _F().where(a == b, g * 0.5, _F().where(a > b, 0.0, g))), (0, 1))
# NOTE: minimum mirrors maximum (not -max(-a, -b), exact too, but whose gradients are -0.0 where PyTorch's are 0.0)
minimum = _binop("minimum", np.minimum, "({0} if {0} <= {1} or {0} != {0} else {1})",
                 (lambda g, out, a, b: _F().where(a == b, g * 0.5, _F().where(a > b, 0.0, g)),
                  lambda g, out, a, b: _F().where(a == b, g * 0.5, _F().where(a < b, 0.0, g))), (0, 1))


def _integer_division(fn):
    """`fn` raising PyTorch's error where an integer is divided by zero (floats give inf and nan)."""
    def forward(a, b):
        if b.dtype.kind in "iu" and not b.all() and np.broadcast(a, b).size:
            raise RuntimeError("ZeroDivisionError")
        return fn(a, b)
    return forward


def _not_implemented(g, out, a, b):
    raise RuntimeError("derivative for aten::floor_divide is not implemented")


# NOTE: as in PyTorch, remainder is differentiable (d/db is -floor(a / b), itself with a zero derivative), `a // b`
# has a graph whose backward raises, and `div(a, b, rounding_mode=...)` (div_floor) has a zero derivative
remainder = _binop("remainder", _integer_division(np.remainder), "({0} % {1})",
                   (lambda g, out, a, b: g, lambda g, out, a, b: -g * _F().div(a, b, rounding_mode="floor")), (0, 1))
floor_divide = _binop("floor_divide", _integer_division(np.floor_divide), "({0} // {1})",
                      (_not_implemented, _not_implemented), backward_name="NotImplemented")
div_floor = _binop("div_floor", _integer_division(np.floor_divide), "({0} // {1})",
                   (lambda g, out, a, b: _zeros_like(g), lambda g, out, a, b: _zeros_like(g)),
                   backward_name="DivBackward2")
for _name, _fn, _sym in [("eq", np.equal, "=="), ("ne", np.not_equal, "!="), ("lt", np.less, "<"),
                         ("le", np.less_equal, "<="), ("gt", np.greater, ">"), ("ge", np.greater_equal, ">=")]:
    _binop(_name, _fn, f"({{0}} {_sym} {{1}})", out_dtype=dtypes.bool_)
for _name, _fn, _sym in [("logical_and", np.logical_and, "and"), ("logical_or", np.logical_or, "or"),
                         ("logical_xor", np.logical_xor, "!=")]:
    _binop(_name, _fn, f"(bool({{0}}) {_sym} bool({{1}}))", out_dtype=dtypes.bool_)
for _name, _fn, _sym in [("bitwise_and", np.bitwise_and, "&"), ("bitwise_or", np.bitwise_or, "|"),
                         ("bitwise_xor", np.bitwise_xor, "^")]:
    _binop(_name, _fn, f"({{0}} {_sym} {{1}})")


def _where_infer(c, a, b):
    if c.dtype is not dtypes.bool_:
        raise TypeError(f"where: expected condition to be a bool tensor, got {c.dtype}")
    if a.dtype is not b.dtype:
        raise TypeError(f"where: operands must share a dtype after promotion, got {a.dtype} and {b.dtype}")
    return AV(broadcast_shapes("where", c.shape, a.shape, b.shape), a.dtype)


where = register(Op("where", E, np.where, _where_infer,
                    (None, lambda g, out, c, a, b: _F().where(c, g, 0.0),
                     lambda g, out, c, a, b: _F().where(c, 0.0, g)), (0,), "({1} if {0} else {2})", arity=3))




def _bce_forward(x, t):
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100 as PyTorch does
        return -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log1p(-x), -100))


# NOTE: binary cross entropy is a primitive so its gradient matches PyTorch's at x in {0, 1}:
# (x - t) / max(x (1 - x), 1e-12), where the composite through clamped logs gives 0 * inf = nan.
binary_cross_entropy = _binop(
    "binary_cross_entropy", _bce_forward,
    "(-({1} * max(math.log({0}), -100.0) + (1.0 - {1}) * max(math.log1p(-{0}), -100.0)))",
    (lambda g, out, x, t: g * (x - t) / _F().maximum(x * (1 - x), 1e-12),
     lambda g, out, x, t: g * ((-x).log1p().clamp(min=-100) - x.log().clamp(min=-100))), (0, 1),
    backward_name="BinaryCrossEntropyBackward0")


# ---------------------------------------------------------------- reductions
def _keep(t, axes, keepdim):
    """Reinsert reduced axes as size 1, so a reduced value broadcasts against its input."""
    if keepdim or not axes:
        return t
    shape = list(t.shape)  # only the output shape and the (sorted) axes are needed, not the input shape
    for a in axes:
        shape.insert(a, 1)
    return t.reshape(tuple(shape))


def _reduce_infer(name, int_to_long):
    def infer(x, axes, keepdim):
        dt = dtypes.int64 if int_to_long and not x.dtype.is_floating_point else x.dtype
        return AV(reduced_shape(x.shape, axes, keepdim), dt)
    return infer


def _np_sum(x, axes, keepdim):
    if x.dtype == np.float16:  # NOTE: PyTorch accumulates float16 sums in float32 (rounded once, at the end)
        return np.sum(x, axis=axes, keepdims=keepdim, dtype=np.float32).astype(np.float16)
    out = np.sum(x, axis=axes, keepdims=keepdim)
    return out.astype(np.int64, copy=False) if out.dtype.kind in "biu" else out


sum_ = register(Op("sum", R, _np_sum, _reduce_infer("sum", True),
                   (lambda g, out, x, axes, keepdim: _keep(g, axes, keepdim).expand(x.shape),), arity=1))


def _extremum_vjp(g, out, x, axes, keepdim):
    # NOTE: a nan maximum (minimum) is where the input is nan: its gradient goes there, as in PyTorch
    k = _keep(out, axes, keepdim)
    mask = ((x == k) | ((x != x) & (k != k))).to(g.dtype)
    return _keep(g, axes, keepdim) * mask / mask.sum(axes, keepdim=True)


def _extremum(name, np_fn):
    # NOTE: max/min without dim spread the gradient evenly over ties, as PyTorch's amax/amin do. amin is
    # not -amax(-x): negating int64's minimum overflows.
    # NOTE: over no elements, a bool amax (any) is False and a bool amin (all) is True, as in PyTorch; other
    # dtypes have no identity and raise (the callers name the op and the dim)
    identity = {"amax": False, "amin": True}[name]

    def forward(x, axes, keepdim):
        if x.dtype == np.bool_ and x.size == 0:
            return np_fn(x, axis=axes, keepdims=keepdim, initial=identity)
        return np_fn(x, axis=axes, keepdims=keepdim)

    return register(Op(name, R, forward,
                       _reduce_infer(name, False), (_extremum_vjp,), (0, "out"), arity=1))


amax, amin = _extremum("amax", np.amax), _extremum("amin", np.amin)


def _arg_infer(x, axis, keepdim):
    return AV(reduced_shape(x.shape, tuple(range(x.ndim)) if axis is None else (axis,), keepdim), dtypes.int64)


def _arg_extremum(name, np_fn):
    def forward(x, axis, keepdim):
        if axis is None:
            return np.asarray(np_fn(x), np.int64).reshape((1,) * x.ndim if keepdim else ())
        return np_fn(x, axis=axis, keepdims=keepdim).astype(np.int64, copy=False)
    return register(Op(name, R, forward, _arg_infer, arity=1))


argmax, argmin = _arg_extremum("argmax", np.argmax), _arg_extremum("argmin", np.argmin)


def _norm_forward(x, axes, keepdim):
    return np.sqrt(np.sum(x * x, axis=axes, keepdims=keepdim))


# NOTE: the 2-norm is a primitive so its gradient at the origin is 0, as in PyTorch; the composite
# sqrt(sum(x*x)) gives 0 * inf = nan there.
norm2 = register(Op("norm2", R, _norm_forward, _reduce_infer("norm", False),
                    (lambda g, out, x, axes, keepdim:
                     _keep(g, axes, keepdim) * x / _F().where(_keep(out, axes, keepdim) == 0, 1.0,
                                                               _keep(out, axes, keepdim)),),
                    (0, "out"), backward_name="LinalgVectorNormBackward0", arity=1))


# ---------------------------------------------------------------- movement
def _reshape_infer(x, shape):
    if int(np.prod(shape)) != int(np.prod(x.shape)):
        raise RuntimeError(f"reshape: shape '{fmt(shape)}' is invalid for input of size {int(np.prod(x.shape))} "
                           f"(input shape {fmt(x.shape)})")
    return AV(tuple(shape), x.dtype)


reshape = register(Op("reshape", M, lambda x, shape: np.reshape(x, shape), _reshape_infer,
                      (lambda g, out, x, shape: g.reshape(x.shape),), backward_name="ViewBackward0", arity=1))
permute = register(Op("permute", M, lambda x, perm: np.transpose(x, perm),
                      lambda x, perm: AV(tuple(x.shape[p] for p in perm), x.dtype),
                      (lambda g, out, x, perm: g.permute(*np.argsort(perm).tolist()),), arity=1))


def _expand_infer(x, shape):
    if not broadcastable_to(x.shape, shape):
        raise RuntimeError(f"expand: the expanded size of the tensor must match the existing size at "
                           f"non-singleton dimensions: cannot expand {fmt(x.shape)} to {fmt(shape)}")
    return AV(tuple(shape), x.dtype)


# expand's gradient is g itself: the engine sums it back to the input's shape, like any broadcast.
expand = register(Op("expand", M, lambda x, shape: np.broadcast_to(x, shape), _expand_infer,
                     (lambda g, out, x, shape: g,), arity=1))


class Slot:
    """A place in an index tuple filled by the op's k-th index input (an index tensor traced as a graph value)."""

    __slots__ = ("k",)

    def __init__(self, k: int):
        self.k = k

    def __eq__(self, other):
        return isinstance(other, Slot) and other.k == self.k

    def __hash__(self):
        return hash(("slot", self.k))

    def __repr__(self):
        return f"<index input {self.k}>"


def fill_index(index: tuple, idx) -> tuple:
    """`index` with each Slot replaced by its index array."""
    if not idx:
        return index
    return tuple(idx[i.k] if type(i) is Slot else i for i in index)


def _index_infer(x, *idx, index):
    index = fill_index(index, [np.zeros(a.shape, np.int64) for a in idx])
    try:
        return AV(index_shape(x.shape, index), x.dtype)
    except IndexError as e:
        raise IndexError(f"index: {str(e).replace('axis', 'dimension')} (tensor of shape {fmt(x.shape)})") from None


# NOTE: index arrays live in `index` (a static param) in eager mode. A tracer turns those that come from
# traced tensors into inputs after the first (Slots in `index`), so a graph reads this call's indices. The
# VJPs pass them on; `saves` lists more index inputs than any op has (the extra positions are ignored).
_IDX = (1, 2, 3, 4, 5, 6, 7, 8)
getitem = register(Op("getitem", M, lambda x, *idx, index: x[fill_index(index, idx)], _index_infer,
                      (lambda g, out, x, *idx, index, i=0: _F().index_add_raw(g, x.shape, index, *idx),),
                      saves=_IDX, backward_name="IndexBackward0"))


def _cat_infer(*xs, axis):
    first = xs[0]
    for x in xs[1:]:
        if x.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != axis):
            raise RuntimeError(f"cat: sizes of tensors must match except in dimension {axis}: "
                               f"got shapes {fmt(first.shape)} and {fmt(x.shape)}")
        if x.dtype is not first.dtype:
            raise TypeError(f"cat: operands must share a dtype after promotion, got {first.dtype} and {x.dtype}")
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return AV(tuple(shape), first.dtype)


def _cat_vjp(g, out, *xs, axis, i):
    start = sum(x.shape[axis] for x in xs[:i])
    return g[(slice(None),) * axis + (slice(start, start + xs[i].shape[axis]),)]


cat = register(Op("cat", M, lambda *xs, axis: np.concatenate(xs, axis=axis), _cat_infer, (_cat_vjp,)))


# ---------------------------------------------------------------- opaque
def _matmul_infer(a, b):
    if a.ndim < 2 or b.ndim < 2:
        raise RuntimeError(f"matmul: both operands need 2 or more dims here, got {fmt(a.shape)} and {fmt(b.shape)}")
    if a.shape[-1] != b.shape[-2]:
        what = (f"mat1 and mat2 shapes cannot be multiplied ({a.shape[-2]}x{a.shape[-1]} and "
                f"{b.shape[-2]}x{b.shape[-1]})")
        raise RuntimeError(f"matmul: {what}" + ("" if a.ndim == b.ndim == 2 else
                                                f" (shapes {fmt(a.shape)} and {fmt(b.shape)})"))
    if a.dtype is not b.dtype:
        raise RuntimeError(f"matmul: expected both operands to have the same dtype, but got: {a.dtype} != {b.dtype}")
    batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
    return AV(batch + (a.shape[-2], b.shape[-1]), a.dtype)


matmul = register(Op("matmul", OPAQUE, np.matmul, _matmul_infer,
                     (lambda g, out, a, b: g @ b.mT, lambda g, out, a, b: a.mT @ g), (0, 1),
                     backward_name="MmBackward0", arity=2, saved_by=((1,), (0,))))


_SPARSE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _index_add_forward(g, *idx, shape, index):
    out = np.zeros(shape, g.dtype)
    index = fill_index(index, idx)
    rows = index[0] if len(index) == 1 else None
    if isinstance(rows, np.ndarray) and rows.dtype.kind in "iu" and rows.size >= 64 and g.dtype in _SPARSE_DTYPES and \
            g.shape[:rows.ndim] == rows.shape and len(shape) == g.ndim - rows.ndim + 1:
        # NOTE: rows picked by one index vector (an embedding's gradient): np.add.at is slow (2-4 ms for 1024 rows
        # of 128 here). A sparse matrix of ones with the rows of each index in their order sums the same rows in
        # the same order (each product by 1.0 is exact), so the sums are add.at's, bit for bit
        from scipy.sparse import csr_matrix
        n = shape[0]
        g = g.reshape(rows.size, -1)
        rows = rows.reshape(-1)
        rows = np.where(rows < 0, rows + n, rows)
        order = np.argsort(rows, kind="stable")
        indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=n))))
        out += (csr_matrix((np.ones(rows.size, g.dtype), order, indptr), shape=(n, rows.size)) @ g).reshape(shape)
    elif any(isinstance(i, np.ndarray) for i in index):
        np.add.at(out, index, g)  # repeated integer indices accumulate
    else:
        out[index] += g
    return out


# the VJP of getitem: zeros of the input's shape with g added at `index`
index_add = register(Op("index_add", OPAQUE, _index_add_forward,
                        lambda g, *idx, shape, index: AV(tuple(shape), g.dtype),
                        (lambda gg, out, g, *idx, shape, index, i=0: _F().getitem_raw(gg, index, idx),),
                        saves=_IDX))


def _index_put_forward(x, v, *idx, index):
    # NOTE: order="K" keeps x's memory layout, as eager's write into x's own buffer does: a Fortran-ordered
    # operand copied to C order would take another BLAS path in a later matmul (other roundings)
    out = x.copy(order="K")
    out[fill_index(index, idx)] = v
    return out


def _index_put_infer(x, v, *idx, index):
    sel = index_shape(x.shape, fill_index(index, [np.zeros(a.shape, np.int64) for a in idx]))
    shape = tuple(v.shape)
    while len(shape) > len(sel) and shape[0] == 1:  # numpy's assignment drops a value's extra leading 1s
        shape = shape[1:]
    if not broadcastable_to(shape, sel):
        raise RuntimeError(f"index_put: shape mismatch: value tensor of shape {fmt(v.shape)} cannot be broadcast "
                           f"to indexing result of shape {fmt(sel)}")
    return AV(x.shape, x.dtype)


def _index_put_vjp(g, out, x, v, *idx, index, i):
    if i == 0:
        return _F().index_put(g, 0.0, index, idx)
    return _F().getitem_raw(g, index, idx) if i == 1 else None


# functional `x[index] = v`; in eager, `__setitem__` records it as an in-place op
index_put = register(Op("index_put", OPAQUE, _index_put_forward, _index_put_infer, (_index_put_vjp,),
                        saves=tuple(i + 1 for i in _IDX), backward_name="CopySlices"))


# ------------------------------------------------------------------ random draws
# NOTE: random numbers are ops, not constants, so a traced graph draws fresh ones at every call, from the
# same generator and in the same order as eager mode (dropout under compile equals dropout in eager).
def _random_infer(shape, dtype, generator, **_):
    return AV(shape, dtype)


uniform = register(Op("uniform", OPAQUE, lambda shape, dtype, generator: generator.uniform(shape, dtype.np),
                      _random_infer, arity=0, effects=True))
normal = register(Op("normal", OPAQUE,
                     lambda shape, dtype, generator: generator.normal(shape, dtype.np),
                     _random_infer, arity=0, effects=True))
randint = register(Op("randint", OPAQUE, lambda shape, dtype, generator, low, high:
                      generator.integers(shape, low, high).astype(dtype.np), _random_infer, arity=0, effects=True))
randperm = register(Op("randperm", OPAQUE, lambda shape, dtype, generator: generator.permutation(shape[0])
                       .astype(dtype.np), _random_infer, arity=0, effects=True))


# ------------------------------------------------------------------ scans, sorting, gather (ops-api block)
def _int_to_long(x):
    return x.dtype if x.dtype.is_floating_point else dtypes.int64


def _scan(np_fn):
    # NOTE: float32 scans accumulate in float64, as PyTorch's CPU kernels do (acc_type<float> is double)
    def forward(x, axis, reverse=False):
        acc = np.float64 if x.dtype == np.float32 else (x.dtype if x.dtype.kind == "f" else np.int64)
        if reverse:
            return np.flip(np_fn(np.flip(x, axis), axis=axis, dtype=acc), axis).astype(_out_np(x), copy=False)
        return np_fn(x, axis=axis, dtype=acc).astype(_out_np(x), copy=False)
    return forward


def _out_np(x):
    return x.dtype if x.dtype.kind == "f" else np.int64


def _scan_infer(x, axis, reverse=False):
    return AV(x.shape, _int_to_long(x))


# cumsum(reverse=True) sums from the end; each direction's VJP is a cumsum in the other direction.
cumsum = register(Op("cumsum", OPAQUE, _scan(np.cumsum), _scan_infer,
                     (lambda g, out, x, axis, reverse: _F().cumsum_raw(g, axis, not reverse),), arity=1))
cumprod = register(Op("cumprod", OPAQUE, _scan(np.cumprod), _scan_infer,
                      (lambda g, out, x, axis: _F().cumprod_vjp(g, out, x, axis),), (0, "out"), arity=1))


def _argsort_forward(x, axis, descending):
    if not descending:
        return np.argsort(x, axis=axis, kind="stable").astype(np.int64, copy=False)
    # NOTE: a stable ascending sort of the reversed array, reversed back: descending, ties in their original
    # order and nan first (PyTorch's order); -x would overflow int64's minimum and keep nan last
    n = x.shape[axis]
    rev = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return (n - 1 - np.flip(rev, axis)).astype(np.int64, copy=False)


argsort = register(Op("argsort", OPAQUE, _argsort_forward,
                      lambda x, axis, descending: AV(x.shape, dtypes.int64), arity=1))


def _gather_region(shape, idx_shape, axis):
    """The part of `shape` an index of `idx_shape` reaches: PyTorch's gather reads idx's extent in the other dims."""
    return tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(idx_shape))


def _gather_infer(x, idx, axis):
    if idx.dtype is not dtypes.int64:
        raise RuntimeError(f"gather(): Expected dtype int64 for index, got {idx.dtype}")
    if idx.ndim != x.ndim or any(i > n for d, (i, n) in enumerate(zip(idx.shape, x.shape)) if d != axis):
        raise RuntimeError(f"gather(): Size does not match at dimension {axis}: index {fmt(idx.shape)} must have as "
                           f"many dims as input {fmt(x.shape)} and be no larger in every dim but {axis}")
    return AV(idx.shape, x.dtype)


def _gather_forward(x, idx, axis):
    n = x.shape[axis]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].flat[0]
        raise RuntimeError(f"index {bad} is out of bounds for dimension {axis} with size {n}")
    return np.take_along_axis(x[_gather_region(x.shape, idx.shape, axis)], idx, axis)


def _scatter_add_forward(g, idx, axis, shape):
    out = np.zeros(shape, g.dtype)
    index = list(np.indices(idx.shape, sparse=True))
    index[axis] = idx
    np.add.at(out, tuple(index), g)  # repeated indices accumulate
    return out


# gather(x, idx, axis): x's values at idx along `axis` (sort's and topk's values); its VJP adds g back at idx.
gather = register(Op("gather", OPAQUE, _gather_forward, _gather_infer,
                     (lambda g, out, x, idx, axis: _F().scatter_add_raw(g, idx, axis, x.shape), None), (1,),
                     arity=2))
scatter_add = register(Op("scatter_add", OPAQUE, _scatter_add_forward,
                          lambda g, idx, axis, shape: AV(tuple(shape), g.dtype),
                          (lambda gg, out, g, idx, axis, shape: _F().gather_raw(gg, idx, axis), None), (1,),
                          arity=2))
# ------------------------------------------------------------------ end of the ops-api block


# ------------------------------------------------------------------ multinomial (linalg-optim block)
def _draw_error(message: str) -> RuntimeError:
    error = RuntimeError(message)
    error.user_facing = True  # a data-dependent check of the draw itself: raised as it is
    return error


def _multinomial_forward(p, generator, num_samples, replacement):
    """PyTorch's CPU multinomial, drawing the same numbers from the same generator state.

    Without replacement, or for one sample: q ~ Exp(1) per entry (a float64 uniform u, -log1p(-u), in p's dtype),
    then the top `num_samples` of p / q. With replacement, row by row: the cumulative sum of p (accumulated in
    p's dtype) over its total, then per sample a float64 uniform located by binary search (the first bucket whose
    cumulative probability is >= u; the last bucket is 1).
    """
    rows = p.reshape(-1, p.shape[-1])
    out = np.empty((rows.shape[0], num_samples), np.int64)
    if not replacement or num_samples == 1:
        if not (rows.max() < np.inf and rows.min() >= 0):
            raise _draw_error("probability tensor contains either `inf`, `nan` or element < 0")
        if (rows.sum(-1) == 0).any():
            raise _draw_error("invalid multinomial distribution (sum of probabilities <= 0)")
        q = (-np.log1p(-generator.uniform((rows.size,), np.float64))).astype(p.dtype).reshape(rows.shape)
        with np.errstate(divide="ignore"):
            q = rows / q
        if num_samples == 1:
            out[:, 0] = np.argmax(q, -1)
        else:
            out[:] = np.argsort(-q, axis=-1, kind="stable")[:, :num_samples]
        return out.reshape(p.shape[:-1] + (num_samples,))
    for i, row in enumerate(rows):
        bad = ~(row >= 0)
        if bad.any():
            raise _draw_error("invalid multinomial distribution (encountering probability entry < 0)")
        if not np.isfinite(row).all():
            raise _draw_error("invalid multinomial distribution (encountering probability entry = infinity or NaN)")
        cum = np.cumsum(row, dtype=p.dtype)  # NOTE: sequential, in p's dtype, as PyTorch's loop
        if not cum[-1] > 0:
            raise _draw_error("invalid multinomial distribution (sum of probabilities <= 0)")
        cum = cum / cum[-1]
        cum[-1] = 1
        out[i] = np.searchsorted(cum.astype(np.float64), generator.uniform((num_samples,), np.float64), side="left")
    return out.reshape(p.shape[:-1] + (num_samples,))


multinomial = register(Op("multinomial", OPAQUE, _multinomial_forward,
                          lambda p, generator, num_samples, replacement: AV(p.shape[:-1] + (num_samples,),
                                                                             dtypes.int64),
                          arity=1, effects=True))
# ------------------------------------------------------------------ end of the multinomial block
