"""Random number generation: a module-level generator, reseeded by `manual_seed`.

tracegrad's streams are deterministic for a seed but are not PyTorch's streams (numpy's PCG64).

>>> import tracegrad as tg
>>> _ = tg.manual_seed(0); a = tg.rand(3)
>>> _ = tg.manual_seed(0); bool((a == tg.rand(3)).all())
True
"""
from __future__ import annotations

import numpy as np

DEFAULT_SEED = 67280421310721  # PyTorch's default seed, so an unseeded process is deterministic too


class Generator:
    """A seedable source of random numbers (`tracegrad.Generator().manual_seed(0)`)."""

    def __init__(self, device="cpu"):
        self.manual_seed(DEFAULT_SEED)

    def manual_seed(self, seed: int) -> Generator:
        self._seed = int(seed)
        self.np = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def initial_seed(self) -> int:
        return self._seed

    def seed(self) -> int:
        return self.manual_seed(int(np.random.SeedSequence().entropy % (2 ** 63))).initial_seed()

    def get_state(self):
        return self.np.bit_generator.state

    def set_state(self, state) -> None:
        self.np.bit_generator.state = state


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the module-level generator; returns it."""
    return default_generator.manual_seed(seed)


def initial_seed() -> int:
    return default_generator.initial_seed()


def seed() -> int:
    return default_generator.seed()
