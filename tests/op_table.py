"""The op table: one row per user-facing op, driving forward, gradient, second-order and parity tests.

Each row's `fn(m, *tensors)` is written against a module `m` that is either tracegrad or torch, so the
very same line runs in both; `ref(*arrays)` is the numpy reference. A new op is one row here.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Case:
    name: str
    fn: Callable                 # fn(m, *tensors) with m = tracegrad or torch
    ref: Callable                # ref(*numpy arrays) -> array or tuple of arrays
    shapes: list                 # input shape tuples, one list entry per variant
    domain: str = "real"         # a key of DOMAINS
    grad: bool = True            # first-order gradient check (float64 central differences)
    grad2: bool = True           # second-order check (gradgradcheck)
    notes: str = ""
    # NOTE: False for rows composed only of primitives that other rows already compile with the numba backend: their
    # kernels would add compile time (seconds per row, cold) and no coverage; the interpreter still runs them
    numba: bool = True

    def ids(self):
        return [f"{self.name}-{'x'.join('_'.join(map(str, s)) or 's' for s in v)}" for v in self.shapes]


def _lse(x, axis, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _index_put(x, idx, v):
    y = x.copy()
    y[idx] = v
    return y


def _conv(x, w, stride, pad, dil=1):
    """Direct-loop cross-correlation: the reference for conv2d."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = w.shape[2:]
    oh = (x.shape[2] - dil * (kh - 1) - 1) // stride + 1
    ow = (x.shape[3] - dil * (kw - 1) - 1) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * stride, i * stride + dil * (kh - 1) + 1, dil)
            patch = x[:, :, rows, j * stride:j * stride + dil * (kw - 1) + 1:dil]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out


def _pool(x, k, stride, pad, reduce, fill=-np.inf):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    oh, ow = (x.shape[2] - k) // stride + 1, (x.shape[3] - k) // stride + 1
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(x[:, :, i * stride:i * stride + k, j * stride:j * stride + k], axis=(2, 3))
    return out


def _linear_resize(x, n_out, scale=None, axis=-1, corners=False):
    """Linear resampling of one axis with PyTorch's source positions (half-pixel, or corner-aligned)."""
    n_in = x.shape[axis]
    dst = np.arange(n_out)
    if corners:
        src = dst * ((n_in - 1) / (n_out - 1))
    else:
        src = np.maximum(((n_in / n_out) if scale is None else scale) * (dst + 0.5) - 0.5, 0)
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = (src - i0).reshape((-1,) + (1,) * (-1 - axis))
    return np.take(x, i0, axis) * (1 - w) + np.take(x, i1, axis) * w


def _setitem(m, x, v):
    y = x * 1.0  # a non-leaf, so the write is recorded as an in-place op
    y[1:, 0] = v
    return y


def _quiet(ref):
    """`ref` without numpy's warnings (the math-more references compute log(0), log(-1) and 1/0 on purpose)."""
    def run(*arrays):
        with np.errstate(all="ignore"):
            return ref(*arrays)
    return run


def _inplace_math(m, x):
    y = x * 1.0  # a non-leaf, so each write is recorded as an in-place op
    y.sinh_().arctan_().clamp_min_(0.1).square_().log_().neg_().add_(5.0).reciprocal_()
    return y


def _reduce(loss, reduction):
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


# ---------------------------------------------------------------- helpers of the shape-more rows
SCATTER_IDX = np.array([[0, 1, 2, 0], [2, 0, 1, 1]])  # no position twice in a column (scatter's last write wins)


def _flat_cat(m, tensors):
    """Several ops' results in one row: flattened and concatenated (CatBackward0 in both libraries)."""
    return m.cat([t.reshape(-1) for t in tensors])


def _np_cat(arrays):
    return np.concatenate([np.asarray(a, np.float64).reshape(-1) for a in arrays])


def _block_diag(*mats):
    out = np.zeros((sum(a.shape[0] for a in mats), sum(a.shape[1] for a in mats)))
    r = c = 0
    for a in mats:
        out[r:r + a.shape[0], c:c + a.shape[1]] = a
        r, c = r + a.shape[0], c + a.shape[1]
    return out


def _diag_embed(x, offset):
    n = x.shape[-1] + abs(offset)
    out = np.zeros(x.shape[:-1] + (n, n))
    for i in range(x.shape[-1]):
        out[..., i + max(-offset, 0), i + max(offset, 0)] = x[..., i]
    return out


def _cdist(a, b, p):
    return (np.abs(a[:, None] - b[None]) ** p).sum(-1) ** (1 / p)


def _writes(x, s):
    """The numpy reference of the scatter_index_writes row."""
    cols = np.arange(4)
    scatter = x.copy()
    scatter[SCATTER_IDX, cols] = s
    fill = x.copy()
    fill[np.arange(3)[:, None], SCATTER_IDX.T[:3]] = 0.5
    added = x.copy()
    np.add.at(added, (SCATTER_IDX, cols), s)
    index_add = x.copy()
    index_add[2] += 2.0 * (s[0] + s[1])
    copy = x.copy()
    copy[[2, 0]] = s
    index_fill = x.copy()
    index_fill[:, [0, 2]] = -1.5
    masked = x.copy()
    masked[MASK] = s.ravel()[:MASK.sum()]
    return [scatter, fill, added, index_add, copy, index_fill, masked]


def _running_arg(x, axis, arg):
    """The position of the running maximum (minimum) along `axis`, for distinct values."""
    moved = np.moveaxis(x, axis, -1)
    return np.moveaxis(np.stack([arg(moved[..., :j + 1], -1) for j in range(moved.shape[-1])], -1), -1, axis)


def _inplace_reshapes(m, x):
    y = x * 1  # a non-leaf: in-place ops are recorded
    y.tril_()
    y.unsqueeze_(0)
    y.transpose_(0, 2)
    y.squeeze_(2)
    return y.t_()


TARGETS, TARGETS_IGN = np.array([2, 0, 3]), np.array([2, 1, 3])  # class indices for 3 samples of 4 classes
TARGETS_2D = np.array([[[0, 3], [1, 1], [2, 0]], [[3, 3], [0, 2], [1, 0]]])  # for (2, 4, 3, 2) scores
CLASS_W = np.array([0.5, 1.0, 2.0, 1.5])
S = (3, 4)
UNARY = [(S,), ((5,),), ((),), ((2, 3, 4),)]
BINARY = [(S, S), ((2, 3, 4), (4,)), ((3, 1), (1, 4)), ((), S), ((2, 1, 4), (3, 1))]
MASK = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])

CASES = [
    # ---------------------------------------------------------------- elementwise, binary
    Case("add", lambda m, a, b: a + b, np.add, BINARY),
    Case("add_alpha", lambda m, a, b: m.add(a, b, alpha=2.5), lambda a, b: a + 2.5 * b, BINARY[:2]),
    Case("sub", lambda m, a, b: a - b, np.subtract, BINARY),
    Case("mul", lambda m, a, b: a * b, np.multiply, BINARY),
    Case("div", lambda m, a, b: a / b, np.divide, BINARY, domain="away"),
    Case("pow", lambda m, a, b: a ** b, np.power, BINARY[:3], domain="positive"),
    Case("maximum", lambda m, a, b: m.maximum(a, b), np.maximum, BINARY),
    Case("minimum", lambda m, a, b: m.minimum(a, b), np.minimum, BINARY),
    Case("remainder", lambda m, a, b: a % b, np.remainder, [(S, S)], domain="away", grad2=False,
         notes="gradient checked away from the discontinuities"),
    Case("div_rounding", lambda m, a, b: m.stack([m.div(a, b, rounding_mode="trunc"),
                                                  m.div(a, b, rounding_mode="floor")]),
         lambda a, b: np.stack([np.trunc(a / b), np.floor(a / b)]), [(S, S), ((4,), ())], domain="away", grad=False),
    Case("radd_scalar", lambda m, a: 2.5 + a, lambda a: 2.5 + a, UNARY[:2]),
    Case("rsub_scalar", lambda m, a: 2.5 - a, lambda a: 2.5 - a, UNARY[:2]),
    Case("rmul_scalar", lambda m, a: 2.5 * a, lambda a: 2.5 * a, UNARY[:2]),
    Case("rdiv_scalar", lambda m, a: 2.5 / a, lambda a: 2.5 / a, UNARY[:2], domain="away"),
    Case("pow_scalar", lambda m, a: a ** 3, lambda a: a ** 3, UNARY),
    Case("pow_half", lambda m, a: a ** 0.5, np.sqrt, UNARY[:2], domain="positive"),
    Case("rpow_scalar", lambda m, a: 2.0 ** a, lambda a: 2.0 ** a, UNARY[:2]),
    # ---------------------------------------------------------------- elementwise, unary
    Case("neg", lambda m, x: -x, np.negative, UNARY),
    Case("exp", lambda m, x: x.exp(), np.exp, UNARY),
    Case("exp_fn", lambda m, x: m.exp(x), np.exp, UNARY[:1]),
    Case("log", lambda m, x: x.log(), np.log, UNARY, domain="positive"),
    Case("sqrt", lambda m, x: x.sqrt(), np.sqrt, UNARY, domain="positive"),
    Case("rsqrt", lambda m, x: x.rsqrt(), lambda x: 1 / np.sqrt(x), UNARY, domain="positive"),
    Case("tanh", lambda m, x: x.tanh(), np.tanh, UNARY),
    Case("sigmoid", lambda m, x: x.sigmoid(), _sigmoid, UNARY),
    Case("sigmoid_fn", lambda m, x: m.sigmoid(x), _sigmoid, UNARY[:1]),
    Case("relu", lambda m, x: x.relu(), lambda x: np.maximum(x, 0), UNARY, domain="away"),
    Case("relu_fn", lambda m, x: m.relu(x), lambda x: np.maximum(x, 0), UNARY[:1], domain="away"),
    Case("abs", lambda m, x: x.abs(), np.abs, UNARY, domain="away"),
    Case("erf", lambda m, x: m.erf(x), lambda x: np.vectorize(math.erf)(x), UNARY),
    Case("addcmul", lambda m, x, a, b: m.addcmul(x, a, b, value=0.5), lambda x, a, b: x + 0.5 * a * b,
         [(S, S, (4,))]),
    Case("addcdiv", lambda m, x, a, b: m.addcdiv(x, a, b, value=-2.0), lambda x, a, b: x - 2.0 * a / b,
         [(S, S, S)], domain="away"),
    Case("lerp", lambda m, a, b: m.lerp(a, b, 0.3), lambda a, b: a + 0.3 * (b - a), [(S, S)]),
    Case("lerp_high", lambda m, a, b: m.lerp(a, b, 0.9), lambda a, b: b - (b - a) * (1 - 0.9), [(S, S)]),
    Case("log_sigmoid", lambda m, x: m.nn.functional.logsigmoid(x), lambda x: -np.logaddexp(0, -x), UNARY),
    Case("bce", lambda m, x, t: m.nn.functional.binary_cross_entropy(x, t, reduction="none"),
         lambda x, t: -(t * np.log(x) + (1 - t) * np.log1p(-x)), [(S, S)], domain="unit"),
    Case("sin", lambda m, x: x.sin(), np.sin, UNARY),
    Case("cos", lambda m, x: m.cos(x), np.cos, UNARY),
    Case("square", lambda m, x: m.square(x), np.square, UNARY[:2]),
    Case("clamp", lambda m, x: x.clamp(-0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), UNARY[:2]),
    Case("clamp_min", lambda m, x: m.clamp(x, min=0.1), lambda x: np.maximum(x, 0.1), UNARY[:2]),
    Case("clamp_tensor", lambda m, x, lo: x.clamp(min=lo), np.maximum, [(S, (4,))]),
    Case("where", lambda m, c, a, b: m.where(c > 0, a, b), lambda c, a, b: np.where(c > 0, a, b),
         [(S, S, S), ((3, 1), (4,), (3, 4)), ((4,), (), (3, 4))]),
    Case("where_scalar", lambda m, x: m.where(x > 0, x, 0.5), lambda x: np.where(x > 0, x, 0.5), UNARY[:2]),
    # ---------------------------------------------------------------- matmul
    Case("matmul", lambda m, a, b: a @ b, np.matmul,
         [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((4,), (4,)), ((3, 4), (4,)),
          ((4,), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3))]),
    Case("mm_fn", lambda m, a, b: m.matmul(a, b), np.matmul, [((3, 4), (4, 2))]),
    # ---------------------------------------------------------------- reductions
    Case("sum", lambda m, x: x.sum(), np.sum, UNARY),
    Case("sum_dim", lambda m, x: x.sum(1), lambda x: x.sum(1), [(S,), ((2, 3, 4),)]),
    Case("sum_dims_keep", lambda m, x: x.sum((0, -1), keepdim=True), lambda x: x.sum((0, -1), keepdims=True),
         [((2, 3, 4),)]),
    Case("mean", lambda m, x: x.mean(), np.mean, UNARY),
    Case("mean_dim", lambda m, x: m.mean(x, -1, keepdim=True), lambda x: x.mean(-1, keepdims=True), UNARY[::3]),
    Case("max", lambda m, x: x.max(), np.max, UNARY),
    Case("max_dim", lambda m, x: x.max(dim=1)[0], lambda x: x.max(1), [(S,), ((2, 3, 4),)]),
    Case("max_dim_indices", lambda m, x: x.max(1, keepdim=True).indices, lambda x: x.argmax(1)[:, None],
         [(S,)], grad=False),
    Case("min", lambda m, x: x.min(), np.min, UNARY),
    Case("min_dim", lambda m, x: m.min(x, 0).values, lambda x: x.min(0), [(S,), ((2, 3, 4),)]),
    Case("amax", lambda m, x: m.amax(x, (0, 1)), lambda x: x.max((0, 1)), [((2, 3, 4),)]),
    Case("amin", lambda m, x: m.amin(x, 1, keepdim=True), lambda x: x.min(1, keepdims=True), [(S,)]),
    Case("all_any", lambda m, x: m.stack([(x > -1).all(), (x > 3).any(), m.all(x > 0, 1)[0], x.any(dim=0)[1]]),
         lambda x: np.array([(x > -1).all(), (x > 3).any(), (x > 0).all(1)[0], x.any(0)[1]]), [(S,)], grad=False),
    Case("argmax", lambda m, x: x.argmax(), lambda x: np.argmax(x), UNARY[:2], grad=False),
    Case("argmax_dim", lambda m, x: x.argmax(dim=1), lambda x: np.argmax(x, 1), [(S,)], grad=False),
    Case("argmin_dim", lambda m, x: m.argmin(x, 0, keepdim=True), lambda x: np.argmin(x, 0)[None], [(S,)],
         grad=False),
    Case("var", lambda m, x: x.var(), lambda x: np.var(x, ddof=1), UNARY[:2]),
    Case("var_dim", lambda m, x: x.var(1, keepdim=True), lambda x: np.var(x, 1, ddof=1, keepdims=True), [(S,)]),
    Case("var_biased", lambda m, x: x.var(0, unbiased=False), lambda x: np.var(x, 0), [(S,)]),
    Case("var_correction", lambda m, x: m.var(x, 1, correction=0), lambda x: np.var(x, 1), [(S,)]),
    Case("std", lambda m, x: x.std(), lambda x: np.std(x, ddof=1), UNARY[:2]),
    Case("std_dim", lambda m, x: x.std(dim=0), lambda x: np.std(x, 0, ddof=1), [(S,)]),
    Case("norm", lambda m, x: x.norm(), np.linalg.norm, UNARY[:2]),
    Case("norm_dim", lambda m, x: x.norm(dim=1, keepdim=True), lambda x: np.linalg.norm(x, axis=1, keepdims=True),
         [(S,)]),
    Case("norm_p1", lambda m, x: x.norm(p=1), lambda x: np.abs(x).sum(), [(S,)], domain="away"),
    Case("norm_p3", lambda m, x: x.norm(p=3, dim=0), lambda x: (np.abs(x) ** 3).sum(0) ** (1 / 3), [(S,)],
         domain="away"),
    Case("norm_inf", lambda m, x: x.norm(p=float("inf")), lambda x: np.abs(x).max(), [(S,)], domain="away"),
    Case("logsumexp", lambda m, x: x.logsumexp(1), lambda x: _lse(x, 1), [(S,), ((2, 3, 4),)]),
    Case("logsumexp_keep", lambda m, x: m.logsumexp(x, 0, keepdim=True), lambda x: _lse(x, 0, True), [(S,)]),
    Case("softmax", lambda m, x: x.softmax(1), lambda x: _softmax(x, 1), [(S,), ((2, 3, 4),)]),
    Case("softmax_fn", lambda m, x: m.softmax(x, dim=0), lambda x: _softmax(x, 0), [(S,)]),
    Case("log_softmax", lambda m, x: x.log_softmax(-1), lambda x: np.log(_softmax(x, -1)), [(S,), ((2, 3, 4),)]),
    # ---------------------------------------------------------------- movement
    Case("reshape", lambda m, x: x.reshape(4, 3), lambda x: x.reshape(4, 3), [(S,)]),
    Case("reshape_infer", lambda m, x: x.reshape(-1, 2), lambda x: x.reshape(-1, 2), [(S,), ((2, 3, 4),)]),
    Case("view", lambda m, x: x.view(12), lambda x: x.reshape(12), [(S,)]),
    Case("permute", lambda m, x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1), [((2, 3, 4),)]),
    Case("transpose", lambda m, x: x.transpose(0, 1), lambda x: x.swapaxes(0, 1), [(S,), ((2, 3, 4),)]),
    Case("T", lambda m, x: x.T, lambda x: x.T, [(S,)]),
    Case("squeeze", lambda m, x: x.squeeze(), np.squeeze, [((3, 1, 4, 1),)]),
    Case("squeeze_dim", lambda m, x: x.squeeze(1), lambda x: np.squeeze(x, 1), [((3, 1, 4),)]),
    Case("unsqueeze", lambda m, x: x.unsqueeze(-1), lambda x: x[..., None], [(S,), ((),)]),
    Case("expand", lambda m, x: x.expand(2, 3, 4), lambda x: np.broadcast_to(x, (2, 3, 4)), [((3, 1),), ((4,),)]),
    Case("expand_keep", lambda m, x: x.expand(-1, 4), lambda x: np.broadcast_to(x, (3, 4)), [((3, 1),)]),
    Case("flatten", lambda m, x: x.flatten(), np.ravel, [((2, 3, 4),)]),
    Case("flatten_range", lambda m, x: m.flatten(x, 1), lambda x: x.reshape(2, 12), [((2, 3, 4),)]),
    Case("cat", lambda m, a, b: m.cat([a, b], 1), lambda a, b: np.concatenate([a, b], 1), [(S, (3, 2))]),
    Case("cat3", lambda m, a, b, c: m.cat((a, b, c)), lambda a, b, c: np.concatenate([a, b, c]),
         [((2, 4), S, (1, 4))]),
    Case("stack", lambda m, a, b: m.stack([a, b], dim=1), lambda a, b: np.stack([a, b], 1), [(S, S)]),
    Case("split", lambda m, x: x.split(2, dim=1)[1], lambda x: x[:, 2:4], [(S,)]),
    Case("split_sizes", lambda m, x: m.split(x, [1, 2], 0)[1] * 2, lambda x: x[1:3] * 2, [(S,)]),
    Case("chunk", lambda m, x: x.chunk(3, 1)[-1], lambda x: x[:, 2:], [(S,)]),
    # ---------------------------------------------------------------- indexing
    Case("index_int", lambda m, x: x[1], lambda x: x[1], [(S,)]),
    Case("index_neg", lambda m, x: x[-1, -2], lambda x: x[-1, -2], [(S,)]),
    Case("index_slice", lambda m, x: x[1:, ::2], lambda x: x[1:, ::2], [(S,)]),
    Case("index_none_ellipsis", lambda m, x: x[None, ..., 1], lambda x: x[None, ..., 1], [((2, 3, 4),)]),
    Case("index_mask", lambda m, x: x[m.from_numpy(MASK)], lambda x: x[MASK], [(S,)]),
    Case("index_array_repeats", lambda m, x: x[m.tensor([0, 2, 0, 0])], lambda x: x[[0, 2, 0, 0]], [(S,)]),
    Case("index_arrays_2d", lambda m, x: x[m.tensor([0, 2]), m.tensor([1, 1])], lambda x: x[[0, 2], [1, 1]],
         [(S,)]),
    Case("index_int_slice_array", lambda m, x: x[1, :2, m.tensor([3, 0, 3])], lambda x: x[1][:2][:, [3, 0, 3]],
         [((2, 3, 4),)], notes="PyTorch's layout: the int selects first (numpy would move the array dims first)"),
    # ---------------------------------------------------------------- convolution and pooling (nn.functional)
    Case("conv2d", lambda m, x, w: m.nn.functional.conv2d(x, w, stride=2, padding=1), lambda x, w: _conv(x, w, 2, 1),
         [((2, 3, 7, 6), (4, 3, 3, 3))]),
    Case("conv2d_groups_dilation", lambda m, x, w: m.nn.functional.conv2d(x, w, padding=2, dilation=2, groups=2),
         lambda x, w: np.concatenate([_conv(x[:, :2], w[:2], 1, 2, 2), _conv(x[:, 2:], w[2:], 1, 2, 2)], 1),
         [((1, 4, 6, 6), (4, 2, 3, 3))]),
    Case("max_pool2d", lambda m, x: m.nn.functional.max_pool2d(x, 3, 2, 1), lambda x: _pool(x, 3, 2, 1, np.max),
         [((2, 2, 7, 6),)]),
    Case("avg_pool2d", lambda m, x: m.nn.functional.avg_pool2d(x, 2), lambda x: _pool(x, 2, 2, 0, np.mean),
         [((1, 3, 6, 4),)]),
    Case("avg_pool2d_pad", lambda m, x: m.nn.functional.avg_pool2d(x, 3, 2, 1, count_include_pad=True),
         lambda x: _pool(x, 3, 2, 1, lambda w, axis: np.sum(w, axis=axis) / 9, 0.0), [((1, 2, 5, 5),)]),
    Case("setitem_nonleaf", _setitem, lambda x, v: _index_put(x, (slice(1, None), 0), v), [(S, (2,)), (S, ())]),
    # ---------------------------------------------------------------- ops-api rows: products and contractions
    Case("dot", lambda m, a, b: m.dot(a, b), np.dot, [((4,), (4,))]),
    Case("mv", lambda m, a, b: a.mv(b), np.matmul, [((3, 4), (4,))]),
    Case("bmm", lambda m, a, b: m.bmm(a, b), np.matmul, [((2, 3, 4), (2, 4, 5))]),
    Case("outer", lambda m, a, b: a.outer(b), np.outer, [((3,), (4,))]),
    Case("addmv", lambda m, x, a, b: m.addmv(x, a, b, beta=0.5, alpha=2.0), lambda x, a, b: 0.5 * x + 2 * a @ b,
         [((3,), (3, 4), (4,))]),
    Case("baddbmm", lambda m, x, a, b: x.baddbmm(a, b), lambda x, a, b: x + a @ b, [((1, 3, 5), (2, 3, 4), (2, 4, 5))]),
    Case("einsum_implicit", lambda m, a, b: m.einsum("ij,jk", a, b), np.matmul, [((3, 4), (4, 2))]),
    Case("einsum_ellipsis", lambda m, a, b: m.einsum("...ij,...jk->...ik", a, b), np.matmul,
         [((2, 1, 3, 4), (3, 4, 2))]),
    Case("einsum_three", lambda m, a, b, c: m.einsum("bn,anm,bm->ba", [a, b, c]),
         lambda a, b, c: np.einsum("bn,anm,bm->ba", a, b, c), [((2, 3), (4, 3, 2), (2, 2))]),
    Case("einsum_broadcast", lambda m, a, b: m.einsum("ij,ij->i", a, b), lambda a, b: (a * b).sum(1),
         [((1, 3), (2, 3))]),
    Case("einsum_outer", lambda m, a, b: m.einsum("i,j->ij", a, b), np.outer, [((3,), (2,))]),
    Case("einsum_diagonal", lambda m, x: m.einsum("ii->i", x) * 2, lambda x: np.diag(x) * 2, [((3, 3),)]),
    Case("einsum_trace", lambda m, x: m.einsum("ii", x), np.trace, [((3, 3),)]),
    Case("einsum_transpose_sum", lambda m, x: m.einsum("bij->jb", x), lambda x: x.sum(1).T, [((2, 3, 4),)]),
    Case("trace", lambda m, x: x.trace(), np.trace, [((2, 4),)]),
    # ---------------------------------------------------------------- ops-api rows: scans and products
    Case("cumsum", lambda m, x: x.cumsum(1), lambda x: np.cumsum(x, 1), [((2, 3, 4),)]),
    Case("cumsum_fn", lambda m, x: m.cumsum(x, dim=0), lambda x: np.cumsum(x.reshape(-1)).reshape(x.shape),
         [((5,),), ((),)]),
    Case("cumprod", lambda m, x: x.cumprod(-1), lambda x: np.cumprod(x, -1), [(S,)]),
    Case("cumprod_zeros", lambda m, x: m.cumprod(x, 0), lambda x: np.cumprod(x, 0), [((6, 3),)], domain="zeros",
         notes="exact zeros (one or two per column): the gradient at and after the first zero"),
    Case("prod", lambda m, x: x.prod(), np.prod, [(S,)]),
    Case("prod_dim_zeros", lambda m, x: m.prod(x, 1, keepdim=True), lambda x: np.prod(x, 1, keepdims=True),
         [((4, 5),)], domain="zeros"),
    Case("diff", lambda m, x: m.diff(x, n=2, dim=0), lambda x: np.diff(x, 2, 0), [((4, 3),)]),
    # ---------------------------------------------------------------- ops-api rows: sorting and gathering
    Case("sort", lambda m, x: x.sort(1).values, lambda x: np.sort(x, 1), [((2, 3, 4),)]),
    Case("sort_descending", lambda m, x: m.sort(x, 0, descending=True)[0], lambda x: -np.sort(-x, 0), [(S,)]),
    Case("sort_indices", lambda m, x: x.sort(dim=0, stable=True).indices, lambda x: np.argsort(x, 0, kind="stable"),
         [(S,)], grad=False),
    Case("argsort", lambda m, x: m.argsort(x, descending=True), lambda x: np.argsort(-x, -1, kind="stable"),
         [(S,)], grad=False),
    Case("topk", lambda m, x: x.topk(2, dim=0).values, lambda x: -np.sort(-x, 0)[:2], [(S,)]),
    Case("topk_smallest", lambda m, x: m.topk(x, 3, largest=False)[0], lambda x: np.sort(x, -1)[..., :3],
         [((5,),)]),
    Case("gather", lambda m, x: x.gather(1, m.tensor(GATHER_IDX)), lambda x: np.take_along_axis(x, GATHER_IDX, 1),
         [(S,)]),
    Case("index_range", lambda m, x: x[range(2, 0, -1)], lambda x: x[[2, 1]], [(S,)]),
    # ---------------------------------------------------------------- ops-api rows: interpolate (nn.functional)
    Case("interpolate_nearest", lambda m, x: m.nn.functional.interpolate(x, scale_factor=2),
         lambda x: x.repeat(2, 2).repeat(2, 3), [((1, 2, 2, 3),)]),
    Case("interpolate_nearest_1d", lambda m, x: m.nn.functional.interpolate(x, size=7),
         lambda x: x[..., [0, 0, 1, 2, 2, 3, 4]], [((2, 1, 5),)]),
    Case("interpolate_nearest_exact", lambda m, x: m.nn.functional.interpolate(x, size=(5, 2), mode="nearest-exact"),
         lambda x: x[..., [0, 0, 1, 2, 2], :][..., [1, 3]], [((1, 1, 3, 4),)]),
    Case("interpolate_linear", lambda m, x: m.nn.functional.interpolate(x, scale_factor=1.5, mode="linear"),
         lambda x: _linear_resize(x, 6, 1 / 1.5), [((2, 2, 4),)]),
    Case("interpolate_bilinear", lambda m, x: m.nn.functional.interpolate(x, size=(5, 3), mode="bilinear"),
         lambda x: _linear_resize(_linear_resize(x, 3), 5, axis=-2), [((1, 2, 3, 4),)]),
    Case("interpolate_bilinear_corners",
         lambda m, x: m.nn.functional.interpolate(x, size=(4, 5), mode="bilinear", align_corners=True),
         lambda x: _linear_resize(_linear_resize(x, 5, corners=True), 4, axis=-2, corners=True), [((1, 1, 3, 3),)]),
    # ---------------------------------------------------------------- layers and losses: one node each, as PyTorch's
    Case("linear", lambda m, x, w, b: m.nn.functional.linear(x, w, b), lambda x, w, b: x @ w.T + b,
         [((3, 4), (5, 4), (5,)), ((2, 3, 4), (5, 4), (5,))]),
    Case("linear_nobias", lambda m, x, w: m.nn.functional.linear(x, w), lambda x, w: x @ w.T, [((2, 3, 4), (5, 4))]),
    Case("addmm", lambda m, b, x, y: m.addmm(b, x, y), lambda b, x, y: b + x @ y, [((3, 1), (3, 2), (2, 4))]),
    Case("conv2d_bias", lambda m, x, w, b: m.nn.functional.conv2d(x, w, b, padding=1),
         lambda x, w, b: _conv(x, w, 1, 1) + b.reshape(1, -1, 1, 1), [((2, 3, 5, 4), (4, 3, 3, 3), (4,))]),
    Case("mse_loss", lambda m, x, t: sum(m.nn.functional.mse_loss(x, t, reduction=r) for r in ("none", "mean", "sum")),
         lambda x, t: sum(_reduce((x - t) ** 2, r) for r in ("none", "mean", "sum")), [(S, S)]),
    Case("nll_loss", lambda m, x: sum(m.nn.functional.nll_loss(x, m.tensor(TARGETS), reduction=r)
                                      for r in ("none", "mean", "sum")),
         lambda x: sum(_reduce(-x[np.arange(3), TARGETS], r) for r in ("none", "mean", "sum")), [(S,)]),
    Case("nll_loss_weight_ignore", lambda m, x: m.nn.functional.nll_loss(
        x, m.tensor(TARGETS_IGN), weight=m.tensor(CLASS_W).to(x.dtype), ignore_index=1),
         lambda x: -(x[[0, 2], [2, 3]] * CLASS_W[[2, 3]]).sum() / CLASS_W[[2, 3]].sum(), [(S,)]),
    Case("nll_loss_2d", lambda m, x: m.nn.functional.nll_loss(x, m.tensor(TARGETS_2D), reduction="none"),
         lambda x: -np.take_along_axis(x, TARGETS_2D[:, None], 1)[:, 0], [((2, 4, 3, 2),)]),
    Case("trace_fn", lambda m, x: m.trace(x), lambda x: np.trace(x), [(S,), ((4, 3),)]),
    Case("cross_entropy", lambda m, x: m.nn.functional.cross_entropy(x, m.tensor(TARGETS)),
         lambda x: -np.mean((x - _lse(x, 1, True))[np.arange(3), TARGETS]), [(S,)]),
    # ---------------------------------------------------------------- shape-more rows: several ops per row
    Case("flip_roll_narrow_unfold", lambda m, x, y: _flat_cat(m, [
        x.flip(0), x.fliplr(), m.roll(x, (1, -1), (0, 1)), x.roll(2), x.rot90(), m.rot90(y, 3, (0, 2)),
        x.narrow(1, 1, 2), y.movedim(0, 2), x.unfold(1, 2, 1), x.T.ravel(), m.atleast_3d(x)]),
         lambda x, y: _np_cat([
             np.flip(x, 0), np.fliplr(x), np.roll(x, (1, -1), (0, 1)), np.roll(x, 2), np.rot90(x),
             np.rot90(y, 3, (0, 2)), x[:, 1:3], np.moveaxis(y, 0, 2), np.lib.stride_tricks.sliding_window_view(x, 2, 1),
             x.T, x]),
         [(S, (2, 3, 4))], numba=False),
    Case("tril_triu_diagonals", lambda m, x, v: _flat_cat(m, [
        x.tril(), m.triu(x, 1), x.diagonal(1), m.diagonal(x, -1), m.diag(x, 1), m.diag(v, -1), m.diag_embed(x, 1, 0, 2),
        v.diagflat()]),
         lambda x, v: _np_cat([
             np.tril(x), np.triu(x, 1), np.diagonal(x, 1), np.diagonal(x, -1), np.diag(x, 1), np.diag(v, -1),
             _diag_embed(x, 1).transpose(1, 0, 2), np.diagflat(v)]), [(S, (4,))], numba=False),
    Case("repeat_tile_stacks", lambda m, x, v: _flat_cat(m, [
        x.repeat(2, 1, 2), m.tile(x, (2,)), x.repeat_interleave(2, dim=1),
        m.repeat_interleave(x, m.tensor([1, 0, 2]), 0), m.hstack([x, x]), m.vstack([v, v]), m.dstack([x, x]),
        m.column_stack([v, v]), m.block_diag(x, v), m.cartesian_prod(v, v[:2]),
        m.meshgrid(v, v[:3], indexing="xy")[1]]),
         lambda x, v: _np_cat([
             np.tile(x, (2, 1, 2)), np.tile(x, 2), np.repeat(x, 2, 1), np.repeat(x, [1, 0, 2], 0), np.hstack([x, x]),
             np.vstack([v, v]), np.dstack([x, x]), np.column_stack([v, v]), _block_diag(x, v[None]),
             np.array([[a, b] for a in v for b in v[:2]]), np.meshgrid(v, v[:3])[1]]), [(S, (4,))], numba=False),
    Case("kron_cross_tensordot_cdist", lambda m, a, b: _flat_cat(m, [
        m.kron(a, b), m.cross(a, b, dim=1), m.tensordot(a, b, ([1], [0])), m.cdist(a, b), m.cdist(a, b, p=1),
        m.cdist(a, b, p=3)]),
         lambda a, b: _np_cat([
             np.kron(a, b), np.cross(a, b, axis=1), a @ b, _cdist(a, b, 2), _cdist(a, b, 1), _cdist(a, b, 3)]),
         [((3, 3), (3, 3))], numba=False),
    Case("select_reads", lambda m, x: _flat_cat(m, [
        x.masked_select(m.from_numpy(MASK)), x.index_select(1, m.tensor([0, 2, 2])),
        m.take(x, m.tensor([[0, 5], [11, 5]])), m.take_along_dim(x, m.tensor(GATHER_IDX), 1)]),
         lambda x: _np_cat([x[MASK], x[:, [0, 2, 2]], x.ravel()[[[0, 5], [11, 5]]],
                            np.take_along_axis(x, GATHER_IDX, 1)]),
         [(S,)], numba=False),
    Case("scatter_index_writes", lambda m, x, s: m.stack([
        x.scatter(0, m.tensor(SCATTER_IDX), s), x.scatter(1, m.tensor(SCATTER_IDX.T[:3]), 0.5),
        x.scatter_add(0, m.tensor(SCATTER_IDX), s), x.index_add(0, m.tensor([2, 2]), s, alpha=2.0),
        m.index_copy(x, 0, m.tensor([2, 0]), s), x.index_fill(1, m.tensor([0, 2]), -1.5),
        x.masked_scatter(m.from_numpy(MASK), s)]),
         lambda x, s: np.stack(_writes(x, s)), [(S, (2, 4))], numba=False),
    Case("order_statistics", lambda m, x: _flat_cat(m, [
        m.cummax(x, 1).values, x.cummin(0)[0], x.logcumsumexp(1), x.median(), x.median(1).values, m.nanmedian(x, 0)[0],
        x.kthvalue(2, 1).values, x.mode(1).values]),
         lambda x: _np_cat([
             np.maximum.accumulate(x, 1), np.minimum.accumulate(x, 0), np.logaddexp.accumulate(x, 1),
             np.sort(x, None)[5], np.sort(x, 1)[:, 1], np.sort(x, 0)[1], np.sort(x, 1)[:, 1], x.min(1)]),
         [(S,)], numba=False),
    Case("quantiles", lambda m, x: _flat_cat(m, [
        x.quantile(0.3), x.quantile(m.tensor([0.25, 0.625]).to(x.dtype), dim=1), m.nanquantile(x, 0.5, 0, keepdim=True),
        x.quantile(0.4, 1, interpolation="midpoint"), x.quantile(0.7, 0, interpolation="nearest")]),
         lambda x: _np_cat([
             np.quantile(x, 0.3), np.quantile(x, [0.25, 0.625], 1), np.quantile(x, 0.5, 0, keepdims=True),
             np.quantile(x, 0.4, 1, method="midpoint"), np.quantile(x, 0.7, 0, method="nearest")]),
         [(S,)], numba=False),
    Case("inplace_reshapes", _inplace_reshapes, np.tril, [(S,)],
         notes="tril_, then unsqueeze_, transpose_, squeeze_ and t_ back to the input's shape (grad_fn TBackward1)",
         numba=False),
    Case("order_indices", lambda m, x: m.cat([
        m.searchsorted(m.tensor([-1.0, 0.0, 1.0]).to(x.dtype), x.flatten()), m.bucketize(x.flatten(), m.tensor(
            [-0.5, 0.5]).to(x.dtype), right=True), m.histc(x, 4, -1, 1).long(), x.kthvalue(2, 1).indices, m.cummax(
            x, 1).indices.flatten(), x.cummin(0).indices.flatten(), x.median(1).indices, x.mode(1).indices]),
         lambda x: np.concatenate([
             np.searchsorted([-1.0, 0.0, 1.0], x.ravel()), np.searchsorted([-0.5, 0.5], x.ravel(), "right"),
             np.histogram(x, 4, (-1, 1))[0], np.argsort(x, 1)[:, 1], _running_arg(x, 1, np.argmax).ravel(),
             _running_arg(x, 0, np.argmin).ravel(), np.argsort(x, 1)[:, 1], x.argmin(1)]), [(S,)], grad=False),
]

# ---------------------------------------------------------------- nn-more rows: reflection padding, unfold and fold
# (index arrays into the input: gathers forward and scatter-adds backward, and fold's scatter-add forward)
def _reflect_fold_unfold(x):
    """fold(unfold(pad(x, reflect))) with 2x2 blocks: each padded pixel times the number of blocks covering it."""
    xp = np.pad(x, ((0, 0), (0, 0), (2, 1), (1, 2)), mode="reflect")
    cover = lambda n: np.minimum(np.minimum(np.arange(n) + 1, n - np.arange(n)), 2)  # noqa: E731
    return xp * np.outer(cover(xp.shape[2]), cover(xp.shape[3])) * 1.5


CASES += [
    Case("pad_reflect_unfold_fold", lambda m, x: m.nn.functional.fold(
        m.nn.functional.unfold(m.nn.functional.pad(x, (1, 2, 2, 1), mode="reflect"), 2) * 1.5, (6, 7), 2),
         _reflect_fold_unfold, [((1, 2, 3, 4),)]),
]


# ---------------------------------------------------------------- linalg rows: solves, decompositions (numpy.linalg)
def _well_posed(a):
    return a + 3 * np.eye(a.shape[-1])  # diagonally heavy: invertible, distinct singular values


def _spd(a):
    return a @ a.T + 3 * np.eye(a.shape[-1])


def _linalg_solves(m, a, b):
    a = a + 3 * m.eye(3, dtype=a.dtype)
    return m.cat([m.linalg.inv(a).reshape(-1), m.linalg.solve(a, b).reshape(-1), m.linalg.det(a).reshape(1),
                  m.linalg.slogdet(a)[1].reshape(1), m.linalg.pinv(a).reshape(-1)])


def _linalg_decompositions(m, a):
    s = a @ a.mT + 3 * m.eye(3, dtype=a.dtype)
    w, v = m.linalg.eigh(s)
    u, sv, vh = m.linalg.svd(a + 3 * m.eye(3, dtype=a.dtype))
    q, r = m.linalg.qr(a)
    # sign-free quantities: eigenvectors and singular vectors are defined up to sign
    return m.cat([m.linalg.cholesky(s).reshape(-1), m.linalg.eigvalsh(s), ((v * w) @ v.mT).reshape(-1),
                  m.linalg.svdvals(a), ((u * sv) @ vh).reshape(-1), (q @ r).reshape(-1)])


CASES += [
    Case("linalg_solves", _linalg_solves, lambda a, b: np.concatenate([
        np.linalg.inv(_well_posed(a)).ravel(), np.linalg.solve(_well_posed(a), b).ravel(),
        [np.linalg.det(_well_posed(a))], [np.linalg.slogdet(_well_posed(a))[1]],
        np.linalg.pinv(_well_posed(a)).ravel()]),
         [((3, 3), (3, 2))], numba=False),
    Case("linalg_decompositions", _linalg_decompositions, lambda a: np.concatenate([
        np.linalg.cholesky(_spd(a)).ravel(), np.linalg.eigvalsh(_spd(a)), _spd(a).ravel(),
        np.linalg.svd(a, compute_uv=False), _well_posed(a).ravel(), a.ravel()]), [((3, 3),)], numba=False,
         notes="eigen- and singular vectors enter through sign-free products"),
    # ---------------------------------------------------------------- math-more rows: grouped, one variant each
    Case("rounding", lambda m, x: m.stack([x.floor(), m.ceil(x), x.round(), m.trunc(x), m.fix(x), x.frac(),
                                           m.round(x * 4, decimals=1), x.round(decimals=-1)]),
         lambda x: np.stack([np.floor(x), np.ceil(x), np.round(x), np.trunc(x), np.trunc(x), x - np.trunc(x),
                             np.round(x * 4, 1), np.round(x, -1)]), [(S,)], domain="big",
         notes="zero gradients, as PyTorch's (frac's is 1); inputs far from the .5 ties"),
    Case("transcendental", lambda m, x: m.stack([x.asin(), m.acos(x), x.atan(), m.arctanh(x), (x + 1).acosh(),
                                                 m.asinh(x), x.tan(), x.sinh(), m.cosh(x), x.log2(), m.log10(x),
                                                 m.exp2(x), x.expm1(), m.log1p(x), x.reciprocal()]),
         lambda x: np.stack([np.arcsin(x), np.arccos(x), np.arctan(x), np.arctanh(x), np.arccosh(x + 1),
                             np.arcsinh(x), np.tan(x), np.sinh(x), np.cosh(x), np.log2(x), np.log10(x), np.exp2(x),
                             np.expm1(x), np.log1p(x), 1 / x]), [(S,)], domain="unit"),
    Case("binary_math", lambda m, a, b: m.stack([m.atan2(a, b), m.hypot(a, b), m.logaddexp(a, b), m.fmod(a, b),
                                                 m.xlogy(a, b.abs())]),
         lambda a, b: np.stack([np.arctan2(a, b), np.hypot(a, b), np.logaddexp(a, b), np.fmod(a, b),
                                a * np.log(np.abs(b))]), [(S, (4,))],
         domain="away", grad2=False, notes="fmod's gradient, as remainder's, is checked away from its jumps"),
    Case("nonfinite", lambda m, x: m.cat([m.nan_to_num(x.detach().log(), nan=0.5).clamp(min=-1e30),
                                          m.nan_to_num(1 / x.detach().log(), neginf=-2.0),
                                          m.stack([m.isinf(x.log()), m.isfinite(x.log()), m.isposinf(1 / x),
                                                   m.isneginf(x.log())]).to(x.dtype).flatten()]),
         _quiet(lambda x: np.concatenate([np.maximum(np.nan_to_num(np.log(x), nan=0.5), -1e30),
                                          np.nan_to_num(1 / np.log(x), neginf=-2.0),
                                          np.stack([np.isinf(np.log(x)), np.isfinite(np.log(x)), np.isposinf(1 / x),
                                                    np.isneginf(np.log(x))]).ravel()])),
         [((7,),)], domain="zeros", grad=False, notes="nan, infinities (the defaults clamped); no gradient"),
    Case("inplace_math", _inplace_math, lambda x: 1 / (5 - np.log(np.maximum(np.arctan(np.sinh(x)), 0.1) ** 2)),
         [(S,)]),
    Case("activations", lambda m, x: m.stack([m.nn.functional.elu(x, 0.7), m.nn.functional.hardswish(x * 4),
                                              m.nn.functional.softplus(x, beta=2.0, threshold=1.0),
                                              m.nan_to_num(x.log() * 2, nan=0.5) + m.clamp_min(x, 0.2)]),
         _quiet(lambda x: np.stack([np.where(x > 0, x, 0.7 * np.expm1(x)), 4 * x * np.clip(4 * x + 3, 0, 6) / 6,
                                    np.where(2 * x > 1, x, np.logaddexp(0, 2 * x) / 2),
                                    np.nan_to_num(np.log(x) * 2, nan=0.5) + np.maximum(x, 0.2)])),
         [(S,)], domain="away", notes="masked branches (expm1, logaddexp, log) with finite gradients; the other "
                                      "activations are rows of tests/test_nn_functional.py"),
    # ---------------------------------------------------------------- end of the math-more rows
]

GATHER_IDX = np.array([[3, 0], [1, 1], [0, 2]])

# Rows whose eager output has no grad_fn, so there is no gradient to compare (forward checks only).
NOT_DIFFERENTIABLE = {
    "sort_indices": "int64 indices",
    "argsort": "int64 indices",
    "max_dim_indices": "int64 indices",
    "all_any": "bool results",
    "argmax": "int64 indices",
    "argmax_dim": "int64 indices",
    "argmin_dim": "int64 indices",
    "order_indices": "int64 indices and counts",
    "nonfinite": "of detached inputs, and bool results",  # math-more
}


DOMAINS = {  # how each input of a case is drawn
    "real": lambda rng, shape: rng.standard_normal(shape),
    "positive": lambda rng, shape: rng.uniform(0.5, 2.0, shape),
    "unit": lambda rng, shape: rng.uniform(0.1, 0.9, shape),
    "prob": lambda rng, shape: rng.uniform(0.05, 0.95, shape),
    "away": lambda rng, shape: rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 1.5, shape),
    "big": lambda rng, shape: rng.choice([-1.0, 1.0], shape) * rng.uniform(20.0, 200.0, shape),
    # real values with exact zeros (about one in three): products and their gradients at zeros
    "zeros": lambda rng, shape: rng.standard_normal(shape) * (rng.random(shape) > 0.35),
}


def make_inputs(case, shapes, dtype=np.float64) -> list:
    """Deterministic inputs for one variant of a case, drawn from the case's domain."""
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    return [np.asarray(DOMAINS[case.domain](rng, shape), dtype) for shape in shapes]


def variants(numba: bool = False):
    """(case, shapes) pairs with readable ids, for pytest.mark.parametrize (`numba=True`: the rows the numba
    backend's test runs)."""
    params, ids = [], []
    for case in CASES:
        if numba and not case.numba:
            continue
        for shapes, id_ in zip(case.shapes, case.ids()):
            params.append((case, shapes))
            ids.append(id_)
    return params, ids
