"""Destination choices that ToMA's selection is measured against, with the same tiles and budget.

- random: K distinct tokens per tile, uniformly at random.
- strided (tomesd's choice): the grid is cut into cells of `sy x sx` tokens and one token per cell,
  at random, is a destination. tomesd uses 2x2 cells at ratio 0.75 and 2x1 at ratio 0.5.
"""

from __future__ import annotations

import torch

from toma_fx.ops.tiles import TileLayout

__all__ = ["CELLS", "random_destinations", "strided_destinations"]

CELLS = {0.5: (2, 1), 0.75: (2, 2)}
"""The `(sy, sx)` cell that keeps one token in each for the merge ratios it can match: tomesd's strided
destinations and ToDo's key/value downsampling both use it."""


def random_destinations(
    batch: int, layout: TileLayout, *, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """`[(B, T_i, K_i)]` int64: K_i distinct random tokens per tile, ascending."""
    out = []
    for b in layout.blocks:
        noise = torch.rand(batch, b.num_tiles, b.tile_size, generator=generator)
        out.append(noise.topk(b.keep, dim=-1).indices.sort(dim=-1).values)
    return out


def strided_destinations(
    batch: int, layout: TileLayout, cell: tuple[int, int], *, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """`[(B, T, S / (sy*sx))]` int64: one random token per `sy x sx` cell of every tile.

    Needs one block whose tiles the cell divides, and `K = S / (sy * sx)` destinations per tile.
    """
    sy, sx = cell
    (block,) = layout.blocks
    th, tw = block.tile
    if th % sy or tw % sx or block.keep * sy * sx != block.tile_size:
        raise ValueError(
            f"cell {cell} must divide the tile {layout.tile} and leave K = {block.keep} cells per tile"
        )
    T, K = block.num_tiles, block.keep
    pick = torch.randint(sy * sx, (batch, T, K), generator=generator)
    cy, cx = torch.arange(th // sy).repeat_interleave(tw // sx), torch.arange(tw // sx).repeat(th // sy)
    rows, cols = cy * sy + pick // sx, cx * sx + pick % sx
    return [rows * tw + cols]
