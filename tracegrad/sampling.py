"""Sampling beyond `rand`/`randn`: `normal`, `bernoulli` and the in-place fills (`x.normal_()`, `x.uniform_()`, ...).

Each is composed from the random registry ops, so it draws as PyTorch's CPU kernels do (the same seed gives
PyTorch's numbers) and records a fresh draw in a traced graph.

>>> import tracegrad as tg
>>> _ = tg.manual_seed(0)
>>> tg.empty(3).uniform_(-1, 1)
tensor([-0.0075,  0.5364, -0.8230])
>>> _ = tg.manual_seed(0)
>>> tg.bernoulli(tg.full((4,), 0.5))
tensor([1., 0., 1., 1.])
"""
from __future__ import annotations

import numpy as np

from . import devices, dtypes
from ._tensor import Tensor
from .creation import empty_like, rand, randint, randn

_F64 = dtypes.float64


def _floating_tensor(x: Tensor, name: str) -> None:
    if not x.is_floating_point():
        raise RuntimeError(f"{name} expects a floating point tensor, got {x.dtype}")


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, requires_grad=False, device=None,
           out=None) -> Tensor:
    """Normal samples with the given mean and std: tensors (broadcast together) or numbers with `size`.

    >>> import tracegrad as tg
    >>> tg.normal(2.0, 0.5, size=(2,), generator=tg.Generator().manual_seed(0))
    tensor([2.7705, 1.8533])
    """
    devices.check(device, "normal")
    if out is not None:
        raise TypeError("normal: out= is not supported; assign the result instead")
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        if isinstance(std, (int, float)) and std < 0 or isinstance(std, Tensor) and bool((std < 0).any()):
            raise RuntimeError("normal expects all elements of std >= 0.0")
        like = mean if isinstance(mean, Tensor) else std
        shape = np.broadcast_shapes(tuple(getattr(mean, "shape", ())), tuple(getattr(std, "shape", ())))
        return randn(*shape, dtype=like.dtype, generator=generator) * std + mean
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    if size is None:
        raise TypeError("normal() with number arguments needs size=")
    t = randn(*size, dtype=dtype, generator=generator) * std + mean
    return t.requires_grad_(True) if requires_grad else t


def bernoulli(input: Tensor, p=None, *, generator=None) -> Tensor:  # noqa: A002 - PyTorch's name
    """0/1 samples: 1 with probability `input` (each element), or with probability `p` when given.

    >>> import tracegrad as tg
    >>> tg.bernoulli(tg.tensor([0.0, 1.0]))
    tensor([0., 1.])
    """
    if p is not None:
        return empty_like(input).bernoulli_(p, generator=generator)
    _floating_tensor(input, "bernoulli")
    # NOTE: PyTorch compares a float32 uniform with each probability (a float64 one for a scalar p).
    u = rand(*input.shape, dtype=dtypes.float32, generator=generator)
    return (u < input.to(dtypes.float32)).to(input.dtype)


# ------------------------------------------------------------------ in-place fills (Tensor methods)
def normal_(x: Tensor, mean=0.0, std=1.0, *, generator=None) -> Tensor:
    """Fill `x` with normal samples."""
    _floating_tensor(x, "normal_")
    return x.copy_(randn(*x.shape, dtype=x.dtype, generator=generator) * std + mean)


def uniform_(x: Tensor, a=0.0, b=1.0, *, generator=None) -> Tensor:
    """Fill `x` with uniform samples in [a, b)."""
    _floating_tensor(x, "uniform_")
    lo, hi = np.asarray(a, x.dtype.np), np.asarray(b, x.dtype.np)
    u = rand(*x.shape, dtype=x.dtype, generator=generator)
    if x.dtype is dtypes.float64:
        return x.copy_(u * float(hi - lo) + float(lo))
    # NOTE: PyTorch's kernel takes b - a in x's dtype and computes u * (b - a) + a as one fused multiply-add;
    # a product of two float32 values is exact in float64, so one rounding back gives PyTorch's bits.
    return x.copy_((u.to(_F64) * float(hi - lo) + float(lo)).to(x.dtype))


def random_(x: Tensor, from_=0, to=None, *, generator=None) -> Tensor:
    """Fill `x` with integers in [from, to); `random_(to)` is [0, to); no bounds: [0, 2**mantissa] for floats."""
    if to is None and from_ != 0:
        from_, to = 0, from_
    if to is None:
        to = (1 << (np.finfo(x.dtype.np).nmant + 1)) + 1 if x.is_floating_point() else \
            (2 if x.dtype is dtypes.bool_ else int(np.iinfo(x.dtype.np).max) + 1)
    return x.copy_(randint(from_, to, tuple(x.shape), dtype=x.dtype, generator=generator))


def bernoulli_(x: Tensor, p=0.5, *, generator=None) -> Tensor:
    """Fill `x` with 1 where a draw falls below `p` (a number or a tensor of probabilities), else 0."""
    if isinstance(p, Tensor):
        return x.copy_(bernoulli(p.expand(*x.shape), generator=generator).to(x.dtype))
    if not 0 <= p <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    return x.copy_((rand(*x.shape, dtype=_F64, generator=generator) < p).to(x.dtype))


def exponential_(x: Tensor, lambd=1.0, *, generator=None) -> Tensor:
    """Fill `x` with exponential samples of rate `lambd`."""
    _floating_tensor(x, "exponential_")
    if lambd <= 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    u = rand(*x.shape, dtype=_F64, generator=generator)
    return x.copy_((-(-u).log1p() / lambd).to(x.dtype))


for _fn in (normal_, uniform_, random_, bernoulli_, exponential_):
    setattr(Tensor, _fn.__name__, _fn)
Tensor.bernoulli = bernoulli


# ------------------------------------------------------------------ multinomial (linalg-optim block)
def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *,  # noqa: A002 - PyTorch's name
                generator=None) -> Tensor:
    """`num_samples` category indices per row of `input` (1-D, or 2-D: one distribution per row), drawn with
    probability proportional to the row's entries, with or without replacement; PyTorch's CPU algorithm, so the
    same seed gives PyTorch's samples.

    >>> import tracegrad as tg
    >>> _ = tg.manual_seed(0)
    >>> tg.multinomial(tg.tensor([0.1, 0.0, 0.6, 0.3]), 3)
    tensor([2, 3, 0])
    >>> tg.multinomial(tg.tensor([[1.0, 0.0], [0.0, 1.0]]), 4, replacement=True)
    tensor([[0, 0, 0, 0],
            [1, 1, 1, 1]])
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial(): argument 'input' must be Tensor, not {type(input).__name__}")
    if input.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    if not input.is_floating_point():
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: "
                           f"{input.dtype.tensor_type.removesuffix('Tensor')}")
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    if not replacement and num_samples > input.shape[-1]:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    if input.shape[-1] > 1 << 24:
        raise RuntimeError("number of categories cannot exceed 2^24")
    if input.dtype is dtypes.float16:
        raise RuntimeError("multinomial is not implemented for half on CPU")
    from ._tensor import apply
    from .ops import primitives as P
    from .random import default_generator
    return apply(P.multinomial, input, generator=generator or default_generator, num_samples=int(num_samples),
                 replacement=bool(replacement))


Tensor.multinomial = multinomial
# ------------------------------------------------------------------ end of the multinomial block
