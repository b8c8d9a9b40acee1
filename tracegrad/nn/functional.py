"""`tracegrad.nn.functional`: layers and losses as functions, composed from registry ops.

>>> import tracegrad as tg
>>> import tracegrad.nn.functional as F
>>> F.cross_entropy(tg.tensor([[2.0, 0.0, 0.0]]), tg.tensor([0])).item() < 0.25
True
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import _tracing, dtypes
from .._tensor import Tensor
from ..autograd.grad_mode import no_grad
from ..creation import arange, ones, rand, zeros
from ..dtypes import result_type
from ..ops import functions as T
from ..ops.functions import _named, erf, log_softmax, relu, sigmoid, softmax, tanh  # noqa: F401 - re-exported
from ..ops.shapes import broadcast_shapes, fmt

__all__ = ["linear", "relu", "leaky_relu", "logsigmoid", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout",
           "embedding", "layer_norm", "batch_norm", "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
           "flatten", "mse_loss", "l1_loss", "nll_loss", "cross_entropy", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "one_hot", "pad"]


def _pair(v, name="value"):
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(i) for i in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v}")
    return v


# ---------------------------------------------------------------- layers
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, with PyTorch's graph: one AddmmBackward0 node (bias, x, weight.t()) for a 2-D input with
    bias, MmBackward0 without; other ranks are viewed as 2-D around that node.

    >>> import tracegrad as tg
    >>> w = tg.ones(3, 4, requires_grad=True)
    >>> y = linear(tg.ones(2, 4), w, tg.zeros(3, requires_grad=True))
    >>> [fn.name() if fn is not None else None for fn, _ in y.grad_fn.next_functions]
    ['AccumulateGrad', None, 'TBackward0']
    """
    for name, t in (("input", x), ("weight", weight)):
        if not isinstance(t, Tensor):
            raise TypeError(f"linear(): argument {name!r} must be Tensor, not {type(t).__name__!r}")
    if x.shape[-1] != weight.shape[-1]:
        raise RuntimeError(f"linear: mat1 and mat2 shapes cannot be multiplied ({math.prod(x.shape[:-1])}x"
                           f"{x.shape[-1]} and {weight.shape[-1]}x{weight.shape[0]}): input {fmt(x.shape)}, weight "
                           f"{fmt(weight.shape)}")
    if weight.ndim != 2:
        out = x @ weight
        return out if bias is None else _named(out + bias, "AddBackward0")
    if x.dtype is not weight.dtype or (bias is not None and bias.dtype is not x.dtype):
        raise RuntimeError(f"linear: expected input, weight and bias to have the same dtype, but got {x.dtype}, "
                           f"{weight.dtype} and {None if bias is None else bias.dtype}")
    # ---- layers-graph: PyTorch's nodes (checked against torch in tests/test_nn_functional.py)
    n_out, n_in = weight.shape
    wt = T.t(weight)
    if bias is not None and (x.ndim == 2 or bias.ndim <= 1):
        if x.ndim == 2:
            return T.addmm(bias, x, wt)
        return T.addmm(bias, x.reshape(-1, n_in), wt).reshape(*x.shape[:-1], n_out)  # ViewBackward0 on both sides
    if x.ndim == 2:
        out = T.matmul(x, wt)
    elif x.ndim == 1:
        out = _named(T.matmul(x.unsqueeze(0), wt).reshape(n_out), "SqueezeBackward4")
    else:
        out = _named(T.matmul(x.reshape(-1, n_in), wt).reshape(*x.shape[:-1], n_out), "UnsafeViewBackward0")
    return out if bias is None else _named(out + bias, "AddBackward0")


def logsigmoid(x: Tensor) -> Tensor:
    """log(sigmoid(x)), computed without overflow."""
    return T.log_sigmoid(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return _named(T.where(x > 0, x, x * negative_slope), "LeakyReluBackward0")


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x); approximate='tanh' uses PyTorch's tanh formula."""
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)
        return _named(x * 0.5 * (tanh(inner) + 1.0), "GeluBackward0")
    if approximate != "none":
        raise RuntimeError(f"gelu: approximate argument must be either none or tanh, got {approximate!r}")
    return _named(x * 0.5 * (erf(x * (1.0 / math.sqrt(2.0))) + 1.0), "GeluBackward0")


def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (in training only)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    # NOTE: PyTorch keeps an element when a float64 uniform draw is below 1 - p (bernoulli_(1 - p)), and scales
    # the mask by 1 / (1 - p) before multiplying: the same draws, so the same mask as PyTorch for a seed.
    # attention block: its mask is laid out like the input (empty_like) and drawn in memory order, so the draws of
    # a transposed input (MultiheadAttention's batch_first output) follow its memory, not its indices
    order = _memory_order(x._data)
    if order is None:
        keep = rand(*x.shape, dtype=dtypes.float64, generator=generator) < (1.0 - p)
    else:
        keep = T.permute(rand(*(x.shape[d] for d in order), dtype=dtypes.float64, generator=generator),
                         tuple(np.argsort(order))) < (1.0 - p)
    return _named(x * (keep.to(x.dtype) / (1.0 - p)), "MulBackward0")


def _memory_order(a: np.ndarray) -> tuple | None:
    """The dims of `a`, outermost first in memory, when its elements are dense and non-overlapping but not in index
    order (a transposed view); else None (PyTorch's empty_like lays out anything else contiguously)."""
    if a.flags.c_contiguous or a.ndim < 2:
        return None
    big = sorted((d for d in range(a.ndim) if a.shape[d] > 1), key=lambda d: -a.strides[d])
    step = a.itemsize
    for d in reversed(big):
        if a.strides[d] != step:
            return None  # overlapping (broadcast), with gaps (a slice) or reversed
        step *= a.shape[d]
    order = tuple(big) + tuple(d for d in range(a.ndim) if a.shape[d] <= 1)
    return None if list(big) == sorted(big) else order


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,  # noqa: A002
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of `weight` picked by integer `input`; the padding row gets no gradient. `max_norm` first rescales, in
    place, each looked-up row whose `norm_type`-norm exceeds it; `scale_grad_by_freq` divides each row's gradient by
    its count in `input`; `sparse` gradients are dense here (the same values).

    >>> import tracegrad as tg
    >>> w = tg.tensor([[3.0, 4.0], [0.3, 0.4]])
    >>> embedding(tg.tensor([0, 1]), w, max_norm=1.0)
    tensor([[0.6000, 0.8000],
            [0.3000, 0.4000]])
    >>> w[0]  # renormalized in place, as in PyTorch
    tensor([0.6000, 0.8000])
    """
    indices = input
    if indices.dtype not in (dtypes.int64, dtypes.int32):  # as PyTorch: Long or Int
        raise RuntimeError(f"embedding: expected indices of dtype int64 or int32, got {indices.dtype}")
    if padding_idx is not None:  # attention block: PyTorch's checks and negative padding_idx
        if not -weight.shape[0] <= padding_idx < weight.shape[0]:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx %= weight.shape[0]
    if max_norm is not None:
        _embedding_renorm_(weight, indices, max_norm, norm_type)
    if padding_idx is not None and weight.requires_grad:
        keep = T.ne(arange(weight.shape[0]), padding_idx).reshape(-1, 1)
        weight = T.where(keep, weight, weight.detach())
    out = _named(weight[indices], "EmbeddingBackward0")
    if scale_grad_by_freq and out.requires_grad:
        # NOTE: rows + (rows - rows) * (1 / count) is the rows themselves (x - x is 0), and its gradient is the
        # gradient times 1 / count, PyTorch's scaling (it multiplies by the reciprocal)
        flat = indices.reshape(-1)
        counts = zeros(weight.shape[0], dtype=weight.dtype).index_add(0, flat, ones(flat.shape[0], dtype=weight.dtype))
        inv = (1.0 / counts[indices]).unsqueeze(-1)
        rows = out.detach()
        out = _named(rows + (out - rows) * inv, "EmbeddingBackward0")
    return out


def _embedding_renorm_(weight: Tensor, indices: Tensor, max_norm: float, norm_type: float) -> None:
    """PyTorch's embedding_renorm_: each row `indices` pick whose norm exceeds max_norm is scaled, in place, by
    max_norm / (norm + 1e-7) (computed in float64, as PyTorch's kernel does), outside autograd."""
    with no_grad():
        picked = zeros(weight.shape[0], dtype=dtypes.bool_)
        picked[indices.reshape(-1)] = True
        norms = T.norm(weight, norm_type, 1).double()
        scale = T.where(T.logical_and(picked, norms > max_norm), max_norm / (norms + 1e-7), 1.0)
        weight.mul_(scale.to(weight.dtype).unsqueeze(1))  # NOTE: the other rows are multiplied by 1: unchanged


def _normalize(x, dims, eps):
    mean = x.mean(dims, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(dims, keepdim=True)
    return centered, mean, var, T.rsqrt(var + eps)


def layer_norm(x: Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalize over the trailing `normalized_shape` dims (biased variance), then scale and shift."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise RuntimeError(f"layer_norm: Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, shape))}], but got input of size {fmt(x.shape)}")
    dims = tuple(range(x.ndim - len(shape), x.ndim))
    centered, _, _, inv = _normalize(x, dims, eps)
    out = centered * inv
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return _named(out, "NativeLayerNormBackward0")


def batch_norm(x: Tensor, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float | None = 0.1, eps: float = 1e-5, num_batches_tracked: Tensor | None = None) -> Tensor:
    """Batch normalization over all dims but the channel dim 1.

    In training it normalizes with the batch's statistics and updates the running ones in place
    (PyTorch's momentum; the running variance is unbiased); in eval it uses the running ones.
    """
    # NOTE: a composite of registry ops (mean, sub, mul, rsqrt...), so the compiler traces it like any
    # other code; the running-statistics update is an in-place op under no_grad, which the tracer
    # records as a write-back of state.
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected 2D or more input (got {x.ndim}D input)")
    dims = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if training:
        n = x.numel() // x.shape[1]
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {fmt(x.shape)}")
        centered, mean, var, inv = _normalize(x, dims, eps)
        if running_mean is not None:
            with no_grad():
                if num_batches_tracked is not None:
                    num_batches_tracked.add_(1)
                m = (1.0 / num_batches_tracked.item()) if momentum is None else momentum
                running_mean.mul_(1 - m).add_(mean.detach().reshape(-1) * m)
                running_var.mul_(1 - m).add_(var.detach().reshape(-1) * (m * n / (n - 1)))
    else:
        centered = x - running_mean.reshape(shape)
        inv = T.rsqrt(running_var.reshape(shape) + eps)
    scale = inv if weight is None else inv * weight.reshape(shape)
    out = centered * scale
    if bias is not None:
        out = out + bias.reshape(shape)
    return _named(out, "NativeBatchNormBackward0")


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) of (N, C, H, W) or (C, H, W) input; im2col plus one matmul."""
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if _pair(stride) != (1, 1):
                raise RuntimeError("conv2d: padding='same' is not supported for strided convolutions")
            total = [d * (k - 1) for d, k in zip(_pair(dilation), weight.shape[2:])]
            padding = tuple(t // 2 for t in total)
            if any(t % 2 for t in total):  # as PyTorch: the odd extra row/column goes at the bottom/right
                x = pad(x, (0, total[1] % 2, 0, total[0] % 2))
        else:
            raise RuntimeError(f"conv2d: Invalid padding string: {padding!r}, should be one of ['valid', 'same']")
    batched = x.ndim == 4
    params = (_pair(stride), _pair(padding), _pair(dilation), int(groups))
    x4 = x if batched else x.unsqueeze(0)
    if bias is None:
        out = T.conv2d_raw(x4, weight, *params)
    else:  # one ConvolutionBackward0 node (input, weight, bias), as in PyTorch
        out = T.conv2d_bias_raw(x4, weight, bias, *params)
    return out if batched else out.squeeze(0)


def _pool_params(kernel_size, stride, padding):
    kernel = _pair(kernel_size, "kernel_size")
    return kernel, kernel if stride is None or stride == [] else _pair(stride, "stride"), _pair(padding, "padding")


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    if ceil_mode or return_indices:
        raise ValueError("max_pool2d: ceil_mode=True and return_indices=True are not supported by tracegrad")
    kernel, stride, padding = _pool_params(kernel_size, stride, padding)
    return T.max_pool2d_select(x, x, kernel, stride, padding, _pair(dilation, "dilation"))


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    if ceil_mode or divisor_override is not None:
        raise ValueError("avg_pool2d: ceil_mode=True and divisor_override are not supported by tracegrad")
    kernel, stride, padding = _pool_params(kernel_size, stride, padding)
    return T.avg_pool2d_raw(x, kernel, stride, padding, bool(count_include_pad))


def adaptive_avg_pool2d(x: Tensor, output_size) -> Tensor:
    """Average over PyTorch's adaptive windows: [floor(i*H/oh), ceil((i+1)*H/oh))."""
    h, w = x.shape[-2:]
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    oh, ow = h if oh is None else oh, w if ow is None else ow  # None keeps the input's size
    if (oh, ow) == (1, 1):
        return _named(x.mean((-2, -1), keepdim=True), "MeanBackward1")
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(x, (h // oh, w // ow))
    rows = []
    for i in range(oh):
        h0, h1 = (i * h) // oh, -((-(i + 1) * h) // oh)
        cols = [x[..., h0:h1, (j * w) // ow:-((-(j + 1) * w) // ow)].mean((-2, -1)) for j in range(ow)]
        rows.append(T.stack(cols, -1))
    return _named(T.stack(rows, -2), "AdaptiveAvgPool2DBackward0")


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return x.flatten(start_dim, end_dim)


def one_hot(indices: Tensor, num_classes: int = -1) -> Tensor:
    n = int(indices.max().item()) + 1 if num_classes < 0 else num_classes
    return T.eq(indices.unsqueeze(-1), arange(n)).long()


# ---------------------------------------------------------------- losses
def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_sizes(name, x, target):
    if tuple(x.shape) != tuple(target.shape):
        warnings.warn(f"{name}: Using a target size ({fmt(target.shape)}) that is different to the input size "
                      f"({fmt(x.shape)}). This will likely lead to incorrect results due to broadcasting. Please "
                      f"ensure they have the same size.", UserWarning, stacklevel=3)


def mse_loss(x: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or each) of the squared differences; input and target broadcast (with a warning)."""
    _check_sizes("mse_loss", x, target)
    _check_reduction(reduction)
    dt = result_type(x, target)
    if not dt.is_floating_point:
        raise NotImplementedError(f"mse_loss: not implemented for {dt} (input {x.dtype} {fmt(x.shape)}, target "
                                  f"{target.dtype} {fmt(target.shape)})")
    x, target = T._operand(x, dt), T._operand(target, dt)
    if tuple(x.shape) != tuple(target.shape):  # as PyTorch: the one that broadcasts gets an ExpandBackward0 node
        shape = broadcast_shapes("mse_loss", x.shape, target.shape)
        x, target = (t if tuple(t.shape) == shape else t.expand(*shape) for t in (x, target))
    return T.mse_loss_raw(x, target, reduction)


def l1_loss(x: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    _check_sizes("l1_loss", x, target)
    return _reduce((x - target).abs(), reduction)  # PyTorch 2.13 names its node by reduction: MeanBackward0, ...


def _class_last(x: Tensor, target: Tensor):
    """(N, C, d1, ...) scores with (N, d1, ...) targets -> (M, C) and (M,)."""
    if x.ndim == 1:
        return x.unsqueeze(0), target.reshape(1)
    if x.ndim > 2:
        perm = (0,) + tuple(range(2, x.ndim)) + (1,)
        return x.permute(*perm).reshape(-1, x.shape[1]), target.reshape(-1)
    return x, target


def _check_targets(name, x, target):
    expected = (x.shape[0],) + tuple(x.shape[2:]) if x.ndim >= 2 else ()
    if target.dtype is not dtypes.int64:  # NOTE: PyTorch also takes uint8 class indices; tracegrad doesn't
        raise RuntimeError(f"{name}: expected target of dtype int64 (class indices), got {target.dtype}")
    if x.ndim == 2 and target.ndim == 1 and target.shape[0] != x.shape[0]:  # PyTorch's class differs by rank
        raise ValueError(f"{name}: Expected input batch_size ({x.shape[0]}) to match target batch_size "
                         f"({target.shape[0]}).")
    if tuple(target.shape) != expected:
        raise RuntimeError(f"{name}: Expected target size {fmt(expected)}, got {fmt(target.shape)} "
                           f"(input shape {fmt(x.shape)})")


def nll_loss(log_probs: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """-log_probs[i, target[i]], weighted; ignore_index entries count for nothing (also in the mean).

    One NllLossBackward0 node (NllLoss2DBackward0 for (N, C, H, W) input; other ranks are viewed as 4-D around it,
    as in PyTorch); the targets and weights are not differentiated.
    """
    _check_targets("nll_loss", log_probs, target)
    _check_reduction(reduction)
    if weight is not None and weight.requires_grad:
        raise RuntimeError("nll_loss: the function 'nll_loss_forward' is not differentiable with respect to argument "
                           "'weight'. This input cannot have requires_grad True.")
    n_classes = log_probs.shape[0 if log_probs.ndim == 1 else 1]
    if _tracing.TRACER is not None:  # NOTE: a guard, so a compiled call checks its own targets
        keep = T.ne(target, ignore_index)
        safe_t = T.where(keep, target, 0)
        bad = T.logical_and(keep, T.logical_or(T.lt(safe_t, 0), T.ge(safe_t, n_classes)))
        if bool(bad.any()):
            raise IndexError(f"nll_loss: Target {int(target[bad][0].item())} is out of bounds for {n_classes} "
                             f"classes")
    if weight is not None:
        weight = T._operand(weight, log_probs.dtype)
    if log_probs.ndim <= 2 or log_probs.ndim == 4:
        out = T.nll_loss_raw(log_probs, target, weight, reduction, ignore_index)
        return _named(out, "NllLoss2DBackward0") if log_probs.ndim == 4 else out
    # (N, C, d1, ...) -> (N, C, 1, d1 * ...)
    n, rest = log_probs.shape[0], math.prod(log_probs.shape[2:])
    out = T.nll_loss_raw(log_probs.reshape(n, n_classes, 1, rest), target.reshape(n, 1, rest), weight, reduction,
                         ignore_index)
    out = _named(out, "NllLoss2DBackward0")
    return out.reshape(target.shape) if reduction == "none" else out


def cross_entropy(x: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """log_softmax over dim 1 then nll_loss; targets are class indices or class probabilities."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    class_dim = 0 if x.ndim == 1 else 1
    logp = log_softmax(x, class_dim)
    n_classes = x.shape[class_dim]
    if target.is_floating_point():  # class probabilities
        if tuple(target.shape) != tuple(x.shape):
            raise RuntimeError(f"cross_entropy: probability targets must have the input's shape {fmt(x.shape)}, "
                               f"got {fmt(target.shape)}")
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / n_classes
        wl = logp if weight is None else logp * weight.reshape((-1,) + (1,) * (x.ndim - 2))
        losses = -(wl * target).sum(class_dim)
        out = losses.sum() / (x.numel() // n_classes) if reduction == "mean" else _reduce(losses, reduction)
        return _named(out, "DivBackward1" if reduction == "mean" else "NegBackward0")
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if not label_smoothing:
        return nll
    scores, t = _class_last(logp, target)
    keep = T.ne(t, ignore_index)
    per_class = scores if weight is None else scores * weight
    smooth = T.where(keep, -per_class.sum(1), 0.0)
    if reduction == "mean":
        denom = keep.sum() if weight is None else T.where(keep, weight[T.where(keep, t, 0)], 0.0).sum()
        smooth = smooth.sum() / denom
    else:
        smooth = _reduce(smooth.reshape(target.shape) if reduction == "none" else smooth, reduction)
    return _named(nll * (1 - label_smoothing) + smooth * (label_smoothing / n_classes), "AddBackward0")


def binary_cross_entropy(x: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean"):
    """-(t log x + (1-t) log(1-x)) with each log clamped at -100, as PyTorch does."""
    if tuple(x.shape) != tuple(target.shape):
        raise ValueError(f"Using a target size ({fmt(target.shape)}) that is different to the input size "
                         f"({fmt(x.shape)}) is deprecated. Please ensure they have the same size.")
    with no_grad():
        if bool(((x < 0) | (x > 1)).any()):
            raise RuntimeError("binary_cross_entropy: all elements of input should be between 0 and 1")
    loss = T.binary_cross_entropy_elementwise(x, target)
    if weight is not None:
        loss = loss * weight
    return _named(_reduce(loss, reduction), "BinaryCrossEntropyBackward0")


def binary_cross_entropy_with_logits(x: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """BCE on sigmoid(x) in the stable form (1-t) x + (1 + (pw-1) t) (log(1 + exp(-|x|)) + max(-x, 0))."""
    if tuple(x.shape) != tuple(target.shape):
        raise ValueError(f"Target size ({fmt(target.shape)}) must be the same as input size ({fmt(x.shape)})")
    # -(pw t log sigmoid(x) + (1-t) log sigmoid(-x)), with a stable log_sigmoid primitive: its gradient
    # is right at x == 0, where a composite built on abs() and relu() loses half of it.
    positive = logsigmoid(x) * target if pos_weight is None else logsigmoid(x) * target * pos_weight
    loss = -(positive + logsigmoid(-x) * (1 - target))
    if weight is not None:
        loss = loss * weight
    return _named(_reduce(loss, reduction), "BinaryCrossEntropyWithLogitsBackward0")



# ---------------------------------------------------------------- ops-api block: smooth L1 / Huber losses
def smooth_l1_loss(x: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = x - target); beta = 0 is the L1 loss.

    >>> import tracegrad as tg
    >>> import tracegrad.nn.functional as F
    >>> F.smooth_l1_loss(tg.tensor([0.5, 3.0]), tg.zeros(2), reduction="none")
    tensor([0.1250, 2.5000])
    """
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    _check_sizes("smooth_l1_loss", x, target)
    if beta == 0:  # the L1 loss (PyTorch's node names: Abs, Mean or Sum)
        return _reduce((x - target).abs(), reduction)
    z = (x - target).abs()
    loss = T.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta)
    return _named(_reduce(loss, reduction), "SmoothL1LossBackward0")


def huber_loss(x: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta) (d = x - target); `weight` scales each element.

    >>> import tracegrad as tg
    >>> import tracegrad.nn.functional as F
    >>> F.huber_loss(tg.tensor([0.5, 3.0]), tg.zeros(2), reduction="none", delta=2.0)
    tensor([0.1250, 4.0000])
    """
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _check_sizes("huber_loss", x, target)
    z = (x - target).abs()
    loss = T.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta))
    if weight is None:
        return _named(_reduce(loss, reduction), "HuberLossBackward0")
    if tuple(weight.shape) != tuple(x.shape):
        raise ValueError("Weights and input must have the same size.")
    return _reduce(loss * weight, reduction)  # PyTorch weighs the unreduced loss, then reduces


def _legacy_reduction(size_average, reduce) -> str:
    """PyTorch's reading of the deprecated `size_average` and `reduce` flags as a reduction."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return ("mean" if size_average else "sum") if reduce else "none"


# ---------------------------------------------------------------- ops-api block: interpolate
_UPSAMPLE_NAMES = {("nearest", 1): "UpsampleNearest1DBackward0", ("nearest", 2): "UpsampleNearest2DBackward0",
                   ("nearest-exact", 1): "UpsampleNearestExact1DBackward0",
                   ("nearest-exact", 2): "UpsampleNearestExact2DBackward0",
                   ("linear", 1): "UpsampleLinear1DBackward0", ("bilinear", 2): "UpsampleBilinear2DBackward0"}
_MODES = "nearest | linear | bilinear | bicubic | trilinear | lanczos | area | nearest-exact"


def _nearest_source(n_in, n_out, scale, exact):
    """PyTorch's source index of each output position (its float32 arithmetic, so the same index at the edges)."""
    s = np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(n_in) / np.float32(n_out)
    dst = np.arange(n_out)
    src = np.float32((dst + 0.5) * np.float64(s)) if exact else dst.astype(np.float32) * s
    return np.minimum(np.floor(src).astype(np.int64), n_in - 1)


def _linear_source(n_in, n_out, scale, align_corners, np_dtype):
    """(index0, index1, lambda0, lambda1) of each output position, in the input's float type as PyTorch computes."""
    dst = np.arange(n_out)
    if n_in == n_out:
        one, zero = np.ones(n_out, np_dtype), np.zeros(n_out, np_dtype)
        return dst, dst, one, zero
    t = np_dtype.type
    if align_corners:
        ratio = t(n_in - 1) / t(n_out - 1) if n_out > 1 else t(0)
        src = ratio * dst.astype(np_dtype)
    else:
        ratio = t(1.0 / scale) if scale is not None and scale > 0 else t(n_in) / t(n_out)
        src = np.maximum(ratio * (dst.astype(np_dtype) + t(0.5)) - t(0.5), t(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = i0 + (i0 < n_in - 1)
    lam1 = np.clip(src - i0.astype(np_dtype), t(0), t(1)).astype(np_dtype)
    return i0, i1, (t(1) - lam1).astype(np_dtype), lam1


def _take(x: Tensor, axis: int, idx) -> Tensor:
    return x[(slice(None),) * axis + (idx,)]


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",  # noqa: A002 - PyTorch's name
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """Resize the spatial dims of a (N, C, W) or (N, C, H, W) input: modes 'nearest', 'nearest-exact',
    'linear' (3-D) and 'bilinear' (4-D, with `align_corners`), to `size` or by `scale_factor`, as PyTorch.

    Composed of index selections and weighted sums, so gradients (of any order) flow to the input.

    >>> import tracegrad as tg
    >>> import tracegrad.nn.functional as F
    >>> F.interpolate(tg.tensor([[[1.0, 3.0]]]), scale_factor=2, mode="linear")
    tensor([[[1.0000, 1.5000, 2.5000, 3.0000]]])
    """
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    else:
        align_corners = bool(align_corners)
    dim = input.ndim - 2
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input "
                                 f"with spatial dimensions of {list(input.shape[2:])} and output size of {size}. "
                                 f"Please provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                                 f"(o1, o2, ...,oK) format.")
            if not all(isinstance(s, int) for s in size):
                raise TypeError(f"expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                                f"Tuple[int, int, int], but got size with types {[type(s) for s in size]}")
        out_size = list(size) if isinstance(size, (list, tuple)) else [size] * dim
        scales = [None] * dim
    elif scale_factor is not None:
        if isinstance(scale_factor, (list, tuple)) and len(scale_factor) != dim:
            raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got "
                             f"input with spatial dimensions of {list(input.shape[2:])} and scale_factor of shape "
                             f"{scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                             f"scale_factor in (s1, s2, ...,sK) format.")
        scales = [float(s) for s in scale_factor] if isinstance(scale_factor, (list, tuple)) else \
            [float(scale_factor)] * dim
        out_size = [math.floor(n * s) for n, s in zip(input.shape[2:], scales)]
        if recompute_scale_factor:
            scales = [None] * dim
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported by tracegrad")
    if (mode, dim) not in _UPSAMPLE_NAMES:
        wants = {"linear": 3, "bilinear": 4, "trilinear": 5}.get(mode)
        if wants is not None and input.ndim in (3, 4, 5):
            raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs {wants}D input")
        if input.ndim in (3, 4, 5) and mode in _MODES.split(" | "):
            raise NotImplementedError(f"interpolate: mode '{mode}' on {input.ndim}D input is not supported by "
                                      f"tracegrad (supported: nearest and nearest-exact on 3D and 4D input, linear "
                                      f"on 3D, bilinear on 4D)")
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D) for "
                                  f"the modes: {_MODES} (got {mode})")
    if not input.is_floating_point():
        raise NotImplementedError(f"interpolate: not implemented for {input.dtype} input (mode '{mode}')")
    spatial = list(input.shape[2:])
    if min(spatial + out_size) <= 0:
        names = "HW"[-dim:] if dim <= 2 else "DHW"
        fmt_sizes = lambda sizes: ", ".join(f"{c}: {n}" for c, n in zip(names, sizes))
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got input ({fmt_sizes(spatial)}) "
                           f"output ({fmt_sizes(out_size)})")
    x = input
    if mode in ("nearest", "nearest-exact"):
        idx = [_nearest_source(n, m, s, mode == "nearest-exact") for n, m, s in zip(spatial, out_size, scales)]
        index = (slice(None), slice(None)) + (tuple(idx) if dim == 1 else (idx[0][:, None], idx[1][None, :]))
        out = x[index]
    else:
        # NOTE: the last dim first, then the one before: PyTorch's order of the weighted sums
        out = x
        np_dtype = x._data.dtype
        for axis in reversed(range(2, x.ndim)):
            i0, i1, lam0, lam1 = _linear_source(x.shape[axis], out_size[axis - 2], scales[axis - 2], align_corners,
                                                np_dtype)
            bshape = (-1,) + (1,) * (x.ndim - 1 - axis)
            w0, w1 = Tensor._make(lam0.reshape(bshape)), Tensor._make(lam1.reshape(bshape))
            out = _take(out, axis, i0) * w0 + _take(out, axis, i1) * w1
    return _named(out, _UPSAMPLE_NAMES[mode, dim])


__all__ += ["smooth_l1_loss", "huber_loss", "interpolate"]  # ops-api block


# ---------------------------------------------------------------- math-more block: activations
# Each is a composite of registry ops named as PyTorch's node; `inplace=True` writes the result into the input, as
# PyTorch's in-place forms (and, as there, an input that is a leaf requiring grad is an error).
from ..ops.inplace import _inplace  # noqa: E402
from ..ops.shapes import normalize_dim  # noqa: E402

_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _float_only(x: Tensor, kernel: str) -> None:
    if not x.is_floating_point():
        name = x.dtype.tensor_type.removesuffix("Tensor")
        raise NotImplementedError(f'"{kernel}_cpu" not implemented for \'{name}\'')


def _maybe_inplace(x: Tensor, inplace: bool, name: str, fn, inplace_node: str | None = None) -> Tensor:
    if not inplace:
        return fn(x)
    out = _inplace(x, name, fn)
    return _named(out, inplace_node) if inplace_node else out


def _elu(x: Tensor, alpha: float, scale: float = 1.0, input_scale: float = 1.0) -> Tensor:
    """PyTorch's elu kernel: x * scale where x > 0, else expm1(x * input_scale) * alpha * scale."""
    # NOTE: x <= 0 picks the exponential branch, so nan takes the linear one (its gradient passes), as in PyTorch;
    # expm1 sees 0 in place of x > 0: expm1 of a large x overflows, and the masked branch's gradient would be
    # 0 * inf = nan
    nonpos = x <= 0
    neg = T.where(nonpos, x, 0.0)
    neg = T.expm1(neg if input_scale == 1 else neg * input_scale)
    neg = neg if alpha * scale == 1 else neg * (alpha * scale)
    return T.where(nonpos, neg, x if scale == 1 else x * scale)


def elu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, else alpha * (exp(x) - 1).

    >>> import tracegrad as tg
    >>> elu(tg.tensor([1.0, -1.0]))
    tensor([ 1.0000, -0.6321])
    """
    _float_only(x, "elu")
    return _maybe_inplace(x, inplace, "elu_", lambda t: _named(_elu(t, alpha), "EluBackward0"), "EluBackward1")


def selu(x: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with the self-normalizing constants (PyTorch's node is EluBackward0)."""
    _float_only(x, "elu")
    return _maybe_inplace(x, inplace, "selu_", lambda t: _named(_elu(t, _SELU_ALPHA, _SELU_SCALE), "EluBackward0"),
                          "EluBackward1")


def celu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, else alpha * (exp(x / alpha) - 1)."""
    _float_only(x, "elu")
    return _maybe_inplace(x, inplace, "celu_", lambda t: _named(_elu(t, alpha, 1.0, 1.0 / alpha), "CeluBackward0"),
                          "CeluBackward1")


def silu(x: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (swish)."""
    _float_only(x, "silu")
    return _maybe_inplace(x, inplace, "silu_", lambda t: _named(t * sigmoid(t), "SiluBackward0"))


def _softplus(x: Tensor, beta: float = 1.0) -> Tensor:
    bx = x if beta == 1 else x * beta
    soft = T.logaddexp(bx, T._const(0.0, bx._data.dtype))  # log(1 + exp(bx)), without overflow
    return soft if beta == 1 else soft / beta


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold.

    >>> import tracegrad as tg
    >>> softplus(tg.tensor([0.0, 30.0]))
    tensor([ 0.6931, 30.0000])
    """
    _float_only(x, "softplus")
    return _named(T.where((x if beta == 1 else x * beta) > threshold, x, _softplus(x, beta)), "SoftplusBackward0")


def mish(x: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    _float_only(x, "mish")
    return _maybe_inplace(x, inplace, "mish_", lambda t: _named(t * tanh(_softplus(t)), "MishBackward0"))


def softsign(x: Tensor) -> Tensor:
    """x / (1 + |x|) (a composite in PyTorch too: its node is DivBackward0)."""
    return x / (x.abs() + 1)


def hardtanh(x: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """x clamped to [min_val, max_val]; the gradient passes strictly inside, as PyTorch's."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _maybe_inplace(x, inplace, "hardtanh_", lambda t: _named(
        T.where(t <= min_val, min_val, T.where(t >= max_val, max_val, t)), "HardtanhBackward0"))


def relu6(x: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6): hardtanh(x, 0, 6), as in PyTorch."""
    return hardtanh(x, 0.0, 6.0, inplace)


def hardsigmoid(x: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6."""
    _float_only(x, "hardsigmoid")
    # NOTE: PyTorch's gradient passes strictly inside (-3, 3); nan gives nan with a zero gradient (t * 0)
    return _maybe_inplace(x, inplace, "hardsigmoid_", lambda t: _named(
        T.where(t <= -3.0, 0.0, T.where(t < 3.0, (t + 3.0) / 6.0, T.where(t >= 3.0, 1.0, t * 0.0))),
        "HardsigmoidBackward0"))


def hardswish(x: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6."""
    _float_only(x, "hardswish")
    return _maybe_inplace(x, inplace, "hardswish_", lambda t: _named(_hardswish(t), "HardswishBackward0"))


def _hardswish(t: Tensor) -> Tensor:
    # NOTE: PyTorch's gradient: 0 up to -3, x / 3 + 1/2 below 3, else 1 (nan too); the quadratic reads x only
    # below 3, or its masked-out gradient would be 0 * nan = nan at nan
    below = t < 3.0
    u = T.where(below, t, 0.0)
    return T.where(t <= -3.0, 0.0, T.where(below, u * (u + 3.0) / 6.0, t))


def glu(x: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b), where a and b are the two halves of x along `dim`."""
    if x.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = normalize_dim("glu", dim, x.ndim)
    if x.shape[d] % 2:
        raise RuntimeError(f"glu: Halving dimension must be even, but dimension {d} is size {x.shape[d]}")
    a, b = T.chunk(x, 2, d)
    return _named(a * sigmoid(b), "GluBackward0")


def softmin(x: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """softmax(-x) along `dim`."""
    if dim is None:
        warnings.warn("Implicit dimension choice for softmin has been deprecated. Change the call to include dim=X "
                      "as an argument.", UserWarning, stacklevel=_stacklevel - 1)  # PyTorch's numbers: 3, 5 (Softmin)
        dim = 0 if x.ndim in (0, 1, 3) else 1
    return softmax(-x, dim, dtype=dtype)


def prelu(x: Tensor, weight: Tensor) -> Tensor:
    """x where x > 0, else weight * x, with one weight, or one per channel (dim 1)."""
    channels = x.shape[1] if x.ndim >= 2 else 1
    if weight.numel() != 1 and weight.numel() != channels:
        raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                           f"{weight.numel()} and channel size = {channels}.")
    w = weight.reshape(()) if weight.numel() == 1 else weight.reshape((channels,) + (1,) * (x.ndim - 2))
    return _named(T.where(x > 0, x, w * x), "PreluKernelBackward0")


def threshold(x: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """x where x > threshold, else value (nan stays nan)."""
    return _maybe_inplace(x, inplace, "threshold_", lambda t: _named(T.where(t <= threshold, value, t),
                                                                     "ThresholdBackward0"), "ThresholdBackward1")


def elu_(x: Tensor, alpha: float = 1.0) -> Tensor:
    return elu(x, alpha, inplace=True)


def celu_(x: Tensor, alpha: float = 1.0) -> Tensor:
    return celu(x, alpha, inplace=True)


def selu_(x: Tensor) -> Tensor:
    return selu(x, inplace=True)


def hardtanh_(x: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    return hardtanh(x, min_val, max_val, inplace=True)


def threshold_(x: Tensor, threshold: float, value: float) -> Tensor:
    return _threshold(x, threshold, value, inplace=True)  # (the argument hides the function's name here)


_threshold = threshold


__all__ += ["elu", "selu", "celu", "silu", "softplus", "mish", "softsign", "hardtanh", "relu6", "hardsigmoid",
            "hardswish", "glu", "softmin", "prelu", "threshold", "elu_", "celu_", "selu_", "hardtanh_",
            "threshold_"]
# ---------------------------------------------------------------- end of the math-more block


# ---------------------------------------------------------------- nn-more block: more layers, padding modes, losses
# NOTE: imported last, since `_functional_more` uses the helpers above; its `pad` (all of PyTorch's modes) is
# `pad` here too (conv2d's padding='same' calls it)
from ._functional_more import __all__ as _more_all  # noqa: E402
from ._functional_more import (  # noqa: E402, F401 - re-exported
    adaptive_avg_pool1d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    alpha_dropout,
    avg_pool1d,
    bilinear,
    conv1d,
    conv_transpose1d,
    conv_transpose2d,
    cosine_embedding_loss,
    cosine_similarity,
    dropout1d,
    dropout2d,
    feature_alpha_dropout,
    fold,
    gaussian_nll_loss,
    group_norm,
    hinge_embedding_loss,
    instance_norm,
    kl_div,
    margin_ranking_loss,
    max_pool1d,
    multi_margin_loss,
    multilabel_soft_margin_loss,
    normalize,
    pad,
    pairwise_distance,
    poisson_nll_loss,
    rms_norm,
    soft_margin_loss,
    triplet_margin_loss,
    unfold,
)

__all__ += [n for n in _more_all if n not in __all__]  # nn-more block

# ---------------------------------------------------------------- attention block (nn/attention.py)
from .attention import (  # noqa: E402, F401 - re-exported; _canonical_mask and _none_or_dtype as in PyTorch
    _canonical_mask,
    _none_or_dtype,
    multi_head_attention_forward,
    scaled_dot_product_attention,
)

__all__ += ["scaled_dot_product_attention", "multi_head_attention_forward"]  # attention block
