"""Random number generation with PyTorch's CPU streams: the same seed gives the same numbers as PyTorch.

A `Generator` is the 32-bit Mersenne Twister PyTorch's CPU generator is, seeded the same way, and each draw
turns its raw words into values as PyTorch's CPU kernels do, so `manual_seed(0)` followed by `rand`, `randn`,
`randint`, `randperm`, `nn.init`, dropout or a shuffling `DataLoader` gives PyTorch's numbers (float32 normal
samples to within an ulp: PyTorch computes their Box-Muller transform with AVX approximations of log/sin/cos).

>>> import tracegrad as tg
>>> _ = tg.manual_seed(0)
>>> tg.rand(3)
tensor([0.4963, 0.7682, 0.0885])
>>> _ = tg.manual_seed(0); a = tg.rand(3)
>>> _ = tg.manual_seed(0); bool((a == tg.rand(3)).all())
True
"""
from __future__ import annotations

import math

import numpy as np

DEFAULT_SEED = 67280421310721  # PyTorch's default seed, so an unseeded process is deterministic too
_U64 = np.uint64


def _mantissa_bits(np_dtype) -> int:
    return np.finfo(np_dtype).nmant + 1  # 24 for float32, 53 for float64, 11 for float16


class Generator:
    """A seedable source of random numbers (`tracegrad.Generator().manual_seed(0)`), PyTorch's CPU generator.

    >>> import tracegrad as tg
    >>> g = tg.Generator().manual_seed(0)
    >>> tg.randperm(6, generator=g)
    tensor([2, 5, 3, 0, 1, 4])
    """

    def __init__(self, device="cpu"):
        self.manual_seed(DEFAULT_SEED)

    def manual_seed(self, seed: int) -> Generator:
        # NOTE: PyTorch seeds its mt19937 with the low 32 bits (the classic init_genrand), which is numpy's
        # legacy seeding of the same bit generator; random_raw() then yields the same 32-bit words.
        self._seed = int(seed)
        self._bits = np.random.MT19937(0)
        self._bits._legacy_seeding(self._seed & 0xFFFFFFFF)
        self._next_normal = None  # Box-Muller makes two samples; PyTorch keeps the second for the next draw
        return self

    def initial_seed(self) -> int:
        return self._seed

    def seed(self) -> int:
        return self.manual_seed(int(np.random.SeedSequence().entropy % (2 ** 63))).initial_seed()

    def get_state(self) -> tuple:
        """The generator's whole state, a comparable value that `set_state` takes back."""
        st = self._bits.state["state"]
        return (self._seed, st["key"].tobytes(), int(st["pos"]), self._next_normal)

    def set_state(self, state) -> None:
        self._seed, key, pos, self._next_normal = state
        self._bits.state = {"bit_generator": "MT19937",
                            "state": {"key": np.frombuffer(key, np.uint32).copy(), "pos": pos}}

    # ------------------------------------------------------------------ raw words
    def _words32(self, n: int) -> np.ndarray:
        return self._bits.random_raw(n).astype(_U64)

    def _words64(self, n: int) -> np.ndarray:
        w = self._words32(2 * n)
        return (w[0::2] << _U64(32)) | w[1::2]  # PyTorch's random64(): the first word is the high half

    # ------------------------------------------------------------------ PyTorch's CPU kernels
    def uniform(self, shape, np_dtype) -> np.ndarray:
        """Floats in [0, 1): a word's low mantissa-many bits over 2**bits (64-bit words for float64)."""
        n, bits = math.prod(shape), _mantissa_bits(np_dtype)
        words = self._words64(n) if bits > 32 else self._words32(n)
        return ((words & _U64((1 << bits) - 1)) * (2.0 ** -bits)).astype(np_dtype).reshape(shape)

    def normal(self, shape, np_dtype) -> np.ndarray:
        """Standard normal samples: Box-Muller over uniforms, in blocks of 16 for 16 or more samples."""
        n = math.prod(shape)
        if n < 16:  # one sample at a time from float64 uniforms, the pair's second half kept for the next
            out = np.empty(n)
            for i in range(n):
                if self._next_normal is not None:
                    out[i], self._next_normal = self._next_normal, None
                    continue
                u1, u2 = self.uniform((2,), np.float64)
                radius, theta = math.sqrt(-2.0 * math.log1p(-u2)), 2.0 * math.pi * u1
                self._next_normal = radius * math.sin(theta)
                out[i] = radius * math.cos(theta)
            return out.astype(np_dtype).reshape(shape)
        data = self.uniform((n,), np_dtype).astype(np.float64)
        whole = n - n % 16
        _box_muller_16(data[:whole].reshape(-1, 16))
        if n % 16:  # PyTorch redraws the last 16 and transforms them again
            data[n - 16:] = self.uniform((16,), np_dtype)
            _box_muller_16(data[n - 16:].reshape(1, 16))
        return data.astype(np_dtype).reshape(shape)

    def integers(self, shape, low: int, high: int) -> np.ndarray:
        """Integers in [low, high): a 32-bit word (64-bit when the range needs it) modulo the range."""
        span, n = high - low, math.prod(shape)
        words = self._words64(n) if span >= 1 << 32 else self._words32(n)
        return ((words % _U64(span)).astype(np.int64) + low).reshape(shape)

    def permutation(self, n: int) -> np.ndarray:
        """PyTorch's randperm on the CPU: a Fisher-Yates shuffle, swapping i with i + word % (n - i)."""
        out = np.arange(n, dtype=np.int64)
        if n > 1:
            offsets = (self._words32(n - 1) % np.arange(n, 1, -1, dtype=_U64)).astype(np.int64)
            for i, z in enumerate(offsets.tolist()):
                out[i], out[i + z] = out[i + z], out[i]
        return out


def _box_muller_16(blocks: np.ndarray) -> None:
    """In place, per row of 16 uniforms: the first 8 feed log(1 - u), the last 8 the angle."""
    radius = np.sqrt(-2.0 * np.log(1.0 - blocks[:, :8]))
    theta = 2.0 * np.pi * blocks[:, 8:]
    blocks[:, :8], blocks[:, 8:] = radius * np.cos(theta), radius * np.sin(theta)


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the module-level generator; returns it."""
    return default_generator.manual_seed(seed)


def initial_seed() -> int:
    return default_generator.initial_seed()


def seed() -> int:
    return default_generator.seed()


def get_rng_state():
    """The module-level generator's state (`set_rng_state` restores it)."""
    return default_generator.get_state()


def set_rng_state(state) -> None:
    default_generator.set_state(state)
