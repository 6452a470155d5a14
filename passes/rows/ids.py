"""Position-id inputs: a table of coordinates, one row per token, that places a run of rows on a grid.

    Flux    img_ids (N, 3)        rows (0, h, w)
    Flux2   img_ids (1, N, 4)     rows (t, h, w, l)
    Krea2   position_ids (L+N, 3) caption rows first, then (0, h, w)
    LTX     video_coords (B, 3, N)

`raster_run` finds the run: the longest prefix or suffix whose rows step through a box of coordinates
in raster order (last varying column fastest), over two or more varying columns. Constant columns
(a frame index, a layer index) are ignored; the rest of the rows (captions) are not on the grid.
"""

from __future__ import annotations

import math

import torch
from torch._subclasses.fake_tensor import FakeTensor

__all__ = ["coordinate_table", "raster_run"]


def coordinate_table(value) -> tuple[torch.Tensor, int] | None:
    """`(rows (N, k), axis of the tokens in value)` of a real ids tensor `(N, k)`, `(B, N, k)` or
    `(B, k, N)` (k <= 4, batch rows equal), or None."""
    if (
        not isinstance(value, torch.Tensor)
        or isinstance(value, FakeTensor)
        or value.is_meta
        or value.is_complex()
        or value.dtype == torch.bool
        or value.dim() not in (2, 3)
        or value.numel() == 0
    ):
        return None
    table, offset = value, 0
    if value.dim() == 3:
        if not bool((value == value[:1]).all()):
            return None
        table, offset = value[0], 1
    if 1 <= table.shape[1] <= 4 and table.shape[0] >= 4:
        return table, offset
    if 1 <= table.shape[0] <= 4 and table.shape[1] >= 4:
        return table.T, offset + 1
    return None


def raster_run(rows: torch.Tensor) -> tuple[int, tuple[int, ...]] | None:
    """`(start, grid)` of the run of `rows (N, k)` laid out in raster order on a grid, or None."""
    coords = rows.double()
    if not bool((coords == coords.round()).all()):
        return None
    coords = coords.long()
    N = coords.shape[0]
    step = _steps(coords)  # step[i]: row i+1 follows row i in raster order
    # the longest suffix and prefix of consecutive raster steps
    breaks = (~step).nonzero().flatten()
    suffix = 0 if breaks.numel() == 0 else int(breaks[-1]) + 1
    prefix = N if breaks.numel() == 0 else int(breaks[0]) + 1
    for start, stop in ((suffix, N), (0, prefix)):
        grid = _grid(coords[start:stop])
        if grid is not None:
            return start, grid
    return None


def _steps(coords: torch.Tensor) -> torch.Tensor:
    """For each pair of neighbouring rows: one column goes up by 1, the ones before it stay, the ones
    after it do not go up (they restart)."""
    d = coords[1:] - coords[:-1]
    up = d > 0
    one_up = up.sum(-1) == 1
    j = up.float().argmax(-1)
    cols = torch.arange(coords.shape[1], device=coords.device)
    before = cols[None] < j[:, None]
    after = cols[None] > j[:, None]
    return (
        one_up
        & (d.gather(1, j[:, None])[:, 0] == 1)
        & ((d == 0) | ~before).all(-1)
        & ((d <= 0) | ~after).all(-1)
    )


def _grid(coords: torch.Tensor) -> tuple[int, ...] | None:
    if coords.shape[0] < 4:
        return None
    varying = [j for j in range(coords.shape[1]) if coords[:, j].min() != coords[:, j].max()]
    if len(varying) < 2:
        return None
    cols = coords[:, varying] - coords[:, varying].min(0).values
    shape = tuple(int(c) + 1 for c in cols.max(0).values)
    if math.prod(shape) != coords.shape[0]:
        return None
    strides = torch.tensor([math.prod(shape[i + 1 :]) for i in range(len(shape))], device=cols.device)
    index = (cols * strides).sum(-1)
    return shape if torch.equal(index, torch.arange(coords.shape[0], device=cols.device)) else None
