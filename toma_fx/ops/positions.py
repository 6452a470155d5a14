"""Per-token tables at the destinations: a merged token takes its destination's row.

Positional tables (RoPE cos/sin, position ids) are not averaged: a mean of rotations is not a rotation,
and merge does not commute with per-position ops. So the table is tiled like the tokens and gathered at
the destination indices, giving rows in the same order as `merge`'s output.
"""

from __future__ import annotations

import torch

from toma_fx.ops.assignment import gather_tokens
from toma_fx.ops.tiles import TileLayout

__all__ = ["gather_positions"]


def gather_positions(table: torch.Tensor, dst: list[torch.Tensor], layout: TileLayout) -> torch.Tensor:
    """Rows of a per-token table at the destinations.

    Args:
        table: `(N,)`, `(N, D)` or `(B, N, D)`; a table without a batch dimension is shared by the batch.
        dst: `[(B, T_i, K_i)]` destination indices from `select_destinations`.
        layout: the site's tiles.

    Returns:
        `(B, sum T_i*K_i)` for a 1-D table, else `(B, sum T_i*K_i, D)`: per batch element, since every
        element selects its own destinations.
    """
    if table.dim() not in (1, 2, 3):
        raise ValueError(f"table must be (N,), (N, D) or (B, N, D), got shape {tuple(table.shape)}")
    flat = table.dim() == 1
    t = table[:, None] if flat else table
    B = dst[0].shape[0]
    t = t.expand(B, *t.shape) if t.dim() == 2 else t.expand(B, -1, -1)
    out = layout.join_merged(
        [gather_tokens(tiles, idx) for tiles, idx in zip(layout.split(t), dst, strict=True)]
    )
    return out[..., 0] if flat else out
