"""Local tiles of a token grid, and how many destinations each tile keeps.

Raster tokens `(B, N, C)` of an `H x W` grid become tiles `(B, T, S, C)` of `th x tw` tokens by reshape
and permute only: no gather, no scatter, no index tensor. `join` is the exact inverse.

Grids the tile does not divide are cut into at most four rectangular blocks, each tiled uniformly:

    +----------------+------+      body:   th x tw tiles
    |      body      | right|      right:  th x rw tiles   (rw = W mod tw)
    +----------------+------+      bottom: rh x tw tiles   (rh = H mod th)
    |     bottom     |corner|      corner: one rh x rw tile
    +----------------+------+

So edge tiles are smaller, nothing is padded, and every merged token stands for real tokens of the image:
a padded token would either become a fake destination that other tokens attend to, or need a mask in
every op downstream. Each block keeps its own number of destinations, so the merged length is
`sum(T_i * K_i)`, close to `N * (1 - ratio)`.

Without a known grid, `TileLayout.stripes` cuts the raster sequence into 1-D stripes: a `1 x N` grid
with `1 x S` tiles, remainder included.
"""

from __future__ import annotations

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
    """A rectangle of the grid, `height x width` tokens from (`top`, `left`), cut into equal tiles."""

    top: int
    left: int
    height: int
    width: int
    tile_h: int
    tile_w: int
    keep: int
    """K: destinations kept per tile."""

    @property
    def num_tiles(self) -> int:
        """T: tiles in this block."""
        return (self.height // self.tile_h) * (self.width // self.tile_w)

    @property
    def tile_size(self) -> int:
        """S: tokens per tile."""
        return self.tile_h * self.tile_w


@dataclass(frozen=True)
class TileLayout:
    """How one merge site cuts its `H x W` token grid into tiles and how many destinations each keeps.

    Args:
        grid: `(H, W)`, the token grid in raster order (row-major), each >= 1.
        tile: `(th, tw)`, tile size in tokens, `1 <= th <= H` and `1 <= tw <= W`.
        ratio: fraction of tokens removed, in `[0, 1)`; a tile of S tokens keeps
            `S - floor(S * ratio)` destinations, at least 1.
    """

    grid: tuple[int, int]
    tile: tuple[int, int]
    ratio: float
    blocks: tuple[TileBlock, ...] = field(init=False, repr=False, compare=False)
    """Body, right strip, bottom strip and corner, leaving out the empty ones; row-major order."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", _pair("grid", self.grid))
        object.__setattr__(self, "tile", _pair("tile", self.tile))
        (H, W), (th, tw) = self.grid, self.tile
        if th > H or tw > W:
            raise ValueError(
                f"tile must fit in the grid: 1 <= tile[0] <= {H} and 1 <= tile[1] <= {W} "
                f"for grid {self.grid}, got tile {self.tile}"
            )
        _check_ratio(self.ratio)
        # A plain field, not a cached_property: Dynamo cannot trace the latter's lock on Python 3.11.
        object.__setattr__(self, "blocks", self._cut_blocks())

    @classmethod
    def stripes(cls, num_tokens: int, stripe: int, ratio: float) -> TileLayout:
        """1-D stripes of `stripe` consecutive raster tokens, for tokens whose grid is unknown.

        A sequence shorter than one stripe is a single stripe.
        """
        if stripe < 1:
            raise ValueError(f"stripe must be >= 1, got {stripe!r}")
        return cls(grid=(1, num_tokens), tile=(1, min(stripe, num_tokens)), ratio=ratio)

    def _cut_blocks(self) -> tuple[TileBlock, ...]:
        (H, W), (th, tw) = self.grid, self.tile
        rows = [(0, H - H % th, th), (H - H % th, H % th, H % th)]
        cols = [(0, W - W % tw, tw), (W - W % tw, W % tw, W % tw)]
        return tuple(
            TileBlock(
                top,
                left,
                height,
                width,
                tile_h,
                tile_w,
                keep=destinations_per_tile(tile_h * tile_w, self.ratio),
            )
            for top, height, tile_h in rows
            for left, width, tile_w in cols
            if height and width
        )

    @property
    def num_tokens(self) -> int:
        """N = H * W."""
        return self.grid[0] * self.grid[1]

    @property
    def num_merged(self) -> int:
        """Tokens after merging: `sum(T_i * K_i)` over the blocks."""
        return sum(b.num_tiles * b.keep for b in self.blocks)

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raster tokens to tiles: `(B, N, C) -> [(B, T_i, S_i, C)]`, one tensor per block."""
        B, N, C = x.shape
        if N != self.num_tokens:
            H, W = self.grid
            raise ValueError(
                f"tokens do not match the grid: grid {H}x{W} holds {H * W} tokens, got {N}; "
                "pass the grid of these tokens"
            )
        g = x.reshape(B, *self.grid, C)
        return [
            _to_tiles(g[:, b.top : b.top + b.height, b.left : b.left + b.width], b.tile_h, b.tile_w)
            for b in self.blocks
        ]

    def join(self, tiles: list[torch.Tensor]) -> torch.Tensor:
        """Inverse of `split`: `[(B, T_i, S_i, C)] -> (B, N, C)`."""
        grids = [_from_tiles(t, b) for t, b in zip(tiles, self.blocks, strict=True)]
        bands: dict[int, list[torch.Tensor]] = {}
        for g, b in zip(grids, self.blocks):
            bands.setdefault(b.top, []).append(g)
        g = torch.cat([torch.cat(band, dim=2) for band in bands.values()], dim=1)
        B, C = g.shape[0], g.shape[-1]
        return g.reshape(B, self.num_tokens, C)

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


def _pair(name: str, value) -> tuple[int, int]:
    try:
        a, b = (operator.index(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of positive ints, got {value!r}") from None
    if a < 1 or b < 1:
        raise ValueError(f"{name} must be a pair of positive ints, got {value!r}")
    return a, b


def _to_tiles(g: torch.Tensor, th: int, tw: int) -> torch.Tensor:
    """`(B, h, w, C) -> (B, T, S, C)`, tiles in row-major order, tokens row-major inside a tile."""
    B, h, w, C = g.shape
    g = g.reshape(B, h // th, th, w // tw, tw, C).permute(0, 1, 3, 2, 4, 5)
    return g.reshape(B, (h // th) * (w // tw), th * tw, C)


def _from_tiles(t: torch.Tensor, b: TileBlock) -> torch.Tensor:
    """`(B, T, S, C) -> (B, height, width, C)` for block `b`."""
    B, C = t.shape[0], t.shape[-1]
    g = t.reshape(B, b.height // b.tile_h, b.width // b.tile_w, b.tile_h, b.tile_w, C)
    return g.permute(0, 1, 3, 2, 4, 5).reshape(B, b.height, b.width, C)
