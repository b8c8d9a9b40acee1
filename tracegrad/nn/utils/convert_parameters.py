"""`parameters_to_vector` and `vector_to_parameters` (as in `torch.nn.utils`).

>>> import tracegrad as tg
>>> net = tg.nn.Linear(2, 1)
>>> vec = tg.nn.utils.parameters_to_vector(net.parameters())
>>> vec.shape
tracegrad.Size([3])
>>> tg.nn.utils.vector_to_parameters(tg.tensor([1.0, 2.0, 3.0]), net.parameters())
>>> net.weight, net.bias
(Parameter containing:
tensor([[1., 2.]], requires_grad=True), Parameter containing:
tensor([3.], requires_grad=True))
"""
from __future__ import annotations

from ..._tensor import Tensor
from ...ops import functions as T

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters) -> Tensor:
    """All of `parameters` (an iterable of tensors), flattened and concatenated into one vector (differentiable)."""
    return T.cat([param.view(-1) for param in parameters])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy consecutive slices of `vec` into `parameters` (replacing each one's `.data`, in order)."""
    if not isinstance(vec, Tensor):
        cls = type(vec)
        name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
        raise TypeError(f"expected tracegrad.Tensor, but got: {name}")
    pointer = 0
    for param in parameters:
        num_param = param.numel()
        param.data = vec[pointer:pointer + num_param].view_as(param).data
        pointer += num_param
