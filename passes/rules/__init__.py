"""The token rules: which ops may run on merged tokens, one registered rule per op family.

flow.py          `follow(node, ctx)`: the registry lookup, then `commute.check` for unknown ops
pointwise.py     elementwise math of any spelling, broadcasting, per-position tables (RoPE)
layout.py        views, reshapes, permutes, squeezes, expands, complex views
indexing.py      getitem, narrow, split / chunk / unbind, cat / stack, slice writes
reductions.py    reductions, softmax and norms over other axes
contractions.py  linear, matmul / einsum over channels, hand-written and SDPA attention
creation.py      `empty_like` / `new_zeros` buffers, dtype and size reads
commute.py       the check by example for ops no rule knows
"""

from toma_fx.passes.rules import (  # noqa: F401  (each module registers its rules)
    contractions,
    creation,
    indexing,
    layout,
    pointwise,
    reductions,
)
from toma_fx.passes.rules.contractions import LINEAR, SDPA
from toma_fx.passes.rules.flow import FLOW, follow
from toma_fx.passes.rules.tokens import Context, Flow, Stop, Tokens, example

__all__ = ["FLOW", "LINEAR", "SDPA", "Context", "Flow", "Stop", "Tokens", "example", "follow"]
