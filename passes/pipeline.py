"""The ToMA pass pipeline, in the order it runs:

    grid       the grids the call gives: config, the call's latent, position ids  (grid.py)
    discover   attention and MLP anchors, their sources, kinds and image rows      (discover.py, rows/)
    plan       tile layouts, skips                                                  (plan.py)
    analyse    follow merged tokens from each site; skip what cannot merge          (rewrite.py, rules/)
    group      which sites select destinations and which reuse them                 (plan.py)
    apply      insert select / weights / merge / gather / unmerge nodes             (rewrite.py)
    verify     run what changed on fake tensors                                     (verify.py)
    flops      each node's FLOPs, from the shapes it holds                          (flops.py)
    profit     a site whose FLOPs after merging exceed its FLOPs before is dropped, and the
               pipeline runs again without it

`run` never raises for a graph it does not understand: it returns the graph untouched and says why,
in `Result.skips` / `Result.error` and, for a failure, in a warning naming the graph.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass, field

import torch
from torch.fx import GraphModule
from torch.fx.experimental.symbolic_shapes import free_symbols

from toma_fx.config import ToMAConfig
from toma_fx.passes.discover import Skip, discover, user_inputs
from toma_fx.passes.flops import node_flops
from toma_fx.passes.grid import context_grids
from toma_fx.passes.plan import group, plan
from toma_fx.passes.rewrite import Rewrite, analyse, apply
from toma_fx.passes.rows.ids import coordinate_table, raster_run
from toma_fx.passes.verify import propagate

__all__ = ["FallbackWarning", "Result", "copy_graph", "graph_name", "run", "warn_fallback"]

log = logging.getLogger("toma_fx")


@dataclass
class Result:
    """The (possibly) rewritten graph and what was done to it.

    `flops` maps each merged site's index to its `(FLOPs before, FLOPs after)`: the nodes it runs
    merged, plus the nodes inserted for it. `total_flops` is the whole graph's, before and after."""

    gm: GraphModule
    rewrites: list[Rewrite] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    error: str | None = None
    flops: dict[int, tuple[int, int]] = field(default_factory=dict)
    total_flops: tuple[int, int] = (0, 0)
    node_flops: dict[str, int] = field(default_factory=dict)  # of the rewritten graph
    ids_inputs: tuple[int, ...] = ()  # graph inputs whose coordinates placed rows: read per call

    @property
    def uses_call_grid(self) -> bool:
        """Whether a site took its grid from the call (the rewrite is then the call's grid's)."""
        return any(rw.site.candidate.grid.source.startswith("call") for rw in self.rewrites)


def run(gm: GraphModule, example_inputs: list, config: ToMAConfig, *, call_grid=None) -> Result:
    """Rewrite `gm` for `config`; `gm` itself is never modified. `call_grid` is the latent grid of the
    denoiser call being compiled, when a pipeline hook recorded it (`toma_fx.apply`)."""
    if config.ratio == 0:
        return Result(gm)
    symbolic = [p.name for p in gm.graph.find_nodes(op="placeholder") if _symbolic(p)]
    if symbolic:
        why = "symbolic shapes: compile with dynamic=False to merge at every resolution"
        return Result(gm, skips=[Skip(graph_name(gm), "graph", f"{why} ({', '.join(symbolic[:3])})")])
    try:
        before = node_flops(gm)
        dropped: list[Skip] = []
        while True:
            result = _run(gm, example_inputs, config, call_grid, {s.path for s in dropped})
            result.skips += dropped
            if not result.rewrites:
                total = sum(before.values())
                result.total_flops = (total, total)
                return result
            losses = _losses(result, before)
            if not losses:
                return result
            dropped += losses
    except Exception as e:  # never break the user's compile: fall back to the graph as traced
        why = f"{type(e).__name__}: {e}"
        warn_fallback(f"rewriting {graph_name(gm)} failed, compiling it unchanged: {why}")
        return Result(gm, error=f"{graph_name(gm)}: {why}")


class FallbackWarning(UserWarning):
    """A graph toma-fx meant to rewrite runs unchanged (plain `torch.compile`), and why."""


def warn_fallback(message: str) -> None:
    warnings.warn(f"toma_fx: {message}", FallbackWarning, stacklevel=3)
    log.warning("toma_fx: %s", message)


def graph_name(gm: GraphModule) -> str:
    """What a message calls a graph: Dynamo's compile id and the function it traced, as in
    `graph 0/0 (FluxTransformer2DModel.forward)`."""
    name = f"graph {gm.meta.get('dynamo_compile_id', '?')}"
    context = torch._guards.TracingContext.try_get()
    codes = context.traced_code if context is not None else []
    code = next((c for c in codes if c.co_name == "forward"), codes[0] if codes else None)  # past decorators
    return f"{name} ({getattr(code, 'co_qualname', code.co_name)})" if code is not None else name


def _symbolic(node) -> bool:
    value = node.meta.get("example_value")
    return hasattr(value, "shape") and bool(free_symbols(value))


def _run(gm: GraphModule, example_inputs: list, config: ToMAConfig, call_grid, excluded: set[str]) -> Result:
    new = copy_graph(gm)  # analyse and rewrite the copy: on any failure the original stays intact
    ids_inputs = tuple(i for i, x in enumerate(example_inputs) if _ids_layout(x) is not None)
    candidates, skips = discover(new, context_grids(config.grid, call_grid, example_inputs), example_inputs)
    candidates = [c for c in candidates if c.path not in excluded]
    sites, plan_skips = plan(candidates, config)
    skips += plan_skips
    deps = user_inputs(new)
    rewrites, claimed = [], set()
    for site in sites:
        rw = analyse(site, deps, claimed)
        if isinstance(rw, Skip):
            skips.append(rw)
            continue
        claimed |= rw.interior
        rewrites.append(rw)
    if not rewrites:
        attention = [s.why for s in skips if s.kind == "attention"]
        if attention and not plan_skips:  # not what the config asked for: say why
            reasons = "; ".join(dict.fromkeys(attention))
            warn_fallback(f"nothing merged in {graph_name(gm)}, its attention left alone: {reasons}")
        return Result(gm, skips=skips)
    group([rw.site for rw in rewrites], config)
    apply(new, rewrites)
    propagate(new, example_inputs)
    after = node_flops(new)
    log.info("toma_fx: merged %d sites in %s, skipped %d", len(rewrites), graph_name(gm), len(skips))
    total = (0, sum(after.values()))
    return Result(new, rewrites, skips, node_flops=after, total_flops=total, ids_inputs=ids_inputs)


def _ids_layout(value):
    table = coordinate_table(value)
    return raster_run(table[0]) if table is not None else None


def _losses(result: Result, before: dict[str, int]) -> list[Skip]:
    """Fill in each site's FLOPs before merging; the sites that cost more than they save.

    A site pays for the nodes it runs merged plus its own weights, merge, gathers and unmerges. The
    selection serves its whole group, so it is weighed against the group's saving: a group that costs
    more than it saves is dropped whole."""
    dropped: dict[int, Skip] = {}
    groups: dict[int, list[tuple[Rewrite, int, int]]] = {}
    for rw in result.rewrites:
        i = rw.site.index
        cost = _sum(before, rw.interior_names)
        after = _sum(result.node_flops, [*rw.interior_names, *rw.inserted])
        selection = _sum(result.node_flops, rw.selection)
        result.flops[i] = (cost, after)
        if after - selection >= cost:
            dropped[i] = _loss(rw, cost, after - selection)
        groups.setdefault(rw.site.leader, []).append((rw, cost - (after - selection), selection))
    for members in groups.values():
        if sum(sel for *_, sel in members) >= sum(saving for _, saving, _ in members):
            for rw, *_ in members:
                dropped.setdefault(rw.site.index, _loss(rw, *result.flops[rw.site.index]))
    result.total_flops = (sum(before.values()), result.total_flops[1])
    return list(dropped.values())


def _loss(rw: Rewrite, cost: int, after: int) -> Skip:
    c = rw.site.candidate
    why = f"merging costs as much as it saves or more: {cost / 1e6:.3g} -> {after / 1e6:.3g} MFLOP"
    return Skip(c.path, c.kind, why)


def _sum(flops: dict[str, int], names) -> int:
    return sum(flops.get(n, 0) for n in names)


def copy_graph(gm: GraphModule) -> GraphModule:
    """A deep copy that keeps what AOTAutograd reads from a Dynamo graph: the sources of the inputs,
    which mark parameters static (cudagraphs would otherwise copy every weight on every replay)."""
    new = copy.deepcopy(gm)
    if hasattr(gm, "_param_name_to_source"):
        new._param_name_to_source = gm._param_name_to_source
    old_inputs = gm.graph.find_nodes(op="placeholder")
    for old, node in zip(old_inputs, new.graph.find_nodes(op="placeholder")):
        if hasattr(old, "_dynamo_source"):
            node._dynamo_source = old._dynamo_source
    return new
