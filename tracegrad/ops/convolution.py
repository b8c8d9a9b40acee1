"""Convolution and pooling: thin binders of the registry ops; `tracegrad.nn.functional` is the user API."""
from __future__ import annotations

from .._tensor import apply
from . import nn_primitives as NNP


# ------------------------------------------------------------------------------------------ convolution, pooling
# Thin binders of the registry ops, with normalized params; `tracegrad.nn.functional` is the user API.
def conv2d_raw(x, w, stride, padding, dilation, groups):
    return apply(NNP.conv2d, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv2d_input_grad(g, w, x_shape, stride, padding, dilation, groups):
    return apply(NNP.conv2d_input_grad, g, w, x_shape=tuple(x_shape), stride=stride, padding=padding,
                 dilation=dilation, groups=groups)


def conv2d_weight_grad(x, g, w_shape, stride, padding, dilation, groups):
    return apply(NNP.conv2d_weight_grad, x, g, w_shape=tuple(w_shape), stride=stride, padding=padding,
                 dilation=dilation, groups=groups)


def max_pool2d_select(v, x, kernel, stride, padding, dilation):
    return apply(NNP.max_pool2d_select, v, x, kernel=kernel, stride=stride, padding=padding, dilation=dilation)


def max_pool2d_scatter(g, x, kernel, stride, padding, dilation):
    return apply(NNP.max_pool2d_scatter, g, x, kernel=kernel, stride=stride, padding=padding, dilation=dilation)


def avg_pool2d_raw(x, kernel, stride, padding, count_include_pad):
    return apply(NNP.avg_pool2d, x, kernel=kernel, stride=stride, padding=padding,
                 count_include_pad=count_include_pad)


def avg_pool2d_backward(g, x_shape, kernel, stride, padding, count_include_pad):
    return apply(NNP.avg_pool2d_backward, g, x_shape=tuple(x_shape), kernel=kernel, stride=stride, padding=padding,
                 count_include_pad=count_include_pad)
