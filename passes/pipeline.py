"""The ToMA pass pipeline, in the order it runs:

    discover   attention and MLP anchors, their token sources and kinds      (discover.py)
    grid       token grids from position-id inputs                           (grid.py)
    plan       tile layouts, skips                                           (plan.py)
    analyse    follow merged tokens from each site; skip what cannot merge   (rewrite.py)
    group      which sites select destinations and which reuse them          (plan.py)
    apply      insert select / weights / merge / gather / unmerge nodes      (rewrite.py)
    verify     run on fake tensors; on any failure the graph is left as it was (verify.py)

`run` never raises for a graph it does not understand: it returns the graph untouched and says why.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

from toma_fx.passes.discover import Skip, discover, user_inputs
from toma_fx.passes.grid import id_grids
from toma_fx.passes.plan import group, plan
from toma_fx.passes.rewrite import Rewrite, analyse, apply
from toma_fx.passes.verify import propagate
from torch.fx import GraphModule

from toma_fx.config import ToMAConfig

__all__ = ["Result", "copy_graph", "run"]

log = logging.getLogger("toma_fx")


@dataclass
class Result:
    """The (possibly) rewritten graph and what was done to it."""

    gm: GraphModule
    rewrites: list[Rewrite] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    error: str | None = None


def run(gm: GraphModule, example_inputs: list, config: ToMAConfig) -> Result:
    """Rewrite `gm` for `config`; `gm` itself is never modified."""
    if config.ratio == 0:
        return Result(gm)
    try:
        return _run(gm, example_inputs, config)
    except Exception as e:  # never break the user's compile: fall back to the graph as traced
        log.warning("toma_fx: rewrite failed, compiling the graph unchanged: %s: %s", type(e).__name__, e)
        return Result(gm, error=f"{type(e).__name__}: {e}")


def _run(gm: GraphModule, example_inputs: list, config: ToMAConfig) -> Result:
    new = copy_graph(gm)  # analyse and rewrite the copy: on any failure the original stays intact
    candidates, skips = discover(new)
    sites, plan_skips = plan(candidates, config, id_grids(example_inputs))
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
        return Result(gm, skips=skips)
    group([rw.site for rw in rewrites], config)
    apply(new, rewrites)
    propagate(new, example_inputs)
    log.info("toma_fx: merged %d sites, skipped %d", len(rewrites), len(skips))
    return Result(new, rewrites, skips)


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
