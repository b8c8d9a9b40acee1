"""Registry entries for convolution and pooling, as real array code (no Python loops over pixels).

A convolution is im2col through numpy stride tricks plus one BLAS matmul per group; its backward is
two more registry ops (`conv2d_input_grad`, `conv2d_weight_grad`) whose own VJPs are the three ops
again, so gradients of gradients work. Pooling follows the same pattern. Python loops run only over
kernel offsets (at most kh * kw iterations), each one a strided array operation.

Params: stride, padding, dilation are (h, w) pairs; `groups` an int.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import dtypes
from . import primitives as P
from .registry import NUMPY_EMIT, REGISTRY, Kind, Op, numpy_forward, register
from .registry import AbstractValue as AV
from .shapes import broadcast_shapes, broadcastable_to, fmt

OPAQUE = Kind.OPAQUE


def _F():
    from . import functions
    return functions


def out_size(n, k, s, p, d, op="conv2d"):
    size = (n + 2 * p - d * (k - 1) - 1) // s + 1
    if size <= 0:
        raise RuntimeError(f"{op}: input size {n} with padding {p} is too small for kernel size {k} "
                           f"(dilation {d}): the output size would be {size}")
    return size


def _pad(x, padding, value=0.0):
    ph, pw = padding
    if ph == pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _windows(xp, kernel, stride, dilation, out_hw):
    """(N, C, OH, OW, KH, KW) strided view of the padded input: no copy."""
    n, c = xp.shape[:2]
    sn, sc, sh, sw = xp.strides
    return as_strided(xp, (n, c, out_hw[0], out_hw[1], kernel[0], kernel[1]),
                      (sn, sc, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1]), writeable=False)


def _add_windows(target, cols, stride, dilation, out_hw):
    """target[n, c, i*s + k*d, ...] += cols[kh, kw][n, c, i, j]: the adjoint of `_windows`, one add per offset.

    `cols` is indexed by kernel offset first: cols[kh, kw] is an (N, C, OH, OW) array (or view).
    """
    oh, ow = out_hw
    for kh in range(len(cols)):
        for kw in range(len(cols[kh])):
            h0, w0 = kh * dilation[0], kw * dilation[1]
            target[:, :, h0:h0 + stride[0] * (oh - 1) + 1:stride[0], w0:w0 + stride[1] * (ow - 1) + 1:stride[1]] += \
                cols[kh][kw]
    return target


def _im2col(x, kernel, stride, padding, dilation, out_hw):
    """(C*KH*KW, N*OH*OW) patches, one column per output position: the one copy a convolution makes."""
    win = _windows(_pad(x, padding), kernel, stride, dilation, out_hw)  # (N, C, OH, OW, KH, KW), a view
    return np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3)).reshape(x.shape[1] * kernel[0] * kernel[1], -1)


def _per_group(groups, a, b, fn):
    """fn on matching row blocks of a and b for each group, stacked back along rows."""
    if groups == 1:
        return fn(a, b)
    ra, rb = a.shape[0] // groups, b.shape[0] // groups
    return np.concatenate([fn(a[i * ra:(i + 1) * ra], b[i * rb:(i + 1) * rb]) for i in range(groups)])


def _crop(xp, padding):
    ph, pw = padding
    return xp[:, :, ph:xp.shape[2] - ph, pw:xp.shape[3] - pw]


# ---------------------------------------------------------------- convolution
def _conv_out_hw(x_shape, w_shape, stride, padding, dilation):
    return tuple(out_size(x_shape[2 + i], w_shape[2 + i], stride[i], padding[i], dilation[i]) for i in range(2))


def _conv2d(x, w, stride, padding, dilation, groups):
    out_hw = _conv_out_hw(x.shape, w.shape, stride, padding, dilation)
    cols = _im2col(x, w.shape[2:], stride, padding, dilation, out_hw)  # (C*K, N*P)
    # NOTE: one BLAS GEMM per group, (O, C*K) @ (C*K, N*P); numpy's batched matmul does not reach BLAS here
    out = _per_group(groups, w.reshape(w.shape[0], -1), cols, np.matmul)
    return np.ascontiguousarray(out.reshape((w.shape[0], x.shape[0]) + out_hw).transpose(1, 0, 2, 3))


def _as_rows(g):
    """(N, O, OH, OW) -> (O, N*OH*OW), the GEMM layout of the output."""
    return np.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(g.shape[1], -1)


def _conv2d_input_grad(g, w, x_shape, stride, padding, dilation, groups):
    n, c, h, wd = x_shape
    kh, kw = w.shape[2:]
    wt = w.reshape(groups, w.shape[0] // groups, -1).transpose(0, 2, 1).reshape(-1, w.shape[0] // groups)
    cols = _per_group(groups, wt, _as_rows(g), np.matmul)  # (C*K, N*P)
    cols = cols.reshape((c, kh, kw, n) + g.shape[2:]).transpose(1, 2, 3, 0, 4, 5)  # [kh][kw] -> (N, C, OH, OW)
    xp = np.zeros((n, c, h + 2 * padding[0], wd + 2 * padding[1]), g.dtype)
    _add_windows(xp, cols, stride, dilation, g.shape[2:])
    return np.ascontiguousarray(_crop(xp, padding))


def _conv2d_weight_grad(x, g, w_shape, stride, padding, dilation, groups):
    cols = _im2col(x, w_shape[2:], stride, padding, dilation, g.shape[2:])  # (C*K, N*P)
    return _per_group(groups, _as_rows(g), cols, lambda gr, cr: gr @ cr.T).reshape(w_shape)


def _conv2d_infer(x, w, stride, padding, dilation, groups):
    if x.ndim != 4 or w.ndim != 4:
        raise RuntimeError(f"conv2d: expected a 4-D input (N, C, H, W) and a 4-D weight (O, C/groups, KH, KW), got "
                           f"input {fmt(x.shape)} and weight {fmt(w.shape)}")
    if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
        raise RuntimeError(f"conv2d: Given groups={groups}, weight of size {fmt(w.shape)}, expected input"
                           f"{fmt(x.shape)} to have {w.shape[1] * groups} channels, but got {x.shape[1]} channels "
                           f"instead")
    if x.dtype is not w.dtype:
        raise RuntimeError(f"conv2d: expected input and weight to have the same dtype, got {x.dtype} and {w.dtype}")
    return AV((x.shape[0], w.shape[0]) + _conv_out_hw(x.shape, w.shape, stride, padding, dilation), x.dtype)


conv2d = register(Op(
    "conv2d", OPAQUE, _conv2d, _conv2d_infer,
    (lambda g, out, x, w, **p: _F().conv2d_input_grad(g, w, x.shape, **p),
     lambda g, out, x, w, **p: _F().conv2d_weight_grad(x, g, w.shape, **p)),
    (0, 1), backward_name="ConvolutionBackward0", arity=2))
conv2d_input_grad = register(Op(
    "conv2d_input_grad", OPAQUE, _conv2d_input_grad,
    # NOTE: the batch dimension is g's (equal to x_shape[0]), so symbolic sizes follow it through this op
    lambda g, w, x_shape, **p: AV((g.shape[0],) + tuple(x_shape[1:]), g.dtype),
    (lambda gg, out, g, w, x_shape, **p: _F().conv2d_raw(gg, w, **p),
     lambda gg, out, g, w, x_shape, **p: _F().conv2d_weight_grad(gg, g, w.shape, **p)),
    (0, 1), backward_name="ConvolutionBackwardBackward0", arity=2))
conv2d_weight_grad = register(Op(
    "conv2d_weight_grad", OPAQUE, _conv2d_weight_grad,
    lambda x, g, w_shape, **p: AV(tuple(w_shape), x.dtype),
    (lambda gw, out, x, g, w_shape, **p: _F().conv2d_input_grad(g, gw, x.shape, **p),
     lambda gw, out, x, g, w_shape, **p: _F().conv2d_raw(x, gw, **p)),
    (0, 1), backward_name="ConvolutionBackwardBackward0", arity=2))


# ---------------------------------------------------------------- pooling
def _pool_infer(name):
    def infer(x, kernel, stride, padding, dilation=(1, 1), **_):
        if x.ndim not in (3, 4):
            raise RuntimeError(f"{name}: expected a 3-D or 4-D input, got shape {fmt(x.shape)}")
        if any(p > k // 2 for p, k in zip(padding, kernel)):
            raise RuntimeError(f"{name}: pad should be at most half of effective kernel size, but got pad={padding} "
                               f"and kernel_size={kernel}")
        hw = tuple(out_size(x.shape[-2 + i], kernel[i], stride[i], padding[i], dilation[i], name) for i in range(2))
        return AV(x.shape[:-2] + hw, x.dtype)
    return infer


def _argmax_windows(x, kernel, stride, padding, dilation):
    """For each output position: which kernel offset holds the window's max (first one on ties)."""
    hw = tuple(out_size(x.shape[2 + i], kernel[i], stride[i], padding[i], dilation[i]) for i in range(2))
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    win = _windows(_pad(x, padding, fill), kernel, stride, dilation, hw)
    return win.reshape(win.shape[:4] + (-1,)).argmax(axis=4), hw


def _max_pool2d_select(v, x, kernel, stride, padding, dilation):
    idx, hw = _argmax_windows(x, kernel, stride, padding, dilation)
    win = _windows(_pad(v, padding), kernel, stride, dilation, hw)
    return np.take_along_axis(win.reshape(win.shape[:4] + (-1,)), idx[..., None], axis=4)[..., 0]


def _max_pool2d_scatter(g, x, kernel, stride, padding, dilation):
    idx, hw = _argmax_windows(x, kernel, stride, padding, dilation)
    cols = np.zeros(g.shape + tuple(kernel), g.dtype)
    flat = cols.reshape(g.shape + (-1,))
    np.put_along_axis(flat, idx[..., None], g[..., None], axis=4)
    xp = np.zeros(x.shape[:2] + (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1]), g.dtype)
    return np.ascontiguousarray(_crop(_add_windows(xp, cols.transpose(4, 5, 0, 1, 2, 3), stride, dilation, hw),
                                      padding))


def _batched(fn):
    """Pooling kernels work on (N, C, H, W); (C, H, W) inputs get a batch dim of 1."""
    def wrapped(*arrays, **params):
        if arrays[0].ndim == 3:
            return fn(*[a[None] for a in arrays], **params)[0]
        return fn(*arrays, **params)
    return wrapped


# max_pool2d(x) is select(x, x): the values of x at the argmax of x; `x` as second input only
# chooses positions and gets no gradient.
max_pool2d_select = register(Op(
    "max_pool2d_select", OPAQUE, _batched(_max_pool2d_select),
    lambda v, x, **p: _pool_infer("max_pool2d")(x, **p),
    (lambda g, out, v, x, **p: _F().max_pool2d_scatter(g, x, **p), None), (1,),
    backward_name="MaxPool2DWithIndicesBackward0", arity=2, edges=(0,)))
max_pool2d_scatter = register(Op(
    "max_pool2d_scatter", OPAQUE, _batched(_max_pool2d_scatter),
    lambda g, x, **p: AV(x.shape, g.dtype),
    (lambda gg, out, g, x, **p: _F().max_pool2d_select(gg, x, **p), None), (1,),
    backward_name="MaxPool2DWithIndicesBackwardBackward0", arity=2, edges=(0,)))


def _divisor(x_shape, kernel, stride, padding, count_include_pad, hw):
    if count_include_pad or padding == (0, 0):
        return float(kernel[0] * kernel[1])
    ones = np.ones((1, 1) + tuple(x_shape[-2:]))
    win = _windows(_pad(ones, padding), kernel, stride, (1, 1), hw)
    return win.sum(axis=(4, 5))[0, 0]  # (OH, OW): the number of real (unpadded) elements per window


def _avg_pool2d(x, kernel, stride, padding, count_include_pad):
    hw = tuple(out_size(x.shape[2 + i], kernel[i], stride[i], padding[i], 1) for i in range(2))
    win = _windows(_pad(x, padding), kernel, stride, (1, 1), hw)
    return (win.sum(axis=(4, 5)) / _divisor(x.shape, kernel, stride, padding, count_include_pad, hw)).astype(x.dtype)


def _avg_pool2d_backward(g, x_shape, kernel, stride, padding, count_include_pad):
    x_shape = (g.shape[0],) + tuple(x_shape[-3:]) if len(x_shape) == 3 else tuple(x_shape)
    hw = g.shape[2:]
    share = (g / _divisor(x_shape, kernel, stride, padding, count_include_pad, hw)).astype(g.dtype)
    cols = [[share] * kernel[1]] * kernel[0]  # every kernel offset receives the same share
    xp = np.zeros(x_shape[:2] + (x_shape[2] + 2 * padding[0], x_shape[3] + 2 * padding[1]), g.dtype)
    return np.ascontiguousarray(_crop(_add_windows(xp, cols, stride, (1, 1), hw), padding))


avg_pool2d = register(Op(
    "avg_pool2d", OPAQUE, _batched(_avg_pool2d), _pool_infer("avg_pool2d"),
    (lambda g, out, x, **p: _F().avg_pool2d_backward(g, x.shape, **p),),
    backward_name="AvgPool2DBackward0", arity=1))
avg_pool2d_backward = register(Op(
    "avg_pool2d_backward", OPAQUE, _batched(_avg_pool2d_backward),
    # NOTE: a batched input's batch dimension is g's, so symbolic sizes follow it through this op
    lambda g, x_shape, **p: AV((g.shape[0],) + tuple(x_shape[1:]) if len(x_shape) == len(g.shape) == 4
                               else tuple(x_shape), g.dtype),
    (lambda gg, out, g, x_shape, **p: _F().avg_pool2d_raw(gg, **p),),
    backward_name="AvgPool2DBackwardBackward0", arity=1))


# ================================================================ layers-graph: linear, losses, log_softmax
# One node each, as in PyTorch (AddmmBackward0, MseLossBackward0, NllLossBackward0, LogSoftmaxBackward0,
# ConvolutionBackward0 with its bias). Each has a `decompose` rule: the primitives its old composite applied,
# in that order. The rule is also its numpy forward (`numpy_forward`), and the compiler's lowering pass
# (`compiler.passes.lower_composites`) turns the node back into those primitives before fusion, so the
# native backend fuses and runs what it ran before (a matmul, then the bias add fused with what follows).
# ---------------------------------------------------------------- addmm: bias + x @ wt (wt: the transposed weight)
def _addmm_decompose(emit, bias, x, wt):
    return emit(P.add, emit(P.matmul, x, wt), bias)


def _addmm_infer(bias, x, wt):
    if x.ndim != 2 or wt.ndim != 2:
        raise RuntimeError(f"addmm: mat1 and mat2 must be matrices, got shapes {fmt(x.shape)} and {fmt(wt.shape)}")
    if x.shape[1] != wt.shape[0]:
        raise RuntimeError(f"addmm: mat1 and mat2 shapes cannot be multiplied ({x.shape[0]}x{x.shape[1]} and "
                           f"{wt.shape[0]}x{wt.shape[1]})")
    if not bias.dtype is x.dtype is wt.dtype:
        raise RuntimeError(f"addmm: expected input, mat1 and mat2 to have the same dtype, but got {bias.dtype}, "
                           f"{x.dtype} and {wt.dtype}")
    shape = (x.shape[0], wt.shape[1])
    if not broadcastable_to(bias.shape, shape):
        raise RuntimeError(f"addmm: the input of shape {fmt(bias.shape)} can't be broadcast to the product's shape "
                           f"{fmt(shape)}")
    return AV(shape, x.dtype)


# the bias's gradient is g: the engine sums it back to the bias's shape, as for any broadcast add
addmm = register(Op(
    "addmm", OPAQUE, numpy_forward(_addmm_decompose), _addmm_infer,
    (lambda g, out, b, x, wt: g, lambda g, out, b, x, wt: g @ wt.mT, lambda g, out, b, x, wt: x.mT @ g), (1, 2),
    arity=3, saved_by=((), (2,), (1,)), decompose=_addmm_decompose))


# ---------------------------------------------------------------- conv2d with its bias
def _conv2d_bias_decompose(emit, x, w, b, **p):
    return emit(P.add, emit(conv2d, x, w, **p), emit(P.reshape, b, shape=(1, b.shape[0], 1, 1)))


def _conv2d_bias_infer(x, w, b, **p):
    out = _conv2d_infer(x, w, **p)
    if b.shape != (w.shape[0],) or b.dtype is not x.dtype:
        raise RuntimeError(f"conv2d: expected a bias of shape {fmt((w.shape[0],))} and dtype {x.dtype}, got "
                           f"{fmt(b.shape)} {b.dtype}")
    return out


conv2d_bias = register(Op(
    "conv2d_bias", OPAQUE, numpy_forward(_conv2d_bias_decompose), _conv2d_bias_infer,
    (lambda g, out, x, w, b, **p: _F().conv2d_input_grad(g, w, x.shape, **p),
     lambda g, out, x, w, b, **p: _F().conv2d_weight_grad(x, g, w.shape, **p),
     lambda g, out, x, w, b, **p: g.sum((0, 2, 3))),
    (0, 1), backward_name="ConvolutionBackward0", arity=3, saved_by=((1,), (0,), ()),
    decompose=_conv2d_bias_decompose))


# ---------------------------------------------------------------- mse_loss
def _mse_decompose(emit, x, t, reduction):
    d = emit(P.sub, x, t)
    loss = emit(P.mul, d, d)
    if reduction == "none":
        return loss
    total = emit(P.sum_, loss, axes=tuple(range(len(loss.shape))), keepdim=False)
    if reduction == "sum":
        return total
    return emit(P.div, total, emit.const(math.prod(loss.shape), total))


def _mse_infer(x, t, reduction):
    if x.dtype is not t.dtype:
        raise TypeError(f"mse_loss: input and target must share a dtype after promotion, got {x.dtype} and "
                        f"{t.dtype}")
    shape = broadcast_shapes("mse_loss", x.shape, t.shape)
    return AV(shape if reduction == "none" else (), x.dtype)


def _mse_vjp(sign):
    # NOTE: PyTorch's mse_loss_backward: norm * (x - t) * g with norm = 2/n for the mean (n: the elements)
    def rule(g, out, x, t, reduction):
        d = x - t if sign > 0 else t - x
        n = d.numel()
        norm = 2.0 if reduction != "mean" else (2.0 / n if n else math.nan)
        return d * norm * g
    return rule


mse_loss = register(Op("mse_loss", OPAQUE, numpy_forward(_mse_decompose), _mse_infer, (_mse_vjp(1), _mse_vjp(-1)),
                       (0, 1), arity=2, decompose=_mse_decompose))


# ---------------------------------------------------------------- log_softmax
def _log_softmax_decompose(emit, x, axes):
    # NOTE: x - logsumexp(x), shifted by the max (where finite) so exp() can't overflow; over no elements there
    # is nothing to shift
    if 0 in x.shape:
        lse = emit(P.log, emit(P.sum_, emit(P.exp, x), axes=axes, keepdim=True))
        return emit(P.sub, x, lse)
    m = emit(P.amax, x, axes=axes, keepdim=True)
    m = emit(P.where, emit(REGISTRY["eq"], emit(P.abs_, m), emit.const(math.inf, m)), emit.const(0.0, m), m)
    lse = emit(P.add, emit(P.log, emit(P.sum_, emit(P.exp, emit(P.sub, x, m)), axes=axes, keepdim=True)), m)
    return emit(P.sub, x, lse)


def _log_softmax_vjp(g, out, x, axes):
    # PyTorch's formula: g - exp(out) * sum(g)
    return g - out.exp() * _F().sum(g, axes, keepdim=True)


log_softmax = register(Op("log_softmax", OPAQUE, numpy_forward(_log_softmax_decompose), lambda x, axes: x,
                          (_log_softmax_vjp,), ("out",), arity=1, decompose=_log_softmax_decompose))


# ---------------------------------------------------------------- nll_loss
def nll_index(x_shape) -> tuple:
    """The index picking ``x[n, t[n, d...], d...]`` (the target's class at each position): broadcasting aranges
    around the target, which fills `Slot(0)`."""
    if len(x_shape) == 1:
        return (P.Slot(0),)
    k = len(x_shape) - 2
    index = [np.arange(x_shape[0]).reshape((-1,) + (1,) * k), P.Slot(0)]
    for j, n in enumerate(x_shape[2:]):
        index.append(np.arange(n).reshape((1,) * (j + 1) + (-1,) + (1,) * (k - j - 1)))
    return tuple(index)


def _nll_weights(emit, x, keep, safe, w):
    if not w:
        return emit(P.cast, keep, dtype=emit.dtype(x))
    return emit(P.where, keep, emit(P.getitem, w[0], safe, index=(P.Slot(0),)), emit.const(0.0, x))


def _nll_decompose(emit, x, t, *w, reduction, ignore_index):
    keep = emit(REGISTRY["ne"], t, emit.const(ignore_index, t))
    safe = emit(P.where, keep, t, emit.const(0, t))
    picked = emit(P.getitem, x, safe, index=nll_index(x.shape))
    weights = _nll_weights(emit, x, keep, safe, w)
    losses = emit(P.neg, emit(P.mul, picked, weights))
    if reduction == "none":
        return losses
    axes = tuple(range(len(losses.shape)))
    total = emit(P.sum_, losses, axes=axes, keepdim=False)
    if reduction == "sum":
        return total
    return emit(P.div, total, emit(P.sum_, weights, axes=axes, keepdim=False))


def _nll_forward(x, t, *w, reduction, ignore_index):
    n_classes = x.shape[0 if x.ndim == 1 else 1]
    bad = (t != ignore_index) & ((t < 0) | (t >= n_classes))
    if bad.any():
        raise IndexError(f"Target {int(t[bad].reshape(-1)[0])} is out of bounds for {n_classes} classes")
    return _nll_decompose(NUMPY_EMIT, x, t, *w, reduction=reduction, ignore_index=ignore_index)


def _nll_infer(x, t, *w, reduction, ignore_index):
    expected = () if x.ndim == 1 else (x.shape[0],) + tuple(x.shape[2:])
    if t.dtype is not dtypes.int64 or tuple(t.shape) != expected:
        raise RuntimeError(f"nll_loss: expected an int64 target of shape {fmt(expected)} for input of shape "
                           f"{fmt(x.shape)}, got {t.dtype} {fmt(t.shape)}")
    n_classes = x.shape[0 if x.ndim == 1 else 1]
    if w and (tuple(w[0].shape) != (n_classes,) or w[0].dtype is not x.dtype):
        raise RuntimeError(f"nll_loss: expected a weight of shape {fmt((n_classes,))} and dtype {x.dtype}, got "
                           f"{fmt(w[0].shape)} {w[0].dtype}")
    return AV(t.shape if reduction == "none" else (), x.dtype)


def _nll_vjp(g, out, x, t, *w, reduction, ignore_index, i):
    # -weight[t] * g (divided by the total weight for the mean) at each target's class, zeros elsewhere
    fns = _F()
    keep = fns.ne(t, ignore_index)
    safe = fns.where(keep, t, 0)
    weights = keep.to(x.dtype) if not w else fns.where(keep, fns.getitem_raw(w[0], (P.Slot(0),), (safe,)), 0.0)
    if reduction == "mean":
        g = g / weights.sum()
    return fns.index_add_raw(-(g * weights), x.shape, nll_index(x.shape), safe)


# NOTE: the target and the weights are inputs (a compiled graph reads each call's), not autograd edges: PyTorch's
# NllLossBackward0 lists only the input in next_functions (and refuses weights that require grad)
nll_loss = register(Op("nll_loss", OPAQUE, _nll_forward, _nll_infer, (_nll_vjp,), (1, 2), edges=(0,),
                       backward_name="NllLossBackward0", decompose=_nll_decompose))
# ================================================================ end layers-graph
