"""More of `torch.nn.functional` (the nn-more block): 1-D and transposed convolutions, 1-D and adaptive max
pooling, unfold/fold, padding modes, normalizations, channel dropouts, distances, bilinear, and more losses.

Each is a composition of registry ops (a transposed convolution is the registry's conv2d input-gradient op, which
is one), so it works eagerly, under autograd (any order) and under `tracegrad.compile`. `tracegrad.nn.functional`
re-exports everything here; that is the user API.

>>> import tracegrad as tg
>>> import tracegrad.nn.functional as F
>>> F.conv_transpose2d(tg.ones(1, 1, 2, 2), tg.ones(1, 1, 2, 2), stride=2).shape
tracegrad.Size([1, 1, 4, 4])
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import dtypes
from .._tensor import Tensor
from ..autograd.grad_mode import no_grad
from ..creation import arange, rand
from ..creation import full as _full
from ..dtypes import result_type
from ..ops import functions as T
from ..ops.functions import _named, log_sigmoid
from ..ops.shapes import broadcast_shapes, fmt, normalize_dim

# NOTE: `functional` imports this module at its end, so these names exist by then
from .functional import (
    _legacy_reduction,
    _normalize,
    _pair,
    _reduce,
    adaptive_avg_pool2d,
    avg_pool2d,
    conv2d,
    max_pool2d,
)

__all__ = ["conv1d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "avg_pool1d", "adaptive_max_pool1d",
           "adaptive_max_pool2d", "adaptive_avg_pool1d", "unfold", "fold", "pad", "normalize", "cosine_similarity",
           "pairwise_distance", "group_norm", "instance_norm", "rms_norm", "dropout1d", "dropout2d", "alpha_dropout",
           "feature_alpha_dropout", "bilinear", "kl_div", "triplet_margin_loss", "margin_ranking_loss",
           "hinge_embedding_loss", "cosine_embedding_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
           "poisson_nll_loss", "gaussian_nll_loss", "multi_margin_loss"]


def _single(v, name="value"):
    if isinstance(v, (int, np.integer)):
        return (int(v),)
    v = tuple(int(i) for i in v)
    if len(v) != 1:
        raise ValueError(f"{name} must be an int or a 1-tuple of ints, got {v}")
    return v


def _tensor_arg(fn, name, t):
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' must be Tensor, not {type(t).__name__}")


# ---------------------------------------------------------------- convolutions
def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,  # noqa: A002
           groups: int = 1) -> Tensor:
    """1-D convolution of (N, C, L) or (C, L) input with a (O, C/groups, K) weight: conv2d over a height of 1.

    >>> import tracegrad as tg
    >>> conv1d(tg.ones(1, 1, 5), tg.ones(1, 1, 3), padding=1)
    tensor([[[2., 3., 3., 3., 2.]]])
    """
    _tensor_arg("conv1d", "input", input)
    if input.ndim not in (2, 3) or weight.ndim != 3:
        raise RuntimeError(f"conv1d: expected a 2-D (unbatched) or 3-D (batched) input and a 3-D weight, got input "
                           f"{fmt(input.shape)} and weight {fmt(weight.shape)}")
    if input.shape[-2] != weight.shape[1] * groups:
        raise RuntimeError(f"conv1d: Given groups={groups}, weight of size {fmt(weight.shape)}, expected input"
                           f"{fmt(input.shape)} to have {weight.shape[1] * groups} channels, but got "
                           f"{input.shape[-2]} channels instead")
    pad_hw = padding if isinstance(padding, str) else (0,) + _single(padding, "padding")
    out = conv2d(input.unsqueeze(-2), weight.unsqueeze(-2), bias, (1,) + _single(stride, "stride"), pad_hw,
                 (1,) + _single(dilation, "dilation"), groups)
    return _named(out.squeeze(-2), "ConvolutionBackward0")


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,  # noqa: A002
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """The transposed 2-D convolution ("deconvolution") of (N, C_in, H, W) or (C_in, H, W) input with a
    (C_in, C_out/groups, KH, KW) weight: the gradient of conv2d with respect to its input, which is the registry op
    `conv2d_input_grad` (its own VJPs are conv2d and conv2d's weight gradient, so gradients of any order work).

    >>> import tracegrad as tg
    >>> conv_transpose2d(tg.ones(1, 1, 2, 2), tg.ones(1, 1, 3, 3), stride=2, padding=1, output_padding=1).shape
    tracegrad.Size([1, 1, 4, 4])
    """
    _tensor_arg("conv_transpose2d", "input", input)
    if input.ndim not in (3, 4) or weight.ndim != 4:
        raise RuntimeError(f"conv_transpose2d: expected a 3-D (unbatched) or 4-D (batched) input and a 4-D weight, "
                           f"got input {fmt(input.shape)} and weight {fmt(weight.shape)}")
    x = input if input.ndim == 4 else input.unsqueeze(0)
    if x.shape[1] != weight.shape[0] or weight.shape[0] % groups:
        raise RuntimeError(f"conv_transpose2d: Given transposed=1, weight of size {fmt(weight.shape)}, expected "
                           f"input{fmt(input.shape)} to have {weight.shape[0]} channels, but got {x.shape[1]} "
                           f"channels instead")
    if x.dtype is not weight.dtype:
        raise RuntimeError(f"conv_transpose2d: expected input and weight to have the same dtype, got {x.dtype} and "
                           f"{weight.dtype}")
    s, p = _pair(stride, "stride"), _pair(padding, "padding")
    op, d = _pair(output_padding, "output_padding"), _pair(dilation, "dilation")
    if any(o >= si and o >= di for o, si, di in zip(op, s, d)):
        raise RuntimeError(f"conv_transpose2d: output padding must be smaller than either stride or dilation, but got "
                           f"output_padding_height: {op[0]} output_padding_width: {op[1]} stride_height: {s[0]} "
                           f"stride_width: {s[1]} dilation_height: {d[0]} dilation_width: {d[1]}")
    if any(o >= si for o, si in zip(op, s)):
        raise NotImplementedError(f"conv_transpose2d: output_padding {op} not smaller than stride {s} (allowed by "
                                  f"PyTorch when smaller than the dilation) is not supported by tracegrad")
    hw = tuple((n - 1) * si - 2 * pi + di * (k - 1) + o + 1
               for n, si, pi, di, k, o in zip(x.shape[2:], s, p, d, weight.shape[2:], op))
    if min(hw) <= 0:
        raise RuntimeError(f"conv_transpose2d: Given input size per channel: {list(x.shape[2:])}, the calculated "
                           f"output size per channel {list(hw)} is too small")
    out_shape = (x.shape[0], weight.shape[1] * groups) + hw
    out = T.conv2d_input_grad(x, weight, out_shape, s, p, d, int(groups))
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    out = out if input.ndim == 4 else out.squeeze(0)
    return _named(out, "ConvolutionBackward0")


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,  # noqa: A002
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """The transposed 1-D convolution of (N, C_in, L) or (C_in, L) input with a (C_in, C_out/groups, K) weight.

    >>> import tracegrad as tg
    >>> conv_transpose1d(tg.ones(1, 1, 2), tg.ones(1, 1, 2), stride=2)
    tensor([[[1., 1., 1., 1.]]])
    """
    _tensor_arg("conv_transpose1d", "input", input)
    if input.ndim not in (2, 3) or weight.ndim != 3:
        raise RuntimeError(f"conv_transpose1d: expected a 2-D (unbatched) or 3-D (batched) input and a 3-D weight, "
                           f"got input {fmt(input.shape)} and weight {fmt(weight.shape)}")
    one = lambda v, name: (0 if name in ("padding", "output_padding") else 1,) + _single(v, name)  # noqa: E731
    out = conv_transpose2d(input.unsqueeze(-2), weight.unsqueeze(-2), bias, one(stride, "stride"),
                           one(padding, "padding"), one(output_padding, "output_padding"), groups,
                           one(dilation, "dilation"))
    return _named(out.squeeze(-2), "ConvolutionBackward0")


# ---------------------------------------------------------------- pooling
def _check_1d(name, x):
    _tensor_arg(name, "input", x)
    if x.ndim not in (2, 3):
        raise RuntimeError(f"{name}: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size for input, "
                           f"but got: {fmt(x.shape)}")


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,  # noqa: A002
               return_indices: bool = False) -> Tensor:
    """Max over sliding windows of the last dim of (N, C, L) or (C, L) input.

    >>> import tracegrad as tg
    >>> max_pool1d(tg.tensor([[[1.0, 3.0, 2.0, 0.0]]]), 2)
    tensor([[[3., 2.]]])
    """
    _check_1d("max_pool1d", input)
    k = _single(kernel_size, "kernel_size")
    s = k if stride is None or stride == [] else _single(stride, "stride")
    out = max_pool2d(input.unsqueeze(-2), (1,) + k, (1,) + s, (0,) + _single(padding, "padding"),
                     (1,) + _single(dilation, "dilation"), ceil_mode, return_indices)
    return _named(out.squeeze(-2), "SqueezeBackward1")


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,  # noqa: A002
               count_include_pad: bool = True) -> Tensor:
    """Average over sliding windows of the last dim of (N, C, L) or (C, L) input.

    >>> import tracegrad as tg
    >>> avg_pool1d(tg.tensor([[[1.0, 3.0, 2.0, 0.0]]]), 2)
    tensor([[[2., 1.]]])
    """
    _check_1d("avg_pool1d", input)
    k = _single(kernel_size, "kernel_size")
    s = k if stride is None or stride == [] else _single(stride, "stride")
    out = avg_pool2d(input.unsqueeze(-2), (1,) + k, (1,) + s, (0,) + _single(padding, "padding"), ceil_mode,
                     count_include_pad)
    return _named(out.squeeze(-2), "SqueezeBackward1")


def _adaptive_size(output_size, n, name):
    sizes = (output_size,) * n if output_size is None or isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != n:
        raise ValueError(f"{name}: output_size must be an int or a {n}-tuple, got {output_size}")
    return sizes


def _adaptive_index(n, m):
    """(m, k) source indices of PyTorch's adaptive windows [floor(i n / m), ceil((i + 1) n / m)) over n positions;
    a window shorter than the longest repeats its last index (which changes neither its max nor the first argmax)."""
    i = np.arange(m)
    starts, ends = (i * n) // m, -((-(i + 1) * n) // m)
    k = int((ends - starts).max())
    return np.minimum(starts[:, None] + np.arange(k), ends[:, None] - 1)


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):  # noqa: A002
    """Max over PyTorch's adaptive windows of (N, C, H, W) or (C, H, W) input; with `return_indices`, also where
    each max is (a flat index into H * W), as `max_pool2d`'s indices.

    >>> import tracegrad as tg
    >>> adaptive_max_pool2d(tg.arange(9.0).reshape(1, 3, 3), 2)
    tensor([[[4., 5.],
             [7., 8.]]])
    """
    _tensor_arg("adaptive_max_pool2d", "input", input)
    if input.ndim not in (3, 4):
        raise RuntimeError(f"adaptive_max_pool2d(): Expected 3D or 4D tensor, but got: {fmt(input.shape)}")
    h, w = input.shape[-2:]
    oh, ow = (n if m is None else m for n, m in zip((h, w), _adaptive_size(output_size, 2, "adaptive_max_pool2d")))
    if min(h, w) == 0 or min(oh, ow) < 0:
        raise RuntimeError(f"adaptive_max_pool2d(): Expected input to have non-zero size for non-batch dimensions, "
                           f"but input has sizes {fmt(input.shape)} (output size {(oh, ow)})")
    ih, iw = _adaptive_index(h, oh), _adaptive_index(w, ow)
    rows, cols = ih[:, None, :, None], iw[None, :, None, :]   # (oh, 1, kh, 1) and (1, ow, 1, kw)
    windows = input[..., rows, cols].flatten(-2)                # (..., oh, ow, kh * kw)
    values, argmax = windows.max(-1)
    values = _named(values, "AdaptiveMaxPool2DBackward0")
    if not return_indices:
        return values
    flat = np.broadcast_to(rows * w + cols, (oh, ow) + ih.shape[1:] + iw.shape[1:]).reshape(oh, ow, -1)
    flat = Tensor._make(np.ascontiguousarray(flat)).expand(*windows.shape)
    return values, flat.gather(-1, argmax.unsqueeze(-1)).squeeze(-1)


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):  # noqa: A002
    """Max over PyTorch's adaptive windows of the last dim of (N, C, L) or (C, L) input.

    >>> import tracegrad as tg
    >>> adaptive_max_pool1d(tg.tensor([[1.0, 3.0, 2.0, 0.0, 5.0]]), 2)
    tensor([[3., 5.]])
    """
    _check_1d("adaptive_max_pool1d", input)
    out = adaptive_max_pool2d(input.unsqueeze(-2), (1,) + _adaptive_size(output_size, 1, "adaptive_max_pool1d"),
                              return_indices)
    if return_indices:
        return out[0].squeeze(-2), out[1].squeeze(-2)
    return _named(out.squeeze(-2), "SqueezeBackward1")


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:  # noqa: A002
    """Average over PyTorch's adaptive windows of the last dim of (N, C, L) or (C, L) input.

    >>> import tracegrad as tg
    >>> adaptive_avg_pool1d(tg.tensor([[1.0, 3.0, 2.0, 0.0, 5.0]]), 2)
    tensor([[2.0000, 2.3333]])
    """
    _check_1d("adaptive_avg_pool1d", input)
    (m,) = _adaptive_size(output_size, 1, "adaptive_avg_pool1d")
    return _named(adaptive_avg_pool2d(input.unsqueeze(-2), (1, m)).squeeze(-2), "SqueezeBackward1")


# ---------------------------------------------------------------- unfold and fold
def _block_index(kernel, dilation, stride, out_hw):
    """Row and column indices (KH, 1, OH, 1) and (1, KW, 1, OW) of every kernel offset at every block position."""
    ih = (np.arange(kernel[0]) * dilation[0])[:, None, None, None] + (np.arange(out_hw[0]) * stride[0])[:, None]
    iw = (np.arange(kernel[1]) * dilation[1])[None, :, None, None] + np.arange(out_hw[1]) * stride[1]
    return ih, iw


def _blocks(name, hw, kernel, dilation, padding, stride):
    out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, d, p, s in zip(hw, kernel, dilation, padding, stride))
    if min(out) < 1:
        raise RuntimeError(f"{name}: Given input with spatial size {tuple(hw)}, kernel_size={kernel}, "
                           f"dilation={dilation}, padding={padding}, calculated shape of the array of sliding "
                           f"blocks as {out}, but its components must be at least one.")
    return out


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:  # noqa: A002
    """The sliding blocks of (N, C, H, W) or (C, H, W) input as columns: (N, C * KH * KW, L) ("im2col").

    >>> import tracegrad as tg
    >>> unfold(tg.arange(9.0).reshape(1, 1, 3, 3), 2)
    tensor([[[0., 1., 3., 4.],
             [1., 2., 4., 5.],
             [3., 4., 6., 7.],
             [4., 5., 7., 8.]]])
    """
    _tensor_arg("unfold", "input", input)
    if input.ndim not in (3, 4):
        raise RuntimeError(f"unfold: Expected 3D or 4D (batch mode) tensor for input with possible 0 batch size and "
                           f"non-zero dimensions, but got: {fmt(input.shape)}")
    k, d, p, s = (_pair(v, n) for v, n in ((kernel_size, "kernel_size"), (dilation, "dilation"),
                                             (padding, "padding"), (stride, "stride")))
    x = input if input.ndim == 4 else input.unsqueeze(0)
    out_hw = _blocks("unfold", x.shape[2:], k, d, p, s)
    ih, iw = _block_index(k, d, s, out_hw)
    cols = pad(x, (p[1], p[1], p[0], p[0]))[:, :, ih, iw]  # (N, C, KH, KW, OH, OW)
    out = cols.reshape(x.shape[0], x.shape[1] * k[0] * k[1], out_hw[0] * out_hw[1])
    return _named(out if input.ndim == 4 else out.squeeze(0), "Im2ColBackward0")


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:  # noqa: A002
    """Sum sliding blocks (N, C * KH * KW, L) or (C * KH * KW, L) back into an (N, C, H, W) image: `unfold`'s
    adjoint ("col2im"); overlapping blocks add up.

    >>> import tracegrad as tg
    >>> fold(tg.ones(1, 4, 4), (3, 3), 2)
    tensor([[[[1., 2., 1.],
              [2., 4., 2.],
              [1., 2., 1.]]]])
    """
    _tensor_arg("fold", "input", input)
    if input.ndim not in (2, 3):
        raise RuntimeError(f"fold: Expected 2D or 3D (batch mode) tensor for input with possible 0 batch size and "
                           f"non-zero dimensions, but got: {fmt(input.shape)}")
    hw, k, d, p, s = (_pair(v, n) for v, n in ((output_size, "output_size"), (kernel_size, "kernel_size"),
                                                (dilation, "dilation"), (padding, "padding"), (stride, "stride")))
    x = input if input.ndim == 3 else input.unsqueeze(0)
    if x.shape[1] % (k[0] * k[1]):
        raise RuntimeError(f"fold: Expected size of input's dimension 1 to be divisible by the product of "
                           f"kernel_size, but got input.size(1)={x.shape[1]} and kernel_size={k}")
    out_hw = _blocks("fold", hw, k, d, p, s)
    if x.shape[2] != out_hw[0] * out_hw[1]:
        raise RuntimeError(f"fold: Given output_size={hw}, kernel_size={k}, dilation={d}, padding={p}, stride={s}, "
                           f"expected size of input's dimension 2 to match the calculated number of sliding blocks "
                           f"{out_hw[0]} * {out_hw[1]} = {out_hw[0] * out_hw[1]}, but got input.size(2)={x.shape[2]}.")
    n, c = x.shape[0], x.shape[1] // (k[0] * k[1])
    ih, iw = _block_index(k, d, s, out_hw)
    cols = x.reshape(n, c, k[0], k[1], out_hw[0], out_hw[1])
    padded = T.index_add_raw(cols, (n, c, hw[0] + 2 * p[0], hw[1] + 2 * p[1]),
                             T.normalize_index((slice(None), slice(None), ih, iw)))
    out = padded[:, :, p[0]:p[0] + hw[0], p[1]:p[1] + hw[1]] if p != (0, 0) else padded
    return _named(out if input.ndim == 3 else out.squeeze(0), "Col2ImBackward0")


# ---------------------------------------------------------------- padding
_PAD_NAMES = {"reflect": "ReflectionPad{}DBackward0", "replicate": "ReplicationPad{}DBackward0"}


def _take(x: Tensor, axis: int, idx) -> Tensor:
    return x[(slice(None),) * axis + (idx,)]


def _source_index(mode, n, left, right):
    """For each output position along a padded dim, the input position it copies."""
    if mode == "circular":  # as PyTorch: negative amounts crop first, then the rest wraps around what is left
        lo, hi = max(-left, 0), n - max(-right, 0)
        return lo + np.arange(-max(left, 0), hi - lo + max(right, 0)) % (hi - lo)
    idx = np.arange(-left, n + right)
    if mode == "reflect":
        idx = np.abs(idx)
        return np.where(idx > n - 1, 2 * (n - 1) - idx, idx)
    return np.clip(idx, 0, n - 1)  # replicate


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:  # noqa: A002
    """Pad the last dims: `pad` lists (left, right) amounts starting from the last dim, as in PyTorch. Modes:
    'constant' (with `value`; negative amounts crop), and for the last 1 to 3 dims of a batched or unbatched input
    'reflect' (mirror without repeating the edge), 'replicate' (repeat the edge) and 'circular' (wrap around).

    >>> import tracegrad as tg
    >>> x = tg.tensor([[[0.0, 1.0, 2.0]]])
    >>> pad(x, (2, 1), mode="reflect"), pad(x, (1, 1), mode="replicate"), pad(x, (1, 2), mode="circular")
    (tensor([[[2., 1., 0., 1., 2., 1.]]]), tensor([[[0., 0., 1., 2., 2.]]]), tensor([[[2., 0., 1., 2., 0., 1.]]]))
    """
    _tensor_arg("pad", "input", input)
    for i, a in enumerate(pad):
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"pad(): argument 'pad' (position 2) must be tuple of ints, but found element of type "
                            f"{type(a).__name__} at pos {i}")
    pad = [int(a) for a in pad]
    if len(pad) % 2:
        raise RuntimeError("pad: Padding length must be divisible by 2")
    k = len(pad) // 2
    if k > input.ndim:
        raise RuntimeError(f"pad: Padding length should be less than or equal to two times the input dimension but "
                           f"got padding length {len(pad)} and input of dimension {input.ndim}")
    if mode == "constant":
        return _constant_pad(input, pad, 0.0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    if not (1 <= k <= 3 and input.ndim in (k + 1, k + 2)):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {input.ndim}D input tensor.\nSupported combinations for "
            f"non-constant padding:\n  - 2D or 3D input: padding size = 2 (pads last dimension)\n  - 3D or 4D input: "
            f"padding size = 4 (pads last 2 dimensions)\n  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")
    out = input
    for i in range(k):
        d, left, right = input.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]
        n = input.shape[d]
        if mode == "reflect" and (left >= n or right >= n):
            raise RuntimeError(f"pad: Padding size should be less than the corresponding input dimension, but got: "
                               f"padding ({left}, {right}) at dimension {d} of input {fmt(input.shape)}")
        if mode == "circular" and (left > n or right > n):
            raise RuntimeError("pad: Padding value causes wrapping around more than once.")
        if n + left + right < 0 or (n == 0 and left + right > 0):
            raise RuntimeError(f"pad: input size {n} at dimension {d} can't be padded by ({left}, {right}) in "
                               f"{mode} mode (input {fmt(input.shape)})")
        if (left, right) != (0, 0):
            out = _take(out, d, _source_index(mode, n, left, right))
    return _named(out, _PAD_NAMES[mode].format(k)) if mode in _PAD_NAMES else out


def _constant_pad(x: Tensor, pad, value) -> Tensor:
    out = x
    for i in range(len(pad) // 2):
        d, left, right = x.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]
        n = x.shape[d]
        if n + left + right < 0:
            raise RuntimeError(f"pad: The input size {n}, plus negative padding {left} and {right} resulted in a "
                               f"negative output size, which is invalid. Check dimension {d} of your input.")
        if left < 0 or right < 0:  # negative amounts crop
            out = _take(out, d, slice(max(-left, 0), n - max(-right, 0)))
        parts = []
        for amount in (left, right):
            shape = list(out.shape)
            shape[d] = amount
            parts.append(_full(tuple(shape), value, dtype=out.dtype) if amount > 0 else None)
        if parts != [None, None]:
            out = T.cat([p for p in (parts[0], out, parts[1]) if p is not None], d)
    return _named(out, "ConstantPadNdBackward0")


# ---------------------------------------------------------------- normalization and distances
def _clamp_min_forward_only(t: Tensor, eps: float) -> Tensor:
    """`t` clamped at `eps` in value, with the gradient of `t` itself.

    NOTE: PyTorch clamps a clone in place under no_grad (cosine_similarity, gaussian_nll_loss), which autograd
    doesn't see: the gradient flows as if there were no clamp. Adding the detached difference does the same."""
    return t + (T.clamp(t.detach(), min=eps) - t.detach())


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Tensor | None = None):  # noqa: A002
    """`input` divided by its p-norm over `dim`, the norm clamped at `eps` from below.

    >>> import tracegrad as tg
    >>> normalize(tg.tensor([[3.0, 4.0]]))
    tensor([[0.6000, 0.8000]])
    """
    denom = T.clamp(T.norm(input, p, dim, keepdim=True), min=eps).expand_as(input)
    result = _named(input / denom, "DivBackward0")
    if out is None:
        return result
    with no_grad():
        out.copy_(result)
    return out


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1 / |x1| * x2 / |x2|) over `dim`, each norm at least `eps` (x1 and x2 broadcast), as PyTorch computes it.

    >>> import tracegrad as tg
    >>> cosine_similarity(tg.tensor([[1.0, 0.0], [1.0, 1.0]]), tg.tensor([[2.0, 0.0], [-1.0, 1.0]]))
    tensor([1., 0.])
    """
    dt = result_type(x1, x2)
    x1, x2 = T._operand(x1, dt), T._operand(x2, dt)
    shape = broadcast_shapes("cosine_similarity", x1.shape, x2.shape)
    x1, x2 = x1.expand(*shape), x2.expand(*shape)
    d = normalize_dim("cosine_similarity", dim, len(shape))
    n1 = _clamp_min_forward_only(T.norm(x1, 2, d, keepdim=True), eps)
    n2 = _clamp_min_forward_only(T.norm(x2, 2, d, keepdim=True), eps)
    return _named(((x1 / n1) * (x2 / n2)).sum(d), "SumBackward1")


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """The p-norm of x1 - x2 + eps over the last dim.

    >>> import tracegrad as tg
    >>> pairwise_distance(tg.tensor([[0.0, 0.0]]), tg.tensor([[3.0, 4.0]]), eps=0.0)
    tensor([5.])
    """
    dim = max(x1.ndim, x2.ndim) - 1
    return T.norm(x1 - x2 + eps, p, dim if dim >= 0 else None, keepdim)


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,  # noqa: A002
               eps: float = 1e-5) -> Tensor:
    """Normalize (N, C, *) input over each group of C / num_groups channels (and all positions), then scale and
    shift each channel.

    >>> import tracegrad as tg
    >>> group_norm(tg.tensor([[[1.0], [3.0], [5.0], [5.0]]]), 2).reshape(-1)
    tensor([-1.0000,  1.0000,  0.0000,  0.0000])
    """
    _tensor_arg("group_norm", "input", input)
    if input.ndim < 2:
        raise RuntimeError(f"group_norm: Expected at least 2 dimensions for input tensor but received {input.ndim}")
    n, c = input.shape[:2]
    if num_groups <= 0 or c % num_groups:
        raise RuntimeError(f"group_norm: Expected number of channels in input to be divisible by num_groups, but got "
                           f"input of shape {fmt(input.shape)} and num_groups={num_groups}")
    centered, _, _, inv = _normalize(input.reshape(n, num_groups, -1), (2,), eps)
    out = (centered * inv).reshape(input.shape)
    shape = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return _named(out, "NativeGroupNormBackward0")


def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,  # noqa: A002
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize (N, C, *) input over the positions of each sample's channel; with running statistics and
    `use_input_stats`, update them in place with the batch's mean of each instance's statistics (PyTorch's rule).

    >>> import tracegrad as tg
    >>> instance_norm(tg.tensor([[[1.0, 3.0], [2.0, 2.0]]]))
    tensor([[[-1.0000,  1.0000],
             [ 0.0000,  0.0000]]])
    """
    _tensor_arg("instance_norm", "input", input)
    if input.ndim < 3:
        raise ValueError(f"instance_norm: expected an input of shape (N, C, *), got {fmt(input.shape)}")
    dims = tuple(range(2, input.ndim))
    shape = (1, input.shape[1]) + (1,) * len(dims)
    if use_input_stats:
        n = math.prod(input.shape[2:])
        if n <= 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input size "
                             f"{fmt(input.shape)}")
        centered, mean, var, inv = _normalize(input, dims, eps)
        if running_mean is not None or running_var is not None:
            # NOTE: PyTorch runs batch norm over N * C channels with the running statistics repeated N times, then
            # keeps the mean over N of the N updated copies
            with no_grad():
                flat = (input.shape[0], input.shape[1])
                if running_mean is not None:
                    running_mean.copy_((running_mean * (1 - momentum) + mean.reshape(flat) * momentum).mean(0))
                if running_var is not None:
                    running_var.copy_((running_var * (1 - momentum)
                                       + var.reshape(flat) * (momentum * n / (n - 1))).mean(0))
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("instance_norm: Expected running_mean and running_var to be defined when "
                               "use_input_stats is false")
        centered = input - running_mean.reshape(shape)
        inv = T.rsqrt(running_var.reshape(shape) + eps)
    out = centered * inv
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return _named(out, "NativeBatchNormBackward0")


def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, eps: float | None = None):  # noqa: A002
    """x / sqrt(mean(x^2) + eps) over the trailing `normalized_shape` dims, times `weight`; eps defaults to the
    dtype's machine epsilon, as in PyTorch.

    >>> import tracegrad as tg
    >>> rms_norm(tg.tensor([[3.0, 4.0]]), (2,), eps=0.0) * 12.5 ** 0.5
    tensor([[3., 4.]])
    """
    _tensor_arg("rms_norm", "input", input)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise RuntimeError(f"rms_norm: Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, shape))}], but got input of size {fmt(input.shape)}")
    eps = float(np.finfo(input.dtype.np).eps) if eps is None else eps
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    out = input * T.rsqrt((input * input).mean(dims, keepdim=True) + eps)
    return out if weight is None else _named(out * weight, "MulBackward0")


# ---------------------------------------------------------------- channel and alpha dropout
_SELU_ALPHA = 1.7580993408473766  # SELU's scale * alpha: dropped units go to minus this, SELU's saturation


def _dropout_impl(x: Tensor, p: float, training: bool, feature: bool, alpha: bool) -> Tensor:
    """PyTorch's `_dropout_impl`: one bernoulli(1 - p) draw per element (per channel for feature dropout, an
    (N, C, 1, ...) noise tensor), in float64 uniforms below 1 - p, so the same masks as PyTorch for a seed."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if p == 0 or not training or x.numel() == 0:
        return x
    if p == 1:
        return _named(x * 0.0, "MulBackward0")
    if feature and x.ndim < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
    shape = (x.shape[0], x.shape[1]) + (1,) * (x.ndim - 2) if feature else tuple(x.shape)
    noise = (rand(*shape, dtype=dtypes.float64) < (1.0 - p)).to(x.dtype)
    if not alpha:
        return _named(x * (noise / (1.0 - p)), "MulBackward0")
    a = 1.0 / math.sqrt((_SELU_ALPHA * _SELU_ALPHA * p + 1) * (1 - p))
    b = (noise - 1.0) * (_SELU_ALPHA * a) + _SELU_ALPHA * a * p
    return _named(x * (noise * a) + b, "AddBackward0")


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Zero whole channels of (N, C, L) or (C, L) input with probability p; scale the rest by 1 / (1 - p).

    >>> import tracegrad as tg
    >>> _ = tg.manual_seed(0)
    >>> dropout1d(tg.ones(1, 4, 2), 0.5)  # PyTorch's mask for this seed
    tensor([[[0., 0.],
             [0., 0.],
             [2., 2.],
             [0., 0.]]])
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input. Note that "
                           f"dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, a "
                           f"channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    if input.ndim == 2:
        return _dropout_impl(input.unsqueeze(0), p, training, True, False).squeeze(0)
    return _dropout_impl(input, p, training, True, False)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Zero whole channels of (N, C, H, W) input with probability p; scale the rest by 1 / (1 - p). As in PyTorch, a
    3-D input is taken as (N, C, L) (with a warning).

    >>> import tracegrad as tg
    >>> dropout2d(tg.ones(2, 3, 4, 4), 0.5, training=False).sum().item()
    96.0
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and will result "
                      f"in an error in a future release. To retain the behavior and silence this warning, please use "
                      f"dropout instead. Note that dropout2d exists to provide channel-wise dropout on inputs with 2 "
                      f"spatial dimensions, a channel dimension, and an optional batch dimension (i.e. 3D or 4D "
                      f"inputs).", stacklevel=2)
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "This behavior will change in a future release to interpret the input as one without a batch "
                      "dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, please "
                      "switch to using dropout1d instead.", stacklevel=2)
    return _dropout_impl(input, p, training, True, False)


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:  # noqa: A002
    """Dropout for SELU networks: dropped units go to SELU's negative saturation, then an affine map keeps the mean
    and variance (PyTorch's formula and draws).

    >>> import tracegrad as tg
    >>> alpha_dropout(tg.ones(3), 0.2) is not None
    True
    """
    return _dropout_impl(input, p, training, False, True)


def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,  # noqa: A002
                          inplace: bool = False) -> Tensor:
    """Alpha dropout of whole channels of (N, C, *) input.

    >>> import tracegrad as tg
    >>> feature_alpha_dropout(tg.ones(2, 3, 4), 0.2).shape
    tracegrad.Size([2, 3, 4])
    """
    return _dropout_impl(input, p, training, True, True)


# ---------------------------------------------------------------- bilinear
def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y[..., o] = sum_ij input1[..., i] weight[o, i, j] input2[..., j] + bias[o].

    >>> import tracegrad as tg
    >>> bilinear(tg.ones(2, 3), tg.ones(2, 4), tg.ones(5, 3, 4)).shape
    tracegrad.Size([2, 5])
    """
    if weight.ndim != 3:
        raise RuntimeError(f"bilinear(): weight must be three-dimensional, got {fmt(weight.shape)}")
    if input1.ndim != input2.ndim or tuple(input1.shape[:-1]) != tuple(input2.shape[:-1]):
        raise RuntimeError(f"bilinear(): input batch dimensions do not match: got {fmt(input1.shape)} and "
                           f"{fmt(input2.shape)}")
    if input1.shape[-1] != weight.shape[1] or input2.shape[-1] != weight.shape[2]:
        raise RuntimeError(f"bilinear(): input sizes do not match the weight: got input1 {fmt(input1.shape)}, input2 "
                           f"{fmt(input2.shape)} and weight {fmt(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise RuntimeError(f"bilinear(): bias size does not match weight size: got {bias.shape[0] if bias.ndim else 1}"
                           f" but expected {weight.shape[0]}")
    out = T.einsum("...i,oij,...j->...o", input1, weight, input2)
    return out if bias is None else _named(out + bias, "AddBackward0")


# ---------------------------------------------------------------- losses
def _reduction(size_average, reduce, reduction):
    return reduction if size_average is None and reduce is None else _legacy_reduction(size_average, reduce)


def _xlogy_self(t: Tensor) -> Tensor:
    """t * log(t), 0 where t == 0 (xlogy(t, t))."""
    zero = T.eq(t, 0)
    return T.where(zero, 0.0, t * T.log(T.where(zero, 1.0, t)))


def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",  # noqa: A002
           log_target: bool = False) -> Tensor:
    """Pointwise KL divergence target * (log target - input) for log-probabilities `input` (`log_target`: the target
    is in log space too); reduction 'batchmean' divides the sum by the batch size (the KL divergence's definition).

    >>> import tracegrad as tg
    >>> p = tg.tensor([[0.5, 0.5]])
    >>> kl_div(p.log(), p, reduction="batchmean").item()
    0.0
    """
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    if reduction not in ("mean", "sum", "none", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if log_target:
        loss = T.exp(target) * (target - input)
    else:
        loss = _xlogy_self(target) - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.ndim else total
    return _reduce(loss, reduction)


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average=None, reduce=None,
                        reduction: str = "mean") -> Tensor:
    """max(d(a, p) - d(a, n) + margin, 0) with d the pairwise p-norm distance; `swap` uses min(d(a, n), d(p, n)).

    >>> import tracegrad as tg
    >>> a, pos, neg = tg.zeros(1, 2), tg.tensor([[3.0, 4.0]]), tg.tensor([[1.0, 0.0]])
    >>> round(triplet_margin_loss(a, pos, neg, eps=0.0).item(), 4)
    5.0
    """
    reduction = _reduction(size_average, reduce, reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise RuntimeError(f"triplet_margin_loss: The anchor, positive, and negative tensors are expected to have the "
                           f"same number of dimensions, but got: anchor {anchor.ndim}D, positive {positive.ndim}D, "
                           f"and negative {negative.ndim}D inputs")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = T.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(T.clamp(d_pos - d_neg + margin, min=0.0), reduction)


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0, size_average=None,
                        reduce=None, reduction: str = "mean") -> Tensor:
    """max(0, -target * (input1 - input2) + margin), for targets of 1 or -1.

    >>> import tracegrad as tg
    >>> margin_ranking_loss(tg.tensor([1.0, 2.0]), tg.tensor([2.0, 1.0]), tg.tensor([1.0, 1.0]))
    tensor(0.5000)
    """
    reduction = _reduction(size_average, reduce, reduction)
    if not input1.ndim == input2.ndim == target.ndim:
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
                           f"input1: {fmt(input1.shape)}, input2: {fmt(input2.shape)}, target: {fmt(target.shape)} ")
    return _reduce(T.clamp(-target * (input1 - input2) + margin, min=0.0), reduction)


def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, size_average=None,  # noqa: A002
                         reduce=None, reduction: str = "mean") -> Tensor:
    """input where target is 1, max(0, margin - input) where it is -1 (PyTorch's formula).

    >>> import tracegrad as tg
    >>> hinge_embedding_loss(tg.tensor([0.3, 0.2]), tg.tensor([1.0, -1.0]), reduction="none")
    tensor([0.3000, 0.8000])
    """
    reduction = _reduction(size_average, reduce, reduction)
    margin_clamp = T.clamp(margin - input, min=0.0)
    loss = T.where(T.ne(target, 1), margin_clamp, 0.0) + T.where(T.ne(target, -1), input, 0.0)
    return _reduce(loss, reduction)


_COSINE_EPSILON = 1e-12  # PyTorch's EPSILON in cosine_embedding_loss


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0, size_average=None,
                          reduce=None, reduction: str = "mean") -> Tensor:
    """1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where it is -1 (rows of 2-D inputs).

    >>> import tracegrad as tg
    >>> cosine_embedding_loss(tg.tensor([[1.0, 0.0]]), tg.tensor([[0.0, 1.0]]), tg.tensor([1.0]))
    tensor(1.)
    """
    reduction = _reduction(size_average, reduce, reduction)
    if target.ndim not in (0, 1):
        raise RuntimeError("cosine_embedding_loss: 0D or 1D target tensor expected, multi-target not supported")
    want = target.ndim + 1
    if input1.ndim != want or input2.ndim != want:
        raise RuntimeError(f"cosine_embedding_loss: {target.ndim}D target tensor expects {want}D input tensors, but "
                           f"found inputs with sizes {fmt(input1.shape)} and {fmt(input2.shape)}.")
    d = target.ndim
    prod_sum = (input1 * input2).sum(d)
    mag1 = (input1 * input1).sum(d) + _COSINE_EPSILON
    mag2 = (input2 * input2).sum(d) + _COSINE_EPSILON
    cos = prod_sum / T.sqrt(mag1 * mag2)
    loss = T.where(T.eq(target, 1), 1 - cos, 0.0) + T.where(T.eq(target, -1), T.clamp(cos - margin, min=0.0), 0.0)
    return _reduce(loss, reduction)


def soft_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,  # noqa: A002
                     reduction: str = "mean") -> Tensor:
    """log(1 + exp(-target * input)), for targets of 1 or -1.

    >>> import tracegrad as tg
    >>> soft_margin_loss(tg.tensor([0.0, 2.0]), tg.tensor([1.0, -1.0]), reduction="none")
    tensor([0.6931, 2.1269])
    """
    reduction = _reduction(size_average, reduce, reduction)
    return _reduce(T.log1p(T.exp(-input * target)), reduction)


def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,  # noqa: A002
                                size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """Binary cross entropy of sigmoid(input) for each class (last dim), averaged over the classes.

    >>> import tracegrad as tg
    >>> multilabel_soft_margin_loss(tg.zeros(1, 3), tg.tensor([[1.0, 0.0, 1.0]]))
    tensor(0.6931)
    """
    reduction = _reduction(size_average, reduce, reduction)
    loss = -(target * log_sigmoid(input) + (1 - target) * log_sigmoid(-input))
    if weight is not None:
        loss = loss * weight
    class_dim = input.ndim - 1
    loss = loss.sum(class_dim) / input.shape[class_dim]
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not valid")
    return _reduce(loss, reduction)


def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False,  # noqa: A002
                     size_average=None, eps: float = 1e-8, reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log likelihood of `target` under Poisson(input): exp(input) - target * input for log rates
    (`log_input`), else input - target * log(input + eps); `full` adds Stirling's term where target > 1.

    >>> import tracegrad as tg
    >>> poisson_nll_loss(tg.tensor([0.0]), tg.tensor([2.0])).item()
    1.0
    """
    reduction = _reduction(size_average, reduce, reduction)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    loss = T.exp(input) - target * input if log_input else input - target * T.log(input + eps)
    if full:
        big = T.gt(target, 1)
        safe = T.where(big, target, 2.0)  # NOTE: no log of t <= 1 (PyTorch masks the nan/inf it gets there)
        stirling = safe * T.log(safe) - safe + T.log(safe * (2 * math.pi)) * 0.5
        loss = loss + T.where(big, stirling, 0.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input: Tensor, target: Tensor, var, full: bool = False, eps: float = 1e-6,  # noqa: A002
                      reduction: str = "mean") -> Tensor:
    """0.5 (log var + (input - target)^2 / var), var clamped at `eps` (without changing its gradient, as PyTorch);
    `var` is a tensor of input's shape, one dim short, with one size-1 dim, or a float.

    >>> import tracegrad as tg
    >>> gaussian_nll_loss(tg.tensor([1.0]), tg.tensor([3.0]), tg.tensor([1.0])).item()
    2.0
    """
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = _full(tuple(input.shape), float(var), dtype=input.dtype)
    elif bool(T.lt(var, 0).any()):
        raise ValueError("var has negative entry/entries")
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif not (input.ndim == var.ndim and sum(v for i, v in zip(input.shape, var.shape) if i != v) == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not valid")
    var = _clamp_min_forward_only(var, eps)
    loss = (T.log(var) + (input - target) ** 2 / var) * 0.5
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,  # noqa: A002
                      weight: Tensor | None = None, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """The multi-class hinge loss: sum over classes i != y of max(0, margin - x[y] + x[i])^p (times weight[y]),
    divided by the number of classes, for class-index targets y.

    >>> import tracegrad as tg
    >>> multi_margin_loss(tg.tensor([[0.1, 0.2, 0.4, 0.8]]), tg.tensor([3]))
    tensor(0.3250)
    """
    reduction = _reduction(size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.ndim != 1:
        raise ValueError("weight must be one-dimensional")
    if weight is not None and weight.requires_grad:
        raise RuntimeError("multi_margin_loss: the function 'multi_margin_loss' is not differentiable with respect to "
                           "argument 'weight'. This input cannot have requires_grad True.")
    if input.ndim not in (1, 2) or target.dtype is not dtypes.int64 or \
            target.numel() != (input.shape[0] if input.ndim == 2 else 1) or target.ndim > 1:
        raise RuntimeError(f"multi_margin_loss: expected a 1-D or 2-D input and an int64 target of one class per "
                           f"sample, got input {fmt(input.shape)} and target {target.dtype} {fmt(target.shape)}")
    x = input if input.ndim == 2 else input.unsqueeze(0)
    n_classes = x.shape[1]
    t = target.reshape(-1, 1)
    if bool(T.logical_or(T.lt(t, 0), T.ge(t, n_classes)).any()):
        raise IndexError(f"multi_margin_loss: target out of range for {n_classes} classes")
    h = T.clamp(x - x.gather(1, t) + margin, min=0.0)
    if p == 2:
        h = h * h
    if weight is not None:
        h = h * T._operand(weight, x.dtype)[t]
    h = T.where(T.ne(arange(n_classes), t), h, 0.0)
    loss = h.sum(1) / n_classes
    if input.ndim == 1:
        loss = loss.reshape(target.shape)
    return _reduce(loss, reduction)
