"""The token grid `(H, W)` of a token set, which tiles need and a token sequence does not show.

In order of preference:

    graph    tokens made from a `(B, C, H, W)` map in the graph (UNet levels, DiT patch embeddings);
             found while discovering candidates (`discover.Origin`)
    config   `ToMAConfig.grid`, the largest level's grid; smaller levels by halving, rounding up as
             stride-2 convolutions do (SDXL's 128x128 latent -> 64x64 and 32x32 token levels)
    ids      Flux-style position ids: a `(N, 3)` input of `(0, row, col)` rows in raster order, read
             from the real example inputs Dynamo hands the backend
    stripes  none of the above: 1-D stripes of raster tokens (`TileLayout.stripes`)
"""

from __future__ import annotations

import torch

__all__ = ["choose_grid", "id_grids"]


def choose_grid(
    n: int, graph: tuple[int, int] | None, config: tuple[int, int] | None, ids: dict[int, tuple[int, int]]
) -> tuple[tuple[int, int] | None, str]:
    """`(grid or None, where it came from)` for a set of `n` image tokens."""
    if graph is not None and graph[0] * graph[1] == n:
        return graph, "graph"
    if config is not None:
        h, w = config
        while h * w > n:
            h, w = (h + 1) // 2, (w + 1) // 2
        if h * w == n:
            return (h, w), "config"
    if n in ids:
        return ids[n], "ids"
    return None, "stripes"


def id_grids(example_inputs: list) -> dict[int, tuple[int, int]]:
    """Grids of position-id inputs: `{N: (H, W)}` for each `(N, 3)` input of raster `(0, row, col)` rows."""
    grids = {}
    for value in example_inputs:
        if not _real_tensor(value) or value.dim() != 2 or value.shape[1] != 3 or value.shape[0] < 2:
            continue
        rows, cols = value[:, 1].round().long(), value[:, 2].round().long()
        h, w = int(rows.max()) + 1, int(cols.max()) + 1
        n = value.shape[0]
        if rows.min() >= 0 and cols.min() >= 0 and h * w == n:
            if torch.equal(rows * w + cols, torch.arange(n, device=value.device)):
                grids[n] = (h, w)
    return grids


def _real_tensor(value) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(value, torch.Tensor) and not isinstance(value, FakeTensor) and not value.is_meta
