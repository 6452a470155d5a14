"""For an op no rule knows: does it commute with taking a subset of the tokens? Checked by example.

The op runs twice on random inputs of its traced shapes: once on all tokens, once with the merged
inputs cut to a random subset of their image rows (text rows kept). It may run on merged tokens when the
second output is exactly the first one's rows of that subset, along one axis, with everything else
unchanged: then it acts on every token alike and on nothing across tokens. Any difference, error or
ambiguity is a `Stop` with the reason. An int argument equal to the token count is tried patched too
(a size the op was given). Inputs above `MAX_ELEMENTS` are not checked: the region stops.
"""

from __future__ import annotations

import torch
from torch.fx import Node
from torch.fx.node import map_aggregate

from toma_fx.passes.rules.tokens import Context, Flow, Stop, Tokens, example

__all__ = ["MAX_ELEMENTS", "check"]

MAX_ELEMENTS = 1 << 24


def check(node: Node, ctx: Context) -> Flow | Stop:
    merged = {a: t for a, t in ctx.merged.items() if a in node.all_input_nodes}
    if any(not isinstance(t, Tokens) for t in merged.values()):
        return Stop("unknown op on a tuple of merged tensors")
    ref = next(iter(merged.values()))
    if any((t.before, t.after) != (ref.before, ref.after) or t.keys is not None for t in merged.values()):
        return Stop("unknown op on merged tokens of different layouts")
    traced = node.meta.get("example_value")
    outs = traced if isinstance(traced, (tuple, list)) else (traced,)
    if not outs or not all(isinstance(o, torch.Tensor) for o in outs):
        return Stop("unknown op without a tensor result")
    inputs = [a for a in node.all_input_nodes]
    examples = [example(a) for a in inputs]
    if any(e is None for e in examples) or sum(e.numel() for e in examples) > MAX_ELEMENTS:
        return Stop("unknown op, too large or with non-tensor inputs to check")
    g = torch.Generator().manual_seed(0)
    values = {a: _random_like(e, g) for a, e in zip(inputs, examples)}
    n, keep = ctx.n, _subset(ctx.n, g)
    rows = torch.tensor(
        [*range(ref.before), *(ref.before + i for i in keep), *range(ref.before + n, ref.total(n))]
    )
    cut = dict(values)
    for a, t in merged.items():
        cut[a] = values[a].index_select(t.axis, rows)
    try:
        full = _run(node, values, node.args, node.kwargs)
    except Exception as e:
        return Stop(f"unknown op failed on random inputs ({type(e).__name__})")
    patched = (
        _patched(node.args, ref.total(n), ref.total(len(keep))),
        _patched(node.kwargs, ref.total(n), ref.total(len(keep))),
    )
    for args, kwargs in ((node.args, node.kwargs), patched):
        try:
            sub = _run(node, cut, args, kwargs)
        except Exception:
            continue
        tokens = _commutes(full, sub, rows, ref, n)
        if isinstance(tokens, Stop):
            return tokens
        if tokens is not None:
            final = (
                _patched(args, ref.total(len(keep)), ref.total(ctx.m)),
                _patched(kwargs, ref.total(len(keep)), ref.total(ctx.m)),
            )
            return Flow(
                tokens if isinstance(traced, torch.Tensor) else tuple(tokens), args=final[0], kwargs=final[1]
            )
    return Stop("unknown op that does not commute with taking a subset of tokens")


def _random_like(e: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    if e.dtype.is_floating_point or e.dtype.is_complex:
        return torch.randn(e.shape, generator=g, dtype=e.dtype)
    if e.dtype == torch.bool:
        return torch.rand(e.shape, generator=g) > 0.5
    return torch.randint(0, 2, e.shape, generator=g, dtype=e.dtype)


def _subset(n: int, g: torch.Generator) -> list[int]:
    """A random subset of the image rows, of a size no other axis is likely to have."""
    size = max(1, (2 * n) // 3 + 1) if n > 2 else 1
    return sorted(torch.randperm(n, generator=g)[:size].tolist())


def _run(node: Node, values: dict, args, kwargs):
    args = map_aggregate(args, lambda a: values[a] if isinstance(a, Node) else a)
    kwargs = map_aggregate(kwargs, lambda a: values[a] if isinstance(a, Node) else a)
    with torch.no_grad():
        if node.op == "call_method":
            self, *rest = args
            return getattr(self, node.target)(*rest, **kwargs)
        return node.target(*args, **kwargs)


def _patched(tree, old: int, new: int):
    return map_aggregate(tree, lambda a: new if type(a) is int and a == old else a)


def _commutes(full, sub, rows: torch.Tensor, ref: Tokens, n: int):
    """Tokens of each output when `sub` is `full` cut to `rows` along one axis; None when shapes differ
    otherwise; a Stop when the shapes fit but the values do not."""
    fulls = full if isinstance(full, (tuple, list)) else (full,)
    subs = sub if isinstance(sub, (tuple, list)) else (sub,)
    found = []
    for f, s in zip(fulls, subs):
        if not isinstance(f, torch.Tensor) or f.dim() != s.dim():
            return None
        axes = [d for d in range(f.dim()) if f.shape[d] != s.shape[d]]
        if len(axes) != 1 or f.shape[axes[0]] != ref.total(n) or s.shape[axes[0]] != len(rows):
            return None
        axis = axes[0]
        if not torch.allclose(f.index_select(axis, rows), s, rtol=1e-3, atol=1e-4, equal_nan=True):
            return Stop("unknown op whose rows change when other tokens are removed")
        batch = ref.batch + (f.dim() - ref.ndim) if 0 <= ref.batch + (f.dim() - ref.ndim) < f.dim() else None
        if batch is None or batch == axis:
            return Stop("unknown op that moves the batch axis")
        found.append(Tokens(axis, ref.before, ref.after, f.dim(), batch))
    return found
