"""Local tiles of a token grid, and how many destinations each tile keeps.

Raster tokens `(B, N, C)` of a grid (`(H, W)` for an image, `(F, H, W)` for a video: frame-major, then
row-major) become tiles `(B, T, S, C)` by reshape and permute only: no gather, no scatter, no index
tensor. `join` is the exact inverse. A tile is a box of the grid: `(th, tw)` tokens of an image,
`(tt, th, tw)` of a video, so destinations can stand for tokens of neighbouring frames.

Grids the tile does not divide are cut into rectangular blocks, each tiled uniformly: along every axis
a body of whole tiles and a remainder, so up to 4 blocks in 2-D and 8 in 3-D:

    +----------------+------+      body:   th x tw tiles
    |      body      | right|      right:  th x rw tiles   (rw = W mod tw)
    +----------------+------+      bottom: rh x tw tiles   (rh = H mod th)
    |     bottom     |corner|      corner: one rh x rw tile
    +----------------+------+

So edge tiles are smaller, nothing is padded, and every merged token stands for real tokens of the image:
a padded token would either become a fake destination that other tokens attend to, or need a mask in
every op downstream. Each block keeps its own number of destinations, so the merged length is
`sum(T_i * K_i)`, close to `N * (1 - ratio)`.
"""

from __future__ import annotations

import itertools
import math
import numbers
import operator
from dataclasses import dataclass, field

import torch

__all__ = ["TileBlock", "TileLayout", "destinations_per_tile"]


def destinations_per_tile(tile_size: int, ratio: float) -> int:
    """Destinations kept in a tile of `tile_size` tokens when a fraction `ratio` of tokens is removed.

    `K = S - floor(S * ratio)`, at least 1. The small epsilon keeps products such as `100 * 0.29`
    (28.999...) from flooring one token short.
    """
    if tile_size < 1:
        raise ValueError(f"tile_size must be >= 1, got {tile_size}")
    _check_ratio(ratio)
    return max(1, tile_size - math.floor(tile_size * ratio + 1e-9))


def _check_ratio(ratio: float) -> None:
    if not (isinstance(ratio, numbers.Real) and 0.0 <= ratio < 1.0):
        raise ValueError(f"ratio must be in [0, 1), got {ratio!r}")


@dataclass(frozen=True)
class TileBlock:
    """A box of the grid, `size` tokens from `start` (one entry per grid axis), cut into `tile` boxes."""

    start: tuple[int, ...]
    size: tuple[int, ...]
    tile: tuple[int, ...]
    keep: int
    """K: destinations kept per tile."""

    @property
    def num_tiles(self) -> int:
        """T: tiles in this block."""
        return math.prod([s // t for s, t in zip(self.size, self.tile)])

    @property
    def tile_size(self) -> int:
        """S: tokens per tile."""
        return math.prod(self.tile)


@dataclass(frozen=True)
class TileLayout:
    """How one merge site cuts its token grid into tiles and how many destinations each keeps.

    Args:
        grid: the token grid in raster order, each axis >= 1: `(H, W)`, or `(F, H, W)` for a video.
        tile: the tile, one entry per grid axis, `1 <= tile[i] <= grid[i]`.
        ratio: fraction of tokens removed, in `[0, 1)`; a tile of S tokens keeps
            `S - floor(S * ratio)` destinations, at least 1.
    """

    grid: tuple[int, ...]
    tile: tuple[int, ...]
    ratio: float
    blocks: tuple[TileBlock, ...] = field(init=False, repr=False, compare=False)
    """Body and remainder boxes, leaving out the empty ones; raster order of their starts."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", _sizes("grid", self.grid))
        object.__setattr__(self, "tile", _sizes("tile", self.tile))
        if len(self.tile) != len(self.grid) or any(t > g for t, g in zip(self.tile, self.grid)):
            bounds = " and ".join(f"1 <= tile[{i}] <= {g}" for i, g in enumerate(self.grid))
            raise ValueError(
                f"tile must fit in the grid: {bounds} for grid {self.grid}, got tile {self.tile}"
            )
        _check_ratio(self.ratio)
        # A plain field, not a cached_property: Dynamo cannot trace the latter's lock on Python 3.11.
        object.__setattr__(self, "blocks", self._cut_blocks())

    def _cut_blocks(self) -> tuple[TileBlock, ...]:
        per_axis = []  # for each axis: (start, size, tile) of its body and its remainder
        for g, t in zip(self.grid, self.tile):
            body = g - g % t
            per_axis.append([(0, body, t), (body, g % t, g % t)])
        blocks = []
        for parts in itertools.product(*per_axis):
            start, size, tile = zip(*parts)
            if all(size):
                blocks.append(
                    TileBlock(start, size, tile, destinations_per_tile(math.prod(tile), self.ratio))
                )
        return tuple(blocks)

    @property
    def num_tokens(self) -> int:
        """N: tokens of the grid."""
        return math.prod(self.grid)

    @property
    def num_merged(self) -> int:
        """Tokens after merging: `sum(T_i * K_i)` over the blocks."""
        return sum([b.num_tiles * b.keep for b in self.blocks])

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raster tokens to tiles: `(B, N, C) -> [(B, T_i, S_i, C)]`, one tensor per block."""
        B, N, C = x.shape
        if N != self.num_tokens:
            raise ValueError(
                f"tokens do not match the grid: grid {'x'.join(map(str, self.grid))} holds "
                f"{self.num_tokens} tokens, got {N}; pass the grid of these tokens"
            )
        g = x.reshape(B, *self.grid, C)
        return [_to_tiles(g[(slice(None), *_box(b))], b.tile) for b in self.blocks]

    def join(self, tiles: list[torch.Tensor]) -> torch.Tensor:
        """Inverse of `split`: `[(B, T_i, S_i, C)] -> (B, N, C)`."""
        boxes = [_from_tiles(t, b) for t, b in zip(tiles, self.blocks, strict=True)]
        B, C = boxes[0].shape[0], boxes[0].shape[-1]
        return _assemble(list(zip(self.blocks, boxes)), axis=0).reshape(B, self.num_tokens, C)

    def split_merged(self, y: torch.Tensor) -> list[torch.Tensor]:
        """Merged tokens per block: `(B, sum T_i*K_i, C) -> [(B, T_i, K_i, C)]`."""
        B, M, C = y.shape
        if M != self.num_merged:
            raise ValueError(f"expected {self.num_merged} merged tokens for {self}, got {M}")
        sizes = [b.num_tiles * b.keep for b in self.blocks]
        return [
            part.reshape(B, b.num_tiles, b.keep, C) for part, b in zip(y.split(sizes, dim=1), self.blocks)
        ]

    @staticmethod
    def join_merged(parts: list[torch.Tensor]) -> torch.Tensor:
        """Inverse of `split_merged`: `[(B, T_i, K_i, C)] -> (B, sum T_i*K_i, C)`."""
        return torch.cat([p.flatten(1, 2) for p in parts], dim=1)


def _sizes(name: str, value) -> tuple[int, ...]:
    try:
        sizes = tuple(operator.index(v) for v in value)
    except TypeError:
        raise ValueError(f"{name} must be a tuple of positive ints, got {value!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"{name} must be a tuple of positive ints, got {value!r}")
    return sizes


def _box(b: TileBlock) -> tuple[slice, ...]:
    return tuple([slice(s, s + n) for s, n in zip(b.start, b.size)])


def _to_tiles(g: torch.Tensor, tile: tuple[int, ...]) -> torch.Tensor:
    """`(B, *box, C) -> (B, T, S, C)`: tiles in raster order, tokens in raster order inside a tile."""
    B, *box, C = g.shape
    d = len(box)
    counts = [n // t for n, t in zip(box, tile)]
    interleaved = [size for pair in zip(counts, tile) for size in pair]
    g = g.reshape(B, *interleaved, C)
    # (B, c0, t0, c1, t1, ..., C) -> (B, c0, c1, ..., t0, t1, ..., C)
    g = g.permute(0, *range(1, 2 * d, 2), *range(2, 2 * d + 1, 2), 2 * d + 1)
    return g.reshape(B, math.prod(counts), math.prod(tile), C)


def _from_tiles(t: torch.Tensor, b: TileBlock) -> torch.Tensor:
    """`(B, T, S, C) -> (B, *b.size, C)` for block `b`."""
    B, C = t.shape[0], t.shape[-1]
    d = len(b.size)
    counts = [n // k for n, k in zip(b.size, b.tile)]
    g = t.reshape(B, *counts, *b.tile, C)
    # (B, c0, c1, ..., t0, t1, ..., C) -> (B, c0, t0, c1, t1, ..., C)
    g = g.permute(0, *[axis for i in range(d) for axis in (1 + i, 1 + d + i)], 2 * d + 1)
    return g.reshape(B, *b.size, C)


def _assemble(pieces: list[tuple[TileBlock, torch.Tensor]], axis: int) -> torch.Tensor:
    """Concatenate block boxes `(B, *size, C)` back into the grid, one grid axis at a time."""
    if len(pieces) == 1:
        return pieces[0][1]
    bands: dict[int, list] = {}
    for b, box in pieces:
        bands.setdefault(b.start[axis], []).append((b, box))
    return torch.cat([_assemble(band, axis + 1) for band in bands.values()], dim=axis + 1)
