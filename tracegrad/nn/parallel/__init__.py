"""Parallel training, as in `torch.nn.parallel`: `DistributedDataParallel` (on `tracegrad.distributed`'s MPI ranks).

>>> import tracegrad as tg
>>> tg.nn.parallel.DistributedDataParallel is tg.nn.parallel.distributed.DistributedDataParallel
True
"""
from . import distributed
from .distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel", "distributed"]
