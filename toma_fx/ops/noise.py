"""Step noise for destination selection: gain scales that change with the step and repeat on a rerun.

Facility location is deterministic in the tokens, and one step's tokens resemble the last step's, so it
picks nearly the same destinations, and the same groups of merged tokens, at every step: their
difference is never computed and the error repeats through sampling (`docs/fidelity.md`). Scaling each
greedy gain by `exp(sigma * z)` lets the groups change between steps while picks still follow coverage.

`z ~ N(0, 1)` comes from a hash of (step salt, tile block, tile, pick, token), not from a generator:

- inside a compiled graph it is plain integer arithmetic on a 0-dim salt input, so changing the step
  recompiles nothing and a CUDA graph replays it;
- eager and compiled graphs draw the same values (integer ops are exact), and so does every rerun.

The hash is the 32-bit finaliser of MurmurHash3, computed in int64 with 16-bit halves so no product
overflows. The table is one `torch.library` op (`torch.ops.toma_fx.step_noise`), opaque to the compiler:
every value of the hash is read twice by the next stage, and Inductor, inlining pointwise producers into
each read, expanded the hash into a tree it took over 30 s to lower (cold, per merged graph, on CPU)
for a kernel whose work is a few thousand numbers per step. On the CPU the op keeps the last tables, so
the blocks of a step (and the same step of the next generation) compute each once.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

__all__ = ["StepNoise", "hash32", "normal_from_hash", "step_noise"]

_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9  # separates the two uniform streams of the Box-Muller transform


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """`x * c mod 2^32` for int64 `x` in [0, 2^32): two products of at most 48 bits."""
    lo = x * (c & 0xFFFF)
    hi = ((x * (c >> 16)) & 0xFFFF) << 16
    return (lo + hi) & _MASK


def hash32(x: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's finaliser on int64 values in [0, 2^32): a bijection of them, well mixed."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x85EBCA6B)
    x = x ^ (x >> 13)
    x = _mul32(x, 0xC2B2AE35)
    return x ^ (x >> 16)


def _uniform(h: torch.Tensor) -> torch.Tensor:
    """Hashes in [0, 2^32) -> fp32 in (0, 1): the top 24 bits, centred in their interval (exact)."""
    return ((h >> 8).to(torch.float32) + 0.5) * 2.0**-24


def normal_from_hash(counter: torch.Tensor, salt: torch.Tensor) -> torch.Tensor:
    """Standard normal fp32 values, one per int64 `counter` in [0, 2^32), keyed by an int64 `salt`."""
    key = hash32(salt & _MASK)
    h1 = hash32(counter ^ key)
    h2 = hash32(h1 ^ _GOLDEN)
    radius = torch.sqrt(-2.0 * torch.log(_uniform(h1)))
    return radius * torch.cos((2.0 * math.pi) * _uniform(h2))


@torch.library.custom_op("toma_fx::step_noise", mutates_args=())
def step_noise(salt: torch.Tensor, sigma: float, block: int, tiles: int, k: int, size: int) -> torch.Tensor:
    """`(tiles, k, size)` fp32 factors `exp(sigma * z)`, one per tile, pick and token of tile block
    `block`, keyed by the 0-dim int64 `salt` (the step)."""
    if salt.device.type == "cpu":  # the step is on the host: every block of a step shares one table
        return _cpu_table(int(salt), sigma, block, tiles, k, size).clone()
    return _table(salt, sigma, block, tiles, k, size)


@functools.lru_cache(maxsize=64)
def _cpu_table(step: int, sigma: float, block: int, tiles: int, k: int, size: int) -> torch.Tensor:
    return _table(torch.tensor(step), sigma, block, tiles, k, size)


def _table(salt: torch.Tensor, sigma: float, block: int, tiles: int, k: int, size: int) -> torch.Tensor:
    counter = torch.arange(tiles * k * size, device=salt.device, dtype=torch.int64).view(tiles, k, size)
    z = normal_from_hash(counter, salt * 8 + block)  # a layout has at most 8 tile blocks (2^3)
    return torch.exp(sigma * z)


@step_noise.register_fake
def _(salt: torch.Tensor, sigma: float, block: int, tiles: int, k: int, size: int) -> torch.Tensor:
    return salt.new_empty((tiles, k, size), dtype=torch.float32)


@dataclass(frozen=True)
class StepNoise:
    """Gain scales for one selection: `sigma > 0` and `salt`, a 0-dim int64 tensor (the step)."""

    salt: torch.Tensor
    sigma: float

    def scales(self, block: int, shape: tuple[int, int, int]) -> torch.Tensor:
        """`(G, K, S)` fp32 factors `exp(sigma * z)` for the tiles of tile block `block`."""
        return step_noise(self.salt, self.sigma, block, *shape)
