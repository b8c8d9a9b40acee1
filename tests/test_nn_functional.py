"""`tracegrad.nn.functional`, table-driven: every layer and loss against a numpy reference, gradients against
central differences (float64), second-order gradients of the ops with their own backward ops, errors, and the
whole table against PyTorch (skipped without torch).

Each row's `fn(ns, *tensors)` is written against a namespace `ns` (`ns.m` the library, `ns.F` its functional
module, `ns.c(array)` a constant tensor in the dtype under test), so the same line runs in tracegrad and torch;
`ref(*arrays)` is the numpy reference, written directly (loops on tiny shapes) rather than from tracegrad.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from op_table import make_inputs

import tracegrad as tg
import tracegrad.nn.functional as F


# ---------------------------------------------------------------- namespaces and inputs
def _ns(m, fdt):
    """fn's view of a library: tracegrad or torch, with constants made in the float dtype `fdt`."""
    functional = m.nn.functional

    def const(a):
        a = np.asarray(a)
        return m.tensor(a.astype(fdt) if a.dtype.kind == "f" else a)

    flatten = getattr(functional, "flatten", None) or m.flatten  # torch has no F.flatten
    return SimpleNamespace(m=m, F=functional, c=const, flatten=flatten)


TG64 = _ns(tg, np.float64)


@dataclass
class Case:
    name: str
    fn: Callable                 # fn(ns, *tensors)
    ref: Callable                # ref(*numpy arrays) -> array
    shapes: list                 # variants: each a tuple of input shapes
    domain: str = "real"         # real | away (0.3 <= |x| <= 1.5) | prob (0.05..0.95) | big (|x| in 20..200)
    grad: bool = True            # gradcheck (float64 central differences)
    grad2: bool = False          # gradgradcheck: the ops whose backward ops have their own VJPs
    parity: bool = True          # part of the torch parity run

    def ids(self):
        return [f"{self.name}-{'x'.join('_'.join(map(str, s)) or 's' for s in v)}" for v in self.shapes]


# ---------------------------------------------------------------- numpy references
def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))  # no overflow for huge |x|


def _log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _softmax(x, axis):
    return np.exp(_log_softmax(x, axis))


def _gelu(x):
    return x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _linear(x, w, b=None):
    out = np.einsum("...i,oi->...o", x, w)
    return out if b is None else out + b


def _reduce(loss, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](loss)


def _same_padding(w_shape, dilation):
    """PyTorch's padding='same': total d*(k-1) per dim, the odd element on the bottom/right."""
    pads = []
    for d, k in zip(dilation, w_shape[2:]):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return pads


def _conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Direct loops over (n, o, i, j)."""
    if x.ndim == 3:
        return _conv2d(x[None], w, b, stride, padding, dilation, groups)[0]
    stride = (stride, stride) if isinstance(stride, int) else stride
    dilation = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "valid":
        pads = [(0, 0), (0, 0)]
    elif padding == "same":
        pads = _same_padding(w.shape, dilation)
    else:
        p = (padding, padding) if isinstance(padding, int) else padding
        pads = [(p[0], p[0]), (p[1], p[1])]
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    n, _, h, wd = xp.shape
    o, cg, kh, kw = w.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    og = o // groups
    out = np.zeros((n, o, oh, ow))
    for b_ in range(n):
        for c in range(o):
            g = c // og
            for i in range(oh):
                for j in range(ow):
                    h0, w0 = i * stride[0], j * stride[1]
                    patch = xp[b_, g * cg:(g + 1) * cg, h0:h0 + dilation[0] * (kh - 1) + 1:dilation[0],
                               w0:w0 + dilation[1] * (kw - 1) + 1:dilation[1]]
                    out[b_, c, i, j] = (patch * w[c]).sum() + (0.0 if b is None else b[c])
    return out


def _pool(x, kernel, stride=None, padding=0, dilation=1, mode="max", count_include_pad=True):
    """Direct loops over windows; max pads with -inf, avg divides by kh*kw or by the unpadded count."""
    if x.ndim == 3:
        return _pool(x[None], kernel, stride, padding, dilation, mode, count_include_pad)[0]
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    kernel, padding, dilation = pair(kernel), pair(padding), pair(dilation)
    stride = kernel if stride is None else pair(stride)
    n, c, h, w = x.shape
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x, [(0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2], constant_values=fill)
    real = np.pad(np.ones((h, w)), [(padding[0],) * 2, (padding[1],) * 2])
    oh = (h + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs = slice(i * stride[0], i * stride[0] + dilation[0] * (kernel[0] - 1) + 1, dilation[0])
            ws = slice(j * stride[1], j * stride[1] + dilation[1] * (kernel[1] - 1) + 1, dilation[1])
            win = xp[:, :, hs, ws]
            if mode == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
            else:
                div = kernel[0] * kernel[1] if count_include_pad else real[hs, ws].sum()
                out[:, :, i, j] = win.sum(axis=(2, 3)) / div
    return out


def _adaptive_avg(x, size):
    oh, ow = (size, size) if isinstance(size, int) else size
    h, w = x.shape[-2:]
    oh, ow = oh or h, ow or w
    out = np.zeros(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, h1 = (i * h) // oh, math.ceil((i + 1) * h / oh)
            w0, w1 = (j * w) // ow, math.ceil((j + 1) * w / ow)
            out[..., i, j] = x[..., h0:h1, w0:w1].mean(axis=(-2, -1))
    return out


def _layer_norm(x, ndims, w=None, b=None, eps=1e-5):
    axes = tuple(range(x.ndim - ndims, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    out = (x - mu) / np.sqrt(var + eps)
    out = out if w is None else out * w
    return out if b is None else out + b


def _bn_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _batch_norm_train(x, w=None, b=None, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)  # biased, for normalizing
    out = (x - mu) / np.sqrt(var + eps)
    out = out if w is None else out * w.reshape(_bn_shape(x))
    return out if b is None else out + b.reshape(_bn_shape(x))


def _batch_norm_eval(x, rm, rv, w=None, b=None, eps=1e-5):
    s = _bn_shape(x)
    out = (x - rm.reshape(s)) / np.sqrt(rv.reshape(s) + eps)
    out = out if w is None else out * w.reshape(s)
    return out if b is None else out + b.reshape(s)


def _pad(x, pad, value=0.0):
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return np.pad(x, widths, constant_values=value)


def _nll(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    """Loops over samples; (N, C, d...) scores with (N, d...) targets."""
    if logp.ndim == 1:  # (C,) scores with a 0-D target
        return np.reshape(_nll(logp[None], np.asarray(target).reshape(1), weight, ignore_index, reduction), ())
    c = logp.shape[1]
    scores = np.moveaxis(logp, 1, -1).reshape(-1, c)
    t = np.asarray(target).reshape(-1)
    w = np.ones(c) if weight is None else weight
    losses, weights = np.zeros(len(t)), np.zeros(len(t))
    for i, k in enumerate(t):
        if k != ignore_index:
            losses[i] = -w[k] * scores[i, k]
            weights[i] = w[k]
    if reduction == "none":
        return losses.reshape(np.asarray(target).shape)
    return losses.sum() if reduction == "sum" else losses.sum() / weights.sum()


def _cross_entropy(x, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """PyTorch's definition, including its label-smoothing normalization by the picked weights."""
    class_dim = 0 if x.ndim == 1 else 1
    c = x.shape[class_dim]
    logp = _log_softmax(x, class_dim)
    wshape = [1] * x.ndim
    wshape[class_dim] = c
    w = np.ones(c) if weight is None else weight
    if np.asarray(target).dtype.kind == "f":  # class probabilities
        t = target * (1 - label_smoothing) + label_smoothing / c
        losses = -(logp * t * w.reshape(wshape)).sum(axis=class_dim)
        return losses.sum() / (x.size // c) if reduction == "mean" else _reduce(losses, reduction)
    nll = _nll(logp, target, weight, ignore_index, reduction)
    if not label_smoothing:
        return nll
    t = np.asarray(target)
    keep = t != ignore_index
    smooth = np.where(keep, -(logp * w.reshape(wshape)).sum(axis=class_dim), 0.0)
    if reduction == "mean":
        smooth = smooth.sum() / np.where(keep, w[np.where(keep, t, 0)], 0.0).sum()
    else:
        smooth = _reduce(smooth, reduction)
    return (1 - label_smoothing) * nll + smooth * (label_smoothing / c)


def _bce(x, t, w=None, reduction="mean"):
    with np.errstate(divide="ignore"):
        loss = -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log(1 - x), -100))
    return _reduce(loss if w is None else loss * w, reduction)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)  # stable for any |x|


def _bce_logits(x, t, w=None, reduction="mean", pos_weight=None):
    p = 1.0 if pos_weight is None else pos_weight
    loss = -(p * t * _log_sigmoid(x) + (1 - t) * _log_sigmoid(-x))
    return _reduce(loss if w is None else loss * w, reduction)


# ---------------------------------------------------------------- constants shared by fns and refs
IDX = np.array([[0, 3, 1], [3, 3, 2]])                   # embedding indices into 4 rows
RM, RV = np.array([0.5, -1.0, 0.25]), np.array([2.0, 0.5, 1.5])
T4 = np.array([1, 0, 3, 2, 1])                           # 5 samples, 4 classes
T4_IGN = np.array([1, -100, 3, 2, -100])
T4_IGN2 = np.array([1, 2, 3, 2, 0])                      # with ignore_index=2
W4 = np.array([0.3, 1.2, 0.7, 2.0])
TD = np.array([[0, 3, 1], [2, 2, 0]])                    # (N=2, d=3) targets for (2, 4, 3) scores
TD_IGN = np.array([[0, -100, 1], [2, 2, -100]])
_rng = np.random.default_rng(7)
P45 = _softmax(_rng.standard_normal((5, 4)), 1)          # probability targets
P243 = _softmax(_rng.standard_normal((2, 4, 3)), 1)
B34 = np.round(_rng.uniform(0, 1, (3, 4)), 2)            # soft binary targets in [0, 1]
B34_HARD = (_rng.uniform(0, 1, (3, 4)) > 0.5).astype(np.float64)
BW34 = _rng.uniform(0.5, 2.0, (3, 4))
PW4 = np.array([0.5, 1.0, 2.0, 3.0])
OUT_W = _rng.standard_normal((2, 3))  # for linear-in-output checks


def _cases():
    lin_shapes = [((3,), (5, 3), (5,)), ((2, 3), (5, 3), (5,)), ((2, 4, 3), (5, 3), (5,))]
    act_shapes = [((3, 4),), ((2, 3, 4),), ((5,),)]
    cases = [
        # -------------------------------------------------------- layers
        Case("linear", lambda ns, x, w, b: ns.F.linear(x, w, b), _linear, lin_shapes),
        Case("linear_nobias", lambda ns, x, w: ns.F.linear(x, w), _linear, [s[:2] for s in lin_shapes]),
        Case("relu", lambda ns, x: ns.F.relu(x), lambda x: np.maximum(x, 0), act_shapes, domain="away"),
        Case("leaky_relu", lambda ns, x: ns.F.leaky_relu(x), lambda x: np.where(x > 0, x, 0.01 * x),
             act_shapes[:1], domain="away"),
        Case("leaky_relu_0.2", lambda ns, x: ns.F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
             act_shapes[:2], domain="away"),
        Case("gelu", lambda ns, x: ns.F.gelu(x), _gelu, act_shapes),
        Case("gelu_tanh", lambda ns, x: ns.F.gelu(x, approximate="tanh"), _gelu_tanh, act_shapes),
        Case("sigmoid", lambda ns, x: ns.F.sigmoid(x), _sigmoid, act_shapes),
        Case("tanh", lambda ns, x: ns.F.tanh(x), np.tanh, act_shapes),
        Case("softmax", lambda ns, x: ns.F.softmax(x, dim=1), lambda x: _softmax(x, 1), act_shapes[:2]),
        Case("softmax_last", lambda ns, x: ns.F.softmax(x, dim=-1), lambda x: _softmax(x, -1), act_shapes),
        Case("log_softmax", lambda ns, x: ns.F.log_softmax(x, dim=1), lambda x: _log_softmax(x, 1),
             act_shapes[:2]),
        Case("log_softmax_0", lambda ns, x: ns.F.log_softmax(x, dim=0), lambda x: _log_softmax(x, 0), act_shapes),
        # -------------------------------------------------------- math-more activations: one variant each
        Case("silu", lambda ns, x: ns.F.silu(x), lambda x: x * _sigmoid(x), act_shapes[:1], grad2=True),
        Case("elu", lambda ns, x: ns.F.elu(x, alpha=0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)),
             act_shapes[:1], grad2=True),
        Case("selu", lambda ns, x: ns.F.selu(x), lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(x)),
             act_shapes[:1]),
        Case("celu", lambda ns, x: ns.F.celu(x, 1.5), lambda x: np.where(x > 0, x, 1.5 * np.expm1(x / 1.5)),
             act_shapes[:1]),
        Case("softplus", lambda ns, x: ns.F.softplus(x * 8, beta=0.5, threshold=2.0),
             lambda x: np.where(4 * x > 2, 8 * x, 2 * np.logaddexp(0, 4 * x)), act_shapes[:1], grad2=True),
        Case("softsign", lambda ns, x: ns.F.softsign(x), lambda x: x / (1 + np.abs(x)), act_shapes[:1]),
        Case("hardtanh", lambda ns, x: ns.F.hardtanh(x, -0.5, 0.8), lambda x: np.clip(x, -0.5, 0.8), act_shapes[:1],
             domain="away"),
        Case("relu6", lambda ns, x: ns.F.relu6(x * 5), lambda x: np.clip(x * 5, 0, 6), act_shapes[:1], domain="away"),
        Case("hardsigmoid", lambda ns, x: ns.F.hardsigmoid(x * 5), lambda x: np.clip(x * 5 + 3, 0, 6) / 6,
             act_shapes[:1], domain="away"),
        Case("hardswish", lambda ns, x: ns.F.hardswish(x * 5), lambda x: x * 5 * np.clip(x * 5 + 3, 0, 6) / 6,
             act_shapes[:1], domain="away"),
        Case("mish", lambda ns, x: ns.F.mish(x), lambda x: x * np.tanh(np.logaddexp(0, x)), act_shapes[:1],
             grad2=True),
        Case("glu", lambda ns, x: ns.F.glu(x, dim=1), lambda x: x[:, :2] * _sigmoid(x[:, 2:]), act_shapes[:1]),
        Case("softmin", lambda ns, x: ns.F.softmin(x, dim=1), lambda x: _softmax(-x, 1), act_shapes[:1]),
        Case("prelu", lambda ns, x, w: ns.F.prelu(x, w), lambda x, w: np.where(x > 0, x, w[:, None] * x),
             [((2, 3, 4), (3,))], domain="away"),
        Case("threshold", lambda ns, x: ns.F.threshold(x, 0.1, 20.0), lambda x: np.where(x > 0.1, x, 20.0),
             act_shapes[:1], domain="away"),
        Case("dropout_p0", lambda ns, x: ns.F.dropout(x, p=0.0, training=True), lambda x: x, act_shapes[:1]),
        Case("dropout_eval", lambda ns, x: ns.F.dropout(x, p=0.5, training=False), lambda x: x, act_shapes[:1]),
        Case("embedding", lambda ns, w: ns.F.embedding(ns.c(IDX), w), lambda w: w[IDX], [((4, 2),)]),
        Case("embedding_1d", lambda ns, w: ns.F.embedding(ns.c(IDX[0]), w), lambda w: w[IDX[0]], [((4, 2),)]),
        # padding_idx: the padding row gets no gradient, so it is not the finite-difference gradient
        Case("embedding_padding", lambda ns, w: ns.F.embedding(ns.c(IDX), w, padding_idx=3), lambda w: w[IDX],
             [((4, 2),)], grad=False),
        Case("embedding_padding_neg", lambda ns, w: ns.F.embedding(ns.c(IDX), w, padding_idx=-1),
             lambda w: w[IDX], [((4, 2),)], grad=False),
        Case("layer_norm", lambda ns, x, w, b: ns.F.layer_norm(x, (4,), w, b),
             lambda x, w, b: _layer_norm(x, 1, w, b), [((3, 4), (4,), (4,)), ((2, 3, 4), (4,), (4,))]),
        Case("layer_norm_2d", lambda ns, x, w, b: ns.F.layer_norm(x, (3, 4), w, b, eps=1e-3),
             lambda x, w, b: _layer_norm(x, 2, w, b, 1e-3), [((2, 3, 4), (3, 4), (3, 4))]),
        Case("layer_norm_noaffine", lambda ns, x: ns.F.layer_norm(x, [4]), lambda x: _layer_norm(x, 1),
             [((3, 4),)]),
        Case("batch_norm_train", lambda ns, x, w, b: ns.F.batch_norm(x, None, None, w, b, training=True),
             _batch_norm_train, [((4, 3), (3,), (3,)), ((2, 3, 2, 2), (3,), (3,)), ((2, 3, 4), (3,), (3,))]),
        Case("batch_norm_train_noaffine", lambda ns, x: ns.F.batch_norm(x, None, None, training=True, eps=1e-3),
             lambda x: _batch_norm_train(x, eps=1e-3), [((3, 3, 2, 1),)]),
        Case("batch_norm_eval", lambda ns, x, w, b: ns.F.batch_norm(x, ns.c(RM), ns.c(RV), w, b, training=False),
             lambda x, w, b: _batch_norm_eval(x, RM, RV, w, b), [((4, 3), (3,), (3,)), ((2, 3, 2, 2), (3,), (3,))]),
        # -------------------------------------------------------- convolution
        Case("conv2d", lambda ns, x, w, b: ns.F.conv2d(x, w, b), _conv2d, [((2, 3, 5, 5), (4, 3, 3, 3), (4,))],
             grad2=True),
        Case("conv2d_nobias", lambda ns, x, w: ns.F.conv2d(x, w), _conv2d, [((1, 2, 4, 5), (3, 2, 2, 3))],
             grad2=True),
        Case("conv2d_stride_pad", lambda ns, x, w, b: ns.F.conv2d(x, w, b, stride=2, padding=1),
             lambda x, w, b: _conv2d(x, w, b, 2, 1), [((2, 2, 5, 6), (3, 2, 3, 3), (3,))], grad2=True),
        Case("conv2d_asym", lambda ns, x, w: ns.F.conv2d(x, w, stride=(2, 1), padding=(1, 0)),
             lambda x, w: _conv2d(x, w, None, (2, 1), (1, 0)), [((1, 2, 5, 4), (2, 2, 3, 2))]),
        Case("conv2d_dilation", lambda ns, x, w, b: ns.F.conv2d(x, w, b, padding=1, dilation=2),
             lambda x, w, b: _conv2d(x, w, b, 1, 1, 2), [((1, 2, 6, 6), (2, 2, 3, 3), (2,))], grad2=True),
        Case("conv2d_groups", lambda ns, x, w, b: ns.F.conv2d(x, w, b, groups=2),
             lambda x, w, b: _conv2d(x, w, b, groups=2), [((2, 4, 4, 4), (6, 2, 2, 2), (6,))], grad2=True),
        Case("conv2d_depthwise", lambda ns, x, w: ns.F.conv2d(x, w, padding=1, groups=3),
             lambda x, w: _conv2d(x, w, None, 1, 1, groups=3), [((1, 3, 4, 4), (3, 1, 3, 3))]),
        Case("conv2d_same", lambda ns, x, w, b: ns.F.conv2d(x, w, b, padding="same"),
             lambda x, w, b: _conv2d(x, w, b, padding="same"), [((1, 2, 5, 5), (2, 2, 3, 3), (2,))]),
        Case("conv2d_same_dilated", lambda ns, x, w: ns.F.conv2d(x, w, padding="same", dilation=2),
             lambda x, w: _conv2d(x, w, padding="same", dilation=2), [((1, 2, 6, 5), (2, 2, 3, 3))]),
        Case("conv2d_same_even_kernel", lambda ns, x, w: ns.F.conv2d(x, w, padding="same"),
             lambda x, w: _conv2d(x, w, padding="same"), [((1, 2, 5, 6), (3, 2, 2, 4))]),
        Case("conv2d_valid", lambda ns, x, w: ns.F.conv2d(x, w, padding="valid"),
             lambda x, w: _conv2d(x, w, padding="valid"), [((1, 2, 5, 5), (2, 2, 3, 3))]),
        Case("conv2d_unbatched", lambda ns, x, w, b: ns.F.conv2d(x, w, b, padding=1),
             lambda x, w, b: _conv2d(x, w, b, 1, 1), [((2, 4, 4), (3, 2, 3, 3), (3,))], grad2=True),
        # -------------------------------------------------------- pooling
        Case("max_pool2d", lambda ns, x: ns.F.max_pool2d(x, 2), lambda x: _pool(x, 2), [((2, 3, 4, 6),)],
             grad2=True),
        Case("max_pool2d_s2p1", lambda ns, x: ns.F.max_pool2d(x, 3, stride=2, padding=1),
             lambda x: _pool(x, 3, 2, 1), [((1, 2, 5, 5),)], grad2=True),
        Case("max_pool2d_rect", lambda ns, x: ns.F.max_pool2d(x, (2, 3), stride=(1, 2)),
             lambda x: _pool(x, (2, 3), (1, 2)), [((1, 2, 4, 7),)]),
        Case("max_pool2d_dilation", lambda ns, x: ns.F.max_pool2d(x, 2, stride=1, dilation=2),
             lambda x: _pool(x, 2, 1, 0, 2), [((1, 2, 5, 5),)], grad2=True),
        Case("max_pool2d_unbatched", lambda ns, x: ns.F.max_pool2d(x, 2), lambda x: _pool(x, 2),
             [((2, 4, 4),)], grad2=True),
        Case("avg_pool2d", lambda ns, x: ns.F.avg_pool2d(x, 2), lambda x: _pool(x, 2, mode="avg"),
             [((2, 3, 4, 6),)], grad2=True),
        Case("avg_pool2d_pad_include", lambda ns, x: ns.F.avg_pool2d(x, 3, stride=2, padding=1),
             lambda x: _pool(x, 3, 2, 1, mode="avg"), [((1, 2, 5, 5),)], grad2=True),
        Case("avg_pool2d_pad_exclude",
             lambda ns, x: ns.F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
             lambda x: _pool(x, 3, 2, 1, mode="avg", count_include_pad=False), [((1, 2, 5, 5),)], grad2=True),
        Case("avg_pool2d_rect_exclude",
             lambda ns, x: ns.F.avg_pool2d(x, (2, 3), stride=(1, 2), padding=(1, 1), count_include_pad=False),
             lambda x: _pool(x, (2, 3), (1, 2), (1, 1), mode="avg", count_include_pad=False), [((1, 1, 4, 5),)]),
        Case("avg_pool2d_unbatched", lambda ns, x: ns.F.avg_pool2d(x, 2, padding=1, count_include_pad=False),
             lambda x: _pool(x, 2, None, 1, mode="avg", count_include_pad=False), [((2, 4, 4),)], grad2=True),
        Case("adaptive_avg_pool2d_1", lambda ns, x: ns.F.adaptive_avg_pool2d(x, (1, 1)),
             lambda x: _adaptive_avg(x, 1), [((2, 3, 4, 5),), ((3, 4, 5),)]),
        Case("adaptive_avg_pool2d_int", lambda ns, x: ns.F.adaptive_avg_pool2d(x, 2),
             lambda x: _adaptive_avg(x, 2), [((1, 2, 4, 6),)]),
        Case("adaptive_avg_pool2d_divisible", lambda ns, x: ns.F.adaptive_avg_pool2d(x, (2, 3)),
             lambda x: _adaptive_avg(x, (2, 3)), [((2, 2, 4, 6),), ((2, 4, 6),)]),
        Case("adaptive_avg_pool2d_nondivisible", lambda ns, x: ns.F.adaptive_avg_pool2d(x, (3, 2)),
             lambda x: _adaptive_avg(x, (3, 2)), [((1, 2, 5, 7),), ((2, 4, 3),)]),
        Case("adaptive_avg_pool2d_upsample", lambda ns, x: ns.F.adaptive_avg_pool2d(x, (3, 4)),
             lambda x: _adaptive_avg(x, (3, 4)), [((1, 1, 2, 3),)]),
        Case("adaptive_avg_pool2d_none", lambda ns, x: ns.F.adaptive_avg_pool2d(x, (None, 3)),
             lambda x: _adaptive_avg(x, (None, 3)), [((1, 2, 3, 7),)]),
        # -------------------------------------------------------- reshaping
        Case("flatten", lambda ns, x: ns.flatten(x, 1), lambda x: x.reshape(x.shape[0], -1),
             [((2, 3, 4),), ((2, 3, 2, 2),)]),
        Case("flatten_all", lambda ns, x: ns.flatten(x), np.ravel, [((2, 3, 4),)]),
        Case("flatten_range", lambda ns, x: ns.flatten(x, 1, 2), lambda x: x.reshape(2, 6, 2),
             [((2, 3, 2, 2),)]),
        Case("pad_last", lambda ns, x: ns.F.pad(x, (1, 2)), lambda x: _pad(x, (1, 2)), [((2, 3),), ((2, 3, 4),)]),
        Case("pad_two_dims", lambda ns, x: ns.F.pad(x, (1, 1, 2, 0), value=0.5),
             lambda x: _pad(x, (1, 1, 2, 0), 0.5), [((2, 3, 4),)]),
        Case("pad_three_dims", lambda ns, x: ns.F.pad(x, (0, 1, 1, 0, 2, 1)),
             lambda x: _pad(x, (0, 1, 1, 0, 2, 1)), [((1, 2, 3, 2),)]),
        # -------------------------------------------------------- losses
        *[Case(f"mse_loss_{r}", lambda ns, x, t, r=r: ns.F.mse_loss(x, t, reduction=r),
               lambda x, t, r=r: _reduce((x - t) ** 2, r), [((3, 4), (3, 4)), ((5,), (5,))])
          for r in ("mean", "sum", "none")],
        *[Case(f"l1_loss_{r}", lambda ns, x, t, r=r: ns.F.l1_loss(x, t, reduction=r),
               lambda x, t, r=r: _reduce(np.abs(x - t), r), [((3, 4), (3, 4))]) for r in ("mean", "sum", "none")],
        *[Case(f"nll_loss_{r}", lambda ns, x, r=r: ns.F.nll_loss(x, ns.c(T4), reduction=r),
               lambda x, r=r: _nll(x, T4, reduction=r), [((5, 4),)]) for r in ("mean", "sum", "none")],
        *[Case(f"nll_loss_weight_ignore_{r}",
               lambda ns, x, r=r: ns.F.nll_loss(x, ns.c(T4_IGN), weight=ns.c(W4), reduction=r),
               lambda x, r=r: _nll(x, T4_IGN, W4, reduction=r), [((5, 4),)]) for r in ("mean", "sum", "none")],
        Case("nll_loss_ignore_index_2", lambda ns, x: ns.F.nll_loss(x, ns.c(T4_IGN2), ignore_index=2),
             lambda x: _nll(x, T4_IGN2, ignore_index=2), [((5, 4),)]),
        *[Case(f"nll_loss_nd_{r}",
               lambda ns, x, r=r: ns.F.nll_loss(x, ns.c(TD_IGN), weight=ns.c(W4), reduction=r),
               lambda x, r=r: _nll(x, TD_IGN, W4, reduction=r), [((2, 4, 3),)]) for r in ("mean", "sum", "none")],
        *[Case(f"cross_entropy_{r}", lambda ns, x, r=r: ns.F.cross_entropy(x, ns.c(T4), reduction=r),
               lambda x, r=r: _cross_entropy(x, T4, reduction=r), [((5, 4),)]) for r in ("mean", "sum", "none")],
        Case("cross_entropy_1d", lambda ns, x: ns.F.cross_entropy(x, ns.c(np.array(2))),
             lambda x: _cross_entropy(x, np.array(2)), [((4,),)]),
        *[Case(f"cross_entropy_weight_ignore_{r}",
               lambda ns, x, r=r: ns.F.cross_entropy(x, ns.c(T4_IGN), weight=ns.c(W4), reduction=r),
               lambda x, r=r: _cross_entropy(x, T4_IGN, W4, reduction=r), [((5, 4),)])
          for r in ("mean", "sum", "none")],
        *[Case(f"cross_entropy_smoothing_{r}",
               lambda ns, x, r=r: ns.F.cross_entropy(x, ns.c(T4), reduction=r, label_smoothing=0.2),
               lambda x, r=r: _cross_entropy(x, T4, reduction=r, label_smoothing=0.2), [((5, 4),)])
          for r in ("mean", "sum", "none")],
        *[Case(f"cross_entropy_smoothing_weight_ignore_{r}",
               lambda ns, x, r=r: ns.F.cross_entropy(x, ns.c(T4_IGN2), weight=ns.c(W4), ignore_index=2,
                                                     reduction=r, label_smoothing=0.3),
               lambda x, r=r: _cross_entropy(x, T4_IGN2, W4, 2, r, 0.3), [((5, 4),)])
          for r in ("mean", "sum", "none")],
        *[Case(f"cross_entropy_nd_{r}",
               lambda ns, x, r=r: ns.F.cross_entropy(x, ns.c(TD_IGN), weight=ns.c(W4), reduction=r,
                                                     label_smoothing=0.1),
               lambda x, r=r: _cross_entropy(x, TD_IGN, W4, reduction=r, label_smoothing=0.1), [((2, 4, 3),)])
          for r in ("mean", "sum", "none")],
        *[Case(f"cross_entropy_probs_{r}", lambda ns, x, r=r: ns.F.cross_entropy(x, ns.c(P45), reduction=r),
               lambda x, r=r: _cross_entropy(x, P45, reduction=r), [((5, 4),)]) for r in ("mean", "sum", "none")],
        Case("cross_entropy_probs_weight_smoothing",
             lambda ns, x: ns.F.cross_entropy(x, ns.c(P45), weight=ns.c(W4), label_smoothing=0.25),
             lambda x: _cross_entropy(x, P45, W4, label_smoothing=0.25), [((5, 4),)]),
        *[Case(f"cross_entropy_probs_nd_{r}",
               lambda ns, x, r=r: ns.F.cross_entropy(x, ns.c(P243), weight=ns.c(W4), reduction=r),
               lambda x, r=r: _cross_entropy(x, P243, W4, reduction=r), [((2, 4, 3),)]) for r in ("mean", "none")],
        *[Case(f"bce_{r}", lambda ns, x, r=r: ns.F.binary_cross_entropy(x, ns.c(B34), reduction=r),
               lambda x, r=r: _bce(x, B34, reduction=r), [((3, 4),)], domain="prob")
          for r in ("mean", "sum", "none")],
        Case("bce_weight_hard", lambda ns, x: ns.F.binary_cross_entropy(x, ns.c(B34_HARD), weight=ns.c(BW34)),
             lambda x: _bce(x, B34_HARD, BW34), [((3, 4),)], domain="prob"),
        Case("bce_weight_broadcast",
             lambda ns, x: ns.F.binary_cross_entropy(x, ns.c(B34), weight=ns.c(PW4), reduction="sum"),
             lambda x: _bce(x, B34, PW4, "sum"), [((3, 4),)], domain="prob"),
        *[Case(f"bce_logits_{r}",
               lambda ns, x, r=r: ns.F.binary_cross_entropy_with_logits(x, ns.c(B34), reduction=r),
               lambda x, r=r: _bce_logits(x, B34, reduction=r), [((3, 4),)]) for r in ("mean", "sum", "none")],
        Case("bce_logits_pos_weight",
             lambda ns, x: ns.F.binary_cross_entropy_with_logits(x, ns.c(B34), pos_weight=ns.c(PW4)),
             lambda x: _bce_logits(x, B34, pos_weight=PW4), [((3, 4),)]),
        Case("bce_logits_weight_pos_weight",
             lambda ns, x: ns.F.binary_cross_entropy_with_logits(x, ns.c(B34_HARD), weight=ns.c(BW34),
                                                                 reduction="none", pos_weight=ns.c(PW4)),
             lambda x: _bce_logits(x, B34_HARD, BW34, "none", PW4), [((3, 4),)]),
        Case("bce_logits_large",
             lambda ns, x: ns.F.binary_cross_entropy_with_logits(x, ns.c(B34), reduction="none",
                                                                 pos_weight=ns.c(PW4)),
             lambda x: _bce_logits(x, B34, reduction="none", pos_weight=PW4), [((3, 4),)], domain="big"),
        # -------------------------------------------------------- smooth L1 and Huber losses (ops-api rows)
        *[Case(f"smooth_l1_loss_{r}", lambda ns, x, t, r=r: ns.F.smooth_l1_loss(x, t, reduction=r),
               lambda x, t, r=r: _reduce(_smooth_l1(x - t, 1.0), r), [((3, 4), (3, 4))], grad2=True)
          for r in ("mean", "sum", "none")],
        Case("smooth_l1_loss_beta", lambda ns, x, t: ns.F.smooth_l1_loss(x, t, beta=0.5),
             lambda x, t: _smooth_l1(x - t, 0.5).mean(), [((5,), (5,))]),
        Case("smooth_l1_loss_beta_0", lambda ns, x, t: ns.F.smooth_l1_loss(x, t, reduction="sum", beta=0.0),
             lambda x, t: np.abs(x - t).sum(), [((5,), (5,))], domain="away"),
        *[Case(f"huber_loss_{r}", lambda ns, x, t, r=r: ns.F.huber_loss(x, t, reduction=r, delta=0.8),
               lambda x, t, r=r: _reduce(0.8 * _smooth_l1(x - t, 0.8), r), [((3, 4), (3, 4))], grad2=True)
          for r in ("mean", "none")],
        Case("huber_loss_weight", lambda ns, x, t: ns.F.huber_loss(x, t, weight=ns.c(BW34)),
             lambda x, t: (_smooth_l1(x - t, 1.0) * BW34).mean(), [((3, 4), (3, 4))]),
    ]
    return cases


def _smooth_l1(d, beta):
    z = np.abs(d)
    return np.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta)


# ---------------------------------------------------------------- nn-more rows: numpy references
def _pair2(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Direct loops: each input pixel scatters its weighted kernel into the (uncropped) output."""
    if x.ndim == 3:
        return _conv_transpose2d(x[None], w, b, stride, padding, output_padding, groups, dilation)[0]
    s, p, op, d = (_pair2(v) for v in (stride, padding, output_padding, dilation))
    n, cin, h, wd = x.shape
    cog, kh, kw = w.shape[1:]
    big = np.zeros((n, cog * groups, (h - 1) * s[0] + d[0] * (kh - 1) + 1 + op[0],
                    (wd - 1) * s[1] + d[1] * (kw - 1) + 1 + op[1]))
    for ci in range(cin):
        g = ci // (cin // groups)
        for i in range(h):
            for j in range(wd):
                for a in range(kh):
                    for c in range(kw):
                        big[:, g * cog:(g + 1) * cog, i * s[0] + a * d[0], j * s[1] + c * d[1]] += \
                            x[:, ci, i, j][:, None] * w[ci, :, a, c]
    oh = (h - 1) * s[0] - 2 * p[0] + d[0] * (kh - 1) + op[0] + 1
    ow = (wd - 1) * s[1] - 2 * p[1] + d[1] * (kw - 1) + op[1] + 1
    out = big[:, :, p[0]:p[0] + oh, p[1]:p[1] + ow]
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def _blocks_ref(hw, k, d, p, s):
    return tuple((n + 2 * pi - di * (ki - 1) - 1) // si + 1 for n, ki, di, pi, si in zip(hw, k, d, p, s))


def _unfold(x, k, d=1, p=0, s=1):
    k, d, p, s = (_pair2(v) for v in (k, d, p, s))
    xp = np.pad(x, [(0, 0), (0, 0), (p[0],) * 2, (p[1],) * 2])
    oh, ow = _blocks_ref(x.shape[2:], k, d, p, s)
    cols = np.zeros(x.shape[:2] + k + (oh, ow))
    for a in range(k[0]):
        for c in range(k[1]):
            for i in range(oh):
                for j in range(ow):
                    cols[:, :, a, c, i, j] = xp[:, :, i * s[0] + a * d[0], j * s[1] + c * d[1]]
    return cols.reshape(x.shape[0], -1, oh * ow)


def _fold(x, size, k, d=1, p=0, s=1):
    size, k, d, p, s = (_pair2(v) for v in (size, k, d, p, s))
    oh, ow = _blocks_ref(size, k, d, p, s)
    cols = x.reshape(x.shape[0], -1, k[0], k[1], oh, ow)
    out = np.zeros(cols.shape[:2] + (size[0] + 2 * p[0], size[1] + 2 * p[1]))
    for a in range(k[0]):
        for c in range(k[1]):
            for i in range(oh):
                for j in range(ow):
                    out[:, :, i * s[0] + a * d[0], j * s[1] + c * d[1]] += cols[:, :, a, c, i, j]
    return out[:, :, p[0]:p[0] + size[0], p[1]:p[1] + size[1]]


def _adaptive_max(x, size):
    oh, ow = _pair2(size)
    h, w = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = x[..., (i * h) // oh:math.ceil((i + 1) * h / oh), (j * w) // ow:math.ceil((j + 1) * w / ow)]
            out[..., i, j] = win.max(axis=(-2, -1))
    return out


def _np_pad(x, pad, mode):
    k = len(pad) // 2
    widths = [(0, 0)] * (x.ndim - k) + [(pad[2 * i], pad[2 * i + 1]) for i in reversed(range(k))]
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode])


def _norm_p(x, p, axis, keepdims=False):
    return (np.abs(x) ** p).sum(axis=axis, keepdims=keepdims) ** (1 / p)


def _cosine(a, b, axis, eps=1e-8):
    a, b = np.broadcast_arrays(a, b)
    na = np.maximum(np.sqrt((a * a).sum(axis, keepdims=True)), eps)
    nb = np.maximum(np.sqrt((b * b).sum(axis, keepdims=True)), eps)
    return ((a / na) * (b / nb)).sum(axis)


def _group_norm(x, groups, w, b, eps=1e-5):
    g = x.reshape(x.shape[0], groups, -1)
    out = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)).reshape(x.shape)
    s = _bn_shape(x)
    return out * w.reshape(s) + b.reshape(s)


def _instance_norm(x, w, b, eps=1e-5):
    axes = tuple(range(2, x.ndim))
    out = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    return out * w.reshape(_bn_shape(x)) + b.reshape(_bn_shape(x))


def _pdist(a, b, p=2.0, eps=1e-6, keepdim=False):
    return _norm_p(a - b + eps, p, -1, keepdim)


def _xlogx(t):
    return np.where(t == 0, 0.0, t * np.log(np.where(t == 0, 1.0, t)))


def _poisson(x, t, log_input=True, full=False, eps=1e-8):
    loss = np.exp(x) - t * x if log_input else x - t * np.log(x + eps)
    if full:
        safe = np.where(t > 1, t, 2.0)
        loss = loss + np.where(t > 1, safe * np.log(safe) - safe + 0.5 * np.log(2 * np.pi * safe), 0.0)
    return loss


def _multi_margin(x, t, p=1, margin=1.0, w=None):
    n, c = x.shape
    out = np.zeros(n)
    for i in range(n):
        for j in range(c):
            if j != t[i]:
                h = max(0.0, margin - x[i, t[i]] + x[i, j]) ** p
                out[i] += h * (1.0 if w is None else w[t[i]])
    return out / c


PM1 = np.array([1.0, -1.0, -1.0, 1.0, 1.0, -1.0])          # +-1 targets for 6 samples
KL_T = np.array([[0.2, 0.0, 0.5, 0.3], [0.1, 0.4, 0.4, 0.1], [0.0, 0.0, 0.6, 0.4]])
POIS_T = np.array([[0.0, 1.0, 2.0, 3.0], [5.0, 0.5, 1.0, 7.0], [1.5, 2.0, 0.0, 4.0]])


def _nn_more_cases():
    """Rows of the nn-more block: the layers and losses `nn.functional` gained there, one variant each."""
    def conv1d_ref(x, w, b):
        return _conv2d(x[:, :, None], w[:, :, None], b, (1, 2), (0, 1), (1, 2), 2)[:, :, 0]

    return [
        Case("conv1d", lambda ns, x, w, b: ns.F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2),
             conv1d_ref, [((2, 4, 9), (6, 2, 3), (6,))]),
        Case("conv1d_same_unbatched", lambda ns, x, w: ns.F.conv1d(x, w, padding="same"),
             lambda x, w: _conv2d(x[None, :, None], w[:, :, None], padding="same")[0, :, 0], [((3, 7), (2, 3, 4))]),
        Case("conv_transpose2d", lambda ns, x, w, b: ns.F.conv_transpose2d(x, w, b, 2, 1, 1),
             lambda x, w, b: _conv_transpose2d(x, w, b, 2, 1, 1), [((2, 3, 3, 4), (3, 2, 3, 3), (2,))], grad2=True),
        Case("conv_transpose2d_groups_dilation_unbatched",
             lambda ns, x, w: ns.F.conv_transpose2d(x, w, stride=(1, 2), padding=(1, 0), groups=2, dilation=2),
             lambda x, w: _conv_transpose2d(x, w, None, (1, 2), (1, 0), 0, 2, 2), [((4, 3, 3), (4, 1, 2, 3))]),
        Case("conv_transpose1d", lambda ns, x, w, b: ns.F.conv_transpose1d(x, w, b, stride=3, padding=1,
                                                                            output_padding=2),
             lambda x, w, b: _conv_transpose2d(x[:, :, None], w[:, :, None], b, (1, 3), (0, 1), (0, 2))[:, :, 0],
             [((2, 3, 4), (3, 2, 3), (2,))]),
        Case("max_pool1d", lambda ns, x: ns.F.max_pool1d(x, 3, 2, 1),
             lambda x: _pool(x[:, :, None], (1, 3), (1, 2), (0, 1))[:, :, 0], [((2, 3, 9),)]),
        Case("avg_pool1d_unbatched", lambda ns, x: ns.F.avg_pool1d(x, 3, 2, 1, count_include_pad=False),
             lambda x: _pool(x[:, None], (1, 3), (1, 2), (0, 1), mode="avg", count_include_pad=False)[:, 0],
             [((3, 8),)]),
        Case("adaptive_max_pool2d", lambda ns, x: ns.F.adaptive_max_pool2d(x, (3, 2)),
             lambda x: _adaptive_max(x, (3, 2)), [((2, 2, 5, 7),)]),
        Case("adaptive_max_pool1d", lambda ns, x: ns.F.adaptive_max_pool1d(x, 3),
             lambda x: _adaptive_max(x[:, :, None], (1, 3))[:, :, 0], [((2, 3, 7),)]),
        Case("adaptive_avg_pool1d", lambda ns, x: ns.F.adaptive_avg_pool1d(x, 3),
             lambda x: _adaptive_avg(x[:, :, None], (1, 3))[:, :, 0], [((2, 3, 7),)]),
        Case("unfold", lambda ns, x: ns.F.unfold(x, (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)),
             lambda x: _unfold(x, (2, 3), (1, 2), 1, (2, 1)), [((2, 2, 4, 5),)]),
        Case("fold", lambda ns, x: ns.F.fold(x, (4, 5), (2, 3), padding=1, stride=(2, 1)),
             lambda x: _fold(x, (4, 5), (2, 3), 1, 1, (2, 1)), [((2, 12, 15),)]),
        Case("pad_reflect", lambda ns, x: ns.F.pad(x, (2, 1, 1, 3), mode="reflect"),
             lambda x: _np_pad(x, (2, 1, 1, 3), "reflect"), [((2, 3, 4, 5),)]),
        Case("pad_replicate", lambda ns, x: ns.F.pad(x, (1, 2, 0, 3), mode="replicate"),
             lambda x: _np_pad(x, (1, 2, 0, 3), "replicate"), [((3, 4, 5),)]),
        Case("pad_circular", lambda ns, x: ns.F.pad(x, (2, 3), mode="circular"),
             lambda x: _np_pad(x, (2, 3), "circular"), [((2, 3, 4),)]),
        Case("pad_constant_negative", lambda ns, x: ns.F.pad(x, (-1, 2, 1, -1), value=0.5),
             lambda x: _pad(x[:, :-1, 1:], (0, 2, 1, 0), 0.5), [((2, 3, 4),)]),
        Case("normalize", lambda ns, x: ns.F.normalize(x, p=3, dim=0),
             lambda x: x / np.maximum(_norm_p(x, 3, 0, True), 1e-12), [((3, 4),)]),
        Case("cosine_similarity", lambda ns, a, b: ns.F.cosine_similarity(a, b, dim=-1),
             lambda a, b: _cosine(a, b, -1), [((3, 4), (2, 1, 4))]),
        Case("pairwise_distance", lambda ns, a, b: ns.F.pairwise_distance(a, b, p=1.5, keepdim=True),
             lambda a, b: _pdist(a, b, 1.5, keepdim=True), [((3, 4), (3, 4))]),
        Case("group_norm", lambda ns, x, w, b: ns.F.group_norm(x, 2, w, b), lambda x, w, b: _group_norm(x, 2, w, b),
             [((2, 4, 3, 2), (4,), (4,))]),
        Case("instance_norm", lambda ns, x, w, b: ns.F.instance_norm(x, weight=w, bias=b), _instance_norm,
             [((2, 3, 5), (3,), (3,))]),
        Case("rms_norm", lambda ns, x, w: ns.F.rms_norm(x, (3, 4), w, eps=1e-5),
             lambda x, w: x / np.sqrt((x * x).mean(axis=(1, 2), keepdims=True) + 1e-5) * w, [((2, 3, 4), (3, 4))]),
        Case("bilinear", lambda ns, a, b, w, bias: ns.F.bilinear(a, b, w, bias),
             lambda a, b, w, bias: np.einsum("...i,oij,...j->...o", a, w, b) + bias,
             [((2, 5, 3), (2, 5, 4), (6, 3, 4), (6,))]),
        Case("kl_div_batchmean", lambda ns, x: ns.F.kl_div(x, ns.c(KL_T), reduction="batchmean"),
             lambda x: (_xlogx(KL_T) - KL_T * x).sum() / 3, [((3, 4),)]),
        Case("kl_div_log_target", lambda ns, x, t: ns.F.kl_div(x, t, reduction="none", log_target=True),
             lambda x, t: np.exp(t) * (t - x), [((3, 4), (3, 4))]),
        Case("triplet_margin_loss_swap", lambda ns, a, p, n: ns.F.triplet_margin_loss(a, p, n, margin=2.0, swap=True),
             lambda a, p, n: np.maximum(2.0 + _pdist(a, p) - np.minimum(_pdist(a, n), _pdist(p, n)), 0).mean(),
             [((5, 4), (5, 4), (5, 4))]),
        Case("margin_ranking_loss", lambda ns, a, b: ns.F.margin_ranking_loss(a, b, ns.c(PM1), margin=0.3),
             lambda a, b: np.maximum(-PM1 * (a - b) + 0.3, 0).mean(), [((6,), (6,))]),
        Case("hinge_embedding_loss", lambda ns, x: ns.F.hinge_embedding_loss(x, ns.c(PM1), margin=0.5,
                                                                              reduction="sum"),
             lambda x: np.where(PM1 == 1, x, np.maximum(0.5 - x, 0)).sum(), [((6,),)], domain="away"),
        Case("cosine_embedding_loss", lambda ns, a, b: ns.F.cosine_embedding_loss(a, b, ns.c(PM1), margin=0.2),
             lambda a, b: np.where(PM1 == 1, 1 - _cosine(a, b, 1, 0), np.maximum(_cosine(a, b, 1, 0) - 0.2, 0)).mean(),
             [((6, 3), (6, 3))]),
        Case("soft_margin_loss", lambda ns, x: ns.F.soft_margin_loss(x, ns.c(PM1), reduction="none"),
             lambda x: np.log1p(np.exp(-PM1 * x)), [((6,),)]),
        Case("multilabel_soft_margin_loss",
             lambda ns, x: ns.F.multilabel_soft_margin_loss(x, ns.c(B34_HARD), weight=ns.c(PW4)),
             lambda x: (-(B34_HARD * _log_sigmoid(x) + (1 - B34_HARD) * _log_sigmoid(-x)) * PW4).mean(1).mean(),
             [((3, 4),)]),
        Case("poisson_nll_loss_full", lambda ns, x: ns.F.poisson_nll_loss(x, ns.c(POIS_T), full=True),
             lambda x: _poisson(x, POIS_T, full=True).mean(), [((3, 4),)]),
        Case("poisson_nll_loss_rates", lambda ns, x: ns.F.poisson_nll_loss(x, ns.c(POIS_T), log_input=False,
                                                                             reduction="sum"),
             lambda x: _poisson(x, POIS_T, log_input=False).sum(), [((3, 4),)], domain="prob"),
        Case("gaussian_nll_loss", lambda ns, x, t, v: ns.F.gaussian_nll_loss(x, t, v * v + 0.1, full=True),
             lambda x, t, v: (0.5 * (np.log(v * v + 0.1) + (x - t) ** 2 / (v * v + 0.1) + np.log(2 * np.pi))).mean(),
             [((5, 4), (5, 4), (5, 1))]),
        Case("multi_margin_loss", lambda ns, x: ns.F.multi_margin_loss(x, ns.c(T4), p=2, margin=0.7, weight=ns.c(W4)),
             lambda x: _multi_margin(x, T4, 2, 0.7, W4).mean(), [((5, 4),)]),
    ]


CASES = _cases() + _nn_more_cases()


def _variants(cases):
    params, ids = [], []
    for case in cases:
        for shapes, id_ in zip(case.shapes, case.ids()):
            params.append((case, shapes))
            ids.append(id_)
    return params, ids


PARAMS, IDS = _variants(CASES)
GRAD, GRAD_IDS = _variants([c for c in CASES if c.grad])
GRAD2, GRAD2_IDS = _variants([c for c in CASES if c.grad2])
PARITY, PARITY_IDS = _variants([c for c in CASES if c.parity])


def _run(case, arrays, requires_grad=False, ns=TG64):
    ts = [tg.tensor(a, requires_grad=requires_grad) for a in arrays]
    return ts, case.fn(ns, *ts)


def test_table_names_are_unique():
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("case,shapes", PARAMS, ids=IDS)
def test_forward_float64(case, shapes):
    arrays = make_inputs(case, shapes)
    _, out = _run(case, arrays)
    expected = np.asarray(case.ref(*arrays))
    assert tuple(out.shape) == expected.shape
    assert out.dtype is tg.float64
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case,shapes", PARAMS, ids=IDS)
def test_forward_float32_keeps_dtype(case, shapes):
    arrays = make_inputs(case, shapes, np.float32)
    _, out = _run(case, arrays, ns=_ns(tg, np.float32))
    expected = np.asarray(case.ref(*[a.astype(np.float64) for a in arrays]))
    assert out.dtype is tg.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case,shapes", GRAD, ids=GRAD_IDS)
def test_gradient_matches_central_differences(case, shapes):
    ts, out = _run(case, make_inputs(case, shapes), requires_grad=True)
    assert out.requires_grad and (out.grad_fn is not None or any(out is t for t in ts))  # identities return x
    assert tg.autograd.gradcheck(lambda *xs: case.fn(TG64, *xs), ts)
    grads = tg.autograd.grad(out, ts, tg.ones_like(out), allow_unused=True)
    for t, g in zip(ts, grads):
        assert g is not None and tuple(g.shape) == tuple(t.shape) and g.dtype is t.dtype


@pytest.mark.parametrize("case,shapes", GRAD2, ids=GRAD2_IDS)
def test_second_order_gradient(case, shapes):
    ts, _ = _run(case, make_inputs(case, shapes), requires_grad=True)
    assert tg.autograd.gradgradcheck(lambda *xs: case.fn(TG64, *xs), ts)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("case,shapes", PARITY, ids=PARITY_IDS)
def test_same_values_and_gradients_as_pytorch(case, shapes):
    torch = pytest.importorskip("torch")
    arrays = make_inputs(case, shapes, np.float32)
    ours_in, ours = _run(case, arrays, requires_grad=True, ns=_ns(tg, np.float32))
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    theirs = case.fn(_ns(torch, np.float32), *theirs_in)
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
    seed = np.random.default_rng(0).standard_normal(tuple(ours.shape)).astype(np.float32)
    ours.backward(tg.tensor(seed))
    theirs.backward(torch.tensor(seed))
    for a, b in zip(ours_in, theirs_in):
        expected = np.zeros(b.shape, np.float32) if b.grad is None else b.grad.numpy()
        got = np.zeros(expected.shape, np.float32) if a.grad is None else a.grad.numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- dropout
def test_dropout_training_zeros_a_fraction_p_and_scales_survivors():
    p = 0.3
    x = tg.ones(200, 500, dtype=tg.float64, requires_grad=True)
    tg.manual_seed(123)
    y = F.dropout(x, p, training=True)
    out = y.detach().numpy()
    mask = out != 0
    assert abs(1 - mask.mean() - p) < 0.01
    np.testing.assert_allclose(out[mask], 1 / (1 - p), rtol=1e-12)
    g = np.random.default_rng(0).standard_normal(out.shape)
    y.backward(tg.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), g * mask / (1 - p), rtol=1e-12)


def test_dropout_gradient_is_mask_over_keep_probability():
    p = 0.5
    x = tg.tensor(np.random.default_rng(1).standard_normal((4, 6)), requires_grad=True)
    y = F.dropout(x, p)
    y.sum().backward()
    mask = y.detach().numpy() != 0
    assert 0 < mask.sum() < mask.size
    np.testing.assert_allclose(y.detach().numpy(), np.where(mask, x.detach().numpy() / (1 - p), 0.0))
    np.testing.assert_allclose(x.grad.numpy(), mask / (1 - p))


def test_dropout_is_deterministic_for_a_seed():
    tg.manual_seed(5)
    a = F.dropout(tg.ones(1000), 0.4).numpy()
    tg.manual_seed(5)
    b = F.dropout(tg.ones(1000), 0.4).numpy()
    np.testing.assert_array_equal(a, b)
    c = F.dropout(tg.ones(1000), 0.4).numpy()
    assert (a != c).any()


def test_dropout_identity_cases_and_p_one():
    x = tg.randn(3, 4)
    assert np.array_equal(F.dropout(x, 0.0).numpy(), x.numpy())
    assert np.array_equal(F.dropout(x, 0.9, training=False).numpy(), x.numpy())
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), np.zeros((3, 4)))
    layer = tg.nn.Dropout(0.5)
    layer.eval()
    assert np.array_equal(layer(x).numpy(), x.numpy())
    layer.train()
    out = tg.nn.Dropout(0.5)(tg.ones(1000)).numpy()
    assert set(np.unique(out)) <= {0.0, 2.0}


# ---------------------------------------------------------------- embedding padding
def test_embedding_padding_row_gets_zero_gradient():
    w = tg.tensor(np.random.default_rng(2).standard_normal((4, 2)), requires_grad=True)
    out = F.embedding(tg.tensor(IDX), w, padding_idx=3)
    np.testing.assert_array_equal(out.detach().numpy(), w.detach().numpy()[IDX])
    g = np.random.default_rng(3).standard_normal(out.shape)
    out.backward(tg.tensor(g))
    expected = np.zeros((4, 2))
    np.add.at(expected, IDX, g)
    expected[3] = 0.0
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-12)


def test_embedding_without_padding_accumulates_repeated_rows():
    w = tg.tensor(np.random.default_rng(2).standard_normal((4, 2)), requires_grad=True)
    F.embedding(tg.tensor(IDX), w).sum().backward()
    counts = np.bincount(IDX.ravel(), minlength=4)[:, None]
    np.testing.assert_array_equal(w.grad.numpy(), np.broadcast_to(counts, (4, 2)).astype(np.float64))


def test_embedding_module_zeroes_the_padding_row():
    emb = tg.nn.Embedding(5, 3, padding_idx=1)
    np.testing.assert_array_equal(emb.weight.detach().numpy()[1], np.zeros(3))
    out = emb(tg.tensor([[1, 2], [4, 1]]))
    assert tuple(out.shape) == (2, 2, 3)
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy()[1], np.zeros(3))
    np.testing.assert_array_equal(emb.weight.grad.numpy()[[0, 2, 3, 4], 0], [0.0, 1.0, 0.0, 1.0])


# ---------------------------------------------------------------- batch norm running statistics
def _bn_inputs():
    rng = np.random.default_rng(11)
    return rng.standard_normal((4, 3, 2, 3)) * 2 + 1, rng.standard_normal((4, 3, 2, 3)) - 0.5


def _batch_stats(x):
    axes = (0, 2, 3) if x.ndim == 4 else (0,) + tuple(range(2, x.ndim))
    return x.mean(axis=axes), x.var(axis=axes, ddof=1)  # the running variance is unbiased


def test_batch_norm_functional_updates_running_stats_with_momentum():
    x1, x2 = _bn_inputs()
    rm, rv = tg.zeros(3, dtype=tg.float64), tg.ones(3, dtype=tg.float64)
    out = F.batch_norm(tg.tensor(x1), rm, rv, training=True, momentum=0.1)
    np.testing.assert_allclose(out.numpy(), _batch_norm_train(x1), rtol=1e-10, atol=1e-12)
    m1, v1 = _batch_stats(x1)
    exp_m, exp_v = 0.1 * m1, 0.9 * 1.0 + 0.1 * v1
    np.testing.assert_allclose(rm.numpy(), exp_m, rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), exp_v, rtol=1e-12)
    F.batch_norm(tg.tensor(x2), rm, rv, training=True, momentum=0.1)
    m2, v2 = _batch_stats(x2)
    np.testing.assert_allclose(rm.numpy(), 0.9 * exp_m + 0.1 * m2, rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.9 * exp_v + 0.1 * v2, rtol=1e-12)


def test_batchnorm2d_module_running_stats_after_one_and_two_calls():
    x1, x2 = _bn_inputs()
    bn = tg.nn.BatchNorm2d(3).double()
    bn(tg.tensor(x1))
    m1, v1 = _batch_stats(x1)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * m1, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * v1, rtol=1e-12)
    assert bn.num_batches_tracked.item() == 1
    out = bn(tg.tensor(x2))
    np.testing.assert_allclose(out.detach().numpy(), _batch_norm_train(x2), rtol=1e-10, atol=1e-12)
    m2, v2 = _batch_stats(x2)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.9 * 0.1 * m1 + 0.1 * m2, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 * (0.9 + 0.1 * v1) + 0.1 * v2, rtol=1e-12)
    assert bn.num_batches_tracked.item() == 2
    assert bn.num_batches_tracked.dtype is tg.int64


def test_batchnorm_momentum_none_is_a_cumulative_average():
    rng = np.random.default_rng(12)
    xs = [rng.standard_normal((5, 2, 3)) * (i + 1) + i for i in range(3)]
    bn = tg.nn.BatchNorm1d(2, momentum=None).double()
    for k, x in enumerate(xs, 1):
        bn(tg.tensor(x))
        stats = [_batch_stats(a) for a in xs[:k]]
        np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([s[0] for s in stats], axis=0), rtol=1e-12)
        np.testing.assert_allclose(bn.running_var.numpy(), np.mean([s[1] for s in stats], axis=0), rtol=1e-12)
        assert bn.num_batches_tracked.item() == k


def test_batchnorm_eval_uses_running_stats_and_does_not_update_them():
    x1, x2 = _bn_inputs()
    bn = tg.nn.BatchNorm2d(3).double()
    with tg.no_grad():
        bn.weight.copy_(tg.tensor([0.5, 2.0, -1.0], dtype=tg.float64))
        bn.bias.copy_(tg.tensor([0.1, 0.0, 0.3], dtype=tg.float64))
    bn(tg.tensor(x1))
    bn.eval()
    rm, rv = bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()
    out = bn(tg.tensor(x2))
    expected = _batch_norm_eval(x2, rm, rv, np.array([0.5, 2.0, -1.0]), np.array([0.1, 0.0, 0.3]))
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(bn.running_mean.numpy(), rm)
    np.testing.assert_array_equal(bn.running_var.numpy(), rv)
    assert bn.num_batches_tracked.item() == 1


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval():
    x1, _ = _bn_inputs()
    bn = tg.nn.BatchNorm2d(3, track_running_stats=False).double().eval()
    assert bn.running_mean is None and list(bn.state_dict()) == ["weight", "bias"]
    np.testing.assert_allclose(bn(tg.tensor(x1)).detach().numpy(), _batch_norm_train(x1), rtol=1e-10, atol=1e-12)


def test_batchnorm_running_stats_parity_with_pytorch():
    torch = pytest.importorskip("torch")
    x1, x2 = _bn_inputs()
    for momentum in (0.1, None, 0.3):
        ours, theirs = tg.nn.BatchNorm2d(3, momentum=momentum), torch.nn.BatchNorm2d(3, momentum=momentum)
        for x in (x1, x2):
            a = ours(tg.tensor(x.astype(np.float32)))
            b = theirs(torch.tensor(x.astype(np.float32)))
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-5)


# ---------------------------------------------------------------- one_hot
def test_one_hot():
    idx = np.array([[0, 2], [1, 0]])
    out = F.one_hot(tg.tensor(idx), 4)
    assert out.dtype is tg.int64 and tuple(out.shape) == (2, 2, 4)
    np.testing.assert_array_equal(out.numpy(), np.eye(4, dtype=np.int64)[idx])
    inferred = F.one_hot(tg.tensor([0, 2]))
    np.testing.assert_array_equal(inferred.numpy(), np.eye(3, dtype=np.int64)[[0, 2]])


def test_one_hot_parity_with_pytorch():
    torch = pytest.importorskip("torch")
    for idx, n in ((np.array([[0, 2], [1, 0]]), 4), (np.array([3, 1, 0]), -1)):
        ours = F.one_hot(tg.tensor(idx), n)
        theirs = torch.nn.functional.one_hot(torch.tensor(idx), n)
        assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# ---------------------------------------------------------------- binary cross entropy at the edges
BCE_EDGE_X = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
BCE_EDGE_T = np.array([1.0, 0.0, 0.0, 1.0, 1.0])


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_bce_clamps_log_at_minus_100_for_inputs_0_and_1():
    x = tg.tensor(BCE_EDGE_X)
    out = F.binary_cross_entropy(x, tg.tensor(BCE_EDGE_T), reduction="none")
    np.testing.assert_allclose(out.numpy(), [100.0, 100.0, 0.0, 0.0, math.log(2)], rtol=1e-12, atol=0)
    total = F.binary_cross_entropy(x, tg.tensor(BCE_EDGE_T), reduction="sum").item()
    assert total == pytest.approx(200 + math.log(2), rel=1e-12)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_bce_gradient_at_inputs_0_and_1_is_finite_as_in_pytorch():
    """PyTorch's BCE backward is (x - t) / max(x (1 - x), 1e-12): finite at x = 0 and x = 1."""
    x = tg.tensor(BCE_EDGE_X, requires_grad=True)
    F.binary_cross_entropy(x, tg.tensor(BCE_EDGE_T), reduction="sum").backward()
    expected = (BCE_EDGE_X - BCE_EDGE_T) / np.maximum(BCE_EDGE_X * (1 - BCE_EDGE_X), 1e-12)
    # PyTorch: tensor([-1.0000e+12,  1.0000e+12,  0.0000e+00,  0.0000e+00, -2.0000e+00])
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


def test_bce_with_logits_is_stable_for_huge_logits():
    x = np.array([-1e4, -800.0, -50.0, 50.0, 800.0, 1e4])
    t = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    xt = tg.tensor(x, requires_grad=True)
    out = F.binary_cross_entropy_with_logits(xt, tg.tensor(t), reduction="none")
    assert np.isfinite(out.detach().numpy()).all()
    np.testing.assert_allclose(out.detach().numpy(), _bce_logits(x, t, reduction="none"), rtol=1e-12)
    out.sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), _sigmoid(x) - t, rtol=1e-12, atol=1e-300)
    xt32 = tg.tensor(x.astype(np.float32), requires_grad=True)
    out32 = F.binary_cross_entropy_with_logits(xt32, tg.tensor(t.astype(np.float32)),
                                               pos_weight=tg.tensor(np.full(6, 3.0, np.float32)))
    out32.backward()
    assert np.isfinite(out32.item()) and np.isfinite(xt32.grad.numpy()).all()


def test_bce_with_logits_gradient_at_zero_logits():
    """d/dx = pw t (sigmoid(x) - 1) + (1 - t) sigmoid(x), also at x = 0 exactly (a zero-initialized output layer).

    PyTorch: F.binary_cross_entropy_with_logits(zeros(3), tensor([0.5, 0., 1.]), reduction='sum') has gradient
    tensor([0.0000, 0.5000, -0.5000]), and with pos_weight=3: tensor([-0.5000, 0.5000, -1.5000]).
    """
    t = np.array([0.5, 0.0, 1.0])
    for pw in (None, 3.0):
        x = tg.zeros(3, dtype=tg.float64, requires_grad=True)
        kwargs = {} if pw is None else {"pos_weight": tg.full((3,), pw, dtype=tg.float64)}
        loss = F.binary_cross_entropy_with_logits(x, tg.tensor(t), reduction="sum", **kwargs)
        assert loss.item() == pytest.approx(_bce_logits(np.zeros(3), t, reduction="sum", pos_weight=pw or 1.0))
        loss.backward()
        p = 1.0 if pw is None else pw
        np.testing.assert_allclose(x.grad.numpy(), p * t * (0.5 - 1) + (1 - t) * 0.5, rtol=1e-12)


# ---------------------------------------------------------------- loss modules are the functions
def test_loss_modules_match_functions():
    rng = np.random.default_rng(4)
    x, logits = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    probs = _sigmoid(logits)
    pairs = [
        (tg.nn.MSELoss(reduction="sum"), (x, P45), _reduce((x - P45) ** 2, "sum")),
        (tg.nn.L1Loss(), (x, P45), np.abs(x - P45).mean()),
        (tg.nn.NLLLoss(weight=tg.tensor(W4), ignore_index=2), (x, T4_IGN2), _nll(x, T4_IGN2, W4, 2)),
        (tg.nn.CrossEntropyLoss(weight=tg.tensor(W4), label_smoothing=0.1), (x, T4_IGN),
         _cross_entropy(x, T4_IGN, W4, label_smoothing=0.1)),
        (tg.nn.BCELoss(reduction="none"), (probs, P45), _bce(probs, P45, reduction="none")),
        (tg.nn.BCEWithLogitsLoss(pos_weight=tg.tensor(PW4)), (logits, P45), _bce_logits(logits, P45, pos_weight=PW4)),
        (tg.nn.SmoothL1Loss(reduction="sum", beta=0.5), (x, P45), _smooth_l1(x - P45, 0.5).sum()),
        (tg.nn.SmoothL1Loss(size_average=False), (x, P45), _smooth_l1(x - P45, 1.0).sum()),
        (tg.nn.HuberLoss(delta=2.0), (x, P45), (2.0 * _smooth_l1(x - P45, 2.0)).mean()),
    ]
    for loss, args, expected in pairs:
        np.testing.assert_allclose(loss(*[tg.tensor(a) for a in args]).numpy(), expected, rtol=1e-10)


# ---------------------------------------------------------------- errors
def _xyz(fn):
    return fn, ValueError, "xyz is not a valid value for reduction"


def _t(*shape, value=1.0):
    return tg.full(shape, value)


ERRORS = [
    ("reduction_mse", *_xyz(lambda: F.mse_loss(_t(2), _t(2), reduction="xyz"))),
    ("reduction_l1", *_xyz(lambda: F.l1_loss(_t(2), _t(2), reduction="xyz"))),
    ("reduction_nll", *_xyz(lambda: F.nll_loss(_t(2, 3), tg.tensor([0, 1]), reduction="xyz"))),
    ("reduction_nll_weight", *_xyz(lambda: F.nll_loss(_t(2, 3), tg.tensor([0, 1]), weight=_t(3), reduction="xyz"))),
    ("reduction_cross_entropy", *_xyz(lambda: F.cross_entropy(_t(2, 3), tg.tensor([0, 1]), reduction="xyz"))),
    ("reduction_cross_entropy_smoothing",
     *_xyz(lambda: F.cross_entropy(_t(2, 3), tg.tensor([0, 1]), reduction="xyz", label_smoothing=0.1))),
    ("reduction_cross_entropy_probs", *_xyz(lambda: F.cross_entropy(_t(2, 3), _t(2, 3, value=1 / 3),
                                                                    reduction="xyz"))),
    ("reduction_bce", *_xyz(lambda: F.binary_cross_entropy(_t(2, value=0.5), _t(2), reduction="xyz"))),
    ("reduction_bce_logits", *_xyz(lambda: F.binary_cross_entropy_with_logits(_t(2), _t(2), reduction="xyz"))),
    ("reduction_module", *_xyz(lambda: tg.nn.MSELoss(reduction="xyz")(_t(2), _t(2)))),
    ("conv2d_channels", lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 6, 3, 3)), RuntimeError,
     re.escape("Given groups=1, weight of size [4, 6, 3, 3], expected input[2, 3, 5, 5] to have 6 channels, but got "
               "3 channels instead")),
    ("conv2d_groups_channels", lambda: F.conv2d(_t(1, 4, 5, 5), _t(6, 3, 3, 3), groups=2), RuntimeError,
     re.escape("Given groups=2, weight of size [6, 3, 3, 3], expected input[1, 4, 5, 5] to have 6 channels, but got "
               "4 channels instead")),
    ("conv2d_module_channels", lambda: tg.nn.Conv2d(3, 4, 3)(_t(1, 2, 5, 5)), RuntimeError,
     "to have 3 channels, but got 2 channels instead"),
    ("conv2d_same_strided", lambda: F.conv2d(_t(1, 3, 5, 5), _t(4, 3, 3, 3), stride=2, padding="same"),
     RuntimeError, "padding='same' is not supported for strided convolutions"),
    ("conv2d_bad_padding_string", lambda: F.conv2d(_t(1, 3, 5, 5), _t(4, 3, 3, 3), padding="foo"), RuntimeError,
     "Invalid padding string.*'foo'"),
    ("cross_entropy_float_target", lambda: F.cross_entropy(_t(3, 5), tg.tensor([0.0, 1.0, 2.0])), RuntimeError,
     r"target"),
    ("nll_float_target", lambda: F.nll_loss(_t(3, 5), tg.tensor([0.0, 1.0, 2.0])), RuntimeError,
     r"target.*dtype.*(Float|float32)"),
    ("cross_entropy_batch_size", lambda: F.cross_entropy(_t(3, 5), tg.tensor([0, 1, 2, 3])), ValueError,
     r"[Ee]xpected.*3.*4"),
    ("cross_entropy_nd_target_shape", lambda: F.cross_entropy(_t(2, 5, 3), tg.zeros(2, 4, dtype=tg.int64)),
     RuntimeError, re.escape("Expected target size [2, 3], got [2, 4]")),
    ("cross_entropy_target_out_of_range", lambda: F.cross_entropy(_t(3, 5), tg.tensor([0, 5, 1])), IndexError,
     "Target 5 is out of bounds"),
    ("nll_target_negative", lambda: F.nll_loss(_t(3, 5), tg.tensor([0, -2, 1])), IndexError,
     "Target -2 is out of bounds"),
    ("nll_nd_target_out_of_range", lambda: F.nll_loss(_t(2, 4, 3), tg.tensor([[0, 1, 2], [3, 4, 0]])), IndexError,
     "Target 4 is out of bounds"),
    ("cross_entropy_label_smoothing", lambda: F.cross_entropy(_t(3, 5), tg.tensor([0, 1, 2]), label_smoothing=1.5),
     RuntimeError, "label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
    ("bce_input_above_1", lambda: F.binary_cross_entropy(tg.tensor([0.5, 1.5]), _t(2)), RuntimeError,
     "all elements of input should be between 0 and 1"),
    ("bce_input_below_0", lambda: F.binary_cross_entropy(tg.tensor([0.5, -0.1]), _t(2)), RuntimeError,
     "all elements of input should be between 0 and 1"),
    ("bce_target_size", lambda: F.binary_cross_entropy(_t(2, value=0.5), _t(3)), ValueError,
     "Using a target size .*that is different to the input size"),
    ("bce_logits_target_size", lambda: F.binary_cross_entropy_with_logits(_t(2), _t(3)), ValueError,
     r"Target size .*\[3\].* must be the same as input size .*\[2\]"),
    ("linear_shape", lambda: F.linear(_t(2, 3), _t(5, 4)), RuntimeError,
     re.escape("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")),
    ("linear_shape_3d", lambda: F.linear(_t(2, 6, 3), _t(5, 4)), RuntimeError,
     re.escape("mat1 and mat2 shapes cannot be multiplied (12x3 and 4x5)")),
    ("linear_module_shape", lambda: tg.nn.Linear(4, 5)(_t(2, 3)), RuntimeError,
     re.escape("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")),
    ("dropout_p_above_1", lambda: F.dropout(_t(2), p=1.5), ValueError,
     "dropout probability has to be between 0 and 1, but got 1.5"),
    ("dropout_p_negative", lambda: F.dropout(_t(2), p=-0.1), ValueError,
     "dropout probability has to be between 0 and 1, but got -0.1"),
    ("dropout_module_p", lambda: tg.nn.Dropout(1.5), ValueError,
     "dropout probability has to be between 0 and 1, but got 1.5"),
    ("layer_norm_shape", lambda: F.layer_norm(_t(2, 3), (4,)), RuntimeError,
     re.escape("Given normalized_shape=[4], expected input with shape [*, 4], but got input of size")),
    ("gelu_approximate", lambda: F.gelu(_t(2), approximate="x"), RuntimeError,
     "approximate argument must be either none or tanh"),
    ("embedding_float_indices", lambda: F.embedding(tg.tensor([0.0]), _t(3, 2)), RuntimeError, "indices"),
    ("max_pool2d_padding", lambda: F.max_pool2d(_t(1, 1, 4, 4), 2, padding=2), RuntimeError,
     "pad should be at most half of effective kernel size"),
    ("pad_odd_length", lambda: F.pad(_t(2, 3), (1,)), RuntimeError, "Padding length must be divisible by 2"),
    ("batch_norm_single_value", lambda: F.batch_norm(_t(1, 3), None, None, training=True), ValueError,
     "Expected more than 1 value per channel when training"),
    ("smooth_l1_negative_beta", lambda: F.smooth_l1_loss(_t(2), _t(2), beta=-1.0), RuntimeError,
     "smooth_l1_loss does not support negative values for beta."),
    ("huber_zero_delta", lambda: F.huber_loss(_t(2), _t(2), delta=0.0), RuntimeError,
     "huber_loss does not support non-positive values for delta."),
    ("huber_weight_size", lambda: F.huber_loss(_t(2), _t(2), weight=_t(3)), ValueError,
     "Weights and input must have the same size."),
    ("reduction_smooth_l1", *_xyz(lambda: F.smooth_l1_loss(_t(2), _t(2), reduction="xyz"))),
    ("interpolate_both_sizes", lambda: F.interpolate(_t(1, 1, 2), size=3, scale_factor=2), ValueError,
     "only one of size or scale_factor should be defined"),
    ("interpolate_no_size", lambda: F.interpolate(_t(1, 1, 2)), ValueError,
     "either size or scale_factor should be defined"),
    ("interpolate_align_corners_nearest", lambda: F.interpolate(_t(1, 1, 2), size=3, align_corners=True),
     ValueError, "align_corners option can only be set with the interpolating modes"),
    ("interpolate_bilinear_3d", lambda: F.interpolate(_t(1, 1, 2), size=3, mode="bilinear"), NotImplementedError,
     "Got 3D input, but bilinear mode needs 4D input"),
    ("interpolate_linear_4d", lambda: F.interpolate(_t(1, 1, 2, 2), size=3, mode="linear"), NotImplementedError,
     "Got 4D input, but linear mode needs 3D input"),
    ("interpolate_2d_input", lambda: F.interpolate(_t(2, 3), size=3), NotImplementedError,
     re.escape("Only 3D, 4D and 5D input Tensors supported (got 2D)")),
    ("interpolate_size_length", lambda: F.interpolate(_t(1, 1, 2, 2), size=(3, 3, 3)), ValueError,
     "Input and output must have the same number of spatial dimensions"),
    ("interpolate_recompute_with_size", lambda: F.interpolate(_t(1, 1, 2), size=3, recompute_scale_factor=True),
     ValueError, "recompute_scale_factor is not meaningful with an explicit size."),
    ("interpolate_empty_output", lambda: F.interpolate(_t(1, 1, 3, 4), size=0), RuntimeError,
     re.escape("Input and output sizes should be greater than 0, but got input (H: 3, W: 4) output (H: 0, W: 0)")),
]


@pytest.mark.parametrize("name,fn,exc,pattern", ERRORS, ids=[e[0] for e in ERRORS])
def test_error(name, fn, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fn()


def test_error_table_matches_pytorch_exception_classes():
    """The same calls in torch raise the class each row expects (guards the table itself)."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF
    ones = lambda *s, value=1.0: torch.full(s, value)
    calls = {
        "reduction_mse": lambda: TF.mse_loss(ones(2), ones(2), reduction="xyz"),
        "conv2d_channels": lambda: TF.conv2d(ones(2, 3, 5, 5), ones(4, 6, 3, 3)),
        "conv2d_same_strided": lambda: TF.conv2d(ones(1, 3, 5, 5), ones(4, 3, 3, 3), stride=2, padding="same"),
        "conv2d_bad_padding_string": lambda: TF.conv2d(ones(1, 3, 5, 5), ones(4, 3, 3, 3), padding="foo"),
        "cross_entropy_float_target": lambda: TF.cross_entropy(ones(3, 5), torch.tensor([0.0, 1.0, 2.0])),
        "nll_float_target": lambda: TF.nll_loss(ones(3, 5), torch.tensor([0.0, 1.0, 2.0])),
        "cross_entropy_batch_size": lambda: TF.cross_entropy(ones(3, 5), torch.tensor([0, 1, 2, 3])),
        "cross_entropy_nd_target_shape": lambda: TF.cross_entropy(ones(2, 5, 3), torch.zeros(2, 4,
                                                                                            dtype=torch.long)),
        "cross_entropy_target_out_of_range": lambda: TF.cross_entropy(ones(3, 5), torch.tensor([0, 5, 1])),
        "cross_entropy_label_smoothing": lambda: TF.cross_entropy(ones(3, 5), torch.tensor([0, 1, 2]),
                                                                  label_smoothing=1.5),
        "bce_input_above_1": lambda: TF.binary_cross_entropy(torch.tensor([0.5, 1.5]), ones(2)),
        "bce_target_size": lambda: TF.binary_cross_entropy(ones(2, value=0.5), ones(3)),
        "linear_shape": lambda: TF.linear(ones(2, 3), ones(5, 4)),
        "dropout_p_above_1": lambda: TF.dropout(ones(2), p=1.5),
        "layer_norm_shape": lambda: TF.layer_norm(ones(2, 3), (4,)),
        "gelu_approximate": lambda: TF.gelu(ones(2), approximate="x"),
        "embedding_float_indices": lambda: TF.embedding(torch.tensor([0.0]), ones(3, 2)),
        "max_pool2d_padding": lambda: TF.max_pool2d(ones(1, 1, 4, 4), 2, padding=2),
        "pad_odd_length": lambda: TF.pad(ones(2, 3), (1,)),
        "batch_norm_single_value": lambda: TF.batch_norm(ones(1, 3), None, None, training=True),
        "smooth_l1_negative_beta": lambda: TF.smooth_l1_loss(ones(2), ones(2), beta=-1.0),
        "huber_zero_delta": lambda: TF.huber_loss(ones(2), ones(2), delta=0.0),
        "huber_weight_size": lambda: TF.huber_loss(ones(2), ones(2), weight=ones(3)),
        "interpolate_both_sizes": lambda: TF.interpolate(ones(1, 1, 2), size=3, scale_factor=2),
        "interpolate_align_corners_nearest": lambda: TF.interpolate(ones(1, 1, 2), size=3, align_corners=True),
        "interpolate_bilinear_3d": lambda: TF.interpolate(ones(1, 1, 2), size=3, mode="bilinear"),
        "interpolate_2d_input": lambda: TF.interpolate(ones(2, 3), size=3),
        "interpolate_recompute_with_size": lambda: TF.interpolate(ones(1, 1, 2), size=3, recompute_scale_factor=True),
        "interpolate_empty_output": lambda: TF.interpolate(ones(1, 1, 3, 4), size=0),
    }
    expected = {e[0]: e[2] for e in ERRORS}
    for name, call in calls.items():
        with pytest.raises(expected[name]):
            call()


# ---------------------------------------------------------------- autograd graphs as PyTorch records them
# Each layer and loss is the node PyTorch records (AddmmBackward0, MseLossBackward0, NllLossBackward0 <-
# LogSoftmaxBackward0, ...), with `next_functions` as PyTorch lists them: order, None for inputs without grad,
# AccumulateGrad leaves, and the views PyTorch puts around a node for other ranks.
def _tree(fn):
    """The graph below a grad_fn as nested (name, children) tuples; None for an input without grad."""
    if fn is None:
        return None
    return fn.name().replace("torch::autograd::", ""), tuple(_tree(f) for f, _ in fn.next_functions)


def _blitz_loss(m):
    """The network and loss of PyTorch's 60-minute blitz ("Neural Networks"): LeNet on a 32x32 image, MSELoss."""
    nn, F = m.nn, m.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
            self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
            x = m.flatten(F.max_pool2d(F.relu(self.conv2(x)), 2), 1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    m.manual_seed(0)
    return nn.MSELoss()(Net()(m.randn(1, 1, 32, 32)), m.randn(10).view(1, -1))


def _ones(m, *shape, grad=False):
    return m.ones(*shape, requires_grad=grad)


def _targets(m, *shape):
    return m.zeros(shape, dtype=m.int64)


GRAPHS = {
    "blitz_lenet": _blitz_loss,
    **{f"linear_{'x'.join(map(str, s))}{'_bias' if b else ''}{'_xgrad' if xg else ''}": (
        lambda m, s=s, b=b, xg=xg: m.nn.functional.linear(_ones(m, *s, grad=xg), _ones(m, 3, 4, grad=True),
                                                          _ones(m, 3, grad=True) if b else None))
       for s in ((4,), (2, 4), (2, 5, 4)) for b in (True, False) for xg in (True, False)},
    "linear_weight_without_grad": lambda m: m.nn.functional.linear(_ones(m, 2, 4), _ones(m, 3, 4),
                                                                   _ones(m, 3, grad=True)),
    "linear_bias_without_grad": lambda m: m.nn.functional.linear(_ones(m, 2, 4), _ones(m, 3, 4, grad=True),
                                                                 _ones(m, 3)),
    "linear_3d_2d_bias": lambda m: m.nn.functional.linear(_ones(m, 2, 5, 4), _ones(m, 3, 4, grad=True),
                                                          _ones(m, 5, 3, grad=True)),
    **{f"mse_loss_{r}": (lambda m, r=r: m.nn.functional.mse_loss(_ones(m, 5, 4, grad=True), _ones(m, 5, 4),
                                                                 reduction=r)) for r in ("mean", "sum", "none")},
    "mse_loss_both": lambda m: m.nn.functional.mse_loss(_ones(m, 5, 4, grad=True), _ones(m, 5, 4, grad=True)),
    "mse_loss_target": lambda m: m.nn.functional.mse_loss(_ones(m, 5, 4), _ones(m, 5, 4, grad=True)),
    "mse_loss_broadcast": lambda m: m.nn.functional.mse_loss(_ones(m, 5, 4, grad=True), _ones(m, 4, grad=True)),
    **{f"nll_loss_{r}": (lambda m, r=r: m.nn.functional.nll_loss(
        m.nn.functional.log_softmax(_ones(m, 5, 4, grad=True), 1), _targets(m, 5), reduction=r))
       for r in ("mean", "sum", "none")},
    "nll_loss_weight": lambda m: m.nn.functional.nll_loss(_ones(m, 5, 4, grad=True), _targets(m, 5),
                                                          weight=_ones(m, 4)),
    "nll_loss_1d": lambda m: m.nn.functional.nll_loss(_ones(m, 4, grad=True), _targets(m)),
    **{f"nll_loss_{len(s)}d_{r}": (lambda m, s=s, r=r: m.nn.functional.nll_loss(
        _ones(m, *s, grad=True), _targets(m, s[0], *s[2:]), reduction=r))
       for s in ((2, 4, 3), (2, 4, 3, 2), (2, 4, 3, 2, 2)) for r in ("mean", "none")},
    "cross_entropy": lambda m: m.nn.functional.cross_entropy(_ones(m, 5, 4, grad=True), _targets(m, 5)),
    "cross_entropy_1d": lambda m: m.nn.functional.cross_entropy(_ones(m, 4, grad=True), _targets(m)),
    "cross_entropy_3d": lambda m: m.nn.functional.cross_entropy(_ones(m, 2, 4, 3, grad=True), _targets(m, 2, 3)),
    "log_softmax_dim0": lambda m: m.nn.functional.log_softmax(_ones(m, 5, 4, grad=True), 0),
    "log_softmax_dtype": lambda m: m.nn.functional.log_softmax(_ones(m, 5, 4, grad=True), 1, dtype=m.float64),
    "conv2d_bias": lambda m: m.nn.functional.conv2d(_ones(m, 1, 2, 5, 5), _ones(m, 3, 2, 3, 3, grad=True),
                                                    _ones(m, 3, grad=True)),
    "max_pool2d": lambda m: m.nn.functional.max_pool2d(_ones(m, 1, 2, 4, 4, grad=True), 2),
}


@pytest.mark.filterwarnings("ignore:.*Using a target size")
@pytest.mark.parametrize("name", GRAPHS)
def test_autograd_graph_is_pytorchs(name):
    torch = pytest.importorskip("torch")
    assert _tree(GRAPHS[name](tg).grad_fn) == _tree(GRAPHS[name](torch).grad_fn)


def test_blitz_network_graph_walk():
    """The blitz's walk: loss.grad_fn (MSELoss) -> Linear (addmm) -> its bias's AccumulateGrad, and the ReLU below."""
    loss = _blitz_loss(tg)
    addmm = loss.grad_fn.next_functions[0][0]
    assert [loss.grad_fn.name(), addmm.name()] == ["MseLossBackward0", "AddmmBackward0"]
    assert loss.grad_fn.next_functions[1] == (None, 0)  # the target needs no gradient
    bias, relu, t = (f for f, _ in addmm.next_functions)
    assert bias.name() == "AccumulateGrad" and bias.variable.shape == (10,)
    assert relu.name() == "ReluBackward0" and relu.next_functions[0][0].name() == "AddmmBackward0"
    assert t.name() == "TBackward0" and t.next_functions[0][0].variable.shape == (10, 84)


@pytest.mark.parametrize("fn", [
    lambda x, w, b: F.linear(x, w, b),
    lambda x, w, b: F.mse_loss(F.linear(x, w, b), x[:, :3] * 0.5, reduction="sum"),
    lambda x, w, b: F.cross_entropy(F.linear(x, w, b), tg.tensor([2, 0, 1, 2, 1])),
    lambda x, w, b: F.nll_loss(F.log_softmax(F.linear(x, w, b), 1), tg.tensor([2, -100, 1, 0, 1]),
                               weight=tg.tensor([0.5, 2.0, 1.5], dtype=tg.float64)),
], ids=["linear", "mse_loss", "cross_entropy", "nll_loss_weight_ignore"])
def test_one_node_layers_have_second_order_gradients(fn):
    rng = np.random.default_rng(3)
    x, w, b = (tg.tensor(rng.standard_normal(s), requires_grad=True) for s in ((5, 4), (3, 4), (3,)))
    assert tg.autograd.gradgradcheck(fn, (x, w, b))


def test_nll_loss_refuses_weights_that_require_grad_as_pytorch():
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        F.nll_loss(tg.zeros(2, 3), tg.tensor([0, 1]), weight=tg.ones(3, requires_grad=True))


def test_mse_loss_of_integers_is_not_implemented_as_in_pytorch():
    with pytest.raises(NotImplementedError, match="mse_loss"):
        F.mse_loss(tg.tensor([1, 2]), tg.tensor([1, 3]))
