"""Devices: tracegrad computes on the CPU.

PyTorch scripts name devices up front (``device = torch.device("cuda" if torch.cuda.is_available() else
"cpu")``) and move models and batches with ``.to(device)``. The same lines run here: `device` is PyTorch's
device type, ``cuda.is_available()`` and ``accelerator.is_available()`` are False, and the CPU is accepted
everywhere a device is (``device=`` arguments, ``.to``, ``.cpu()``). Naming another device is allowed, as in
PyTorch, but *using* it (creating a tensor there, moving one there) raises a clear error instead of being
silently ignored.

>>> import tracegrad as torch
>>> dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
>>> dev, torch.ones(2, device=dev).to(dev).device
(device(type='cpu'), device(type='cpu'))
>>> torch.zeros(2, device="cuda")
Traceback (most recent call last):
  ...
RuntimeError: zeros: tracegrad computes on the CPU only, so device 'cuda' can't be used ...
"""
from __future__ import annotations

import types

# PyTorch's device types: naming one of these is fine, using any but the CPU is an error
_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga", "maia", "xla",
          "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone")


class device:  # noqa: N801 - PyTorch's name
    """A device, as ``torch.device``: ``device("cpu")``, ``device("cuda:0")``, ``device("cuda", 1)``.

    >>> device("cpu"), str(device("cuda", 1)), device("cpu:0").index
    (device(type='cpu'), 'cuda:1', 0)
    """

    __slots__ = ("type", "index")

    def __init__(self, type_or_device, index: int | None = None):
        if isinstance(type_or_device, device):
            self.type, self.index = type_or_device.type, type_or_device.index
            return
        if not isinstance(type_or_device, str):
            raise TypeError(f"device(): expected a string or a device, got {type(type_or_device).__name__}")
        kind, sep, number = type_or_device.partition(":")
        if kind not in _TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_TYPES)} device type at start of device string: "
                               f"{type_or_device}")
        if sep:
            if index is not None or not number.isdigit():
                raise RuntimeError(f"Invalid device string: '{type_or_device}'")
            index = int(number)
        if index is not None and (not isinstance(index, int) or index < 0):
            raise RuntimeError(f"Device index must not be negative, got {index}")
        self.type, self.index = kind, index

    def __eq__(self, other):
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else \
            f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = device("cpu")
device_type = device  # NOTE: the class, under a name `to_arguments`'s `device` parameter doesn't shadow


def is_device(arg) -> bool:
    """Whether `arg` names a device (a device, or a string such as ``"cpu"`` or ``"cuda:0"``)."""
    return isinstance(arg, device) or (isinstance(arg, str) and arg.partition(":")[0] in _TYPES)


def check(arg, where: str) -> device:
    """The device `arg` names (None: the CPU; an int: that CUDA device, as in PyTorch); anything but the CPU
    raises, naming `where` it was used."""
    if arg is None:
        return CPU
    dev = device("cuda", arg) if isinstance(arg, int) and not isinstance(arg, bool) else device(arg)
    if dev.type != "cpu":
        raise RuntimeError(f"{where}: tracegrad computes on the CPU only, so device '{dev}' can't be used "
                           f"(tracegrad.cuda.is_available() is False): use device='cpu', or leave device out")
    return dev


def set_default_device(device) -> None:
    """As ``torch.set_default_device``: the CPU (or None) is accepted, and is what tracegrad uses anyway; any
    other device raises the error of using it.

    >>> import tracegrad as torch
    >>> torch.set_default_device("cpu")
    >>> torch.get_default_device()
    device(type='cpu')
    """
    check(device, "set_default_device")


def get_default_device() -> device:
    """The device new tensors are made on: the CPU."""
    return CPU


def to_arguments(args, dtype, device, where: str):
    """The dtype a ``.to(*args, dtype=, device=)`` call asks for (None: keep it): a positional tensor gives its
    dtype, a device (a string, a `device`, an int) must be the CPU (else this raises, naming `where`), anything
    else is a dtype."""
    from ._tensor import Tensor
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, (str, device_type)) or (isinstance(a, int) and not isinstance(a, bool)):
            check(a, where)
        elif a is not None and dtype is None:
            dtype = a
    check(device, where)
    return dtype


def _no(*_, **__) -> bool:
    return False


def _nothing(*_, **__) -> None:
    return None


def _unavailable(name: str):
    def use(*_, **__):
        raise RuntimeError(f"{name}: tracegrad computes on the CPU only (tracegrad.cuda.is_available() is False)")
    return use


# NOTE: scripts guard GPU code with these; seeding and synchronizing CUDA is harmless when there is none
cuda = types.SimpleNamespace(is_available=_no, device_count=lambda: 0, is_bf16_supported=_no,
                             manual_seed=_nothing, manual_seed_all=_nothing, synchronize=_nothing,
                             empty_cache=_nothing, current_device=_unavailable("cuda.current_device"),
                             get_device_name=_unavailable("cuda.get_device_name"),
                             set_device=_unavailable("cuda.set_device"))
accelerator = types.SimpleNamespace(is_available=_no, device_count=lambda: 0, current_accelerator=_nothing)
mps = types.SimpleNamespace(is_available=_no, is_built=_no)
backends = types.SimpleNamespace(mps=mps, cuda=types.SimpleNamespace(is_built=_no),
                                 cudnn=types.SimpleNamespace(enabled=False, benchmark=False, deterministic=False,
                                                             is_available=_no))

__all__ = ["CPU", "accelerator", "backends", "check", "cuda", "device", "get_default_device", "is_device",
           "set_default_device"]
