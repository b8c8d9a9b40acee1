"""`DistributedSampler`: each rank of a data-parallel job reads its own share of a dataset, as PyTorch's.

The indices (shuffled by a generator seeded with ``seed + epoch``, drawing PyTorch's `randperm`) are padded by
repeating the first ones (or cut, with `drop_last`) to a multiple of the number of replicas; rank r takes every
`num_replicas`-th index from position r. The shards are PyTorch's, index for index.

>>> from tracegrad.utils.data.distributed import DistributedSampler
>>> [list(DistributedSampler(range(10), num_replicas=3, rank=r, shuffle=False)) for r in range(3)]
[[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
>>> s = DistributedSampler(range(10), num_replicas=2, rank=0, seed=1)
>>> s.set_epoch(3)
>>> list(s)                     # PyTorch gives the same
[0, 9, 7, 2, 1]
"""
from __future__ import annotations

import math
from typing import TypeVar

from ...creation import randperm
from ...random import Generator
from . import Sampler

T_co = TypeVar("T_co", covariant=True)


class DistributedSampler(Sampler[T_co]):
    """The share of `dataset` for replica `rank` of `num_replicas` (by default the process group's rank and world
    size). Call `set_epoch(epoch)` before each epoch so that each epoch is shuffled differently (the same way on
    every rank)."""

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None or rank is None:
            from ... import distributed as dist
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        if self.drop_last and len(self.dataset) % self.num_replicas != 0:
            # NOTE: PyTorch's count: ceil((n - r) / r) replicas' worth, so that no rank gets a padded index
            self.num_samples = math.ceil((len(self.dataset) - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(len(self.dataset) / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        if self.shuffle:
            g = Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = randperm(len(self.dataset), generator=g).tolist()
        else:
            indices = list(range(len(self.dataset)))
        if not self.drop_last:
            padding_size = self.total_size - len(indices)
            if padding_size <= len(indices):
                indices += indices[:padding_size]
            else:
                indices += (indices * math.ceil(padding_size / len(indices)))[:padding_size]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Shuffle with ``seed + epoch`` from now on (call it at the start of each epoch, on every rank)."""
        self.epoch = epoch


__all__ = ["DistributedSampler"]
