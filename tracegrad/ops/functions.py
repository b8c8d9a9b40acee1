"""The user-facing ops in one namespace, and their binding as Tensor methods.

The ops live by area: `base` (operands, promotion, dtype conversions), `shaping`, `arithmetic` (with
comparisons and logic), `reductions`, `indexing`, `inplace`, `convolution`, `structure` (flips, triangles,
diagonals, repeats, stacks), `selection` (nonzero, index_select, scatter, ...) and `statistics` (unique, median,
quantile, ...); each is a primitive with PyTorch's type promotion or a composite built from primitives.

Every function here is also a Tensor method (`tracegrad.exp(x)` and `x.exp()`).
A composite's result gets the composite's backward name (`SubBackward0`), although its graph is made
of primitives: `grad_fn.next_functions` shows the decomposition.

>>> import tracegrad as tg
>>> x = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
>>> tg.relu(x - 1).grad_fn
<ReluBackward0 object at ...>
"""
from __future__ import annotations

import numpy as np

from .._tensor import Tensor, apply
from . import primitives as P
from .arithmetic import (  # noqa: F401 - the ops' one namespace
    abs,
    add,
    allclose,
    binary_cross_entropy_elementwise,
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    clamp,
    clip,
    cos,
    div,
    eq,
    equal,
    equal_,
    erf,
    exp,
    floor_divide,
    ge,
    greater,
    greater_equal,
    gt,
    isnan,
    le,
    less,
    less_equal,
    log,
    log1p,
    log_sigmoid,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    lt,
    matmul,
    maximum,
    minimum,
    mm,
    mul,
    ne,
    neg,
    not_equal,
    pow,
    relu,
    remainder,
    rsqrt,
    rsub,
    sigmoid,
    sign,
    sin,
    sqrt,
    square,
    sub,
    tanh,
    where,
)
from .base import (  # noqa: F401 - the ops' one namespace
    _binary,
    _const,
    _floating,
    _is_one,
    _named,
    _operand,
    _tensor,
    bool__,
    cast,
    clone,
    contiguous,
    double,
    float_,
    long,
    to,
    type_as,
)
from .convolution import (  # noqa: F401 - the ops' one namespace
    avg_pool2d_backward,
    avg_pool2d_raw,
    conv2d_input_grad,
    conv2d_raw,
    conv2d_weight_grad,
    max_pool2d_scatter,
    max_pool2d_select,
)
from .indexing import (  # noqa: F401 - the ops' one namespace
    getitem,
    getitem_raw,
    index_add_raw,
    index_put,
    masked_fill,
    normalize_index,
    pytorch_index_steps,
    select,
    unbind,
)
from .inplace import (  # noqa: F401 - the ops' one namespace
    add_,
    addcdiv,
    addcdiv_,
    addcmul,
    addcmul_,
    clamp_,
    copy_,
    div_,
    exp_,
    fill_,
    lerp,
    lerp_,
    masked_fill_,
    mul_,
    neg_,
    pow_,
    relu_,
    setitem,
    sigmoid_,
    sqrt_,
    sub_,
    tanh_,
    zero_,
)
from .layers import addmm, conv2d_bias_raw, mse_loss_raw, nll_loss_raw  # noqa: F401 - layers-graph: one node each
from .reductions import (  # noqa: F401 - the ops' one namespace
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    log_softmax,
    logsumexp,
    max,
    max_result,
    mean,
    min,
    min_result,
    norm,
    softmax,
    std,
    sum,
    var,
)
from .shaping import (  # noqa: F401 - the ops' one namespace
    broadcast_to,
    cat,
    chunk,
    concat,
    concatenate,
    expand,
    expand_as,
    flatten,
    permute,
    reshape,
    reshape_as,
    split,
    squeeze,
    stack,
    swapaxes,
    t,
    transpose,
    unflatten,
    unsqueeze,
    view,
    view_as,
)

# ------------------------------------------------------------------------------------------ Tensor methods
_METHODS = """add sub mul div floor_divide remainder pow neg abs sign exp log sqrt rsqrt tanh sigmoid sin cos
square relu log1p maximum minimum clamp clip matmul mm eq ne lt le gt ge greater greater_equal less less_equal not_equal
bitwise_and bitwise_or bitwise_xor bitwise_not logical_and logical_or logical_xor logical_not isnan
sum mean max min amax amin all any argmax argmin var std norm logsumexp softmax log_softmax
reshape view view_as reshape_as permute transpose swapaxes t squeeze unsqueeze flatten unflatten expand expand_as
broadcast_to split chunk unbind select masked_fill to type_as double long clone contiguous
add_ sub_ mul_ div_ pow_ neg_ addcmul addcdiv addcmul_ addcdiv_ lerp lerp_ sqrt_ erf
exp_ relu_ sigmoid_ tanh_ clamp_ zero_ fill_ copy_ masked_fill_""".split()

# ------------------------------------------------------------------------------------------ ops-api block
from .linalg import addmv, baddbmm, bmm, dot, einsum, mv, outer, trace  # noqa: E402, F401 - the ops' namespace
from .scans import cumprod, cumprod_vjp, cumsum, cumsum_raw, diff, prod  # noqa: E402, F401
from .sorting import (  # noqa: E402, F401 - the ops' one namespace
    argsort,
    gather,
    gather_raw,
    scatter_add_raw,
    sort,
    sort_result,
    topk,
    topk_result,
)

_METHODS += "dot mv bmm addmv baddbmm outer trace cumsum cumprod prod diff sort argsort topk gather".split()  # ops-api

# ------------------------------------------------------------------------------------------ shape-more block
from .selection import (  # noqa: E402, F401 - the ops' one namespace
    argwhere,
    index_add,
    index_add_,
    index_copy,
    index_copy_,
    index_fill,
    index_fill_,
    index_select,
    masked_scatter,
    masked_scatter_,
    masked_select,
    nonzero,
    scatter,
    scatter_,
    scatter_add,
    scatter_add_,
    take,
    take_along_dim,
)
from .statistics import (  # noqa: E402, F401 - the ops' one namespace
    bincount,
    bucketize,
    cummax,
    cummin,
    histc,
    kthvalue,
    logcumsumexp,
    logcumsumexp_raw,
    median,
    mode,
    nanmedian,
    nanquantile,
    quantile,
    searchsorted,
    unique,
    unique_consecutive,
)
from .structure import (  # noqa: E402, F401 - the ops' one namespace
    H,
    atleast_1d,
    atleast_2d,
    atleast_3d,
    block_diag,
    cartesian_prod,
    cdist,
    column_stack,
    cross,
    data_ptr,
    diag,
    diag_embed,
    diagflat,
    diagonal,
    dstack,
    flip,
    fliplr,
    flipud,
    hstack,
    is_contiguous,
    kron,
    meshgrid,
    moveaxis,
    movedim,
    narrow,
    ravel,
    repeat,
    repeat_interleave,
    roll,
    rot90,
    row_stack,
    squeeze_,
    stride,
    t_,
    tensordot,
    tile,
    transpose_,
    tril,
    tril_,
    tril_indices,
    triu,
    triu_,
    triu_indices,
    unfold,
    unsqueeze_,
    vstack,
)

_METHODS += """flip fliplr flipud roll rot90 tril triu tril_ triu_ diag diagonal diag_embed diagflat tile repeat
repeat_interleave kron cross narrow movedim moveaxis ravel unfold squeeze_ unsqueeze_ t_ transpose_ is_contiguous stride
data_ptr nonzero argwhere masked_select index_select take take_along_dim scatter scatter_ scatter_add scatter_add_
index_add index_add_ index_copy index_copy_ index_fill index_fill_ masked_scatter masked_scatter_ unique
unique_consecutive bincount histc cummax cummin logcumsumexp median nanmedian mode quantile nanquantile
kthvalue""".split()  # shape-more
# ------------------------------------------------------------------------------------------ end of the shape-more block


# ------------------------------------------------------------------------------------------ math-more block
from .mathops import (  # noqa: E402, F401 - the ops' one namespace
    INPLACE,
    acos,
    acosh,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    ceil,
    clamp_max,
    clamp_min,
    cosh,
    count_nonzero,
    exp2,
    expm1,
    fix,
    floor,
    fmod,
    frac,
    hypot,
    isfinite,
    isinf,
    isneginf,
    isposinf,
    log2,
    log10,
    logaddexp,
    nan_to_num,
    reciprocal,
    round,
    sinh,
    std_mean,
    tan,
    trunc,
    var_mean,
    xlogy,
)

globals().update(INPLACE)
negative, absolute = neg, abs  # PyTorch's numpy-style method names
_METHODS += ["negative", "absolute"]
_METHODS += """floor ceil round trunc fix frac fmod log2 log10 exp2 expm1 tan atan asin acos atan2 arctan2 sinh cosh
asinh acosh atanh arcsin arccos arctan arcsinh arccosh arctanh hypot reciprocal isinf isfinite isposinf isneginf
nan_to_num clamp_min clamp_max logaddexp xlogy count_nonzero""".split() + list(INPLACE)
# ------------------------------------------------------------------------------------------ end of the math-more block

def _mT(x: Tensor) -> Tensor:
    """Swap the last two dims (`x.mT`); a fast path of `transpose(x, -2, -1)`, used by linear and matmul's VJP."""
    n = x._data.ndim
    if n < 2:
        raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. Got {n}-D tensor.")
    perm = tuple(range(n - 2)) + (n - 1, n - 2)
    return _named(apply(P.permute, x, perm=perm), "TransposeBackward0")


def _bind_methods():
    g = globals()
    for name in _METHODS:
        setattr(Tensor, name, g[name])
    Tensor.float, Tensor.bool, Tensor.where = float_, bool__, lambda x, condition, y: where(condition, x, y)
    Tensor.T = property(lambda x: permute(x, *reversed(range(x.ndim))))
    Tensor.mT = property(_mT)
    Tensor.__getitem__ = getitem
    Tensor.__setitem__ = setitem
    ops = {"add": add, "sub": sub, "mul": mul, "truediv": div, "floordiv": floor_divide, "mod": remainder,
           "pow": pow, "matmul": matmul, "and": bitwise_and, "or": bitwise_or, "xor": bitwise_xor}
    for name, fn in ops.items():
        setattr(Tensor, f"__{name}__", fn)
        setattr(Tensor, f"__r{name}__", (lambda f: lambda x, other: f(other, x))(fn))
    Tensor.__rsub__ = rsub
    Tensor.__rmatmul__ = lambda x, other: matmul(_tensor(other), x)
    for name, fn in {"iadd": add_, "isub": sub_, "imul": mul_, "itruediv": div_}.items():
        setattr(Tensor, f"__{name}__", fn)
    numbers = (Tensor, int, float, bool, np.number)
    for name, fn in {"eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge}.items():
        setattr(Tensor, f"__{name}__",
                (lambda f: lambda x, other: f(x, other) if isinstance(other, numbers) else NotImplemented)(fn))
    Tensor.__neg__, Tensor.__pos__, Tensor.__abs__, Tensor.__invert__ = neg, lambda x: x, abs, bitwise_not


_bind_methods()
Tensor.addmm, Tensor.trace = addmm, trace  # layers-graph
Tensor.H, Tensor.mH = property(H), property(_mT)  # shape-more (mH is mT: tracegrad has no complex dtypes)
