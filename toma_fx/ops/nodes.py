"""The functions a rewritten graph calls: one per inserted node, with plain arguments.

The compiler pass inserts `call_function` nodes targeting these, so the rewritten graph reads as

    dst = toma_fx_ops_nodes_select(x, ((64, 64), (4, 4), 0.5), (1, 0, 0, 0))
    w = toma_fx_ops_nodes_weights(x, dst, ((64, 64), (4, 4), 0.5), (1, 0, 0, 0), 1000.0)
    xm = toma_fx_ops_nodes_merge(x, w, ((64, 64), (4, 4), 0.5), (1, 0, 0, 0))

and AOTAutograd traces through them into plain aten ops for Inductor to fuse (the selection stays one
custom op). In the SDPA form (`ToMAConfig.merge_form`) there is no weights node:

    xm = toma_fx_ops_nodes_merge_sdpa(x, dst, ((64, 64), (4, 4), 0.5), (1, 0, 0, 0), 1000.0)
    h = toma_fx_ops_nodes_unmerge_sdpa(o, x, dst, ((64, 64), (4, 4), 0.5), (1, 0, 0, 0), (1, 0, 0, 0), 1000.0)

Plain tuples describe a site:

    layout  = (grid, tile, ratio)          the image's `TileLayout` (2-D or 3-D grid and tile)
    rows    = (axis, before, after, batch) where the image rows sit in a tensor: along its token axis,
                                           after `before` rows (Flux puts text first) and before `after`
                                           rows (SD3 puts text last), with batch along `batch`; only
                                           image rows are merged

Destinations travel as one `(B, Nm)` int64 tensor: for every merged token, in merged order, the index of
its destination inside its tile. One tensor (not a list per tile block) so a later step can carry it
between calls.
"""

from __future__ import annotations

import functools
import hashlib
import inspect

import torch

from toma_fx.ops import assignment, positions, sdpa, tiles
from toma_fx.ops import noise as noise_module
from toma_fx.ops import select as select_module
from toma_fx.ops.noise import StepNoise
from toma_fx.ops.positions import gather_positions
from toma_fx.ops.select import select_destinations
from toma_fx.ops.tiles import TileLayout

__all__ = [
    "GRAPH_FUNCTIONS", "Layout", "Rows", "cache_keys", "gather", "merge", "merge_sdpa", "select",
    "tile_layout", "unmerge", "unmerge_sdpa", "weights",
]  # fmt: skip

Layout = tuple[tuple[int, ...], tuple[int, ...], float]
Rows = tuple[int, int, int, int]


@functools.lru_cache(maxsize=256)
def tile_layout(layout: Layout) -> TileLayout:
    grid, tile, ratio = layout
    return TileLayout(grid, tile, ratio)


def select(
    x: torch.Tensor,
    layout: Layout,
    rows: Rows,
    kept: torch.Tensor | None = None,
    reuse: torch.Tensor | None = None,
    salt: torch.Tensor | None = None,
    *,
    noise: float = 0.0,
    avoid: float = 1.0,
) -> torch.Tensor:
    """Destinations of the image rows of a token tensor `x`: `(B, Nm)` int64 indices inside each tile.
    With kept destinations `(B, Nm)` and a 0-dim bool `reuse`: `kept` where `reuse` is true (the graph
    variant that serves select and reuse steps alike, `passes/variants.py`). With `noise` `sigma > 0`,
    gains are scaled by step noise keyed by `salt`, a 0-dim int64 tensor (the step; 0 when not given).
    With `avoid < 1`, a fresh selection scales the gains of the tokens in `kept` by `avoid` (the site's
    last destinations; entries of -1, the dispatcher's "none yet", match no token)."""
    L = tile_layout(layout)
    given = (None, None) if kept is None else (_split(kept, L), reuse)
    step_noise = None
    if noise > 0:
        salt = torch.zeros((), dtype=torch.int64, device=x.device) if salt is None else salt
        step_noise = StepNoise(salt, noise)
    last = (given[0], avoid) if avoid != 1.0 and kept is not None else None
    idx = select_destinations(image_rows(x, L, rows), L, *given, step_noise, last)
    return L.join_merged([i[..., None] for i in idx])[..., 0]


def weights(x: torch.Tensor, dst: torch.Tensor, layout: Layout, rows: Rows, tau: float) -> list[torch.Tensor]:
    """Merge weights of the image rows of `x`: `[(B, T_i, K_i, S_i)]` fp32, as `merge_weights`."""
    L = tile_layout(layout)
    return assignment.merge_weights(image_rows(x, L, rows), _split(dst, L), L, tau=tau)


def merge(x: torch.Tensor, w: list[torch.Tensor], layout: Layout, rows: Rows) -> torch.Tensor:
    """`x` with its `N` image rows merged to `Nm`, the rows before and after them kept as they are."""
    L = tile_layout(layout)
    return _on_image(x, rows, L.num_tokens, lambda image: assignment.merge(image, w, L))


def unmerge(y: torch.Tensor, w: list[torch.Tensor], layout: Layout, rows: Rows) -> torch.Tensor:
    """Inverse of `merge` along token axis `rows[0]` of `y`, batch along `rows[3]`."""
    L = tile_layout(layout)
    return _on_image(y, rows, L.num_merged, lambda image: assignment.unmerge(image, w, L))


def merge_sdpa(x: torch.Tensor, dst: torch.Tensor, layout: Layout, rows: Rows, tau: float) -> torch.Tensor:
    """`merge` in the SDPA form (`ToMAConfig.merge_form`): each destination attends over its tile's
    image rows of `x`, which are the metric and the values alike."""
    L = tile_layout(layout)
    return _on_image(
        x, rows, L.num_tokens, lambda image: sdpa.merge_sdpa(image, image, _split(dst, L), L, tau=tau)
    )


def unmerge_sdpa(
    y: torch.Tensor,
    metric: torch.Tensor,
    dst: torch.Tensor,
    layout: Layout,
    rows: Rows,
    metric_rows: Rows,
    tau: float,
) -> torch.Tensor:
    """`unmerge` in the SDPA form: each image token of `metric` (the site's input, its rows at
    `metric_rows`) attends over its tile's destinations, and takes their rows of `y` (rows at `rows`)."""
    L = tile_layout(layout)
    xn = image_rows(metric, L, metric_rows)
    return _on_image(
        y, rows, L.num_merged, lambda image: sdpa.unmerge_sdpa(image, xn, _split(dst, L), L, tau=tau)
    )


def gather(table: torch.Tensor, dst: torch.Tensor, layout: Layout, rows: Rows, ndim: int) -> torch.Tensor:
    """A per-position table (RoPE cos/sin, a padding mask) at the destinations.

    `table` broadcasts against a token tensor of `ndim` dims with tokens at `rows[0]` (where the table
    has one row per token) and batch at `rows[3]`. Returns it with the batch of `dst` and the image rows
    of the destinations in merged order, other rows unchanged: a merged token keeps its destination's
    position.
    """
    L = tile_layout(layout)
    t = table.reshape((1,) * (ndim - table.dim()) + tuple(table.shape))
    t = t.expand(*(dst.shape[0] if d == rows[3] else -1 for d in range(ndim)))
    return _on_image(t, rows, L.num_tokens, lambda image: gather_positions(image, _split(dst, L), L))


def _on_image(t: torch.Tensor, rows: Rows, length: int, fn) -> torch.Tensor:
    """`t` with `fn` applied to its `length` image rows, the rows before and after them (text) kept.

    `fn` takes and returns `(B, rows, R)`: batch first, tokens second, every other axis of `t` flattened
    into `R`; it may change the number of rows (merge, unmerge), and the result has `t`'s layout."""
    _, before, after, _ = rows
    moved = _tokens_second(t, rows)
    flat = moved.reshape(moved.shape[0], moved.shape[1], -1)
    out = fn(flat.narrow(1, before, length))
    if before or after:
        out = torch.cat([flat[:, :before], out, flat[:, flat.shape[1] - after :]], dim=1)
    return _tokens_back(out.reshape(*out.shape[:2], *moved.shape[2:]), rows)


def _tokens_second(t: torch.Tensor, rows: Rows) -> torch.Tensor:
    """`t` with its batch axis first and its token axis second."""
    axis, _, _, batch = rows
    return t.movedim((batch, axis), (0, 1))


def _tokens_back(t: torch.Tensor, rows: Rows) -> torch.Tensor:
    axis, _, _, batch = rows
    return t.movedim((0, 1), (batch, axis))


def image_rows(x: torch.Tensor, L: TileLayout, rows: Rows) -> torch.Tensor:
    """The image rows of `x`, `(B, N, C)`."""
    return _tokens_second(x, rows).narrow(1, rows[1], L.num_tokens)


def _split(dst: torch.Tensor, L: TileLayout) -> list[torch.Tensor]:
    return [d[..., 0] for d in L.split_merged(dst[..., None])]


@functools.cache
def cache_keys() -> dict[str, str]:
    """Inductor's `unsafe_marked_cacheable_functions` entries for the functions a rewritten graph calls.

    AOTAutograd's cache skips tracing a graph it has compiled before, but only for functions it knows
    to be pure; marked so, a rewritten graph is cached like a plain one. Each entry's value (part of the
    cache key) is a digest of the source these functions trace through, so a change to the operators
    misses the cache instead of loading what the old code compiled."""
    modules = (inspect.getmodule(cache_keys), assignment, noise_module, positions, sdpa, select_module, tiles)
    digest = hashlib.sha256("".join(inspect.getsource(m) for m in modules).encode()).hexdigest()[:16]
    return {f"{__name__}.{f.__name__}": digest for f in GRAPH_FUNCTIONS}


GRAPH_FUNCTIONS = (select, weights, merge, unmerge, merge_sdpa, unmerge_sdpa, gather)
"""The functions the rewrite inserts into graphs."""
