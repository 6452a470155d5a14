"""Other destination choices in place of ToMA's selection, inside a rewritten graph.

The step and fidelity benchmarks compare facility location with destinations chosen without it, on the
same merge, weights and unmerge: `swap_selection` is an inner compiler that replaces every selection
node (`nodes.select`) of the rewritten graph with a chooser of the same signature.

    fixed     evenly spaced tokens of every tile; no randomness, so Inductor compiles it
    random    K distinct tokens per tile at random (`ops.baselines`)
    strided   tomesd's choice: one random token per 2x1 (ratio 0.5) or 2x2 (ratio 0.75) cell

Random and strided draw from a `torch.Generator` they own, so they run under an inner compiler that
executes the graph ("eager", "aot_eager"), not Inductor. They draw afresh at every call, or (`fresh`
False) the same destinations at every call: the fidelity benchmark's test of whether choices that
change from step to step are what makes them good.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from toma_fx.bench.reconstruction import CHOOSERS, strided_applies
from toma_fx.ops import nodes

__all__ = ["chooser", "fixed_destinations", "swap_selection"]

SelectFn = Callable[..., torch.Tensor]
"""`(x, layout, rows, *kept, noise=0.0, avoid=1.0) -> (B, Nm)` int64 destinations: `nodes.select`'s
signature (the choosers here take no step noise and avoid nothing: `noise` and `avoid` are accepted and
left unused)."""


def fixed_destinations(
    x: torch.Tensor, layout: nodes.Layout, rows: nodes.Rows, *kept, noise=0.0, avoid=1.0
) -> torch.Tensor:
    """`nodes.select` without looking at `x` (or kept destinations): evenly spaced tokens of every tile,
    `(B, Nm)` int64."""
    L = nodes.tile_layout(layout)
    parts = []
    for b in L.blocks:
        idx = torch.linspace(0, b.tile_size - 1, b.keep, device=x.device).round().long()
        parts.append(idx.expand(x.shape[rows[3]], b.num_tiles, b.keep)[..., None])
    return L.join_merged(parts)[..., 0]


def chooser(name: str, seed: int = 0, *, fresh: bool = True) -> SelectFn:
    """A selection node choosing by `CHOOSERS[name]` ("random", "strided") from a generator seeded with
    `seed`: fresh destinations at every call, or with `fresh` False the first call's at every call."""
    if name not in ("random", "strided"):
        raise ValueError(f"chooser must be 'random' or 'strided', got {name!r}")
    choose, gen = CHOOSERS[name], torch.Generator().manual_seed(seed)

    def select(
        x: torch.Tensor, layout: nodes.Layout, rows: nodes.Rows, *kept, noise=0.0, avoid=1.0
    ) -> torch.Tensor:
        L = nodes.tile_layout(layout)
        if name == "strided" and not strided_applies(L):
            raise ValueError(f"tomesd's strided cells do not fit tile {L.tile} at ratio {L.ratio}")
        if not fresh:
            gen.manual_seed(seed)
        idx = choose(nodes.image_rows(x, L, rows), L, gen)
        return L.join_merged([i[..., None].to(x.device) for i in idx])[..., 0]

    select.__name__ = f"{name}_destinations" if fresh else f"fixed_{name}_destinations"
    return select


def swap_selection(select: SelectFn, inner: Callable | None = None) -> Callable:
    """An inner compiler for `ToMABackend`: the rewritten graph with `select` in place of every
    selection node, then compiled by `inner` (`(gm, example_inputs) -> callable`; None runs it as is)."""

    def compile_(gm: torch.fx.GraphModule, example_inputs: list):
        for node in gm.graph.find_nodes(op="call_function", target=nodes.select):
            node.target = select
        gm.recompile()
        return inner(gm, example_inputs) if inner is not None else gm.forward

    compile_.fresh_outputs = inner is None  # the graph runs as is: its outputs are its own
    return compile_
