"""`follow`: may this node run on merged tokens? Registered rules first, then a check by example.

Each op family registers its rules on `FLOW` (`pointwise.py`, `layout.py`, `indexing.py`,
`reductions.py`, `contractions.py`, `creation.py`). A node no rule knows is decided by `commute.py`:
the op is run on random inputs of the traced shapes, once on all tokens and once on a subset, and
flows only when that commutes (output rows of the subset = the subset of the output rows).
"""

from __future__ import annotations

import torch
from torch.fx import Node
from torch.fx.experimental.symbolic_shapes import free_symbols

from toma_fx.passes.rules.commute import check
from toma_fx.passes.rules.registry import Registry, target_name
from toma_fx.passes.rules.tokens import Context, Flow, Stop

__all__ = ["FLOW", "follow"]

FLOW = Registry("flow")


def follow(node: Node, ctx: Context) -> Flow | Stop:
    """The verdict for `node`, some of whose inputs carry merged tokens (`ctx.merged`)."""
    if node.op not in ("call_function", "call_method"):
        return Stop("graph output" if node.op == "output" else f"unsupported node {node.op}")
    values = node.meta.get("example_value")
    if any(
        isinstance(v, torch.Tensor) and free_symbols(v)
        for v in (values if isinstance(values, (tuple, list)) else (values,))
    ):
        return Stop(f"a data-dependent shape ({target_name(node)})")
    rule = FLOW.lookup(node)
    if rule is not None:
        res = rule(node, ctx)
    else:
        res = check(node, ctx)
    if isinstance(res, Stop):
        return Stop(f"{res.why} ({target_name(node)})")
    return res
