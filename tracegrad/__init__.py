"""tracegrad: a PyTorch-style deep-learning framework on numpy, with eager autograd.

>>> import tracegrad as torch
>>> x = torch.ones(2, 2, requires_grad=True)
>>> out = ((x + 2) * (x + 2) * 3).mean()
>>> out.backward()
>>> x.grad
tensor([[4.5000, 4.5000],
        [4.5000, 4.5000]])
"""
from . import autograd, dtypes
from ._tensor import Size, Tensor
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .devices import accelerator, backends, cuda, device
from .dtypes import get_default_dtype, promote_types, result_type, set_default_dtype
from .ops.functions import (
    abs,
    add,
    addcdiv,
    addcmul,
    addmm,  # layers-graph
    all,
    allclose,
    amax,
    amin,
    any,
    argmax,
    argmin,
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    broadcast_to,
    cat,
    chunk,
    clamp,
    clip,
    clone,
    concat,
    concatenate,
    cos,
    div,
    eq,
    equal,
    erf,
    exp,
    expand,
    flatten,
    floor_divide,
    ge,
    gt,
    isnan,
    le,
    lerp,
    log,
    log_softmax,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    logsumexp,
    lt,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mm,
    mul,
    ne,
    neg,
    norm,
    permute,
    pow,
    relu,
    remainder,
    reshape,
    rsqrt,
    select,
    sigmoid,
    sign,
    sin,
    softmax,
    split,
    sqrt,
    square,
    squeeze,
    stack,
    std,
    sub,
    sum,
    swapaxes,
    t,
    tanh,
    trace,  # layers-graph: the matrix trace, as torch.trace (the graph tracer is tracegrad.jit.trace)
    transpose,
    unbind,
    unflatten,
    unsqueeze,
    var,
    where,
)
from .random import Generator, default_generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from .sampling import bernoulli, normal

float32 = float = dtypes.float32
float64 = double = dtypes.float64
int64 = long = dtypes.int64
bool = dtypes.bool_
dtype = dtypes.DType

# the smaller dtypes (tracegrad.dtypes), and the ranges of every dtype
float16 = half = dtypes.float16
int32 = int = dtypes.int32
int16 = short = dtypes.int16
int8 = dtypes.int8
uint8 = dtypes.uint8
from .dtypes import finfo, iinfo  # noqa: E402

subtract, multiply, divide, true_divide, negative, absolute = sub, mul, div, div, neg, abs

# ---- ops-api block: products, scans, sorting at the top level; PyTorch's out= on the common functions
from .ops.functions import (  # noqa: E402
    addmv,
    argsort,
    baddbmm,
    bmm,
    cumprod,
    cumsum,
    diff,
    dot,
    einsum,
    gather,
    mv,
    outer,
    prod,
    sort,
    topk,
)
from .ops.out import OUT_FUNCTIONS as _OUT_FUNCTIONS  # noqa: E402
from .ops.out import with_out as _with_out  # noqa: E402

globals().update({_name: _with_out(globals()[_name], _name) for _name in _OUT_FUNCTIONS +
                  "subtract multiply divide true_divide negative absolute clip concat concatenate".split()})
# ---- end of the ops-api block

# ---- linalg-optim block: torch.linalg, its torch.* aliases, multinomial
from . import linalg  # noqa: E402, I001 - a block of its own, kept apart for merging
from .linalg import det, inverse, logdet, matrix_power, pinverse, slogdet  # noqa: E402
from .linalg import torch_cholesky as cholesky  # noqa: E402
from .linalg import torch_qr as qr  # noqa: E402
from .linalg import torch_svd as svd  # noqa: E402
from .sampling import multinomial  # noqa: E402
# ---- end of the linalg-optim block

# ---- shape-more block: structure, selection and order-statistics ops at the top level
# isort: split
from .ops.functions import (  # noqa: E402
    argwhere,
    atleast_1d,
    atleast_2d,
    atleast_3d,
    bincount,
    block_diag,
    bucketize,
    cartesian_prod,
    cdist,
    column_stack,
    cross,
    cummax,
    cummin,
    diag,
    diag_embed,
    diagflat,
    diagonal,
    dstack,
    flip,
    fliplr,
    flipud,
    histc,
    hstack,
    index_add,
    index_copy,
    index_fill,
    index_select,
    kron,
    kthvalue,
    logcumsumexp,
    masked_scatter,
    masked_select,
    median,
    meshgrid,
    mode,
    moveaxis,
    movedim,
    nanmedian,
    nanquantile,
    narrow,
    nonzero,
    quantile,
    ravel,
    repeat_interleave,
    roll,
    rot90,
    row_stack,
    scatter,
    scatter_add,
    searchsorted,
    take,
    take_along_dim,
    tensordot,
    tile,
    tril,
    tril_indices,
    triu,
    triu_indices,
    unique,
    unique_consecutive,
    vstack,
)

# isort: split
# ---- end of the shape-more block

# ---- math-more block: elementwise math, aliases, std_mean/var_mean/count_nonzero, print options
from .ops.functions import INPLACE as _INPLACE  # noqa: E402
from .ops.functions import (  # noqa: E402
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
    log1p,
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
from .printing import get_printoptions, printoptions, set_printoptions  # noqa: E402

globals().update({_name: _with_out(globals()[_name], _name) for _name in """acos acosh arccos arccosh arcsin arcsinh
arctan arctan2 arctanh asin asinh atan atan2 atanh ceil clamp_max clamp_min cosh exp2 expm1 fix floor fmod frac hypot
log1p log2 log10 logaddexp nan_to_num reciprocal round sinh tan trunc xlogy""".split()})
# torch.floor_ etc.: the in-place forms PyTorch's top level has (it has no fmod_, atan2_, sign_, ...)
globals().update({_name: _fn for _name, _fn in _INPLACE.items() if _name[:-1] not in
                  ("fmod", "atan2", "arctan2", "hypot", "floor_divide", "remainder", "absolute", "sign")})
# ---- end of the math-more block

from . import jit, models, nn, optim, utils  # noqa: E402 - after the tensor API they build on
from .ir import Graph  # noqa: E402
from .tracer import (  # noqa: E402 - the static-graph layer sits on the eager one
    CompiledFunction,
    TraceError,
    compile,
    explain,
    grad,
    value_and_grad,
)

__version__ = "0.1.0"


def is_tensor(obj):
    return isinstance(obj, Tensor)


def numel(x: Tensor) -> int:
    return x.numel()

# ---- saving and loading (PyTorch's file format), threads, inference mode, legacy tensor types, default device
from . import serialization  # noqa: E402
from ._tensor import (  # noqa: E402
    BoolTensor,
    ByteTensor,
    CharTensor,
    DoubleTensor,
    FloatTensor,
    HalfTensor,
    IntTensor,
    LongTensor,
    ShortTensor,
)
from .autograd import inference_mode, is_inference_mode_enabled  # noqa: E402
from .devices import get_default_device, set_default_device  # noqa: E402
from .serialization import load, save  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: E402

# ---- nn-more block: nn.functional ops that PyTorch also has at the top level (torch.conv1d, torch.kl_div, ...)
globals().update({_name: getattr(nn.functional, _name) for _name in (
    "adaptive_avg_pool1d adaptive_max_pool1d alpha_dropout avg_pool1d bilinear conv1d conv_transpose1d "
    "conv_transpose2d cosine_embedding_loss cosine_similarity feature_alpha_dropout group_norm hinge_embedding_loss "
    "instance_norm kl_div margin_ranking_loss max_pool1d pairwise_distance poisson_nll_loss rms_norm "
    "triplet_margin_loss").split()})
# ---- end of the nn-more block

# ---- data parallelism on MPI (tracegrad.distributed; never imports mpi4py until init_process_group)
from . import distributed  # noqa: E402
