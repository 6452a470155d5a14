"""Which rows are image rows, and their grid: from the graph itself, or from what the call tells.

Rows are image rows only when their origin is traced to a grid (`rows/`), in order of preference:

    graph    rows made from the spatial axes of a `(B, C, H, W)` / `(B, C, F, H, W)` input through
             convs, patch splits and reshapes: a UNet level, a DiT's patch embedding, a video's Conv3d
    context  rows of a `(B, L, C)` token input, when the call's grid holds L tokens:
               config  `ToMAConfig.grid`, the user's word for the largest token set
               call    the latent of the current denoiser call (`toma_fx.apply` records it per call,
                       for block graphs of a regional compile, which cannot see it)
               ids     position-id inputs (Flux's `img_ids (N, 3)`, Flux2's `(1, N, 4)`, LTX's
                       `(B, 3, N)`) whose rows are the raster coordinates of a grid of two or more axes

Context grids yield their coarser levels too (each axis halved, rounding up, as stride-2 convs and 2x2
patches do), and a video's per-frame grid `(H, W)` for blocks that fold frames into the batch. Rows
whose grid is one axis only (attention along frames) are never merged; neither are rows two token
inputs could equally be (the pass cannot tell which is the image).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from torch.fx import Node

from toma_fx.passes.rows import RowOrigins, Segment
from toma_fx.passes.rows.ids import coordinate_table, raster_run

__all__ = ["ContextGrid", "Grid", "context_grids", "grid_of", "id_grids", "input_name"]


@dataclass(frozen=True)
class Grid:
    """Image rows in raster order over `shape` (`(H, W)` or `(F, H, W)`); `source` says how it is known."""

    shape: tuple[int, ...]
    source: str

    def __str__(self) -> str:
        return f"{'x'.join(map(str, self.shape))} ({self.source})"


@dataclass(frozen=True)
class ContextGrid:
    """A grid the call gives for token inputs: `shape` of the largest token set, from `source`."""

    shape: tuple[int, ...]
    source: str

    def levels(self) -> list[tuple[int, ...]]:
        """This grid, its coarser levels, and per-frame grids of a video (largest first)."""
        out, shape = [], self.shape
        while True:
            out.append(shape)
            if len(shape) == 3:
                out.append(shape[1:])
            if all(s == 1 for s in shape[-2:]):
                break
            shape = (*shape[:-2], *((s + 1) // 2 for s in shape[-2:]))
        return list(dict.fromkeys(out))


def context_grids(config_grid, call_grid, example_inputs: list) -> list[ContextGrid]:
    """The context grids of a compile, most trusted first."""
    grids = []
    if config_grid is not None:
        grids.append(ContextGrid(tuple(config_grid), "config"))
    if call_grid is not None:
        grids.append(ContextGrid(tuple(call_grid), "call"))
    grids += [ContextGrid(shape, "ids") for shape in id_grids(example_inputs)]
    return grids


def grid_of(seg: Segment, env: RowOrigins, contexts: list[ContextGrid], input_rows: tuple) -> Grid | str:
    """The grid of a segment's rows, or why they are not image rows. `input_rows`: the row counts of
    the graph's `(B, L, C)` token inputs that linears read."""
    if seg.factors is None:
        return f"rows of unknown origin ({seg.label})"
    factors = [f for f in seg.factors if f.size > 1]
    if not factors:
        return "a single row"
    if any(f.fine for f in factors):
        return "rows that are positions inside patches"
    if all(f.positional for f in factors):
        return _positions(factors)
    roots = {f.root for f in factors}
    if len(roots) != 1:
        return "rows made from several inputs"
    root = factors[0].root
    rank = root.meta["example_value"].dim()
    if len(factors) == 1 and rank == 3 and factors[0].dim == 1:
        if seg.positions is not None:
            found = _positions([f for f in seg.positions if f.size > 1])
            if isinstance(found, Grid):
                return Grid(found.shape, f"positions: {input_name(root)}")
        return _from_context(seg.size, root, contexts, input_rows)
    dims = [f.dim for f in factors]
    if len(set(dims)) != len(dims) or 0 in dims or any((root, d) in env.channels for d in dims):
        return "rows that are not spatial positions of an input"
    if rank < 4:
        return "rows of an input with no spatial axes"
    if len(factors) == 1:
        return "rows along one axis only (attention along frames)"
    return Grid(tuple(f.size for f in factors), f"graph: {input_name(root)}")


def _positions(factors) -> Grid | str:
    """Rows laid out by the model's own position tables (`arange`, `meshgrid`, broadcast frequencies):
    the positions of the image its RoPE encodes."""
    if len(factors) < 2:
        return "rows along one position axis (a sequence, or frames)"
    if len({(f.root, f.dim) for f in factors}) != len(factors):
        return "rows with a repeated position axis"
    return Grid(tuple(f.size for f in factors), "positions")


def _from_context(L: int, root: Node, contexts: list[ContextGrid], input_rows: tuple) -> Grid | str:
    """The grid of a token input's L rows, by count, from the grids of the call (and their UNet levels).

    A block works at one resolution: a token input with fewer rows than another input that some level
    holds is not image rows, even when a smaller level has its count (Flux's 256 text tokens and the
    16x16 level of a 64x64 latent)."""
    if input_rows.count(L) > 1:
        return f"{L} rows, as many as another token input: cannot tell which is the image"
    counts = {math.prod(shape) for ctx in contexts for shape in ctx.levels()}
    larger = [M for M in input_rows if M > L and M in counts]
    if larger:
        name = input_name(root)
        return f"rows of input {name} ({L}), fewer than another token input's on the grid ({max(larger)})"
    for ctx in contexts:
        for shape in ctx.levels():
            if math.prod(shape) == L:
                return Grid(shape, f"{ctx.source}: {input_name(root)}")
    if not contexts:
        return f"rows of input {input_name(root)}, on no grid"
    return f"rows of input {input_name(root)} ({L}), which no grid of the call holds"


def input_name(node: Node) -> str:
    """A graph input as the user named it: `l_kwargs_encoder_hidden_states_` -> `encoder_hidden_states`."""
    return re.sub(r"^l_(kwargs_|self_|args_)?|_$", "", node.name) or node.name


def id_grids(example_inputs: list) -> list[tuple[int, ...]]:
    """Grids of position-id inputs (`rows/ids.py`): one per input whose rows run through a grid."""
    grids = []
    for value in example_inputs:
        table = coordinate_table(value)
        run = raster_run(table[0]) if table is not None else None
        if run is not None:
            grids.append(run[1])
    return list(dict.fromkeys(grids))
