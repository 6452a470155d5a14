"""The functions a rewritten graph calls: one per inserted node, with plain arguments.

The compiler pass inserts `call_function` nodes targeting these, so the rewritten graph reads as

    dst = toma_fx_ops_nodes_select(x, ((64, 64), (4, 4), 0.5), (1, 0, 0))
    w = toma_fx_ops_nodes_weights(x, dst, ((64, 64), (4, 4), 0.5), (1, 0, 0), 1000.0)
    xm = toma_fx_ops_nodes_merge(x, w, ((64, 64), (4, 4), 0.5), (1, 0, 0))

and AOTAutograd traces through them into plain aten ops for Inductor to fuse (the selection stays one
custom op). Two plain tuples describe a site:

    layout  = (grid, tile, ratio)        the image's `TileLayout`
    segment = (axis, before, after)      where the image tokens sit along the token axis of a tensor:
                                         `before` tokens precede them (Flux puts text first) and `after`
                                         follow them (SD3 puts text last); text is never merged.

Destinations travel as one `(B, Nm)` int64 tensor: for every merged token, in merged order, the index of
its destination inside its tile. One tensor (not a list per tile block) so a later step can carry it
between calls.
"""

from __future__ import annotations

import functools

import torch

from toma_fx.ops import assignment
from toma_fx.ops.positions import gather_positions
from toma_fx.ops.select import select_destinations
from toma_fx.ops.tiles import TileLayout

__all__ = ["gather", "merge", "select", "unmerge", "weights"]

Layout = tuple[tuple[int, int], tuple[int, int], float]
Segment = tuple[int, int, int]


@functools.lru_cache(maxsize=256)
def tile_layout(layout: Layout) -> TileLayout:
    grid, tile, ratio = layout
    return TileLayout(grid, tile, ratio)


def select(x: torch.Tensor, layout: Layout, segment: Segment) -> torch.Tensor:
    """Destinations of the image tokens of `x (B, L, C)`: `(B, Nm)` int64 indices inside each tile."""
    L = tile_layout(layout)
    idx = select_destinations(_image(x, L, segment), L)
    return L.join_merged([i[..., None] for i in idx])[..., 0]


def weights(
    x: torch.Tensor, dst: torch.Tensor, layout: Layout, segment: Segment, tau: float
) -> list[torch.Tensor]:
    """Merge weights of the image tokens of `x (B, L, C)`: `[(B, T_i, K_i, S_i)]` fp32, as `merge_weights`."""
    L = tile_layout(layout)
    return assignment.merge_weights(_image(x, L, segment), _split(dst, L), L, tau=tau)


def merge(x: torch.Tensor, w: list[torch.Tensor], layout: Layout, segment: Segment) -> torch.Tensor:
    """`(B, before + N + after, C) -> (B, before + Nm + after, C)`: image tokens merged, text kept."""
    L = tile_layout(layout)
    _, before, after = segment
    merged = assignment.merge(_image(x, L, segment), w, L)
    if not before and not after:
        return merged
    return torch.cat([x[:, :before], merged, x[:, x.shape[1] - after :]], dim=1)


def unmerge(y: torch.Tensor, w: list[torch.Tensor], layout: Layout, segment: Segment) -> torch.Tensor:
    """Inverse of `merge` along token axis `segment[0]` of `y (B, ..., before + Nm + after, ...)`."""
    L = tile_layout(layout)
    axis, before, after = segment
    t = y.movedim(axis, 1)
    rest = t.shape[2:]
    t = t.reshape(t.shape[0], t.shape[1], -1)  # (B, before + Nm + after, R)
    image = assignment.unmerge(t[:, before : before + L.num_merged], w, L)
    if before or after:
        image = torch.cat([t[:, :before], image, t[:, t.shape[1] - after :]], dim=1)
    return image.reshape(*image.shape[:2], *rest).movedim(1, axis)


def gather(
    table: torch.Tensor, dst: torch.Tensor, layout: Layout, segment: Segment, ndim: int, batch: int
) -> torch.Tensor:
    """A per-position table (RoPE cos/sin) at the destinations.

    `table` broadcasts against a token tensor of `ndim` dims with batch `batch` at dim 0 and tokens at
    `segment[0]`, where it has one row per token. Returns it with batch `batch` and the image rows of the
    destinations in merged order, text rows unchanged: a merged token keeps its destination's position.
    """
    L = tile_layout(layout)
    axis, before, after = segment
    t = table.reshape((1,) * (ndim - table.dim()) + tuple(table.shape))
    t = t.expand(batch, *t.shape[1:]).movedim(axis, 1)  # (B, L, ...): tokens second
    rest = t.shape[2:]
    image = t.narrow(1, before, L.num_tokens).reshape(batch, L.num_tokens, -1)
    rows = gather_positions(image, _split(dst, L), L).reshape(batch, -1, *rest)
    if before or after:
        rows = torch.cat([t[:, :before], rows, t[:, t.shape[1] - after :]], dim=1)
    return rows.movedim(1, axis)


def _image(x: torch.Tensor, L: TileLayout, segment: Segment) -> torch.Tensor:
    _, before, _ = segment
    return x.narrow(1, before, L.num_tokens)


def _split(dst: torch.Tensor, L: TileLayout) -> list[torch.Tensor]:
    return [d[..., 0] for d in L.split_merged(dst[..., None])]
