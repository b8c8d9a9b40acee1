"""More layers (the nn-more block), with PyTorch's constructor arguments, parameter names, shapes and initialization
(so a PyTorch state_dict loads, and a seeded layer starts from PyTorch's weights) and reprs.

>>> import tracegrad as tg
>>> _ = tg.manual_seed(0)
>>> net = tg.nn.Sequential(tg.nn.Conv1d(3, 4, 3, padding=1, padding_mode="reflect"), tg.nn.GroupNorm(2, 4),
...                        tg.nn.AdaptiveMaxPool1d(2), tg.nn.Flatten(), tg.nn.Unflatten(1, (2, 4)))
>>> net(tg.randn(5, 3, 7)).shape
tracegrad.Size([5, 2, 4])
>>> tg.nn.ConvTranspose2d(4, 2, 3, stride=2)
ConvTranspose2d(4, 2, kernel_size=(3, 3), stride=(2, 2))
"""
from __future__ import annotations

import math
import warnings

from .. import devices
from ..creation import empty, ones, zeros
from . import functional as F
from . import init
from ._functional_more import _single
from .functional import _pair
from .layers import Dropout, _BatchNorm, reset_weight_and_bias
from .module import Module
from .parameter import Parameter

__all__ = ["Conv1d", "ConvTranspose1d", "ConvTranspose2d", "MaxPool1d", "AvgPool1d", "AdaptiveMaxPool1d",
           "AdaptiveMaxPool2d", "AdaptiveAvgPool1d", "Unfold", "Fold", "ZeroPad1d", "ZeroPad2d", "ConstantPad1d",
           "ConstantPad2d", "ReflectionPad1d", "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d",
           "CircularPad1d", "CircularPad2d", "CosineSimilarity", "PairwiseDistance", "GroupNorm", "RMSNorm",
           "InstanceNorm1d", "InstanceNorm2d", "BatchNorm3d", "Dropout1d", "Dropout2d", "AlphaDropout",
           "FeatureAlphaDropout", "Bilinear", "Unflatten"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


# ---------------------------------------------------------------- convolutions
def reversed_padding_repeated_twice(padding, kernel_size, dilation) -> list:
    """PyTorch's `_reversed_padding_repeated_twice`: a conv's padding as `F.pad` amounts (last dim first), with
    padding='same' split as PyTorch does (the odd element on the right)."""
    if padding == "valid":
        return [0, 0] * len(kernel_size)
    if padding == "same":
        out = []
        for d, k in zip(reversed(dilation), reversed(kernel_size)):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return out
    return [p for p in reversed(padding) for _ in range(2)]


def check_conv_arguments(in_channels, out_channels, stride, padding, groups, padding_mode):
    """PyTorch's `_ConvNd` checks of a convolution's constructor arguments."""
    if groups <= 0:
        raise ValueError("groups must be a positive integer")
    if in_channels % groups:
        raise ValueError("in_channels must be divisible by groups")
    if out_channels % groups:
        raise ValueError("out_channels must be divisible by groups")
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
        if padding == "same" and any(s != 1 for s in stride):
            raise ValueError("padding='same' is not supported for strided convolutions")
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {set(_PADDING_MODES)}, but got padding_mode='{padding_mode}'")


class _ConvNd(Module):
    """What PyTorch's convolutions share: arguments, weight (out, in/groups, *k) or, transposed, (in, out/groups, *k),
    kaiming-uniform initialization, and the repr."""

    _n: int  # spatial dims
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                 output_padding=0, dtype=None, device=None):
        super().__init__()
        name = type(self).__name__
        devices.check(device, f"nn.{name}")
        tup = _single if self._n == 1 else _pair
        self.kernel_size, self.stride = tup(kernel_size, "kernel_size"), tup(stride, "stride")
        self.dilation = tup(dilation, "dilation")
        check_conv_arguments(in_channels, out_channels, self.stride, padding, groups, padding_mode)
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {name}')
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.padding = padding if isinstance(padding, str) else tup(padding, "padding")
        self.transposed, self.output_padding = self._transposed, tup(output_padding, "output_padding")
        self.padding_mode = padding_mode
        self._reversed_padding_repeated_twice = reversed_padding_repeated_twice(self.padding, self.kernel_size,
                                                                                self.dilation)
        shape = (in_channels, out_channels // groups) if self._transposed else (out_channels, in_channels // groups)
        self.weight = Parameter(empty(*shape, *self.kernel_size, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        reset_weight_and_bias(self.weight, self.bias)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L) or (C, L) input; padding_mode 'zeros', 'reflect', 'replicate' or 'circular'.

    >>> import tracegrad as tg
    >>> tg.nn.Conv1d(2, 4, 3, stride=2)(tg.ones(1, 2, 9)).shape
    tracegrad.Size([1, 4, 4])
    """

    _n = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         dtype=dtype, device=device)

    def forward(self, input):  # noqa: A002 - PyTorch's name
        if self.padding_mode != "zeros":
            return F.conv1d(F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode), self.weight,
                            self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def _output_padding(self, x, output_size):
        """PyTorch's rule: the output_padding that gives `output_size` (checked against the valid range)."""
        if output_size is None:
            return self.output_padding
        n = self._n
        output_size = tuple(output_size)
        if len(output_size) in (n + 1, n + 2):
            output_size = output_size[-n:]
        if len(output_size) != n:
            raise ValueError(f"ConvTranspose{n}D: for {x.ndim}D input, output_size must have {n} or {n + 2} "
                             f"elements (got {len(output_size)})")
        spatial = x.shape[-n:]
        mins = [(spatial[d] - 1) * self.stride[d] - 2 * self.padding[d] + self.dilation[d] * (self.kernel_size[d] - 1)
                + 1 for d in range(n)]
        maxs = [m + self.stride[d] - 1 for d, m in enumerate(mins)]
        for size, lo, hi in zip(output_size, mins, maxs):
            if not lo <= size <= hi:
                raise ValueError(f"requested an output size of {list(output_size)}, but valid sizes range from {mins} "
                                 f"to {maxs} (for an input of {list(spatial)})")
        return tuple(size - lo for size, lo in zip(output_size, mins))


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution over (N, C, L) or (C, L) input; weight (in, out/groups, k).

    >>> import tracegrad as tg
    >>> tg.nn.ConvTranspose1d(2, 4, 3, stride=2)(tg.ones(1, 2, 4)).shape
    tracegrad.Size([1, 4, 9])
    """

    _n = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         output_padding, dtype=dtype, device=device)

    def forward(self, input, output_size=None):  # noqa: A002 - PyTorch's name
        return F.conv_transpose1d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution ("deconvolution") over (N, C, H, W) or (C, H, W) input; weight (in, out/groups,
    kh, kw); `forward(x, output_size=...)` picks the output_padding that gives that size, as PyTorch.

    >>> import tracegrad as tg
    >>> up = tg.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1)
    >>> up(tg.ones(1, 4, 5, 5)).shape, up(tg.ones(1, 4, 5, 5), output_size=(10, 10)).shape
    (tracegrad.Size([1, 2, 9, 9]), tracegrad.Size([1, 2, 10, 10]))
    """

    _n = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         output_padding, dtype=dtype, device=device)

    def forward(self, input, output_size=None):  # noqa: A002 - PyTorch's name
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)


# ---------------------------------------------------------------- pooling
class MaxPool1d(Module):
    """Max over sliding windows of (N, C, L) or (C, L) input.

    >>> import tracegrad as tg
    >>> tg.nn.MaxPool1d(2)
    MaxPool1d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation, self.return_indices, self.ceil_mode = padding, dilation, return_indices, ceil_mode

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool1d(Module):
    """Average over sliding windows of (N, C, L) or (C, L) input.

    >>> import tracegrad as tg
    >>> tg.nn.AvgPool1d(2)(tg.tensor([[1.0, 3.0, 5.0, 7.0]]))
    tensor([[2., 6.]])
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size = _single(kernel_size, "kernel_size")
        self.stride = _single(stride if stride is not None else kernel_size, "stride")
        self.padding, self.ceil_mode, self.count_include_pad = _single(padding, "padding"), ceil_mode, count_include_pad

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AdaptivePool(Module):
    fn = None

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return type(self).fn(input, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptivePool):
    """Max over PyTorch's adaptive windows of the last dim, to `output_size` positions.

    >>> import tracegrad as tg
    >>> tg.nn.AdaptiveMaxPool1d(2)(tg.tensor([[1.0, 3.0, 2.0, 0.0, 5.0]]))
    tensor([[3., 5.]])
    """

    fn = staticmethod(F.adaptive_max_pool1d)


class AdaptiveMaxPool2d(_AdaptivePool):
    """Max over PyTorch's adaptive windows of the last two dims, to `output_size` (None keeps a dim's size).

    >>> import tracegrad as tg
    >>> tg.nn.AdaptiveMaxPool2d((1, None))(tg.ones(2, 3, 4, 5)).shape
    tracegrad.Size([2, 3, 1, 5])
    """

    fn = staticmethod(F.adaptive_max_pool2d)


class AdaptiveAvgPool1d(Module):
    """Average over PyTorch's adaptive windows of the last dim, to `output_size` positions.

    >>> import tracegrad as tg
    >>> tg.nn.AdaptiveAvgPool1d(1)(tg.tensor([[1.0, 3.0, 5.0]]))
    tensor([[3.]])
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return F.adaptive_avg_pool1d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class Unfold(Module):
    """`F.unfold` as a layer: sliding blocks as columns (N, C * KH * KW, L).

    >>> import tracegrad as tg
    >>> tg.nn.Unfold(2, stride=2)(tg.ones(1, 3, 4, 4)).shape
    tracegrad.Size([1, 12, 4])
    """

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, "
                f"stride={self.stride}")


class Fold(Module):
    """`F.fold` as a layer: columns summed back into an image of `output_size`.

    >>> import tracegrad as tg
    >>> tg.nn.Fold((4, 4), 2, stride=2)(tg.ones(1, 12, 4)).shape
    tracegrad.Size([1, 3, 4, 4])
    """

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return F.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


# ---------------------------------------------------------------- padding
class _PadNd(Module):
    mode = "constant"
    _n: int

    def __init__(self, padding):
        super().__init__()
        self.padding = (padding,) * (2 * self._n) if isinstance(padding, int) else tuple(padding)
        if len(self.padding) != 2 * self._n:
            raise ValueError(f"{type(self).__name__}: padding must be an int or a {2 * self._n}-tuple, got {padding}")

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return F.pad(input, self.padding, self.mode)

    def extra_repr(self):
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value: float):
        super().__init__(padding)
        self.value = value

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pad the last dim with `value`: (left, right), or an int for both.

    >>> import tracegrad as tg
    >>> tg.nn.ConstantPad1d((1, 2), 3.0)(tg.zeros(1, 2))
    tensor([[3., 0., 0., 3., 3.]])
    """

    _n = 1


class ConstantPad2d(_ConstantPadNd):
    """Pad the last two dims with `value`: (left, right, top, bottom), or an int for all four.

    >>> import tracegrad as tg
    >>> tg.nn.ConstantPad2d(1, 0.5)(tg.zeros(1, 2, 2)).shape
    tracegrad.Size([1, 4, 4])
    """

    _n = 2


class ZeroPad1d(_ConstantPadNd):
    """Pad the last dim with zeros.

    >>> import tracegrad as tg
    >>> tg.nn.ZeroPad1d(1)(tg.ones(1, 2))
    tensor([[0., 1., 1., 0.]])
    """

    _n = 1

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


class ZeroPad2d(ZeroPad1d):
    """Pad the last two dims with zeros: (left, right, top, bottom), or an int for all four.

    >>> import tracegrad as tg
    >>> tg.nn.ZeroPad2d((1, 0, 0, 1))(tg.ones(1, 1, 1))
    tensor([[[0., 1.],
             [0., 0.]]])
    """

    _n = 2


class ReflectionPad1d(_PadNd):
    """Pad the last dim with its reflection (the edge not repeated).

    >>> import tracegrad as tg
    >>> tg.nn.ReflectionPad1d(2)(tg.tensor([[0.0, 1.0, 2.0]]))
    tensor([[2., 1., 0., 1., 2., 1., 0.]])
    """

    mode, _n = "reflect", 1


class ReflectionPad2d(_PadNd):
    """Pad the last two dims with their reflection.

    >>> import tracegrad as tg
    >>> tg.nn.ReflectionPad2d(1)(tg.ones(1, 1, 2, 2)).shape
    tracegrad.Size([1, 1, 4, 4])
    """

    mode, _n = "reflect", 2


class ReplicationPad1d(_PadNd):
    """Pad the last dim by repeating its edge values.

    >>> import tracegrad as tg
    >>> tg.nn.ReplicationPad1d((2, 1))(tg.tensor([[0.0, 1.0]]))
    tensor([[0., 0., 0., 1., 1.]])
    """

    mode, _n = "replicate", 1


class ReplicationPad2d(_PadNd):
    """Pad the last two dims by repeating their edge values.

    >>> import tracegrad as tg
    >>> tg.nn.ReplicationPad2d(1)(tg.ones(1, 1, 2, 2)).sum().item()
    16.0
    """

    mode, _n = "replicate", 2


class CircularPad1d(_PadNd):
    """Pad the last dim by wrapping around.

    >>> import tracegrad as tg
    >>> tg.nn.CircularPad1d(1)(tg.tensor([[0.0, 1.0, 2.0]]))
    tensor([[2., 0., 1., 2., 0.]])
    """

    mode, _n = "circular", 1


class CircularPad2d(_PadNd):
    """Pad the last two dims by wrapping around.

    >>> import tracegrad as tg
    >>> tg.nn.CircularPad2d(1)(tg.ones(1, 1, 2, 2)).shape
    tracegrad.Size([1, 1, 4, 4])
    """

    mode, _n = "circular", 2


# ---------------------------------------------------------------- distances
class CosineSimilarity(Module):
    """`F.cosine_similarity` over `dim`.

    >>> import tracegrad as tg
    >>> tg.nn.CosineSimilarity(dim=0)(tg.tensor([1.0, 0.0]), tg.tensor([1.0, 1.0]))
    tensor(0.7071)
    """

    def __init__(self, dim: int = 1, eps: float = 1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """`F.pairwise_distance`: the p-norm of x1 - x2 + eps over the last dim.

    >>> import tracegrad as tg
    >>> tg.nn.PairwiseDistance(eps=0.0)(tg.tensor([[0.0, 0.0]]), tg.tensor([[3.0, 4.0]]))
    tensor([5.])
    """

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1, x2):
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


# ---------------------------------------------------------------- normalization
class GroupNorm(Module):
    """Group normalization of (N, C, *) input; weight ones and bias zeros of shape (C,).

    >>> import tracegrad as tg
    >>> tg.nn.GroupNorm(2, 4)
    GroupNorm(2, 4, eps=1e-05, affine=True, bias=True)
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None,
                 dtype=None, *, bias: bool = True):
        super().__init__()
        devices.check(device, "nn.GroupNorm")
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        if affine:
            self.weight = Parameter(ones(num_channels, dtype=dtype))
            if bias:
                self.bias = Parameter(zeros(num_channels, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self):
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class RMSNorm(Module):
    """Root-mean-square normalization over the trailing `normalized_shape` dims, then a scale (weight ones).

    >>> import tracegrad as tg
    >>> tg.nn.RMSNorm(2, eps=0.0)(tg.tensor([[3.0, 4.0]])).detach()
    tensor([[0.8485, 1.1314]])
    """

    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True, device=None,
                 dtype=None):
        super().__init__()
        devices.check(device, "nn.RMSNorm")
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(*self.normalized_shape, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def reset_parameters(self):
        if self.elementwise_affine:
            init.ones_(self.weight)

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class _InstanceNorm(_BatchNorm):
    """PyTorch's `_InstanceNorm`: batch norm's parameters and buffers (none by default), statistics per instance."""

    _no_batch_dim: int

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, *, bias: bool = True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input):  # noqa: A002 - PyTorch's name
        name, n = type(self).__name__, self._no_batch_dim
        if input.ndim not in (n, n + 1):
            raise ValueError(f"{name}: expected {n}D or {n + 1}D input (got {input.ndim}D input)")
        feature_dim = input.ndim - n
        if input.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(f"expected input's size at dim={feature_dim} to match num_features "
                                 f"({self.num_features}), but got: {input.shape[feature_dim]}.")
            warnings.warn(f"input's size at dim={feature_dim} does not match num_features. You can silence this "
                          f"warning by not passing in num_features, which is not used because affine=False",
                          stacklevel=2)
        x = input.unsqueeze(0) if input.ndim == n else input
        out = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training or not self.track_running_stats,
                              self.momentum if self.momentum is not None else 0.0, self.eps)
        return out.squeeze(0) if input.ndim == n else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of (N, C, L) or (C, L) input (affine=False, track_running_stats=False by default).

    >>> import tracegrad as tg
    >>> tg.nn.InstanceNorm1d(3)
    InstanceNorm1d(3, eps=1e-05, momentum=0.1, affine=False, bias=False, track_running_stats=False)
    """

    _no_batch_dim = 2


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (N, C, H, W) or (C, H, W) input.

    >>> import tracegrad as tg
    >>> tg.nn.InstanceNorm2d(3, affine=True)(tg.randn(2, 3, 4, 4)).shape
    tracegrad.Size([2, 3, 4, 4])
    """

    _no_batch_dim = 3


class BatchNorm3d(_BatchNorm):
    """Batch norm over (N, C, D, H, W) input.

    >>> import tracegrad as tg
    >>> tg.nn.BatchNorm3d(2)(tg.randn(2, 2, 3, 2, 2)).shape
    tracegrad.Size([2, 2, 3, 2, 2])
    """

    _dims = (5,)


# ---------------------------------------------------------------- dropout
class Dropout1d(Dropout):
    """Zero whole channels of (N, C, L) or (C, L) input with probability p (in training).

    >>> import tracegrad as tg
    >>> tg.nn.Dropout1d(0.2)
    Dropout1d(p=0.2, inplace=False)
    """

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(Dropout):
    """Zero whole channels of (N, C, H, W) input with probability p (in training).

    >>> import tracegrad as tg
    >>> tg.nn.Dropout2d().eval()(tg.ones(1, 2, 2, 2)).sum().item()
    8.0
    """

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return F.dropout2d(input, self.p, self.training, self.inplace)


class AlphaDropout(Dropout):
    """Alpha dropout (for SELU networks), in training.

    >>> import tracegrad as tg
    >>> tg.nn.AlphaDropout(0.1)
    AlphaDropout(p=0.1, inplace=False)
    """

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return F.alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(Dropout):
    """Alpha dropout of whole channels, in training.

    >>> import tracegrad as tg
    >>> tg.nn.FeatureAlphaDropout(0.1)(tg.ones(2, 3, 4)).shape
    tracegrad.Size([2, 3, 4])
    """

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return F.feature_alpha_dropout(input, self.p, self.training)


# ---------------------------------------------------------------- bilinear, unflatten
class Bilinear(Module):
    """y = x1^T W x2 + b; weight (out, in1, in2) and bias (out,) uniform in +-1/sqrt(in1), as in PyTorch.

    >>> import tracegrad as tg
    >>> tg.nn.Bilinear(2, 3, 4)(tg.ones(5, 2), tg.ones(5, 3)).shape
    tracegrad.Size([5, 4])
    """

    def __init__(self, in1_features: int, in2_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        devices.check(device, "nn.Bilinear")
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        self.weight = Parameter(empty(out_features, in1_features, in2_features, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Unflatten(Module):
    """Split dim `dim` into `unflattened_size`.

    >>> import tracegrad as tg
    >>> tg.nn.Unflatten(1, (2, 5))(tg.ones(3, 10)).shape
    tracegrad.Size([3, 2, 5])
    """

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list)) or \
                not all(isinstance(s, int) and not isinstance(s, bool) for s in unflattened_size):
            raise TypeError(f"unflattened_size must be tuple of ints, but found type {type(unflattened_size).__name__}")
        self.dim, self.unflattened_size = dim, unflattened_size

    def forward(self, input):  # noqa: A002 - PyTorch's name
        return input.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
